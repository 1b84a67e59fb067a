"""Where MLflow lives: one rule for every command that reads or writes a tracking store."""

from __future__ import annotations

import os
from pathlib import Path

from fracture_tune.data.redaction import REDACTED

DEFAULT_TRACKING_URI = "sqlite:///./mlflow.db"


def resolve_tracking_uri(
    explicit: str | None = None, recorded: str | None = None, configured: str | None = None
) -> str:
    """Where MLflow lives, by one rule for every command; relative paths are made absolute.

    ``explicit`` (``--tracking-uri``) > ``recorded`` (the store a search already logged to, where its parent
    run lives; skipped when it was recorded redacted) > ``$MLFLOW_TRACKING_URI`` > ``configured`` (the YAML's
    ``tracking.tracking_uri``; skipped when redacted, as in a search's saved config) >
    ``sqlite:///./mlflow.db``. Absolute paths matter: Ray may change the working directory, and ``search
    show`` or ``retrain`` may run elsewhere.
    """
    usable_record = recorded if recorded and REDACTED not in recorded else None
    usable_config = configured if configured and REDACTED not in configured else None
    uri = (
        explicit
        or usable_record
        or os.environ.get("MLFLOW_TRACKING_URI")
        or usable_config
        or DEFAULT_TRACKING_URI
    )
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///")
        if not path.startswith("/"):
            return f"sqlite:///{Path(path).resolve()}"
        return uri
    if "://" not in uri:  # a plain directory: MLflow's file store
        return Path(uri).resolve().as_uri()
    return uri
