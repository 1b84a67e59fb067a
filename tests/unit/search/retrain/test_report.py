"""The retrain's reproduction check (ray#43900): only a worse-than-the-trial result is a warning; a version
that did not become the champion names the URI to use instead."""

from __future__ import annotations

from fracture_tune.search.records import BestTrial
from fracture_tune.search.retrain.report import RegistryEntry
from fracture_tune.search.retrain.retrain import reproduction_check


def _trial(mode: str = "max") -> BestTrial:
    return BestTrial(
        trial_id="abc",
        trial_index=1,
        config={},
        metric="val_auroc",
        mode=mode,
        metric_value=0.80,
        best_epoch=3,
        epochs_run=3,
        metric_range=(0.60, 0.80),
        checkpoint_path="",
        mlflow_run_id="",
    )


def _history(values: list[float]) -> list[dict[str, float]]:
    return [{"epoch": float(i + 1), "val_auroc": v} for i, v in enumerate(values)]


def test_within_the_trials_range_reproduces_without_warning() -> None:
    check = reproduction_check(_trial(), _history([0.5, 0.6, 0.75, 0.9]), "train")
    assert check["epoch"] == 3 and check["within_range"] and check["reproduced"]
    assert "warning" not in check


def test_better_than_the_trial_is_a_reproduction_not_a_warning() -> None:
    check = reproduction_check(_trial(), _history([0.5, 0.6, 0.85]), "train")
    assert check["reproduced"] and not check["within_range"] and "warning" not in check
    assert "better" in check["note"]


def test_worse_than_the_trial_warns_with_the_numbers() -> None:
    check = reproduction_check(_trial(), _history([0.5, 0.52, 0.55]), "train")
    assert not check["reproduced"]
    assert "0.5500" in check["warning"] and "[0.6000, 0.8000]" in check["warning"]


def test_direction_follows_the_metric_mode() -> None:
    check = reproduction_check(_trial(mode="min"), _history([0.5, 0.5, 0.55]), "train")
    assert check["reproduced"] and "warning" not in check  # lower is better for a min metric


def test_train_plus_val_is_not_checked() -> None:
    assert reproduction_check(_trial(), _history([0.9]), "train+val")["checked"] is False


def test_a_version_that_is_not_the_champion_says_which_uri_to_use() -> None:
    """What retrain prints under the registration line when ``@champion`` still names another version."""
    kept = RegistryEntry(
        name="fracture-classifier",
        version="4",
        champion=False,
        decision="champion v3 was tested on split abc, this model on def: not comparable",
        uri="models:/fracture-classifier/4",
        champion_version="3",
    )
    assert kept.not_champion_note() == (
        "not promoted: models:/fracture-classifier@champion is still version 3; to use this model, pass its "
        "version: --model models:/fracture-classifier/4"
    )
    unaliased = RegistryEntry(
        "fracture-classifier", "1", False, "promotion disabled", "models:/fracture-classifier/1"
    )
    assert "@champion names no version" in unaliased.not_champion_note()
    assert RegistryEntry("m", "5", True, "no champion yet", "models:/m/5", "5").not_champion_note() == ""
