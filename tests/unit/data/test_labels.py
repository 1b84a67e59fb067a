"""Class-name mapping: the names users have, explicit overrides, and errors that say how to fix them."""

from __future__ import annotations

import pytest

from fracture_tune.data.labels import build_label_map, normalise_label_name, resolve_labels
from fracture_tune.errors import FractureTuneError


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Fractured", 1),
        ("FRACTURED", 1),
        ("fracture", 1),
        ("Non-Fractured", 0),
        ("Non_fractured", 0),
        ("non fractured", 0),
        ("not fractured", 0),
        ("Not_Fractured", 0),
        ("normal", 0),
        ("Healthy", 0),
    ],
)
def test_built_in_names(name: str, label: int) -> None:
    assert resolve_labels([name]) == {name: label}


def test_normalisation_ignores_case_and_separators() -> None:
    assert normalise_label_name("  Non--Fractured_ ") == "non fractured"


def test_explicit_mapping_wins_and_covers_unknown_names() -> None:
    mapping = build_label_map(positive=["Class B"], negative=["class_a", "Fractured"])
    assert resolve_labels(["Class-A", "Class B", "Fractured"], mapping) == {
        "Class-A": 0,
        "Class B": 1,
        "Fractured": 0,
    }


def test_unknown_name_lists_what_was_found_and_how_to_map_it() -> None:
    with pytest.raises(FractureTuneError) as raised:
        resolve_labels(["Fractured", "Misc scans"])
    assert "'Misc scans'" in raised.value.message and "'Fractured'" in raised.value.message
    assert "--positive 'Misc scans'" in (raised.value.hint or "")


def test_explicit_name_that_matches_nothing_is_an_error() -> None:
    with pytest.raises(FractureTuneError, match="'broken' match no class"):
        resolve_labels(["Fractured", "normal"], build_label_map(positive=["broken"]))


def test_same_name_positive_and_negative_is_an_error() -> None:
    with pytest.raises(FractureTuneError, match="both --positive and --negative"):
        build_label_map(positive=["X"], negative=["x"])
