"""The local cluster's state file: what `cluster up` started and where to reach it.

``.fracture-tune/cluster/state.json`` is written atomically (temporary file + rename) so a reader never
sees half a file. It holds addresses and PIDs, never the auth token itself (only the token file's path).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fracture_tune.cluster.processes import ProcessRecord
from fracture_tune.errors import FractureTuneError

DEFAULT_CLUSTER_DIR = Path(".fracture-tune") / "cluster"
STATE_FILE_NAME = "state.json"
STATE_VERSION = 1


@dataclass
class ClusterState:
    """Addresses and processes of one local cluster started by `fracture-tune cluster up`."""

    gcs_address: str  # host:port that `ray start --address` / `ray.init(address=...)` use
    dashboard_url: str  # http://127.0.0.1:PORT — Jobs API (`fracture-tune submit --address`)
    client_address: str  # ray://127.0.0.1:PORT — Ray Client
    tracking_uri: str | None  # the MLflow server, when started
    auth_enabled: bool
    token_path: str | None
    ray_temp_root: str  # per-node Ray temp dirs live under here
    nodes: list[ProcessRecord] = field(default_factory=list)  # head first
    mlflow: ProcessRecord | None = None
    created_at: float = 0.0
    backend_store: str | None = None  # the MLflow server's database, redacted (state files before it: sqlite)
    version: int = STATE_VERSION

    def all_processes(self) -> list[ProcessRecord]:
        return [*self.nodes, *([self.mlflow] if self.mlflow else [])]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> ClusterState:
        nodes = [ProcessRecord(**node) for node in payload.pop("nodes", [])]
        mlflow_payload = payload.pop("mlflow", None)
        mlflow = ProcessRecord(**mlflow_payload) if mlflow_payload else None
        return cls(nodes=nodes, mlflow=mlflow, **payload)


def state_path(cluster_dir: Path = DEFAULT_CLUSTER_DIR) -> Path:
    return Path(cluster_dir) / STATE_FILE_NAME


def save_state(state: ClusterState, cluster_dir: Path = DEFAULT_CLUSTER_DIR) -> Path:
    path = state_path(cluster_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=".state.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(state.to_json(), stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_state(cluster_dir: Path = DEFAULT_CLUSTER_DIR) -> ClusterState | None:
    """The recorded cluster, or None when no state file exists."""
    path = state_path(cluster_dir)
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload.get("version") != STATE_VERSION:
            raise ValueError(f"version {payload.get('version')!r}, expected {STATE_VERSION}")
        return ClusterState.from_json(payload)
    except (ValueError, TypeError, KeyError) as error:
        raise FractureTuneError(
            f"cluster state file {path} is unreadable: {error}",
            hint=f"stop any leftover processes listed in it by hand, then delete {path}",
        ) from error


def clear_state(cluster_dir: Path = DEFAULT_CLUSTER_DIR) -> None:
    state_path(cluster_dir).unlink(missing_ok=True)
