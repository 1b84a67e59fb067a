"""A trial's score: the one number ASHA, Optuna, MLflow, ``search show`` and the best-trial rule all use.

A trial reports its metric (e.g. validation AUROC) once an epoch; its **score** after epoch ``e`` is

- ``scope: best_epoch`` (the default): the best value at or after epoch ``min_epochs``; before that epoch,
  the latest value (a provisional score, which ASHA's early rungs compare and which can win only when no
  trial reached ``min_epochs``);
- ``scope: last_epoch``: the latest value.

Why: on a validation split of a few hundred images (tens, on a user's small folder) one epoch can spike by
chance — a trial that scored 0.94 at epoch 1 and 0.53 ever after must not win against trials trained for
longer. ``min_epochs`` keeps the spike out of the score; the running best after it keeps a trial's score
from falling when a later epoch is noisier. Equal scores go to the better-trained trial (more epochs), then
to the earlier trial. Within a trial, equal values go to the later epoch.

The adapter reports ``score`` (the running score), ``score_epoch`` (the epoch it comes from) and
``epoch_score`` (this epoch's own value for the rule: NaN before ``min_epochs``, which orders a checkpoint
worst) with every result, so the scheduler, the searcher and the checkpoint keeper read the same number the
results table and ``best_trial.json`` hold. Pure functions of plain lists: no torch, no Ray.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BEST_EPOCH = "best_epoch"
LAST_EPOCH = "last_epoch"
SCORE_KEY = "score"
SCORE_EPOCH_KEY = "score_epoch"
EPOCH_SCORE_KEY = "epoch_score"


@dataclass(frozen=True)
class ScoreRule:
    """How a metric curve becomes a trial's score (see the module's docstring)."""

    metric: str = "val_auroc"
    mode: str = "max"  # max | min
    min_epochs: int = 1
    scope: str = BEST_EPOCH  # best_epoch | last_epoch

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if self.scope not in (BEST_EPOCH, LAST_EPOCH):
            raise ValueError(f"scope must be {BEST_EPOCH!r} or {LAST_EPOCH!r}, got {self.scope!r}")
        if self.min_epochs < 1:
            raise ValueError(f"min_epochs must be >= 1, got {self.min_epochs}")

    def better(self, value: float, than: float) -> bool:
        """``value`` strictly better than ``than`` (NaN is never better; anything beats NaN)."""
        if math.isnan(value):
            return False
        if math.isnan(than):
            return True
        return value > than if self.mode == "max" else value < than

    def score_at(self, history: Sequence[float], epoch: int) -> tuple[float, int]:
        """(score, the epoch it comes from) after ``epoch`` (1-based) of ``history``; (NaN, 0) when none."""
        values = [_finite_or_nan(value) for value in history[:epoch]]
        if not values:
            return math.nan, 0
        if self.scope == LAST_EPOCH or len(values) < self.min_epochs:
            return values[-1], len(values)
        best, best_epoch = math.nan, 0
        for index in range(self.min_epochs - 1, len(values)):
            value = values[index]
            if not math.isnan(value) and (math.isnan(best) or not self.better(best, value)):
                best, best_epoch = value, index + 1  # equal values: the later epoch
        return best, best_epoch

    def score(self, history: Sequence[float]) -> tuple[float, int]:
        """The trial's score after its last epoch, and the epoch it comes from."""
        return self.score_at(history, len(history))

    def running(self, history: Sequence[float]) -> list[float]:
        """The score after each epoch (what the trial reported as ``score``)."""
        return [self.score_at(history, epoch)[0] for epoch in range(1, len(history) + 1)]

    def epoch_value(self, history: Sequence[float], epoch: int) -> float:
        """Epoch ``epoch``'s own value for the rule: its metric, NaN before ``min_epochs`` (best_epoch)."""
        if epoch < 1 or epoch > len(history):
            return math.nan
        if self.scope == BEST_EPOCH and epoch < self.min_epochs:
            return math.nan
        return _finite_or_nan(history[epoch - 1])

    def eligible(self, epochs: int) -> bool:
        """Whether a trial of ``epochs`` epochs has a final (not provisional) score."""
        return epochs >= self.min_epochs

    def report(self, history: Sequence[float]) -> dict[str, float]:
        """What a trial adds to its result after the last epoch of ``history``."""
        score, epoch = self.score(history)
        return {
            SCORE_KEY: score,
            SCORE_EPOCH_KEY: float(epoch),
            EPOCH_SCORE_KEY: self.epoch_value(history, len(history)),
        }

    def rank_key(self, score: float, epochs: int, trial_index: int) -> tuple[int, int, float, int, int]:
        """Sort key, best first: eligible trials, then by score, then more epochs, then the earlier trial."""
        sign = -1.0 if self.mode == "max" else 1.0
        missing = math.isnan(score)
        return (
            0 if self.eligible(epochs) else 1,
            1 if missing else 0,
            0.0 if missing else sign * score,
            -epochs,
            trial_index,
        )


def _finite_or_nan(value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan
