"""MLflow from the driver only: one parent run per search, one child run per trial.

Everything goes through ``MlflowClient`` with explicit run ids (no fluent API, no autolog, nothing in the
trials), behind one lock: Tune calls callbacks from its event loop, but ``sync-mlflow`` and the final
summary may call in from elsewhere, and the client is not documented as thread-safe.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///./mlflow.db"
TRIAL_ID_TAG = "fracture_tune.trial_id"
SEARCH_NAME_TAG = "fracture_tune.search"
PARENT_TAG = "mlflow.parentRunId"


def resolve_tracking_uri(cli_value: str | None = None, config_value: str | None = None) -> str:
    """--tracking-uri > $MLFLOW_TRACKING_URI > config > the default; relative paths made absolute.

    Absolute paths matter: Ray may change the working directory, and ``search show`` may run elsewhere.
    """
    uri = cli_value or os.environ.get("MLFLOW_TRACKING_URI") or config_value or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///")
        if not path.startswith("/"):
            return f"sqlite:///{Path(path).resolve()}"
        return uri
    if "://" not in uri:  # a plain directory: MLflow's file store
        return Path(uri).resolve().as_uri()
    return uri


def redact_uri(uri: str) -> str:
    """Hide the password of ``scheme://user:password@host`` (and any ``password=`` query value).

    Edits the string in place rather than re-joining parsed parts: ``urlunsplit`` turns
    ``sqlite:////abs/path`` into ``sqlite://abs/path`` (it drops the empty host), a different file.
    """
    parts = urlsplit(uri)
    redacted = uri
    if "@" in parts.netloc:
        credentials, host = parts.netloc.rsplit("@", 1)
        if ":" in credentials:
            user = credentials.split(":", 1)[0]
            redacted = redacted.replace(parts.netloc, f"{user}:***@{host}", 1)
    head, separator, tail = redacted.partition("?")
    if separator:
        redacted = head + separator + re.sub(r"(password=)[^&#]*", r"\1***", tail, flags=re.IGNORECASE)
    return redacted


def artifact_location_for(tracking_uri: str) -> str | None:
    """``./mlartifacts`` beside a sqlite db; None (the server's default) for http(s) servers."""
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        return (database.parent / "mlartifacts").as_uri()
    return None


def bound_http_retries() -> None:
    """Cap MLflow's HTTP retries for a search (the user's own settings win).

    MLflow's defaults (7 retries, backoff factor 2, 120 s timeout) stall a call for minutes while a server
    is down — in Tune's event loop, that stalls every trial. The search's callback queues and replays
    updates instead, so a call may fail fast.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def make_client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    # A leaked MLFLOW_RUN_ID would be picked up as the active run by anything fluent (mlflow#15713).
    os.environ.pop("MLFLOW_RUN_ID", None)
    # With an http(s) server MLflow prints a "View run … at: URL" line per ended run: one per trial
    # drowns the progress lines; the parent's URL is printed once by the search.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    return MlflowClient(tracking_uri=tracking_uri)


def ensure_experiment(client: Any, name: str, tracking_uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    location = artifact_location_for(tracking_uri)
    return str(client.create_experiment(name, artifact_location=location))


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("ray", "optuna", "torch", "mlflow", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "missing"
    return versions


def code_version(repo_dir: Path | None = None) -> str:
    """The git commit (``+dirty`` when the tree has local changes), or ``unknown`` outside git."""
    import subprocess

    where = str(repo_dir or Path(__file__).resolve().parents[1])
    try:
        commit = subprocess.run(
            ["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


class ParentRun:
    """The search's parent run: created once, reused on resume (its id lives in search_record.json)."""

    def __init__(self, client: Any, experiment_id: str, run_id: str, tracking_uri: str) -> None:
        self.client = client
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.lock = threading.Lock()

    @classmethod
    def start(
        cls, tracking_uri: str, experiment_id: str, search_name: str, existing_run_id: str = ""
    ) -> ParentRun:
        client = make_client(tracking_uri)
        if existing_run_id:
            run = client.get_run(existing_run_id)
            if run.info.status != "RUNNING":
                client.update_run(existing_run_id, status="RUNNING")
            return cls(client, experiment_id, existing_run_id, tracking_uri)
        run = client.create_run(experiment_id, run_name=search_name, tags={SEARCH_NAME_TAG: search_name})
        return cls(client, experiment_id, run.info.run_id, tracking_uri)

    def log_setup(self, params: dict[str, Any], tags: dict[str, str], artifacts: dict[str, str]) -> None:
        """Params (values ≤ 500 chars, as MLflow requires), tags and small text artifacts."""
        from mlflow.entities import Param, RunTag

        with self.lock:
            existing = self.client.get_run(self.run_id).data.params
            fresh = [Param(key, str(value)[:500]) for key, value in params.items() if key not in existing]
            for start in range(0, len(fresh), 100):
                self.client.log_batch(self.run_id, params=fresh[start : start + 100])
            self.client.log_batch(self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])
            for file_name, text in artifacts.items():
                self.client.log_text(self.run_id, text, file_name)

    def finish(self, status: str, tags: dict[str, str], metrics: dict[str, float]) -> None:
        with self.lock:
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, value)
            for metric_name, metric_value in metrics.items():
                self.client.log_metric(self.run_id, metric_name, metric_value)
            self.client.set_terminated(self.run_id, status=status)
