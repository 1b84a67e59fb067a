"""The Tune callbacks of a search (driver side): the MLflow mirror and the progress line.

``MlflowTrialCallback`` mirrors every trial into an MLflow child run of the search's run through
``tracking.TrialRunLogger``; ``ProgressCallback`` prints a plain progress line (no ANSI redraws) every
``interval_s`` and whenever a trial ends: counts by state, the best metric so far with its trial, elapsed
time and an ETA extrapolated from the trials finished against the trial budget.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from typing import Any

from ray.tune import Callback

from fracture_tune.search.environment import progress_output
from fracture_tune.search.results import trial_index
from fracture_tune.search.tracking import TrialRunLogger, is_transient

logger = logging.getLogger(__name__)



# While the tracking server is unreachable, queued updates are retried at most this often, so an outage
# costs the search one bounded failed call (see ``bound_http_retries``) per interval, not one per result.
RETRY_INTERVAL_S = 15.0


class MlflowTrialCallback(Callback):
    """Tune → ``TrialRunLogger``. Logging failures are reported, never allowed to kill the search.

    Updates go through a queue, in order: when the server is unreachable they stay queued and are replayed
    once it answers again (``TrialRunLogger`` skips epochs already logged, so replays never duplicate).
    Whatever is still queued when the search ends is reported, with the ``sync-mlflow`` command that
    backfills it from Tune's results on disk.
    """

    def __init__(self, trial_logger: TrialRunLogger, retry_interval_s: float = RETRY_INTERVAL_S) -> None:
        self.trial_logger = trial_logger
        self.retry_interval_s = retry_interval_s
        self.pending: list[tuple[str, Any, tuple[Any, ...], dict[str, Any]]] = []
        self.next_attempt = 0.0
        self.failed_attempts = 0

    # Tune pickles callbacks with the Tuner: never carry queued updates into a resumed search.
    def __getstate__(self) -> dict[str, Any]:
        return {"trial_logger": self.trial_logger, "retry_interval_s": self.retry_interval_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["trial_logger"], state["retry_interval_s"])  # type: ignore[misc]

    def _safely(self, action: str, function: Any, *args: Any, **kwargs: Any) -> None:
        self.pending.append((action, function, args, kwargs))
        self.drain()

    def drain(self, force: bool = False) -> None:
        """Send queued updates in order; stop at the first transient failure and retry later."""
        if not force and time.monotonic() < self.next_attempt:
            return
        was_failing = self.failed_attempts > 0
        while self.pending:
            action, function, args, kwargs = self.pending[0]
            try:
                function(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - tracking must not take the search down
                if is_transient(error):
                    self.failed_attempts += 1
                    self.next_attempt = time.monotonic() + self.retry_interval_s
                    logger.warning(
                        "MLflow %s failed (%s); %d update(s) queued, retrying in %.0f s",
                        action, str(error).splitlines()[0][:200], len(self.pending), self.retry_interval_s,
                    )  # fmt: skip
                    return
                logger.warning("MLflow %s failed:\n%s", action, traceback.format_exc())
            self.pending.pop(0)
        if was_failing:
            logger.warning("MLflow reachable again: queued updates logged (%d failed attempts)",
                           self.failed_attempts)  # fmt: skip
            self.failed_attempts = 0

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.drain(force=True)
        if self.pending:
            name = self.trial_logger.search_name
            logger.warning(
                "MLflow is missing %d update(s) of this search (server unreachable); Tune's results on "
                "disk are complete: backfill with `fracture-tune search sync-mlflow %s`",
                len(self.pending), name,
            )  # fmt: skip

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely(
            "create run",
            self.trial_logger.run_for,
            trial.trial_id,
            dict(trial.config),
            trial_index(trial.experiment_tag),
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._safely("log metrics", self.trial_logger.log_result, trial.trial_id, dict(trial.config), result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epochs = int((trial.last_result or {}).get("epoch", 0))
        self._safely("finish run", self.trial_logger.finish, trial.trial_id, dict(trial.config), epochs)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epochs = int((trial.last_result or {}).get("epoch", 0))
        message, detail = trial_error_text(trial)
        self._safely(
            "finish failed run",
            self.trial_logger.finish,
            trial.trial_id,
            dict(trial.config),
            epochs,
            error=message,
            error_detail=detail,
        )


def trial_error_text(trial: Any) -> tuple[str, str]:
    """(last line of the error, full traceback) from the trial's error file."""
    detail = ""
    try:
        path = trial.error_file
        if path:
            with open(path, encoding="utf-8", errors="replace") as stream:
                detail = stream.read()
    except OSError:
        pass
    lines = [line for line in detail.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "trial failed"), detail


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(
    counts: dict[str, int], planned: int, best: tuple[float, str] | None, metric: str, elapsed_s: float
) -> str:
    """One line: ``[2m10s] 3/10 done (2 finished, 1 stopped by ASHA, 0 errored), 2 running | best ...``."""
    done = counts.get("finished", 0) + counts.get("stopped", 0) + counts.get("errored", 0)
    eta = elapsed_s / done * (planned - done) if done else math.nan
    best_text = f"best {metric}={best[0]:.4f} ({best[1]})" if best else f"best {metric}=n/a"
    return (
        f"[{format_duration(elapsed_s)}] {done}/{planned} done ({counts.get('finished', 0)} finished, "
        f"{counts.get('stopped', 0)} stopped by ASHA, {counts.get('errored', 0)} errored), "
        f"{counts.get('running', 0)} running | {best_text} | ETA {format_duration(eta)}"
    )


class ProgressCallback(Callback):
    def __init__(
        self, search_name: str, metric: str, mode: str, planned_trials: int, planned_epochs: int,
        interval_s: float = 15.0,
    ) -> None:  # fmt: skip
        self.search_name = search_name
        self.metric = metric
        self.mode = mode
        self.planned_trials = planned_trials
        self.planned_epochs = planned_epochs
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.last_emit = 0.0
        self.best: tuple[float, str] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:  # a resumed search: a fresh clock and best
        self.__dict__.update(state)
        self.started = time.monotonic()
        self.last_emit = 0.0
        self.best = None

    def _counts(self, trials: list[Any]) -> dict[str, int]:
        counts = {"finished": 0, "stopped": 0, "errored": 0, "running": 0}
        for trial in trials:
            if trial.status == "RUNNING":
                counts["running"] += 1
            elif trial.status == "ERROR":
                counts["errored"] += 1
            elif trial.status == "TERMINATED":
                epochs = int((trial.last_result or {}).get("epoch", 0))
                counts["finished" if epochs >= self.planned_epochs else "stopped"] += 1
        return counts

    def _update_best(self, trial: Any, result: dict[str, Any]) -> None:
        value = result.get(self.metric)
        if not isinstance(value, int | float) or not math.isfinite(value):
            return
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better:
            self.best = (float(value), f"{trial.trial_id} epoch {int(result.get('epoch', 0))}")

    def _emit(self, trials: list[Any]) -> None:
        self.last_emit = time.monotonic()
        emit = progress_output(self.search_name)
        if emit is None:
            return
        emit(
            progress_line(
                self._counts(trials),
                self.planned_trials,
                self.best,
                self.metric,
                self.last_emit - self.started,
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
