"""What Ray Tune keeps in the driver of a trial that has ended: its metric summaries, trimmed to the score.

For every trial it has run, Tune keeps min, max, mean, last and the last-5 and last-10 means of every numeric
key of the trial's results (``Trial.update_last_result``), with the last 10 values of each in deques that its
experiment state pickles to hex. A trial's result has ~15 numeric keys (its metrics, Tune's timers and
counters), so that is ~7 KB a trial in memory and ~8 KB a trial in every experiment-state snapshot, for the
whole search, growing with the trials. Only ``ExperimentAnalysis.get_best_trial`` with a ``scope`` other
than "last"/"all" reads them; this product ranks trials from its own records (``search/results.py``,
``trainables/score.py``). So once a trial has ended, its summaries of anything but the score are dropped.

Ray offers no setting for this (``DEBUG_METRICS`` only removes a fixed few), hence a callback. A trial that
runs again (``search --resume`` after an error) starts its summaries of the dropped keys afresh: Tune builds
an entry for a key it does not hold.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback


class TrimEndedTrialMetadata(Callback):
    """Drops an ended trial's Tune summaries of every result key but ``keep``."""

    def __init__(self, keep: str) -> None:
        self.keep = keep

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trim(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trim(trial)

    def _trim(self, trial: Any) -> None:
        metadata = trial.run_metadata
        # Assigning the attributes (not editing the dicts in place) clears the metadata's cached JSON.
        metadata.metric_analysis = {
            key: value for key, value in metadata.metric_analysis.items() if key == self.keep
        }
        metadata.metric_n_steps = {
            key: value for key, value in metadata.metric_n_steps.items() if key == self.keep
        }
