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
from fracture_tune.trainables.score import ScoreRule

RULE = ScoreRule("val_auroc", "max", min_epochs=2)


def _row(
    index: int, history: list[float], status: str = "finished", rule: ScoreRule = RULE, **config: object
) -> dict:
    return summarise_history(
        {
            "trial_id": f"t_{index:05d}",
            "trial_index": index,
            "status": status,
            "metric_history": history,
            "config": {"lr": 0.001 * (index + 1), **config},
            "node_id": "n1",
            "mlflow_run_id": f"r{index}",
            "best_checkpoint": "",
        },
        rule,
    )


def test_best_epoch_at_or_after_min_epochs_decides_not_the_last() -> None:
    rows = [_row(0, [0.6, 0.9, 0.7]), _row(1, [0.6, 0.8, 0.85])]
    picked = select_best_trial(rows, RULE)
    assert picked.row["trial_id"] == "t_00000" and picked.epoch == 2 and picked.score == 0.9
    last = ScoreRule("val_auroc", "max", min_epochs=2, scope="last_epoch")
    assert (
        select_best_trial([_row(i, r["metric_history"], rule=last) for i, r in enumerate(rows)], last).row[
            "trial_id"
        ]
        == "t_00001"
    )


def test_a_one_epoch_spike_on_a_small_validation_split_never_wins() -> None:
    """The case that crowned a trial for its epoch-1 AUROC of 0.938 after which its curve fell to 0.53."""
    spike = _row(0, [0.938, 0.53, 0.53, 0.55, 0.53, 0.54])
    steady = _row(1, [0.70, 0.80, 0.938, 0.90, 0.93, 0.92])
    short = _row(2, [0.99], status="stopped_by_asha")  # stopped before min_epochs: provisional score only
    picked = select_best_trial([spike, steady, short], RULE)
    assert picked.row["trial_id"] == "t_00001" and picked.score == 0.938 and picked.epoch == 3
    assert spike["score"] == pytest.approx(0.55), "the spike before min_epochs is part of no score"


def test_equal_scores_go_to_the_better_trained_trial_then_the_earlier_one() -> None:
    rows = [
        _row(0, [0.5, 0.8], status="stopped_by_asha"),  # 2 epochs
        _row(1, [0.5, 0.8, 0.7, 0.6]),  # 4 epochs, same score: better trained
        _row(2, [0.4, 0.8, 0.7, 0.7]),  # 4 epochs, same score, later trial
    ]
    assert select_best_trial(rows, RULE).row["trial_id"] == "t_00001"


def test_within_a_trial_equal_values_go_to_the_later_epoch() -> None:
    assert RULE.score([0.5, 0.8, 0.7, 0.8]) == (0.8, 4)


def test_errored_and_interrupted_trials_are_never_the_best_while_another_counts() -> None:
    rows = [
        _row(0, [0.9, 0.95, 0.97], status="error"),
        _row(1, [0.9, 0.96], status="interrupted"),
        _row(2, [0.6, 0.7], status="time_budget"),
    ]
    assert select_best_trial(rows, RULE).row["trial_id"] == "t_00002"


def test_falls_back_to_all_trials_and_says_so() -> None:
    rule = ScoreRule("val_auroc", "max", min_epochs=3)
    picked = select_best_trial([_row(0, [0.5], rule=rule), _row(1, [0.7], rule=rule)], rule)
    assert picked.row["trial_id"] == "t_00001" and "no trial ended for good with 3 epochs" in picked.note


def test_min_mode_and_nan_histories() -> None:
    rule = ScoreRule("val_loss", "min", min_epochs=1)
    rows = [_row(0, [0.7, 0.5], rule=rule), _row(1, [0.6, 0.4], rule=rule), _row(2, [], "error", rule=rule)]
    assert select_best_trial(rows, rule).row["trial_id"] == "t_00001"
    with pytest.raises(ValueError):
        select_best_trial([_row(0, [], status="error")], RULE)


def test_results_table_round_trips_and_summarises(tmp_path: Path) -> None:
    rows = [_row(i, [0.5 + 0.1 * i, 0.55 + 0.1 * i], model="tiny_cnn") for i in range(3)]
    write_results(tmp_path, rows)
    frame = read_results(tmp_path)
    assert list(frame["trial_id"]) == ["t_00000", "t_00001", "t_00002"]
    assert "config/lr" in frame.columns and frame["score_epoch"].tolist() == [2, 2, 2]
    assert frame["score"].tolist() == pytest.approx([0.55, 0.65, 0.75])
    assert (tmp_path / "results.csv").read_text().count("\n") == 4
    summary = format_summary(frame, RULE, top=2)
    assert "3 trials: 3 finished" in summary
    assert summary.index("t_00002") < summary.index("t_00001") and "t_00000" not in summary


def test_summary_leaves_out_parameters_a_trials_model_does_not_take(tmp_path: Path) -> None:
    """A conditional space (depth only for deep_cnn) leaves the other trials' cells empty: no 'depth=nan'."""
    rows = [_row(0, [0.7, 0.7], model="tunable_cnn", c1=32), _row(1, [0.8, 0.8], model="deep_cnn", depth=5)]
    write_results(tmp_path, rows)
    lines = format_summary(read_results(tmp_path), RULE).splitlines()
    deep, tunable = (next(line for line in lines if trial in line) for trial in ("t_00001", "t_00000"))
    assert "depth=5" in deep and "c1" not in deep
    assert "c1=32" in tunable and "depth" not in tunable and "nan" not in tunable
