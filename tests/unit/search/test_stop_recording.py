"""Why a trial ended is recorded when it happens: ASHA's own STOP, the time budget, an interruption, an error.

Each test drives Ray's real scheduler/stopper classes (no Ray cluster needed) or the callbacks with
stand-in trials, and reads the ``StopLedger`` the results table and MLflow are written from.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fracture_tune.search.callbacks import MlflowTrialCallback
from fracture_tune.search.records import MLFLOW_BACKLOG_FILE, mlflow_updates_missing
from fracture_tune.search.stop_recording import BudgetStopper, RecordingASHA, StopReasonCallback
from fracture_tune.search.stops import StopLedger, TrialStop, describe


def _trial(trial_id: str, status: str = "RUNNING", epoch: int = 0) -> Any:
    return SimpleNamespace(
        trial_id=trial_id,
        status=status,
        last_result={"epoch": epoch},
        config={"lr": 0.01},
        experiment_tag=f"{trial_id}_lr=0.01",
        error_file=None,
    )


def test_asha_stop_is_recorded_from_the_schedulers_decision(tmp_path: Path) -> None:
    ledger = StopLedger(tmp_path)
    asha = RecordingASHA(
        ledger,
        4,
        time_attr="training_iteration",
        metric="val_auroc",
        mode="max",
        grace_period=1,
        max_t=4,
        reduction_factor=2,
    )
    good, bad = _trial("good"), _trial("bad")
    for trial in (good, bad):
        asha.on_trial_add(None, trial)
    assert asha.on_trial_result(None, good, {"training_iteration": 1, "val_auroc": 0.9}) == "CONTINUE"
    assert asha.on_trial_result(None, bad, {"training_iteration": 1, "val_auroc": 0.1}) == "STOP"
    assert ledger.get("bad") == TrialStop("stopped_by_asha", 1, "stopped by ASHA after epoch 1 of 4")
    # Reaching max_t is also a STOP from ASHA, but it is a finish: nothing recorded as an ASHA stop.
    assert asha.on_trial_result(None, good, {"training_iteration": 4, "val_auroc": 0.95}) == "STOP"
    assert ledger.get("good") is None


def test_budget_stopper_notes_when_the_budget_ran_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray.tune.stopper.timeout as timeout_module

    now = [1000.0]
    monkeypatch.setattr(timeout_module.time, "time", lambda: now[0])
    ledger = StopLedger(tmp_path)
    stopper = BudgetStopper(10.0, ledger)
    assert not stopper.stop_all()  # the clock starts at the first check
    now[0] += 5.0
    assert not stopper.stop_all() and not ledger.time_budget_ran_out()
    now[0] += 6.0
    assert stopper.stop_all() and ledger.time_budget_ran_out()


def test_trials_tune_stops_silently_are_named_by_what_stopped_them(tmp_path: Path) -> None:
    """Tune ends budget cut-offs and interrupted trials without on_trial_complete: named at the end."""
    ledger = StopLedger(tmp_path)
    callback = StopReasonCallback(ledger, planned_epochs=8)
    callback.setup()
    ledger.record("asha", "stopped_by_asha", 2)
    callback.on_trial_complete(0, [], _trial("done", "TERMINATED", 8))
    callback.on_trial_complete(0, [], _trial("asha", "TERMINATED", 2))  # ASHA's record stays
    cut, pending = _trial("cut", "TERMINATED", 3), _trial("pending", "TERMINATED", 0)

    callback.on_experiment_end([cut])  # no budget ran out: the search was interrupted
    assert ledger.get("cut") == TrialStop("interrupted", 3, describe("interrupted", 3, 8))

    callback.setup()  # resumed: the trial runs on and this time the budget runs out
    ledger.note_time_budget_ran_out()
    cut.last_result = {"epoch": 5}
    callback.on_experiment_end([cut, pending, _trial("still", "RUNNING", 1)])
    stops = ledger.all()
    assert {trial_id: (stop.reason, stop.epoch) for trial_id, stop in stops.items()} == {
        "done": ("finished", 8),
        "asha": ("stopped_by_asha", 2),
        "cut": ("time_budget", 5),
        "pending": ("time_budget", 0),
    }
    assert stops["pending"].detail == "cut off by the time budget before its first epoch"
    # The driver that resumes next starts with no budget spent.
    callback.setup()
    assert not ledger.time_budget_ran_out()


class _RecordingLogger:
    """Stands in for TrialRunLogger: records what each write carried; ``refuse`` makes an ending write fail
    for good."""

    search_name = "s"

    def __init__(self, refuse: Exception | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.refuse = refuse

    def write(
        self,
        trial_id: str,
        config: dict[str, Any],
        index: int = 0,
        results: Any = (),
        stop: Any = None,
        error_detail: str = "",
    ) -> str | None:
        if stop is not None and self.refuse is not None:
            raise self.refuse
        self.calls += [("log", trial_id, result.get("epoch")) for result in results]
        if stop is not None:
            self.calls.append(("finish", trial_id, stop))
            return "KILLED"
        return None


def test_mlflow_runs_of_budget_cut_trials_are_ended_with_their_reason(tmp_path: Path) -> None:
    ledger = StopLedger(tmp_path)
    trial_logger = _RecordingLogger()
    stops = StopReasonCallback(ledger, planned_epochs=6)
    mirror = MlflowTrialCallback(trial_logger, ledger, retry_interval_s=0.0, writer="inline")  # type: ignore[arg-type]
    ran, never_started = _trial("ran", "RUNNING", 0), _trial("never", "TERMINATED", 0)
    stops.setup()
    mirror.on_trial_start(0, [], ran)
    mirror.on_trial_result(0, [], ran, {"epoch": 1})
    ran.status, ran.last_result = "TERMINATED", {"epoch": 1}
    ledger.note_time_budget_ran_out()
    for callback in (stops, mirror):  # Tune's order: the stop reasons first
        callback.on_experiment_end([ran, never_started])
    finished = [call for call in trial_logger.calls if call[0] == "finish"]
    assert finished == [("finish", "ran", TrialStop("time_budget", 1, describe("time_budget", 1, 6)))]
    assert not (tmp_path / MLFLOW_BACKLOG_FILE).exists()


def test_refused_mlflow_updates_are_counted_and_point_to_sync_mlflow(tmp_path: Path) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    ledger = StopLedger(tmp_path)
    refused = MlflowException("tag value too long", error_code=INVALID_PARAMETER_VALUE)  # a 400
    trial_logger = _RecordingLogger(refuse=refused)
    mirror = MlflowTrialCallback(trial_logger, ledger, retry_interval_s=0.0, writer="inline")  # type: ignore[arg-type]
    trial = _trial("t", "TERMINATED", 2)
    ledger.record("t", "finished", 2)
    mirror.on_trial_complete(0, [trial], trial)
    mirror.on_experiment_end([trial])
    backlog = json.loads((tmp_path / MLFLOW_BACKLOG_FILE).read_text())
    assert backlog["dropped"] == 1 and backlog["queued_unsent"] == 0
    assert "tag value too long" in backlog["dropped_reasons"][0]
    assert backlog["recover_with"] == "fracture-tune search sync-mlflow s"
    assert mlflow_updates_missing(tmp_path) == 1
