"""The best-trial rule and the results table, on made-up rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.search.results import (
    format_summary,
    read_results,
    select_best_trial,
    summarise_history,
    write_results,
)


def _row(index: int, history: list[float], status: str = "finished", **config: object) -> dict:
    return summarise_history({"trial_id": f"t_{index:05d}", "trial_index": index, "status": status,
                              "metric_history": history, "config": {"lr": 0.001 * (index + 1), **config},
                              "node_id": "n1", "mlflow_run_id": f"r{index}", "best_checkpoint": ""}, "max")


def test_best_epoch_not_last_epoch_decides() -> None:
    rows = [_row(0, [0.6, 0.9, 0.7]), _row(1, [0.6, 0.8, 0.85])]
    picked = select_best_trial(rows, "max")
    assert picked.row["trial_id"] == "t_00000" and picked.epoch == 2 and picked.score == 0.9
    assert select_best_trial(rows, "max", scope="last_epoch").row["trial_id"] == "t_00001"


def test_short_trials_spiking_early_are_not_selected() -> None:
    rows = [_row(0, [0.99], status="stopped_by_asha"), _row(1, [0.7, 0.8, 0.82])]
    assert select_best_trial(rows, "max", min_epochs=2).row["trial_id"] == "t_00001"
    assert select_best_trial(rows, "max", min_epochs=1).row["trial_id"] == "t_00000"


def test_falls_back_to_all_trials_and_says_so() -> None:
    picked = select_best_trial([_row(0, [0.5]), _row(1, [0.7])], "max", min_epochs=3)
    assert picked.row["trial_id"] == "t_00001" and "no trial reached 3 epochs" in picked.note


def test_ties_prefer_fewer_epochs_then_lower_index() -> None:
    rows = [_row(0, [0.5, 0.8, 0.8]), _row(1, [0.8, 0.7]), _row(2, [0.8, 0.6])]
    assert select_best_trial(rows, "max").row["trial_id"] == "t_00001"


def test_min_mode_and_nan_histories() -> None:
    rows = [_row(0, [0.7, 0.5]), _row(1, [0.6, 0.4]), _row(2, [], status="error")]
    assert select_best_trial(rows, "min").row["trial_id"] == "t_00001"
    with pytest.raises(ValueError):
        select_best_trial([_row(0, [], status="error")], "max")


def test_results_table_round_trips_and_summarises(tmp_path: Path) -> None:
    rows = [_row(i, [0.5 + 0.1 * i, 0.55 + 0.1 * i], model="tiny_cnn") for i in range(3)]
    write_results(tmp_path, rows)
    frame = read_results(tmp_path)
    assert list(frame["trial_id"]) == ["t_00000", "t_00001", "t_00002"]
    assert "config/lr" in frame.columns and frame["best_epoch"].tolist() == [2, 2, 2]
    assert (tmp_path / "results.csv").read_text().count("\n") == 4
    summary = format_summary(frame, "val_auroc", "max", top=2)
    assert "3 trials: 3 finished" in summary
    assert summary.index("t_00002") < summary.index("t_00001") and "t_00000" not in summary


def test_summary_leaves_out_parameters_a_trials_model_does_not_take(tmp_path: Path) -> None:
    """A conditional space (depth only for deep_cnn) leaves the other trials' cells empty: no 'depth=nan'."""
    rows = [_row(0, [0.7], model="tunable_cnn", c1=32), _row(1, [0.8], model="deep_cnn", depth=5)]
    write_results(tmp_path, rows)
    lines = format_summary(read_results(tmp_path), "val_auroc", "max").splitlines()
    deep, tunable = (next(line for line in lines if trial in line) for trial in ("t_00001", "t_00000"))
    assert "depth=5" in deep and "c1" not in deep
    assert "c1=32" in tunable and "depth" not in tunable and "nan" not in tunable
