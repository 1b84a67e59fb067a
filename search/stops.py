"""Why each trial ended, recorded when it happens — never inferred from how many epochs it ran.

A trial ends in one of these ways (the ``status`` column of ``results.csv``, the ``stop_reason`` tag of its
MLflow run, the progress line's counts):

- ``finished``: it ran its planned epochs.
- ``stopped_by_asha``: ASHA's own decision — ``RecordingASHA`` writes down each STOP it returns before
  ``max_t``, with the epoch.
- ``time_budget``: ``budget.time_budget_s`` ran out (``BudgetStopper`` notes when) while the trial ran or
  waited; Tune stops such trials without telling the callbacks, so ``StopReasonCallback`` names them at the
  end of the search.
- ``interrupted``: the search was stopped (Ctrl+C, SIGTERM, a driver shutdown) while it ran; ``search
  --resume`` continues it and its record is replaced when it ends again.
- ``error``: the trial raised; the error text goes with it.

The records live in ``trial_stops.json`` in the search's run folder, written by the driver as decisions are
made, so the results table, ``search show`` and ``sync-mlflow`` read what happened after the fact. The
scheduler, the stopper and the callback that write them (``stop_recording``) are pickled with the Tuner;
each holds only the file's path. This module imports no Ray: the results table and MLflow code read it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOPS_FILE = "trial_stops.json"

FINISHED = "finished"
STOPPED_BY_ASHA = "stopped_by_asha"
TIME_BUDGET = "time_budget"
INTERRUPTED = "interrupted"
ERROR = "error"
# A trial with no record: still running, or its driver was killed before it could write one.
RUNNING = "running"
STOP_REASONS = (FINISHED, STOPPED_BY_ASHA, TIME_BUDGET, INTERRUPTED, ERROR)

# MLflow run status for each reason.
MLFLOW_STATUS = {
    FINISHED: "FINISHED",
    STOPPED_BY_ASHA: "KILLED",
    TIME_BUDGET: "KILLED",
    INTERRUPTED: "KILLED",
    ERROR: "FAILED",
}


@dataclass(frozen=True)
class TrialStop:
    reason: str
    epoch: int  # epochs the trial had completed when it ended
    detail: str = ""


def describe(reason: str, epoch: int, planned_epochs: int) -> str:
    """``stopped by ASHA after epoch 2 of 8`` — the words the progress line and MLflow use."""
    if reason == FINISHED:
        return f"finished {epoch} of {planned_epochs} epochs"
    if reason == STOPPED_BY_ASHA:
        return f"stopped by ASHA after epoch {epoch} of {planned_epochs}"
    if reason == TIME_BUDGET:
        if epoch == 0:
            return "cut off by the time budget before its first epoch"
        return f"cut off by the time budget after epoch {epoch} of {planned_epochs}"
    if reason == INTERRUPTED:
        return f"interrupted (search stopped) after epoch {epoch} of {planned_epochs}"
    return f"failed after epoch {epoch} of {planned_epochs}"


class StopLedger:
    """``trial_stops.json``: trial id → ``TrialStop``, and when this driver's time budget ran out."""

    def __init__(self, run_dir: Path | str) -> None:
        self.path = Path(run_dir) / STOPS_FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"time_budget_ran_out_at": None, "trials": {}}
        data.setdefault("trials", {})
        data.setdefault("time_budget_ran_out_at", None)
        return dict(data)

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".trial_stops-")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)
        os.replace(temporary, self.path)

    def record(self, trial_id: str, reason: str, epoch: int, detail: str = "") -> None:
        if reason not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {reason!r}; one of {', '.join(STOP_REASONS)}")
        data = self._read()
        data["trials"][trial_id] = {"reason": reason, "epoch": int(epoch), "detail": detail[:2000]}
        self._write(data)

    def get(self, trial_id: str) -> TrialStop | None:
        found = self._read()["trials"].get(trial_id)
        return TrialStop(found["reason"], int(found["epoch"]), found.get("detail", "")) if found else None

    def all(self) -> dict[str, TrialStop]:
        return {
            trial_id: TrialStop(found["reason"], int(found["epoch"]), found.get("detail", ""))
            for trial_id, found in self._read()["trials"].items()
        }

    def start_driver(self) -> None:
        """A search (or its resume) starts: a budget that ran out in an earlier driver no longer applies."""
        data = self._read()
        data["time_budget_ran_out_at"] = None
        self._write(data)

    def note_time_budget_ran_out(self) -> None:
        data = self._read()
        if data["time_budget_ran_out_at"] is None:
            data["time_budget_ran_out_at"] = time.time()
            self._write(data)

    def time_budget_ran_out(self) -> bool:
        return self._read()["time_budget_ran_out_at"] is not None
