"""What the engine and the trainable accept and report (docs/contracts.md), for config validation.

The authoritative lists live in ``trainables``; when that package can tell us its keys we ask it, so the
config never drifts from the engine. The static lists below mirror the contract for the keys it fixes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from data.errors import FractureTuneError

TRAINABLE_METRICS: frozenset[str] = frozenset(
    {
        "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy", "val_auroc",
        "val_sensitivity", "val_specificity", "val_f1",
    }
)

CONTRACT_ENGINE_KEYS: frozenset[str] = frozenset(
    {
        "model", "epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule",
        "warmup_epochs", "label_smoothing", "class_weighting", "grad_clip", "aug_strength", "aug_factor",
        "input_size", "seed", "train_limit", "val_limit", "device", "num_threads", "channels_last", "amp",
        "compile",
    }
)
# Model constructor arguments of the registered models (tunable_cnn's widths and dropout, etc.).
CONTRACT_MODEL_KEYS: frozenset[str] = frozenset(
    {"c1", "c2", "c3", "dropout", "width", "fc_units", "pretrained"}
)


def engine_keys() -> frozenset[str]:
    """Flat keys ``TrainConfig.from_flat`` accepts: the contract's, plus any the engine declares."""
    keys = set(CONTRACT_ENGINE_KEYS | CONTRACT_MODEL_KEYS)
    try:
        from trainables import config as train_config  # the engine may not be installed in every env
    except Exception:  # noqa: BLE001 - any import problem means: fall back to the contract
        return frozenset(keys)
    declared = getattr(train_config, "FLAT_KEYS", None) or getattr(train_config, "ENGINE_KEYS", None)
    if declared:
        keys |= set(declared)
    return frozenset(keys)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


# Fixed values that must be strictly positive (lr <= 0 never trains) or non-negative.
POSITIVE_KEYS = frozenset({"lr", "epochs", "batch_size", "input_size", "aug_factor"})
NON_NEGATIVE_KEYS = frozenset(
    {"weight_decay", "label_smoothing", "aug_strength", "warmup_epochs", "momentum"}
)


def _check_value(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if name in POSITIVE_KEYS and value <= 0:
        raise FractureTuneError(f"training.{name}: must be > 0, got {value}")
    if name in NON_NEGATIVE_KEYS and value < 0:
        raise FractureTuneError(f"training.{name}: must be >= 0, got {value}")


def check_engine_keys(training: dict[str, Any], space_params: Iterable[str]) -> None:
    """Reject fixed values or space parameters the engine would not know, naming the key."""
    for name, value in training.items():
        _check_value(name, value)
    known = engine_keys()
    for section, names in (("training", training.keys()), ("space.params", space_params)):
        for name in names:
            if name in known:
                continue
            guess = did_you_mean(name, known)
            hint = f"did you mean {guess!r}?" if guess else f"engine keys: {', '.join(sorted(known))}"
            raise FractureTuneError(f"{section}.{name}: the training engine has no key {name!r}", hint=hint)
