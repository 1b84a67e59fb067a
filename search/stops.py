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

The records live in ``stop_reasons.jsonl`` in the search's run folder, written by the driver as decisions are
made, so the results table, ``search show`` and ``sync-mlflow`` read what happened after the fact. The
scheduler, the stopper and the callback that write them (``stop_recording``) are pickled with the Tuner;
each holds only the file's path. This module imports no Ray: the results table and MLflow code read it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOPS_FILE = "stop_reasons.jsonl"

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
    """``stop_reasons.jsonl``: an append-only log of why trials ended (the last line about a trial wins) and
    of each driver's start and time-budget end.

    Append-only, one JSON object a line: writers never rewrite what another wrote. Each ledger object reads
    only what was appended since it last looked (the file's tail), so asking about one trial costs the same
    in a search's 10,000th trial as in its first. Not ``.json``: Ray Tune copies a resumed experiment's
    ``*.json``/``*.pkl`` files into its staging folder and syncs them back over the originals, which would
    put back a stale copy.
    """

    def __init__(self, run_dir: Path | str) -> None:
        self.path = Path(run_dir) / STOPS_FILE
        self._forget()

    def _forget(self) -> None:
        self._offset = 0
        self._partial = b""
        self._stops: dict[str, TrialStop] = {}
        self._budget_ran_out = False

    # Pickled with the Tuner's scheduler, stopper and searcher: only the path travels.
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = Path(state["path"])
        self._forget()

    def _append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps({**entry, "at": round(time.time(), 3)}, sort_keys=True) + "\n")

    def _refresh(self) -> None:
        """Read what was appended since the last look."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < self._offset:  # the file was replaced: read it again
            self._forget()
        if size == self._offset:
            return
        with open(self.path, "rb") as stream:
            stream.seek(self._offset)
            chunk = stream.read(size - self._offset)
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            try:
                self._apply(json.loads(line))
            except ValueError:
                continue  # a line cut short by a killed driver

    def _apply(self, entry: dict[str, Any]) -> None:
        if "trial_id" in entry:
            self._stops[str(entry["trial_id"])] = TrialStop(
                str(entry["reason"]), int(entry["epoch"]), str(entry.get("detail", ""))
            )
        elif entry.get("event") == "driver_start":
            self._budget_ran_out = False
        elif entry.get("event") == "time_budget_ran_out":
            self._budget_ran_out = True

    def record(self, trial_id: str, reason: str, epoch: int, detail: str = "") -> None:
        if reason not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {reason!r}; one of {', '.join(STOP_REASONS)}")
        self._append({"trial_id": trial_id, "reason": reason, "epoch": int(epoch), "detail": detail[:2000]})

    def get(self, trial_id: str) -> TrialStop | None:
        self._refresh()
        return self._stops.get(trial_id)

    def all(self) -> dict[str, TrialStop]:
        """Every trial's last record (a copy)."""
        self._refresh()
        return dict(self._stops)

    def start_driver(self) -> None:
        """A search (or its resume) starts: a budget that ran out in an earlier driver no longer applies."""
        self._append({"event": "driver_start"})

    def note_time_budget_ran_out(self) -> None:
        if not self.time_budget_ran_out():
            self._append({"event": "time_budget_ran_out"})

    def time_budget_ran_out(self) -> bool:
        """Whether the budget ran out since the current driver started."""
        self._refresh()
        return self._budget_ran_out
