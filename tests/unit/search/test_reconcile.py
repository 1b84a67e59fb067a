"""The records check names every difference between a search's records, and nothing when they agree."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fracture_tune.search.reconcile import reconcile
from fracture_tune.search.stops import StopLedger
from fracture_tune.trainables.score import ScoreRule

RULE = ScoreRule("val_auroc", "max", min_epochs=2)
TRIALS = {
    "done": ("finished", [0.6, 0.8, 0.7]),
    "asha": ("stopped_by_asha", [0.5, 0.55]),
    "early": ("stopped_by_asha", [0.4]),
}


def _records(tmp_path: Path) -> dict[str, Any]:
    """Agreeing records of three trials: folders, results rows, stop records, MLflow runs, study trials."""
    ledger = StopLedger(tmp_path)
    rows, runs, study = [], [], []
    for index, (trial_id, (status, history)) in enumerate(TRIALS.items()):
        folder = tmp_path / f"trial_{trial_id}"
        folder.mkdir()
        lines = [
            json.dumps({"epoch": e, "val_auroc": v, "score": RULE.score_at(history, e)[0]})
            for e, v in enumerate(history, start=1)
        ]
        (folder / "result.json").write_text("\n".join(lines) + "\n")
        ledger.record(trial_id, status, len(history))
        score = RULE.score(history)[0]
        rows.append(
            {
                "trial_id": trial_id,
                "trial_index": index,
                "status": status,
                "metric_history": history,
                "score": score,
            }
        )
        runs.append(
            SimpleNamespace(
                info=SimpleNamespace(status="FINISHED" if status == "finished" else "KILLED"),
                data=SimpleNamespace(
                    tags={
                        "fracture_tune.trial_id": trial_id,
                        "stop_reason": status,
                        "epochs_completed": str(len(history)),
                    },
                    metrics={"val_auroc": history[-1], "score": score},
                ),
            )
        )
        state = SimpleNamespace(name="COMPLETE" if len(history) >= 2 else "PRUNED")
        study.append(
            SimpleNamespace(
                number=index,
                state=state,
                value=score,
                intermediate_values=dict(enumerate(RULE.running(history), start=1)),
                user_attrs={"tune_trial_id": trial_id, "stop_reason": status},
            )
        )
    return {"rows": rows, "runs": runs, "study": study}


def _check(tmp_path: Path, records: dict[str, Any], best: str | None = "done") -> Any:
    return reconcile(
        tmp_path,
        records["rows"],
        RULE,
        mlflow_runs=records["runs"],
        study_trials=records["study"],
        best_trial_id=best,
    )


def test_agreeing_records_agree(tmp_path: Path) -> None:
    report = _check(tmp_path, _records(tmp_path))
    assert report.agree and report.summary().startswith("records agree: 3 trials in trial folders, results")


def _stranger(records: dict[str, Any]) -> None:
    stranger = SimpleNamespace(
        number=9,
        state=SimpleNamespace(name="RUNNING"),
        value=None,
        intermediate_values={},
        user_attrs={"tune_trial_id": "x"},
    )
    records["study"].append(stranger)


CHANGES = {
    # The hand-over bug: results call a trial that ran 3 epochs an error with none.
    "trial done: results: 0 epochs recorded, the trial reported 3": lambda r: r["rows"][0].update(
        status="error", metric_history=[], score=float("nan")
    ),
    "trial asha: MLflow: status FINISHED, expected KILLED": lambda r: setattr(
        r["runs"][1].info, "status", "FINISHED"
    ),
    "trial done: MLflow: 2 runs for one trial": lambda r: r["runs"].append(r["runs"][0]),
    "trial done: MLflow: score 0.7, expected 0.8": lambda r: r["runs"][0].data.metrics.update(score=0.7),
    "trial done: Optuna: value 0.7, the trial's score is 0.8": lambda r: setattr(r["study"][0], "value", 0.7),
    "trial early: Optuna: COMPLETE, expected PRUNED": lambda r: setattr(
        r["study"][2].state, "name", "COMPLETE"
    ),
    "trial x: Optuna: trial #9 (RUNNING) is no trial of the search": _stranger,
}


@pytest.mark.parametrize("named", list(CHANGES))
def test_each_difference_is_named(tmp_path: Path, named: str) -> None:
    records = _records(tmp_path)
    CHANGES[named](records)
    report = _check(tmp_path, records)
    assert not report.agree
    assert named in [str(difference) for difference in report.differences], report.summary()


def test_a_stop_record_that_disagrees_and_a_wrong_best_trial_are_named(tmp_path: Path) -> None:
    records = _records(tmp_path)
    StopLedger(tmp_path).record("asha", "finished", 2)
    report = _check(tmp_path, records, best="asha")
    said = [str(difference) for difference in report.differences]
    assert "trial asha: stop records: say finished; results say stopped_by_asha" in said
    assert "search: best_trial.json: names asha, the rule chooses done" in said
    assert "records disagree (2 difference(s)" in report.summary()
