"""Optuna's TPE with a bounded memory: a suggestion costs the same at a search's 10,000th trial as at its
1,000th.

TPE splits the finished trials into the best few ("below": at most 25 with Optuna's default gamma) and the
rest ("above"), fits a Parzen estimator to each and samples where their ratio is best, so one suggestion costs
time in proportion to the trials finished: on the 2-core VM ~25 ms at 100 trials, ~80 ms at 10,000 (Optuna
5.1, two parameters). ``BoundedTPESampler`` gives TPE at most ``history_limit`` finished trials: the best
tenth of that many (every trial TPE could put "below") and the most recent others, plus the running ones
(for its constant liar). A search with at most ``history_limit`` finished trials samples exactly as Optuna's
TPE does; beyond that, the "above" estimator forgets the oldest trials, which Optuna's default weights
already count least. ``searcher.history_limit: 0`` keeps every trial.
"""

from __future__ import annotations

import heapq
from typing import Any

from optuna.samplers import TPESampler
from optuna.study import StudyDirection
from optuna.trial import TrialState

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class BoundedTPESampler(TPESampler):
    """``optuna.samplers.TPESampler`` that models at most ``history_limit`` finished trials (0: all)."""

    def __init__(self, *, history_limit: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history_limit = history_limit

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return super().sample_relative(self._bounded(study), trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        return super().sample_independent(self._bounded(study), trial, param_name, param_distribution)

    def _bounded(self, study: Any) -> Any:
        return _RecentAndBestTrials(study, self.history_limit) if self.history_limit else study


class _RecentAndBestTrials:
    """A study as TPE reads it: everything as the study says, but ``_get_trials`` bounded (see the module)."""

    def __init__(self, study: Any, limit: int) -> None:
        self._study = study
        self._limit = limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list[Any]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        finished = [trial for trial in trials if trial.state in _FINISHED]
        if len(finished) <= self._limit:
            return list(trials)
        best = self._best(finished, max(1, self._limit // 10))
        kept = {trial.number for trial in best}
        others = [trial for trial in reversed(finished) if trial.number not in kept]
        recent = others[: self._limit - len(kept)]
        kept.update(trial.number for trial in recent)
        return [trial for trial in trials if trial.number in kept or trial.state not in _FINISHED]

    def _best(self, finished: list[Any], count: int) -> list[Any]:
        scored = [trial for trial in finished if trial.value is not None]
        maximize = self._study.direction == StudyDirection.MAXIMIZE
        pick = heapq.nlargest if maximize else heapq.nsmallest
        return pick(count, scored, key=lambda trial: trial.value)
