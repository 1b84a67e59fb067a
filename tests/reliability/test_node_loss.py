"""A worker node of a 2-node local cluster dies mid-search (its whole Ray session SIGKILLed).

The trial that ran there fails with the node, is retried from its checkpoint on the head node
(``max_failures``), and the search, submitted as a Ray job, completes with every trial in the results
table and in MLflow. While the cluster is up, the security defaults are checked on the live sockets:
dashboard, Ray Client server and MLflow listen on 127.0.0.1 only, and the Jobs API refuses a request
without the cluster's token.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_runs import Observe, cli_env, fracture_tune, stop_process_group, wait_for
from search_fixtures import write_search_config

from fracture_tune.cluster.processes import session_members
from fracture_tune.cluster.services import list_nodes
from fracture_tune.cluster.state import ClusterState, load_state

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

EPOCHS = 8


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[tuple[ClusterState, Path]]:
    cluster_dir = tmp_path / "cluster"
    up = fracture_tune("cluster", "up", "--workers", "1", "--cpus-per-node", "1", "--cluster-dir",
                       str(cluster_dir), cwd=tmp_path, timeout=400)  # fmt: skip
    try:
        state = load_state(cluster_dir)
        assert up.returncode == 0 and state is not None, up.stdout + up.stderr
        yield state, cluster_dir
    finally:
        fracture_tune("cluster", "down", "--cluster-dir", str(cluster_dir), cwd=tmp_path)


def _listening_hosts(port: int) -> set[str]:
    listed = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    hosts = set()
    for line in listed.splitlines():
        local = line.split()[3]
        host, _, found = local.rpartition(":")
        if found == str(port):
            hosts.add(host.strip("[]"))
    return hosts


def _port(address: str) -> int:
    return int(address.rstrip("/").rsplit(":", 1)[1])


def _unauthenticated_status(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/api/jobs/", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _client_call_without_token(host: str, port: int) -> str:
    """gRPC status of a Ray Client call that carries no token ("OK" if the server answered it)."""
    import grpc
    from ray.core.generated import ray_client_pb2, ray_client_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = ray_client_pb2_grpc.RayletDriverStub(channel)
        request = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)  # type: ignore[attr-defined]
        try:
            stub.ClusterInfo(request, timeout=20)
        except grpc.RpcError as error:
            return str(error.code().name)
    return "OK"


def _check_security_defaults(state: ClusterState) -> dict[str, Any]:
    """Dashboard and MLflow: loopback only. Ray Client and GCS: Ray binds them to the node's IP as well
    (``ray start`` resolves 127.0.0.1 to it), so there the cluster's token is what keeps strangers out."""
    loopback = {"127.0.0.1", "::ffff:127.0.0.1"}
    binds = {
        "dashboard": _listening_hosts(_port(state.dashboard_url)),
        "mlflow": _listening_hosts(_port(state.tracking_uri or "")),
        "client": _listening_hosts(_port(state.client_address)),
        "gcs": _listening_hosts(_port(state.gcs_address)),
    }
    for name in ("dashboard", "mlflow"):
        assert binds[name] and binds[name] <= loopback, f"{name} listens on {binds[name]}"
    status = _unauthenticated_status(state.dashboard_url)
    assert state.auth_enabled and status in (401, 403), f"Jobs API without a token answered {status}"
    exposed = sorted(host.removeprefix("::ffff:") for host in binds["client"] - loopback) or ["127.0.0.1"]
    client_status = _client_call_without_token(exposed[0], _port(state.client_address))
    assert client_status == "UNAUTHENTICATED", f"Ray Client on {exposed[0]} without a token: {client_status}"
    return {
        "binds": {name: sorted(hosts) for name, hosts in binds.items()},
        "no_token_status": status,
        "client_no_token": f"{exposed[0]}: {client_status}",
    }


def _trial_on(run_dir: Path, node_id: str) -> tuple[str, int] | None:
    """(trial id, epochs) of a running trial on ``node_id`` that has reported 2 epochs."""
    for result in run_dir.glob("trial_*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if len(rows) >= 2 and rows[-1].get("node_id") == node_id and not rows[-1].get("done"):
            return result.parent.name.removeprefix("trial_"), len(rows)
    return None


def test_search_survives_losing_a_worker_node(
    cluster: tuple[ClusterState, Path], tmp_path: Path, observe: Observe
) -> None:
    state, cluster_dir = cluster
    security = _check_security_defaults(state)
    token = Path(state.token_path or "").read_text().strip()
    nodes = list_nodes(state.dashboard_url, token)
    worker_node = next(node["node_id"] for node in nodes if not node.get("is_head_node"))
    head_node = next(node["node_id"] for node in nodes if node.get("is_head_node"))

    config = write_search_config(
        tmp_path,
        budget={"num_trials": 4, "time_budget_s": 900},
        training={"epochs": EPOCHS},
        scheduler={"max_t": EPOCHS, "grace_period": EPOCHS},
        checkpoint={"num_to_keep": 2},
        resources={"cpus_per_trial": 1, "max_concurrent_trials": 2},
        dataset={"cache_root": str(tmp_path / "datasets")},
        max_failures=2,
        tracking={"experiment_name": "node-loss"},
    )
    job_dir = tmp_path / "job"  # what the job uploads: the config only (the data path is absolute)
    job_dir.mkdir()
    shutil.copy(config, job_dir / "search.yaml")
    storage = tmp_path / "runs"
    run_dir = storage / "nl"
    submit = subprocess.Popen(
        [sys.executable, "-m", "fracture_tune.search.cli", "submit", "--cluster-dir", str(cluster_dir),
         "--working-dir", str(job_dir), "--",
         "search", "--config", "search.yaml", "--name", "nl", "--storage", str(storage)],
        cwd=job_dir, env=cli_env(), stdout=(tmp_path / "submit.out").open("w"),
        stderr=(tmp_path / "submit.err").open("w"), start_new_session=True,
    )  # fmt: skip
    try:
        victim = wait_for(lambda: _trial_on(run_dir, worker_node) or submit.poll() is not None, 400,
                          "a trial running on the worker node")  # fmt: skip
        assert submit.poll() is None, (tmp_path / "submit.out").read_text()[-3000:]
        trial_id, epochs_before = victim
        worker = state.nodes[1]
        killed = session_members(worker)
        for pid in killed:  # the worker's raylet, its object store and the trial's worker process
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        returncode = submit.wait(timeout=700)
    finally:
        stop_process_group(submit, signal.SIGKILL) if submit.poll() is None else None
    output = (tmp_path / "submit.out").read_text()
    assert returncode == 0, output[-4000:] + (tmp_path / "submit.err").read_text()[-2000:]

    frame = pd.read_csv(run_dir / "results.csv")
    assert len(frame) == 4 and set(frame["status"]) == {"finished"}, frame[["trial_id", "status"]]
    row = frame.loc[frame["trial_id"] == trial_id].iloc[0]
    assert row["node_id"] == head_node, "the lost node's trial did not finish on the remaining node"
    assert int(row["epochs"]) == EPOCHS

    def node_marked_dead() -> bool:  # Ray's GCS declares a node dead after missed health checks
        status = fracture_tune("cluster", "status", "--cluster-dir", str(cluster_dir), cwd=tmp_path)
        return status.stdout.count(" ALIVE ") == 1 and " DEAD " in status.stdout

    wait_for(node_marked_dead, 180, "`cluster status` to show the worker DEAD", interval=5.0)
    children = _child_runs(state.tracking_uri or "", "node-loss")
    assert sorted(children) == sorted(frame["trial_id"]), "MLflow does not hold one run per trial"
    observe(
        fault="worker node lost (its whole Ray session SIGKILLed) during a search submitted as a job",
        observed=(
            f"trial {trial_id} (on the worker, after epoch {epochs_before}) retried on the head node; "
            f"4/4 trials finished; {len(children)} MLflow child runs; `cluster status` shows 1 ALIVE, 1 DEAD"
        ),
        processes_killed=len(killed),
        child_runs=len(children),
    )
    observe(
        fault="network exposure of a `cluster up` cluster (default flags)",
        observed=(
            f"dashboard/Jobs API and MLflow listen on 127.0.0.1 only; Jobs API without the token → HTTP "
            f"{security['no_token_status']}; Ray Client listens on {', '.join(security['binds']['client'])} "
            f"(Ray binds the node IP), a call without the token → {security['client_no_token']}; "
            f"GCS on {', '.join(security['binds']['gcs'])} (all interfaces when *; token auth on)"
        ),
        **security,
    )


def _child_runs(tracking_uri: str, experiment: str) -> list[str]:
    """Trial ids of the child runs in ``experiment`` (over the server's REST API)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    return [run.data.tags["fracture_tune.trial_id"] for run in runs if "mlflow.parentRunId" in run.data.tags]
