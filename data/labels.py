"""Class-folder (or CSV label) names → 0/1 labels.

Users name their folders every way there is (``Fractured``, ``Non-Fractured``, ``Non_fractured``,
``not fractured``, ``normal``...). Names are compared after normalisation (case, ``-``/``_``/spaces), an
explicit mapping (``--positive NAME --negative NAME``) wins over the built-in synonyms, and a name that
matches nothing is an error that lists what was found and how to map it — never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from fracture_tune.errors import FractureTuneError

POSITIVE = 1
NEGATIVE = 0
CLASS_NAMES: tuple[str, str] = ("non_fractured", "fractured")

_POSITIVE_SYNONYMS = frozenset(
    {"fractured", "fracture", "fractures", "fx", "positive", "pos", "abnormal", "broken", "yes", "1", "true"}
)
_NEGATIVE_SYNONYMS = frozenset(
    {
        "non fractured",
        "nonfractured",
        "not fractured",
        "unfractured",
        "no fracture",
        "no fractures",
        "non fracture",
        "not fracture",
        "normal",
        "healthy",
        "negative",
        "neg",
        "intact",
        "no",
        "0",
        "false",
    }
)


def normalise_label_name(name: str) -> str:
    """Case-, separator- and whitespace-insensitive form: ``Non-Fractured`` → ``non fractured``."""
    return re.sub(r"[\s_\-]+", " ", name).strip().lower()


def build_label_map(positive: Iterable[str] = (), negative: Iterable[str] = ()) -> dict[str, int]:
    """An explicit mapping from the CLI's ``--positive``/``--negative`` names (repeatable)."""
    mapping: dict[str, int] = {}
    for names, label in ((positive, POSITIVE), (negative, NEGATIVE)):
        for name in names:
            key = normalise_label_name(name)
            if mapping.get(key, label) != label:
                raise FractureTuneError(
                    f"class name {name!r} is given as both --positive and --negative",
                    hint="name each class folder once",
                )
            mapping[key] = label
    return mapping


def resolve_labels(found: Iterable[str], label_map: Mapping[str, int] | None = None) -> dict[str, int]:
    """Map every found class name to 0/1, or raise naming the unknown ones and how to map them."""
    explicit = {normalise_label_name(name): int(label) for name, label in (label_map or {}).items()}
    for name, label in explicit.items():
        if label not in (NEGATIVE, POSITIVE):
            raise FractureTuneError(f"label map gives {name!r} the label {label}; expected 0 or 1")
    found_names = sorted(set(found))
    _check_explicit_names_exist(explicit, found_names)
    resolved: dict[str, int] = {}
    unknown: list[str] = []
    for name in found_names:
        key = normalise_label_name(name)
        if key in explicit:
            resolved[name] = explicit[key]
        elif key in _POSITIVE_SYNONYMS:
            resolved[name] = POSITIVE
        elif key in _NEGATIVE_SYNONYMS:
            resolved[name] = NEGATIVE
        else:
            unknown.append(name)
    if unknown:
        raise FractureTuneError(
            f"unknown class name(s) {', '.join(map(repr, unknown))}; "
            f"found: {', '.join(map(repr, found_names))}",
            hint="say which name is which, e.g. "
            f"--positive {_quote(unknown[0])} --negative OTHER (repeatable); built-in names: "
            "Fractured / Non_fractured, Non-Fractured, not fractured, normal, healthy",
        )
    return resolved


def _check_explicit_names_exist(explicit: Mapping[str, int], found_names: list[str]) -> None:
    found_keys = {normalise_label_name(name) for name in found_names}
    missing = sorted(name for name in explicit if name not in found_keys)
    if missing:
        raise FractureTuneError(
            f"--positive/--negative name(s) {', '.join(map(repr, missing))} match no class; "
            f"found: {', '.join(map(repr, found_names))}",
            hint="use the class folder (or CSV label) names exactly as found (case and -/_ do not matter)",
        )


def _quote(name: str) -> str:
    return f"'{name}'" if re.search(r"\s", name) else name
