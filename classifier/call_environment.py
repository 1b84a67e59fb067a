"""Process state for one library call: set what the call needs, put everything back afterwards.

Ray, Tune and MLflow read settings from environment variables (and ``mlflow.set_tracking_uri`` writes one).
A command line process exits after one command, but a notebook runs many calls in one process: every API
call (``run_search``, ``retrain``, ``load_classifier``…) runs inside ``call_environment`` and leaves
``os.environ`` and MLflow's tracking URI as it found them. Standard library only: importing this imports no
Ray.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

# Always, for any call that talks to MLflow:
# - a leaked MLFLOW_RUN_ID would be picked up as the active run by anything fluent (mlflow#15713);
# - with an http(s) server MLflow prints a "View run … at: URL" line per ended run (one per trial) and
#   draws a progress bar per artifact download.
MLFLOW_QUIET = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


@contextlib.contextmanager
def call_environment(defaults: Mapping[str, str] | None = None) -> Iterator[None]:
    """Run a block with ``defaults`` set where the user has not set them (and ``MLFLOW_RUN_ID`` unset), then
    restore ``os.environ`` and MLflow's process-wide tracking URI exactly."""
    saved_environ = dict(os.environ)
    saved_uri = _mlflow_tracking_uri()
    os.environ.pop("MLFLOW_RUN_ID", None)
    for key, value in {**MLFLOW_QUIET, **(defaults or {})}.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved_environ):
            del os.environ[key]
        for key, value in saved_environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        _restore_mlflow_tracking_uri(saved_uri)


def _mlflow_tracking_uri() -> object:
    import sys

    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    return getattr(utils, "_tracking_uri", None) if utils is not None else None


def _restore_mlflow_tracking_uri(saved: object) -> None:
    import sys

    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if utils is not None:
        utils._tracking_uri = saved  # type: ignore[attr-defined]
