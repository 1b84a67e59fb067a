"""A plain-text progress line for terminals and log files alike (no ANSI redraws).

Printed every ``interval_s`` and whenever a trial ends: counts by state, the best metric so far with its
trial, elapsed time and an ETA extrapolated from the trials finished against the trial budget.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

logger = logging.getLogger(__name__)


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
        self,
        metric: str,
        mode: str,
        planned_trials: int,
        planned_epochs: int,
        interval_s: float = 15.0,
        emit: Callable[[str], None] | None = None,
    ) -> None:
        self.metric = metric
        self.mode = mode
        self.planned_trials = planned_trials
        self.planned_epochs = planned_epochs
        self.interval_s = interval_s
        self.emit = emit or (lambda line: print(line, flush=True))
        self.started = time.monotonic()
        self.last_emit = 0.0
        self.best: tuple[float, str] | None = None

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl; the printer is rebuilt on resume
        state = dict(self.__dict__)
        state["emit"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.emit = lambda line: print(line, flush=True)
        self.started = time.monotonic()
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
        self.emit(
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
