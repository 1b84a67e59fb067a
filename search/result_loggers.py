"""Tune's JSON and CSV result files, kept whole when a trial restarts in the same driver.

When a trial starts again after its worker died (``max_failures``), Ray's loggers copy ``result.json`` and
``progress.csv`` back from the run folder over the driver's own files (``Logger._restore_from_remote``, ray
PR #38598). The run folder's copies are only as recent as Tune's last sync of the trial's folder, so every
result reported since then was lost from the files — and the search's records then disagreed (an epoch
missing from ``result.json`` but in MLflow and the Optuna study). The driver's file is at least as complete
as the run folder's, which is a copy of it: it is kept, and the run folder's copy is fetched only where the
driver has none (a search resumed by a new driver).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


class _DriverFileFirst:
    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        local = Path(trial.local_path, file_name)
        if local.exists() and local.stat().st_size > 0:
            return
        super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class JsonResultLogger(_DriverFileFirst, JsonLoggerCallback):
    """Tune's ``result.json`` writer, keeping the driver's file at a trial's restart."""


class CsvResultLogger(_DriverFileFirst, CSVLoggerCallback):
    """Tune's ``progress.csv`` writer, keeping the driver's file at a trial's restart."""
