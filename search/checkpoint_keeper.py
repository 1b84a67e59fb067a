"""Which trial checkpoints stay on disk: a Tune callback in the search's driver.

Every epoch a trial writes a checkpoint (``trainables/tune_adapter.py``; its folder's ``epoch.txt`` names the
epoch). What each is still needed for:

- a running trial: its latest (a restarted worker resumes from it) and its score epoch's (the epoch its score
  comes from; ``retrain`` and ``benchmarks/selection_noise.py`` read it);
- an ended trial: its score epoch's, while the trial is among the ``keep_best_trials`` best by the search's
  rule, and nothing once it is not; an errored trial also keeps its latest (``search --resume`` reruns it).

So a search needs about ``keep_best_trials`` + 2 x (trials at once) checkpoints on disk however many trials it
runs. Ray's own ``num_to_keep`` is off: it forces a rewrite of the whole experiment state every
``num_to_keep`` checkpoints of a trial. Deleting a folder is the only thing done here; Ray's records of it
(its checkpoint paths) are not read again for an ended trial.
"""

from __future__ import annotations

import heapq
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from fracture_tune.trainables.score import SCORE_EPOCH_KEY, SCORE_KEY, ScoreRule

logger = logging.getLogger(__name__)


@dataclass
class _TrialCheckpoints:
    folder: Path
    by_epoch: dict[int, str] = field(default_factory=dict)  # epoch -> checkpoint folder name
    score_epoch: int = 0
    score: float = math.nan


class CheckpointKeeper(Callback):
    """Deletes the checkpoints nothing needs any more (see the module's docstring)."""

    def __init__(self, rule: ScoreRule, keep_best_trials: int) -> None:
        self.rule = rule
        self.keep_best_trials = keep_best_trials
        self._setup_state()

    def _setup_state(self) -> None:
        self.trials: dict[str, _TrialCheckpoints] = {}
        # The kept ended trials, worst first: (negated rank key, trial id), and their checkpoints.
        self.best: list[tuple[tuple[Any, ...], str]] = []
        self.kept: dict[str, _TrialCheckpoints] = {}

    def __getstate__(self) -> dict[str, Any]:  # pickled with the Tuner: no per-trial state
        return {"rule": self.rule, "keep_best_trials": self.keep_best_trials}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup_state()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        epoch = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
        name = result.get("checkpoint_dir_name")
        if not epoch or not name:
            return
        record = self.trials.setdefault(trial.trial_id, _TrialCheckpoints(Path(trial.path)))
        record.by_epoch[epoch] = str(name)
        record.score_epoch = int(result.get(SCORE_EPOCH_KEY, epoch) or epoch)
        record.score = float(result.get(SCORE_KEY, math.nan))
        self._remove(record, keep={epoch, record.score_epoch})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.trials.pop(trial.trial_id, None)  # keeps its latest and score epoch's: a resume reruns it

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Trials the time budget cut off end without on_trial_complete.
        for trial in trials:
            if trial.status == "TERMINATED" and trial.trial_id in self.trials:
                self._ended(trial)

    def _ended(self, trial: Any) -> None:
        record = self.trials.pop(trial.trial_id, None)
        if record is None:
            return
        self._remove(record, keep={record.score_epoch})
        epochs = max(record.by_epoch, default=0)
        if not self.rule.eligible(epochs) or math.isnan(record.score):
            self._remove(record, keep=set())
            return
        key = self.rule.rank_key(record.score, epochs, _index(trial))
        heapq.heappush(self.best, (tuple(-part for part in key), trial.trial_id))
        self.kept[trial.trial_id] = record
        while len(self.best) > self.keep_best_trials:
            _, dropped = heapq.heappop(self.best)
            self._remove(self.kept.pop(dropped), keep=set())

    def _remove(self, record: _TrialCheckpoints, keep: set[int]) -> None:
        for epoch in [epoch for epoch in record.by_epoch if epoch not in keep]:
            folder = record.folder / record.by_epoch.pop(epoch)
            shutil.rmtree(folder, ignore_errors=True)


def _index(trial: Any) -> int:
    head = str(getattr(trial, "experiment_tag", "")).split("_", 1)[0]
    return int(head) if head.isdigit() else 0
