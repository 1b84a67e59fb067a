"""`cluster up | down | status`: a real multi-node Ray cluster and an MLflow server on this machine.

Every node is its own `ray start --block` process with its own temp dir, started as a session leader
(see ``cluster.processes``); the MLflow server is one more. Their PIDs and addresses go to the state
file, which is all `down` and `status` need.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fracture_tune.cluster.auth import create_token_file, ray_auth_env
from fracture_tune.cluster.backend_store import BackendStore, backend_store_for, check_backend_store
from fracture_tune.cluster.processes import (
    ProcessRecord,
    is_running,
    port_is_free,
    start_session_leader,
    stop_session,
)
from fracture_tune.cluster.services import (
    NodeCommand,
    head_command,
    list_nodes,
    mlflow_command,
    mlflow_is_healthy,
    venv_bin,
    wait_until,
    worker_command,
)
from fracture_tune.cluster.state import DEFAULT_CLUSTER_DIR, ClusterState, clear_state, load_state, save_state
from fracture_tune.errors import FractureTuneError

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"gcs": 6379, "dashboard": 8265, "client": 10001, "mlflow": 5000}
# Ray's default worker ports (`ray start` --min-worker-port 10002, --max-worker-port 19999): a service moved
# off its taken default must not land there, or the node's own workers collide with it.
RAY_WORKER_PORTS = range(10002, 20000)
# Variables that would make our daemons join or log somewhere else than we intend, and the database
# password: only the MLflow server gets it (``BackendStore.server_env``), not the Ray nodes' jobs.
_ENV_DROPPED = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "MLFLOW_RUN_ID", "PYTHONDONTWRITEBYTECODE", "PGPASSWORD")


@dataclass(frozen=True)
class LocalClusterSpec:
    """What `cluster up` starts. Ports left None take Ray's/MLflow's default, or a free one if taken."""

    workers: int = 1
    cpus_per_node: int = 1
    object_store_mb: int = 200
    with_mlflow: bool = True
    auth: bool = True
    ports: dict[str, int | None] = field(default_factory=dict)
    gpus_per_worker: int = 0  # advertised to Ray; on a CPU-only host this rehearses GPU placement
    worker_resources: dict[str, float] | None = None  # custom resources, e.g. a node-type marker
    timeout_s: float = 120.0
    backend_store_uri: str | None = None  # MLflow's database (PostgreSQL); None: sqlite in the cluster dir


def choose_port(name: str, requested: int | None) -> int:
    """The requested port (must be free), else the default, else any free port."""
    if requested is not None:
        if not port_is_free(requested):
            raise FractureTuneError(
                f"--{name}-port {requested} is already in use", hint=f"pick another --{name}-port"
            )
        return requested
    default = DEFAULT_PORTS[name]
    if port_is_free(default):
        return default
    for candidate in fallback_ports(default):
        if port_is_free(candidate):
            logger.info("%s port %d is taken; using %d", name, default, candidate)
            return candidate
    raise FractureTuneError(f"no free port near {default} for {name}", hint=f"pass --{name}-port")


def fallback_ports(default: int, count: int = 200) -> list[int]:
    """Ports to try when ``default`` is taken: above it, then below it, never in Ray's worker range."""
    above = [port for port in range(default + 1, default + count) if port not in RAY_WORKER_PORTS]
    lowest = max(1024, default - count)
    below = [port for port in range(default - 1, lowest, -1) if port not in RAY_WORKER_PORTS]
    return above + below


def service_env(auth_enabled: bool, token_path: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _ENV_DROPPED}
    # A job's `python`/`fracture-tune` is whatever the node's PATH finds first: make it our venv.
    env["PATH"] = f"{venv_bin()}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.update(ray_auth_env(auth_enabled, token_path))
    return env


def _token(state: ClusterState) -> str | None:
    if not state.auth_enabled or not state.token_path:
        return None
    return Path(state.token_path).read_text(encoding="utf-8").strip()


def running_processes(state: ClusterState) -> list[ProcessRecord]:
    return [record for record in state.all_processes() if is_running(record)]


def _refuse_if_running(cluster_dir: Path) -> None:
    existing = load_state(cluster_dir)
    if existing is None:
        return
    alive = running_processes(existing)
    if alive:
        raise FractureTuneError(
            f"a local cluster is already running (pids {[record.pid for record in alive]}, "
            f"dashboard {existing.dashboard_url})",
            hint="use it (`fracture-tune cluster status`) or stop it first: `fracture-tune cluster down`",
        )
    logger.info("removing stale cluster state (its processes are gone)")
    clear_state(cluster_dir)


def _read_gcs_address(temp_dir: Path) -> str:
    # `ray start` writes the address it registered (Ray maps 127.0.0.1 to the host's IP) here.
    return (temp_dir / "ray_current_cluster").read_text(encoding="utf-8").strip()


def _start_nodes(
    spec: LocalClusterSpec, state: ClusterState, env: dict[str, str], logs: Path, cd: Path
) -> None:
    temp_root = Path(state.ray_temp_root)
    head_node = NodeCommand(temp_root / "head", spec.cpus_per_node, spec.object_store_mb)
    ports = [
        int(part.rsplit(":", 1)[-1])
        for part in (state.gcs_address, state.dashboard_url, state.client_address)
    ]
    head = start_session_leader("ray-head", head_command(head_node, *ports), env, logs / "ray-head.log")
    state.nodes.append(head)
    save_state(state, cd)
    wait_until(
        "Ray head", lambda: (temp_root / "head" / "ray_current_cluster").exists(), head, spec.timeout_s
    )
    state.gcs_address = _read_gcs_address(temp_root / "head")
    for index in range(1, spec.workers + 1):
        node = NodeCommand(
            temp_root / f"worker-{index}",
            spec.cpus_per_node,
            spec.object_store_mb,
            num_gpus=spec.gpus_per_worker,
            resources=spec.worker_resources,
        )
        label = f"ray-worker-{index}"
        state.nodes.append(
            start_session_leader(label, worker_command(node, state.gcs_address), env, logs / f"{label}.log")
        )
        save_state(state, cd)
    token = _token(state)
    expected = spec.workers + 1

    def all_nodes_alive() -> bool:
        return sum(node["state"] == "ALIVE" for node in list_nodes(state.dashboard_url, token)) >= expected

    wait_until(f"{expected} Ray nodes", all_nodes_alive, head, spec.timeout_s)


def _start_mlflow(
    spec: LocalClusterSpec, state: ClusterState, env: dict[str, str], cd: Path, store: BackendStore
) -> None:
    port = choose_port("mlflow", spec.ports.get("mlflow"))
    command = mlflow_command(cd, port, store.uri)
    log = cd / "logs" / "mlflow-server.log"
    state.mlflow = start_session_leader("mlflow-server", command, {**env, **store.server_env()}, log)
    state.tracking_uri = f"http://127.0.0.1:{port}"
    save_state(state, cd)
    tracking_uri = state.tracking_uri
    wait_until("MLflow server", lambda: mlflow_is_healthy(tracking_uri), state.mlflow, spec.timeout_s)


def start_local_cluster(spec: LocalClusterSpec, cluster_dir: Path = DEFAULT_CLUSTER_DIR) -> ClusterState:
    """Start a head, ``spec.workers`` workers and (optionally) MLflow; return the recorded state.

    On any failure everything already started is stopped again and the error re-raised.
    """
    if spec.workers < 0 or spec.cpus_per_node < 1:
        raise FractureTuneError(
            f"--workers must be >= 0 and --cpus-per-node >= 1 (got {spec.workers}, {spec.cpus_per_node})"
        )
    if spec.backend_store_uri and not spec.with_mlflow:
        raise FractureTuneError(
            "--backend-store-uri is the MLflow server's database, and --no-mlflow starts no server",
            hint="drop one of the two options",
        )
    cluster_dir = Path(cluster_dir).resolve()
    _refuse_if_running(cluster_dir)
    store = backend_store_for(spec.backend_store_uri, cluster_dir, os.environ)
    if spec.with_mlflow:
        check_backend_store(store)  # a missing driver or database fails here, before any node starts
    ports = {name: choose_port(name, spec.ports.get(name)) for name in ("gcs", "dashboard", "client")}
    token_path = str(create_token_file(cluster_dir)) if spec.auth else None
    # Under /tmp, not the project: Ray's unix socket paths must stay under ~107 characters.
    temp_root = tempfile.mkdtemp(prefix="ft-ray-")
    state = ClusterState(
        gcs_address=f"127.0.0.1:{ports['gcs']}",
        dashboard_url=f"http://127.0.0.1:{ports['dashboard']}",
        client_address=f"ray://127.0.0.1:{ports['client']}",
        tracking_uri=None,
        auth_enabled=spec.auth,
        token_path=token_path,
        ray_temp_root=temp_root,
        created_at=time.time(),
        backend_store=store.shown() if spec.with_mlflow else None,
    )
    env = service_env(spec.auth, token_path)
    try:
        _start_nodes(spec, state, env, cluster_dir / "logs", cluster_dir)
        if spec.with_mlflow:
            _start_mlflow(spec, state, env, cluster_dir, store)
        save_state(state, cluster_dir)
    except BaseException:
        stop_local_cluster(cluster_dir)
        raise
    return state


@dataclass
class StopReport:
    stopped: dict[str, list[int]] = field(default_factory=dict)  # label → PIDs that were running
    already_gone: list[str] = field(default_factory=list)
    had_state: bool = True
    backend_store: str | None = None  # where the MLflow runs stay (redacted)


def stop_local_cluster(cluster_dir: Path = DEFAULT_CLUSTER_DIR) -> StopReport:
    """Stop exactly the recorded processes (workers first, then head, then MLflow). Idempotent."""
    state = load_state(cluster_dir)
    if state is None:
        return StopReport(had_state=False)
    report = StopReport(backend_store=state.backend_store)
    ordered = [*reversed(state.nodes[1:]), *state.nodes[:1], *([state.mlflow] if state.mlflow else [])]
    for record in ordered:
        pids = stop_session(record)
        if pids:
            report.stopped[record.label] = pids
        else:
            report.already_gone.append(f"{record.label} (pid {record.pid})")
    shutil.rmtree(state.ray_temp_root, ignore_errors=True)
    if state.token_path:
        Path(state.token_path).unlink(missing_ok=True)
    clear_state(cluster_dir)
    return report


@dataclass
class ClusterStatus:
    state: ClusterState
    processes: dict[str, bool]  # label → running
    nodes: list[dict[str, Any]]  # from Ray's State API; empty when the head is unreachable
    nodes_error: str | None
    mlflow_healthy: bool | None


def cluster_status(cluster_dir: Path = DEFAULT_CLUSTER_DIR) -> ClusterStatus | None:
    state = load_state(cluster_dir)
    if state is None:
        return None
    processes = {record.label: is_running(record) for record in state.all_processes()}
    nodes: list[dict[str, Any]] = []
    nodes_error = None
    try:
        nodes = list_nodes(state.dashboard_url, _token(state))
    except (OSError, ValueError, KeyError) as error:
        nodes_error = str(error)
    mlflow_healthy = None
    if state.tracking_uri:
        try:
            mlflow_healthy = mlflow_is_healthy(state.tracking_uri)
        except OSError:
            mlflow_healthy = False
    return ClusterStatus(state, processes, nodes, nodes_error, mlflow_healthy)
