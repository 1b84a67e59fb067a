"""What a retrain shows while it trains: a line per epoch of each model it trains, to where its ``progress``
option says (``search/progress_output.py``: True prints, a callable receives the line, False shows nothing).

``[2m10s] seed 0: epoch 3/30 val_auroc=0.8123 (12.1 s/epoch)``: the time since the retrain began, the
model, the epoch, its validation metric and the pace. At most one line every ``min_gap_s``, except a model's
first and last epoch, so a long schedule of fast epochs does not flood the terminal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from fracture_tune.search.progress_output import Progress, format_duration, progress_printer


class RetrainProgress:
    """The retrain's clock and where its lines go; ``for_model`` gives each training its engine callback."""

    def __init__(
        self, progress: Progress, clock: Callable[[], float] = time.monotonic, min_gap_s: float = 5.0
    ) -> None:
        self.emit = progress_printer(progress)
        self.clock = clock
        self.min_gap_s = min_gap_s
        self.started = clock()
        self.last_line = -math.inf

    def say(self, text: str) -> None:
        """One line, stamped with the time since the retrain began (nothing without an output)."""
        if self.emit is not None:
            self.last_line = self.clock()
            self.emit(f"[{format_duration(self.last_line - self.started)}] {text}")

    def for_model(self, label: str, epochs: int, metric: str) -> EpochLines:
        """The engine callback (``fit(callbacks=...)``) that reports ``label``'s epochs."""
        return EpochLines(self, label, epochs, metric)


class EpochLines:
    """An engine callback: ``LABEL: epoch i/N METRIC=value (s/epoch)`` after each epoch, when due."""

    def __init__(self, progress: RetrainProgress, label: str, epochs: int, metric: str) -> None:
        self.progress = progress
        self.label = label
        self.epochs = epochs
        self.metric = metric
        self.started = progress.clock()

    def __call__(self, metrics: dict[str, float], snapshot: Any = None) -> None:
        progress = self.progress
        if progress.emit is None:
            return
        epoch = int(metrics.get("epoch", 0))
        now = progress.clock()
        if epoch not in (1, self.epochs) and now - progress.last_line < progress.min_gap_s:
            return
        value = float(metrics.get(self.metric, math.nan))
        pace = (now - self.started) / max(epoch, 1)
        progress.say(
            f"{self.label}: epoch {epoch}/{self.epochs} {self.metric}={value:.4f} ({pace:.1f} s/epoch)"
        )
