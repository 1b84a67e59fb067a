"""The Tune callbacks of a search (driver side): the MLflow mirror and the progress line.

``MlflowTrialCallback`` mirrors every trial into an MLflow child run of the search's run through
``tracking.TrialRunLogger``; ``ProgressCallback`` prints a plain progress line (no ANSI redraws) every
``interval_s`` and whenever a trial ends: counts by state, the best metric so far with its trial, elapsed
time and an ETA extrapolated from the trials finished against the trial budget, never past the time budget's
end (the search stops there).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from fracture_tune.search.mlflow_writer import RETRY_INTERVAL_S, Update, UpdateQueue, WriterProcess
from fracture_tune.search.progress_output import format_duration, progress_output
from fracture_tune.search.records import MLFLOW_BACKLOG_FILE
from fracture_tune.search.results import trial_index
from fracture_tune.search.stop_recording import last_epoch, trial_error_text
from fracture_tune.search.stops import (
    ERROR,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    STOPPED_BY_ASHA,
    TIME_BUDGET,
    StopLedger,
    TrialStop,
)
from fracture_tune.search.tracking import TrialRunLogger
from fracture_tune.trainables.score import SCORE_EPOCH_KEY, SCORE_KEY, ScoreRule

logger = logging.getLogger(__name__)


class MlflowTrialCallback(Callback):
    """Tune → MLflow, off Tune's event loop. Logging failures are reported, never allowed to kill the search.

    Each trial's start, epoch results and end (why it ended comes from the ``StopLedger``) go to a writer
    (``search/mlflow_writer.py``): by default an ``UpdateQueue`` in a process of its own
    (``writer="process"``), which batches a trial's updates, queues and replays them through an outage and
    reports at the end what MLflow is missing in ``mlflow_backlog.jsonl``, with the ``sync-mlflow`` command
    that backfills it; ``writer="thread"`` runs the same queue in a thread of this process and ``"inline"`` in
    the caller's (tests of the queue itself)."""

    def __init__(
        self,
        trial_logger: TrialRunLogger,
        ledger: StopLedger,
        retry_interval_s: float = RETRY_INTERVAL_S,
        writer: str = "process",
    ) -> None:
        if writer not in ("process", "thread", "inline"):
            raise ValueError(f"writer must be process, thread or inline, got {writer!r}")
        self.trial_logger = trial_logger
        self.ledger = ledger
        self.retry_interval_s = retry_interval_s
        self.writer_kind = writer
        self._setup_state()

    def _setup_state(self) -> None:
        self.seen: set[str] = set()  # trials that ran under this driver
        self.ended: set[str] = set()  # ...and whose run this callback has ended
        self._writer: UpdateQueue | WriterProcess | None = None

    # Tune pickles callbacks with the Tuner: never carry queued updates into a resumed search.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "trial_logger": self.trial_logger,
            "ledger": self.ledger,
            "retry_interval_s": self.retry_interval_s,
            "writer_kind": self.writer_kind,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup_state()

    @property
    def backlog_file(self) -> Path:
        return self.ledger.path.parent / MLFLOW_BACKLOG_FILE

    @property
    def writer(self) -> UpdateQueue | WriterProcess:
        if self._writer is None:
            if self.writer_kind == "process":
                self._writer = WriterProcess(self.trial_logger, self.backlog_file, self.retry_interval_s)
            else:
                interval, thread = self.retry_interval_s, self.writer_kind == "thread"
                self._writer = UpdateQueue(self.trial_logger, self.backlog_file, interval, thread)
        return self._writer

    @property
    def pending(self) -> int:
        """Updates queued and not yet in MLflow (known to a writer in this process)."""
        return self.writer.pending

    def wait_until_idle(self, timeout_s: float = 30.0) -> None:
        self.writer.wait_until_idle(timeout_s)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Tune stops trials for the time budget or an interruption without on_trial_complete: end their runs
        # here (the StopReasonCallback, listed first, has recorded why).
        stops = self.ledger.all()  # read once, not once a trial
        for trial in trials:
            ran_here = trial.trial_id in self.seen and trial.trial_id not in self.ended
            stop = stops.get(trial.trial_id)
            if ran_here and trial.status == "TERMINATED" and stop is not None:
                self._end(trial, stop)
        self.writer.close()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.seen.add(trial.trial_id)
        update = Update("start", dict(trial.config), index=trial_index(trial.experiment_tag))
        self.writer.put(trial.trial_id, update)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.seen.add(trial.trial_id)
        self.writer.put(trial.trial_id, Update("result", dict(trial.config), result=_plain(result)))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        stop = self.ledger.get(trial.trial_id) or TrialStop(FINISHED, last_epoch(trial))
        self._end(trial, stop)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        message, detail = trial_error_text(trial)
        stop = self.ledger.get(trial.trial_id)
        if stop is None or stop.reason != ERROR:
            stop = TrialStop(ERROR, last_epoch(trial), message)
        self._end(trial, stop, detail)

    def _end(self, trial: Any, stop: TrialStop, error_detail: str = "") -> None:
        self.seen.add(trial.trial_id)
        self.ended.add(trial.trial_id)
        update = Update("finish", dict(trial.config), stop=stop, error_detail=error_detail)
        self.writer.put(trial.trial_id, update)


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    """What MLflow takes from a result (numbers, the node), small enough to cross to the writer cheaply."""
    keep = {"node_id", "node_ip", "timestamp", "epoch", "training_iteration"}
    return {
        key: value
        for key, value in result.items()
        if key in keep or (isinstance(value, int | float) and not isinstance(value, bool))
    }


# How the progress line names each way a trial ended (``stops``); zero counts after "errored" are left out.
PROGRESS_WORDS = (
    (FINISHED, "finished"),
    (STOPPED_BY_ASHA, "stopped by ASHA"),
    (ERROR, "errored"),
    (TIME_BUDGET, "cut off by the time budget"),
    (INTERRUPTED, "interrupted"),
)


def progress_line(
    counts: dict[str, int],
    planned: int,
    best: tuple[float, str] | None,
    metric: str,
    elapsed_s: float,
    time_budget_s: float | None = None,
) -> str:
    """One line: ``[2m10s] 3/10 done (2 finished, 1 stopped by ASHA, 0 errored), 2 running | best ...``.

    ``counts`` is keyed by stop reason (``stops``) plus ``running``; budget cut-offs and interruptions are
    named only when there are some. The ETA extrapolates the trials done to the ``planned`` ones; with a
    ``time_budget_s`` it is at most the budget left, marked ``(time budget)``.
    """
    done = sum(count for key, count in counts.items() if key != RUNNING)
    best_text = f"best {metric}={best[0]:.4f} ({best[1]})" if best else f"best {metric}=n/a"
    parts = [
        f"{counts.get(key, 0)} {words}"
        for key, words in PROGRESS_WORDS
        if key in (FINISHED, STOPPED_BY_ASHA, ERROR) or counts.get(key, 0)
    ]
    eta = eta_text(done, planned, elapsed_s, time_budget_s)
    return (
        f"[{format_duration(elapsed_s)}] {done}/{planned} done ({', '.join(parts)}), "
        f"{counts.get(RUNNING, 0)} running | {best_text} | ETA {eta}"
    )


def eta_text(done: int, planned: int, elapsed_s: float, time_budget_s: float | None = None) -> str:
    """The time left: the trials to go at the pace of those done, capped by the time budget's end."""
    eta = elapsed_s / done * (planned - done) if done else math.nan
    if time_budget_s is None:
        return format_duration(eta)
    left = max(time_budget_s - elapsed_s, 0.0)
    if math.isfinite(eta) and eta <= left:
        return format_duration(eta)
    return f"{format_duration(left)} (time budget)"


class ProgressCallback(Callback):
    """A plain progress line every ``interval_s`` and when trials end (at most one a second)."""

    def __init__(
        self,
        search_name: str,
        rule: ScoreRule,
        planned_trials: int,
        ledger: StopLedger,
        time_budget_s: float | None = None,
        interval_s: float = 15.0,
        min_gap_s: float = 1.0,
    ) -> None:
        self.search_name = search_name
        self.rule = rule
        self.planned_trials = planned_trials
        self.ledger = ledger
        self.time_budget_s = time_budget_s
        self.interval_s = interval_s
        self.min_gap_s = min_gap_s
        self.started = time.monotonic()
        self.last_emit = 0.0
        self.best: tuple[float, str] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:  # a resumed search: a fresh clock and best
        self.__dict__.update(state)
        self.started = time.monotonic()
        self.last_emit = 0.0
        self.best = None

    def _counts(self, trials: list[Any]) -> dict[str, int]:
        """Trials by why they ended (from the ledger), plus those running."""
        stops = self.ledger.all()
        counts = {key: 0 for key, _ in PROGRESS_WORDS} | {RUNNING: 0}
        for trial in trials:
            if trial.status == "RUNNING":
                counts[RUNNING] += 1
            elif trial.status in ("TERMINATED", "ERROR"):
                stop = stops.get(trial.trial_id)
                reason = stop.reason if stop is not None else (ERROR if trial.status == "ERROR" else None)
                if reason is not None:  # a trial being stopped right now is counted once it is recorded
                    counts[reason] += 1
        return counts

    def _update_best(self, trial: Any, result: dict[str, Any]) -> None:
        """The best score so far among epochs that count (at or after ``min_epochs``)."""
        epoch = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
        value = result.get(SCORE_KEY)
        if not self.rule.eligible(epoch) or not isinstance(value, int | float) or not math.isfinite(value):
            return
        if self.best is None or self.rule.better(float(value), self.best[0]):
            score_epoch = int(result.get(SCORE_EPOCH_KEY, epoch) or epoch)
            self.best = (float(value), f"{trial.trial_id} epoch {score_epoch}")

    def _emit(self, trials: list[Any], force: bool = False) -> None:
        emit = progress_output(self.search_name)
        now = time.monotonic()
        if emit is None or (not force and now - self.last_emit < self.min_gap_s):
            return
        self.last_emit = now
        emit(
            progress_line(
                self._counts(trials),
                self.planned_trials,
                self.best,
                self.rule.metric,
                now - self.started,
                self.time_budget_s,
            )
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._update_best(trial, result)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self.last_emit >= self.interval_s:
            self._emit(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._emit(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._emit(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._emit(
            trials, force=True
        )  # after the StopReasonCallback has named budget cut-offs and interruptions
