"""The Tune callbacks of a search (driver side): the MLflow mirror and the progress line.

``MlflowTrialCallback`` mirrors every trial into an MLflow child run of the search's run through
``tracking.TrialRunLogger``; ``ProgressCallback`` prints a plain progress line (no ANSI redraws) every
``interval_s`` and whenever a trial ends: counts by state, the best metric so far with its trial, elapsed
time and an ETA extrapolated from the trials finished against the trial budget.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune import Callback

from fracture_tune.search.environment import progress_output
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
from fracture_tune.search.tracking import TrialRunLogger, error_summary, is_transient
from fracture_tune.trainables.score import SCORE_EPOCH_KEY, SCORE_KEY, ScoreRule

logger = logging.getLogger(__name__)

# While the tracking server is unreachable, queued updates are retried at most this often, so an outage
# costs the search one bounded failed call (see ``bound_http_retries``) per interval, not one per result.
RETRY_INTERVAL_S = 15.0


@dataclass
class _Update:
    """One thing MLflow must learn about a trial: its start, an epoch's result, or its end."""

    kind: str  # start | result | finish
    config: dict[str, Any]
    index: int = 0
    result: dict[str, Any] | None = None
    stop: TrialStop | None = None
    error_detail: str = ""


class MlflowTrialCallback(Callback):
    """Tune → ``TrialRunLogger``, off Tune's event loop. Logging failures are reported, never allowed to kill
    the search.

    Updates are queued per trial and written by a background thread, a trial's queued updates at a time in as
    few MLflow calls as there can be (``TrialRunLogger.write``: a run seen whole is ``create_run``, one
    ``log_batch`` and ``set_terminated``), so MLflow's latency never holds up the trials. When the server is
    unreachable the updates stay queued, in order, and are replayed once it answers again (``TrialRunLogger``
    skips epochs already logged, so replays never duplicate); at most one failed call per
    ``retry_interval_s``. An update refused for a reason that will not go away (a 4xx, a bug) is dropped and
    counted. At the end of the search the queue is flushed and what is still queued or was dropped is
    reported — in the log and in ``mlflow_backlog.jsonl`` in the run folder, which the search's summary
    reads — with the ``sync-mlflow`` command that backfills it from Tune's results on disk. Why each trial
    ended comes from the ``StopLedger``. ``background=False`` writes in the caller's thread (tests of the
    queue itself).
    """

    def __init__(
        self,
        trial_logger: TrialRunLogger,
        ledger: StopLedger,
        retry_interval_s: float = RETRY_INTERVAL_S,
        background: bool = True,
    ) -> None:
        self.trial_logger = trial_logger
        self.ledger = ledger
        self.retry_interval_s = retry_interval_s
        self.background = background
        self._setup_state()

    def _setup_state(self) -> None:
        self.queue: OrderedDict[str, list[_Update]] = OrderedDict()  # trial id -> its updates, in order
        self.dropped: list[str] = []  # "<action>: <error>" of each update MLflow refused for good
        self.next_attempt = 0.0
        self.failed_attempts = 0
        self.seen: set[str] = set()  # trials that ran under this driver
        self.ended: set[str] = set()  # ...and whose run this callback has ended
        self._lock = threading.Condition()
        self._writer: threading.Thread | None = None
        self._stopping = False

    # Tune pickles callbacks with the Tuner: never carry queued updates into a resumed search.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "trial_logger": self.trial_logger,
            "ledger": self.ledger,
            "retry_interval_s": self.retry_interval_s,
            "background": self.background,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup_state()

    @property
    def backlog_file(self) -> Path:
        return self.ledger.path.parent / MLFLOW_BACKLOG_FILE

    @property
    def pending(self) -> int:
        """Updates queued and not yet in MLflow."""
        with self._lock:
            return sum(len(updates) for updates in self.queue.values())

    def _enqueue(self, trial_id: str, update: _Update) -> None:
        with self._lock:
            self.queue.setdefault(trial_id, []).append(update)
            self._lock.notify()
        if not self.background:
            self.drain()
        elif self._writer is None:
            self._writer = threading.Thread(
                target=self._write_in_background, name="mlflow-writer", daemon=True
            )
            self._writer.start()

    def _write_in_background(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self.queue or time.monotonic() < self.next_attempt):
                    self._lock.wait(None if not self.queue else self.next_attempt - time.monotonic())
                if self._stopping:
                    return
            self.drain()

    def wait_until_idle(self, timeout_s: float = 30.0) -> None:
        """Block until the queue is empty or waiting out a failure (tests; the end of a search flushes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self.queue or time.monotonic() < self.next_attempt:
                    return
            time.sleep(0.01)

    def _next_group(self) -> tuple[str, list[_Update]] | None:
        """The first queued trial's updates up to and including its next end (a resumed trial may end
        twice)."""
        with self._lock:
            if not self.queue:
                return None
            trial_id, updates = self.queue.popitem(last=False)
            ends = [position for position, update in enumerate(updates) if update.kind == "finish"]
            cut = ends[0] + 1 if ends else len(updates)
            if cut < len(updates):
                self.queue[trial_id] = updates[cut:]
                self.queue.move_to_end(trial_id, last=False)
            return trial_id, updates[:cut]

    def _put_back(self, trial_id: str, updates: list[_Update]) -> None:
        with self._lock:
            self.queue[trial_id] = updates + self.queue.get(trial_id, [])
            self.queue.move_to_end(trial_id, last=False)

    def drain(self, force: bool = False) -> None:
        """Send queued updates, trial by trial; stop at the first transient failure and retry later."""
        if not force and time.monotonic() < self.next_attempt:
            return
        was_failing = self.failed_attempts > 0
        while (group := self._next_group()) is not None:
            trial_id, updates = group
            try:
                self._write(trial_id, updates)
            except Exception as error:  # noqa: BLE001 - tracking must not take the search down
                reason = error_summary(error)
                if is_transient(error):
                    self._put_back(trial_id, updates)
                    self.failed_attempts += 1
                    self.next_attempt = time.monotonic() + self.retry_interval_s
                    logger.warning(
                        "MLflow update failed (%s); %d update(s) queued, retrying in %.0f s",
                        reason, self.pending, self.retry_interval_s,
                    )  # fmt: skip
                    return
                self.dropped.extend(f"{update.kind} {trial_id}: {reason}" for update in updates)
                logger.warning(
                    "MLflow refused an update of trial %s (%s); %d update(s) dropped so far, backfill with "
                    "`fracture-tune search sync-mlflow %s`",
                    trial_id, reason, len(self.dropped), self.trial_logger.search_name,
                )  # fmt: skip
        if was_failing:
            logger.warning("MLflow reachable again: queued updates logged (%d failed attempts)",
                           self.failed_attempts)  # fmt: skip
            self.failed_attempts = 0

    def _write(self, trial_id: str, updates: list[_Update]) -> None:
        last = updates[-1]
        starts = [update.index for update in updates if update.kind == "start"]
        self.trial_logger.write(
            trial_id,
            last.config,
            starts[0] if starts else 0,
            results=[update.result for update in updates if update.kind == "result" and update.result],
            stop=last.stop if last.kind == "finish" else None,
            error_detail=last.error_detail,
        )

    def stop_writer(self) -> None:
        """End the background writer (its queue is drained by the caller)."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        self._stopping = False

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Tune stops trials for the time budget or an interruption without on_trial_complete: end their runs
        # here (the StopReasonCallback, listed first, has recorded why).
        stops = self.ledger.all()  # read once, not once a trial
        for trial in trials:
            ran_here = trial.trial_id in self.seen and trial.trial_id not in self.ended
            stop = stops.get(trial.trial_id)
            if ran_here and trial.status == "TERMINATED" and stop is not None:
                self._end(trial, stop)
        self.stop_writer()
        self.drain(force=True)
        self._report_backlog()

    def _report_backlog(self) -> None:
        name = self.trial_logger.search_name
        queued = self.pending
        missing = queued + len(self.dropped)
        if not missing:
            self.backlog_file.unlink(missing_ok=True)
            return
        record = {
            "queued_unsent": queued,
            "dropped": len(self.dropped),
            "dropped_reasons": self.dropped[:50],
            "recover_with": f"fracture-tune search sync-mlflow {name}",
        }
        try:
            self.backlog_file.write_text(json.dumps(record) + "\n", encoding="utf-8")
        except OSError as error:
            logger.warning("cannot write %s: %s", self.backlog_file, error)
        logger.warning(
            "MLflow is missing %d update(s) of this search (%d still queued: server unreachable; %d "
            "dropped: refused); Tune's results on disk are complete: backfill with `fracture-tune search "
            "sync-mlflow %s`",
            missing, queued, len(self.dropped), name,
        )  # fmt: skip

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.seen.add(trial.trial_id)
        update = _Update("start", dict(trial.config), index=trial_index(trial.experiment_tag))
        self._enqueue(trial.trial_id, update)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.seen.add(trial.trial_id)
        self._enqueue(trial.trial_id, _Update("result", dict(trial.config), result=dict(result)))

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
        self._enqueue(
            trial.trial_id, _Update("finish", dict(trial.config), stop=stop, error_detail=error_detail)
        )


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


# How the progress line names each way a trial ended (``stops``); zero counts after "errored" are left out.
PROGRESS_WORDS = (
    (FINISHED, "finished"),
    (STOPPED_BY_ASHA, "stopped by ASHA"),
    (ERROR, "errored"),
    (TIME_BUDGET, "cut off by the time budget"),
    (INTERRUPTED, "interrupted"),
)


def progress_line(
    counts: dict[str, int], planned: int, best: tuple[float, str] | None, metric: str, elapsed_s: float
) -> str:
    """One line: ``[2m10s] 3/10 done (2 finished, 1 stopped by ASHA, 0 errored), 2 running | best ...``.

    ``counts`` is keyed by stop reason (``stops``) plus ``running``; budget cut-offs and interruptions are
    named only when there are some.
    """
    done = sum(count for key, count in counts.items() if key != RUNNING)
    eta = elapsed_s / done * (planned - done) if done else math.nan
    best_text = f"best {metric}={best[0]:.4f} ({best[1]})" if best else f"best {metric}=n/a"
    parts = [
        f"{counts.get(key, 0)} {words}"
        for key, words in PROGRESS_WORDS
        if key in (FINISHED, STOPPED_BY_ASHA, ERROR) or counts.get(key, 0)
    ]
    return (
        f"[{format_duration(elapsed_s)}] {done}/{planned} done ({', '.join(parts)}), "
        f"{counts.get(RUNNING, 0)} running | {best_text} | ETA {format_duration(eta)}"
    )


class ProgressCallback(Callback):
    """A plain progress line every ``interval_s`` and when trials end (at most one a second)."""

    def __init__(
        self, search_name: str, rule: ScoreRule, planned_trials: int, ledger: StopLedger,
        interval_s: float = 15.0, min_gap_s: float = 1.0,
    ) -> None:  # fmt: skip
        self.search_name = search_name
        self.rule = rule
        self.planned_trials = planned_trials
        self.ledger = ledger
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
                self._counts(trials), self.planned_trials, self.best, self.rule.metric, now - self.started
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
