"""search_record.json / best_trial.json round-trip as retrain reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.records import (
    BestTrial,
    SearchRecord,
    read_best_trial,
    read_search_record,
    run_dir_for,
    write_best_trial,
    write_search_record,
)


def _record(run_dir: Path) -> SearchRecord:
    return SearchRecord(
        name="demo",
        run_dir=str(run_dir),
        dataset_cache_dir="/c/abc",
        dataset_key="abc",
        split_hash="s1",
        metric="val_auroc",
        mode="max",
        best_trial_rule={"min_epochs": 2},
        tracking_uri="sqlite:////x/mlflow.db",
        experiment_name="fracture-tune",
        experiment_id="1",
        parent_run_id="p1",
        code_version="deadbeef",
        library_versions={"ray": "2.60.0"},
        status="finished",
    )


def test_search_record_round_trips(tmp_path: Path) -> None:
    record = _record(tmp_path)
    write_search_record(tmp_path, record)
    assert read_search_record(tmp_path) == record


def test_best_trial_round_trips_with_tuple_range(tmp_path: Path) -> None:
    best = BestTrial(
        trial_id="t_00003",
        trial_index=3,
        config={"model": "tiny_cnn", "lr": 0.003},
        metric="val_auroc",
        mode="max",
        metric_value=0.91,
        best_epoch=4,
        epochs_run=5,
        metric_range=(0.6, 0.91),
        checkpoint_path="/r/checkpoint_000003",
        mlflow_run_id="r3",
        metric_by_epoch=[0.6, 0.7, 0.8, 0.91, 0.9],
    )
    write_best_trial(tmp_path, best)
    assert read_best_trial(tmp_path) == best


def test_reader_ignores_unknown_keys_from_newer_writers(tmp_path: Path) -> None:
    write_search_record(tmp_path, _record(tmp_path))
    path = tmp_path / "search_record.json"
    path.write_text(path.read_text().replace('"name"', '"future_field": 1,\n  "name"', 1))
    assert read_search_record(tmp_path).name == "demo"


def test_missing_record_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FractureTuneError) as error:
        read_best_trial(tmp_path / "nope")
    assert "best_trial.json" in error.value.message
    assert error.value.hint and "fracture-tune search" in error.value.hint


def test_run_dir_is_absolute(tmp_path: Path) -> None:
    assert run_dir_for("x", tmp_path) == (tmp_path / "x").resolve()
    assert run_dir_for("x").is_absolute()
