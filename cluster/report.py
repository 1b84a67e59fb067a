"""What `cluster up|down|status` print: addresses to copy, nodes, and what was stopped."""

from __future__ import annotations

from pathlib import Path

from fracture_tune.cluster.auth import masked_token
from fracture_tune.cluster.local import ClusterStatus, StopReport
from fracture_tune.cluster.state import ClusterState, state_path


def print_up(state: ClusterState, cluster_dir: Path) -> None:
    print(f"local Ray cluster up: {len(state.nodes)} nodes (head + {len(state.nodes) - 1} workers)")
    print(f"  Jobs API / dashboard : {state.dashboard_url}")
    print(f"  Ray address (GCS)    : {state.gcs_address}")
    print(f"  Ray Client           : {state.client_address}")
    if state.tracking_uri:
        print(f"  MLflow server        : {state.tracking_uri}")
        print(f"  MLflow database      : {state.backend_store or 'sqlite'}")
    if state.auth_enabled and state.token_path:
        print(f"  auth token           : {masked_token(state.token_path)} in {state.token_path} (mode 0600)")
    else:
        print("  auth                 : DISABLED (--no-auth): anyone reaching these ports can run code")
    print(f"  state file           : {state_path(cluster_dir)}")
    print("\nsubmit a search as a Ray job (recommended for Tune):")
    tracking = f" --tracking-uri {state.tracking_uri}" if state.tracking_uri else ""
    print(
        f"  fracture-tune submit --address {state.dashboard_url} -- "
        f"search --config configs/quickstart.yaml{tracking}"
    )
    print("or drive it from this shell (run from this folder, `search --address` finds the token itself):")
    print(f"  fracture-tune search --config configs/quickstart.yaml --address {state.gcs_address}{tracking}")
    if state.auth_enabled:
        print("other Ray clients (`ray`, your own Python) need the token in the environment:")
        print(f"  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={state.token_path}")
    print("stop it: fracture-tune cluster down")


def print_down(report: StopReport, cluster_dir: Path) -> None:
    if not report.had_state:
        print(f"no local cluster recorded ({state_path(cluster_dir)} absent): nothing to stop")
        return
    for label, pids in report.stopped.items():
        print(f"stopped {label}: {len(pids)} processes (pids {', '.join(map(str, pids))})")
    if report.already_gone:
        print(f"already gone, nothing to stop: {', '.join(report.already_gone)}")
    if not report.stopped:
        print("nothing was running: removed the stale state file")
    runs = report.backend_store or Path(cluster_dir) / "mlflow.db"
    print(f"MLflow data kept: runs in {runs}, artifacts in {Path(cluster_dir) / 'mlartifacts'}")


def _resource_summary(resources: dict[str, float]) -> str:
    shown = {key: value for key, value in resources.items() if not key.startswith("node:")}
    parts = []
    for key, value in sorted(shown.items()):
        if key in ("memory", "object_store_memory"):
            parts.append(f"{key}={value / 2**30:.1f}GiB")
        else:
            parts.append(f"{key}={value:g}")
    return " ".join(parts)


def print_status(status: ClusterStatus | None, cluster_dir: Path) -> int:
    if status is None:
        print(
            f"no local cluster recorded ({state_path(cluster_dir)} absent); "
            "start one: fracture-tune cluster up"
        )
        return 1
    state = status.state
    print(f"dashboard / Jobs API: {state.dashboard_url}   GCS: {state.gcs_address}")
    for label, running in status.processes.items():
        print(f"  process {label:<16} {'running' if running else 'NOT RUNNING'}")
    if status.nodes_error:
        print(f"nodes: head unreachable ({status.nodes_error})")
    for node in status.nodes:
        role = "head  " if node.get("is_head_node") else "worker"
        resources = _resource_summary(node.get("resources_total") or {})
        print(f"  node {node['node_id'][:12]} {role} {node['state']:<5} {resources}")
    if state.tracking_uri:
        health = "healthy" if status.mlflow_healthy else "NOT ANSWERING"
        print(f"MLflow: {state.tracking_uri} ({health}), database {state.backend_store or 'sqlite'}")
    else:
        print("MLflow: not started (--no-mlflow)")
    healthy = all(status.processes.values()) and not status.nodes_error
    return 0 if healthy else 1
