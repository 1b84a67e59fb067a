"""What a search leaves on disk for later commands: ``search_record.json`` and ``best_trial.json``.

Retrain, predict and ``search show`` read these files instead of talking to Ray, so they are plain JSON
written atomically (a crash mid-write never leaves half a record) and read back into typed objects.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.score import ScoreRule

DEFAULT_RUNS_ROOT = Path(".fracture-tune") / "runs"
SEARCH_RECORD_FILE = "search_record.json"
BEST_TRIAL_FILE = "best_trial.json"
RESOLVED_CONFIG_FILE = "resolved_config.yaml"
RESULTS_PARQUET_FILE = "results.parquet"
RESULTS_CSV_FILE = "results.csv"
# Written when a search ended with updates MLflow does not have; `sync-mlflow` removes it.
# .jsonl, not .json: Ray Tune syncs a resumed experiment's *.json files back over newer ones.
MLFLOW_BACKLOG_FILE = "mlflow_backlog.jsonl"


@dataclass
class SearchRecord:
    """Provenance of one search: enough to find its data, its MLflow runs and to reproduce it."""

    name: str
    run_dir: str
    dataset_cache_dir: str
    dataset_key: str
    split_hash: str
    metric: str
    mode: str
    best_trial_rule: dict[str, Any]
    tracking_uri: str  # redacted: never holds a password
    experiment_name: str
    experiment_id: str
    parent_run_id: str
    code_version: str
    library_versions: dict[str, str]
    status: str  # running | finished | interrupted | failed
    num_trials_planned: int = 0
    started_at: str = ""
    finished_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class BestTrial:
    """The trial selected by the best-trial rule, with what retrain needs to rebuild it.

    ``config`` holds flat engine keys only (``TrainConfig.from_flat`` accepts it). ``metric_value`` is the
    trial's score (``trainables/score.py``) and ``best_epoch`` the epoch it comes from; ``metric_range`` is
    (min, max) of the metric over the epochs the trial ran, so a reader sees how noisy the selection was.
    ``checkpoint_path`` is the checkpoint directory of ``best_epoch`` while it is kept (empty once the
    checkpoint keeper removed it: retrain trains from the config, not from it).
    """

    trial_id: str
    trial_index: int
    config: dict[str, Any]
    metric: str
    mode: str
    metric_value: float
    best_epoch: int
    epochs_run: int
    metric_range: tuple[float, float]
    checkpoint_path: str
    mlflow_run_id: str
    status: str = ""
    metric_by_epoch: list[float] = field(default_factory=list)


def score_rule_of(record: SearchRecord) -> ScoreRule:
    """The score rule a search ran with (its metric, mode and ``best_trial`` rule, as recorded)."""
    rule = record.best_trial_rule or {}
    scope = "last_epoch" if rule.get("scope") == "last_epoch" else "best_epoch"
    return ScoreRule(record.metric, record.mode, int(rule.get("min_epochs") or 1), scope)


def run_dir_for(name: str, storage: str | os.PathLike[str] | None = None) -> Path:
    """Absolute run folder of search ``name`` under ``storage`` (default ``./.fracture-tune/runs``)."""
    root = Path(storage) if storage is not None else DEFAULT_RUNS_ROOT
    return (root / name).expanduser().resolve()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON through a temporary file + rename, so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=2, sort_keys=True, default=str)
            stream.write("\n")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise FractureTuneError(
            f"{what} not found: {path}",
            hint="run `fracture-tune search --config configs/quickstart.yaml --name NAME` first, "
            "or pass the right run name / --storage",
        )
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise FractureTuneError(f"{what} is not valid JSON: {path} ({error})") from error
    if not isinstance(payload, dict):
        raise FractureTuneError(f"{what} must hold a JSON object: {path}")
    return payload


def _known_fields(cls: type, payload: dict[str, Any]) -> dict[str, Any]:
    # Newer writers may add keys; older readers keep working by ignoring them.
    names = {item.name for item in fields(cls)}
    return {key: value for key, value in payload.items() if key in names}


def write_search_record(run_dir: Path, record: SearchRecord) -> Path:
    path = Path(run_dir) / SEARCH_RECORD_FILE
    write_json_atomic(path, asdict(record))
    return path


def read_search_record(run_dir: Path) -> SearchRecord:
    payload = _read_json(Path(run_dir) / SEARCH_RECORD_FILE, "search record")
    try:
        return SearchRecord(**_known_fields(SearchRecord, payload))
    except TypeError as error:
        raise FractureTuneError(f"search record in {run_dir} is incomplete: {error}") from error


def write_best_trial(run_dir: Path, best: BestTrial) -> Path:
    path = Path(run_dir) / BEST_TRIAL_FILE
    payload = asdict(best)
    payload["metric_range"] = list(best.metric_range)
    write_json_atomic(path, payload)
    return path


def read_best_trial(run_dir: Path) -> BestTrial:
    payload = _read_json(Path(run_dir) / BEST_TRIAL_FILE, "best trial")
    try:
        best = BestTrial(**_known_fields(BestTrial, payload))
    except TypeError as error:
        raise FractureTuneError(f"best trial in {run_dir} is incomplete: {error}") from error
    low, high = best.metric_range
    best.metric_range = (float(low), float(high))
    return best


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
    """The git commit (``+dirty`` with local changes) when the package runs from a checkout, else the
    installed version (``fracture-tune==0.1.0``): a wheel inside someone's git project is not that project."""
    import subprocess

    from fracture_tune.version import PACKAGE_DIR, package_version

    where = repo_dir or PACKAGE_DIR
    installed = f"fracture-tune=={package_version()}"
    if not (where / ".git").exists():
        return installed
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return installed
    return f"{commit}+dirty" if dirty else commit


def mlflow_updates_missing(run_dir: Path) -> int:
    """How many of the search's updates MLflow is missing (queued when it ended, or refused); 0 if none."""
    try:
        backlog = json.loads((Path(run_dir) / MLFLOW_BACKLOG_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return 0
    return int(backlog.get("queued_unsent", 0)) + int(backlog.get("dropped", 0))


def add_to_mlflow_backlog(run_dir: Path, search_name: str, reason: str) -> None:
    """Count one more update MLflow did not get (e.g. the parent run's summary at the end of the search)."""
    path = Path(run_dir) / MLFLOW_BACKLOG_FILE
    try:
        backlog = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        backlog = {"queued_unsent": 0, "dropped": 0, "dropped_reasons": []}
    backlog["dropped"] = int(backlog.get("dropped", 0)) + 1
    backlog["dropped_reasons"] = [*backlog.get("dropped_reasons", []), reason][:50]
    backlog["recover_with"] = f"fracture-tune search sync-mlflow {search_name}"
    path.write_text(json.dumps(backlog) + "\n", encoding="utf-8")
