"""A real 2-node Ray cluster + MLflow server on this machine, driven through the CLI as a user would.

`cluster up --workers 1 --gpus-per-worker 1` (the worker advertises one GPU: Ray schedules by the
number, so GPU placement is real even on a CPU-only machine), jobs submitted through the Jobs API,
then `cluster down` — and every process checked gone by PID. About 1.5–2 minutes on 2 cores, plus the
search (~2–3 minutes) when the search command is available.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fracture_tune.cluster.processes import session_members
from fracture_tune.cluster.state import ClusterState, load_state

pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE_JOB = """
import json, pathlib, shutil, tempfile, time, ray
ray.init()

def wait_until(predicate, timeout_s=60, interval_s=0.05):
    # A poll, not a fixed sleep: a sleep can end before a loaded 2-core machine has started the other
    # worker. On timeout the task returns anyway and the test's assertions name what did not happen.
    deadline = time.time() + timeout_s
    while not predicate() and time.time() < deadline:
        time.sleep(interval_s)

@ray.remote(num_cpus=1)
def cpu_task(i, probe, node_count):
    # Each task holds its CPU until a task has run on every node: the tasks the busy node cannot take
    # must go to the other one. Tasks Ray kept on one node wait out the deadline; the test sees one node.
    node = ray.get_runtime_context().get_node_id()
    pathlib.Path(probe, f"cpu-{node}").touch()
    wait_until(lambda: len(list(pathlib.Path(probe).glob("cpu-*"))) >= node_count)
    return node

@ray.remote(num_cpus=0, num_gpus=0.5)
def half_gpu_task(i, probe):
    # Each task waits for the other to start, so they overlap if Ray runs them at once: when one stops
    # waiting the other has recorded its start. Tasks Ray serialised wait out the deadline, no overlap.
    start = time.time()
    pathlib.Path(probe, f"gpu-{i}").touch()
    wait_until(lambda: pathlib.Path(probe, f"gpu-{1 - i}").exists())
    return ray.get_runtime_context().get_node_id(), start, time.time(), ray.get_gpu_ids()

nodes = {n["NodeID"]: n["Resources"].get("GPU", 0) for n in ray.nodes() if n["Alive"]}
probe = tempfile.mkdtemp(prefix="ft-probe-")  # one machine: every node's workers see it
cpu_nodes = ray.get([cpu_task.remote(i, probe, len(nodes)) for i in range(6)])
gpu_runs = ray.get([half_gpu_task.remote(i, probe) for i in range(2)])
shutil.rmtree(probe)
print("PROBE " + json.dumps({"nodes": nodes, "cpu_nodes": cpu_nodes, "gpu_runs": gpu_runs}))
"""


def fracture_tune(
    *args: str, cwd: Path = REPO_ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "fracture_tune.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] not in ("Z", "X")


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterState, Path]]:
    cluster_dir = tmp_path_factory.mktemp("cluster")
    up = fracture_tune(
        "cluster",
        "up",
        "--workers",
        "1",
        "--gpus-per-worker",
        "1",
        "--cluster-dir",
        str(cluster_dir),
        timeout=400,
    )
    state = load_state(cluster_dir)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert state is not None and len(state.nodes) == 2 and state.mlflow is not None
        token = Path(state.token_path or "").read_text().strip()
        assert token not in up.stdout + up.stderr  # the token is never printed
        yield state, cluster_dir
    finally:
        fracture_tune("cluster", "down", "--cluster-dir", str(cluster_dir))


def _submit(cluster_dir: Path, *command: str, working_dir: Path = REPO_ROOT, timeout: float = 600) -> Any:
    return fracture_tune(
        "submit",
        "--cluster-dir",
        str(cluster_dir),
        "--working-dir",
        str(working_dir),
        "--",
        *command,
        timeout=timeout,
    )


def test_status_shows_two_alive_nodes_and_mlflow(local_cluster: tuple[ClusterState, Path]) -> None:
    state, cluster_dir = local_cluster
    status = fracture_tune("cluster", "status", "--cluster-dir", str(cluster_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count(" ALIVE ") == 2
    assert f"{state.tracking_uri} (healthy)" in status.stdout
    assert "GPU=1" in status.stdout  # the worker's advertised GPU


def test_job_runs_tasks_on_both_nodes_and_gpu_tasks_only_on_gpu_nodes(
    local_cluster: tuple[ClusterState, Path], tmp_path: Path
) -> None:
    _, cluster_dir = local_cluster
    (tmp_path / "probe.py").write_text(PROBE_JOB)
    result = _submit(cluster_dir, "python", "probe.py", working_dir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE "))
    probe = json.loads(line.removeprefix("PROBE "))
    assert len(probe["nodes"]) == 2
    assert set(probe["cpu_nodes"]) == set(probe["nodes"])  # CPU tasks spread over head and worker
    gpu_nodes = {node for node, gpus in probe["nodes"].items() if gpus > 0}
    assert {run[0] for run in probe["gpu_runs"]} == gpu_nodes  # GPU tasks only where a GPU is
    (_, start_a, end_a, ids_a), (_, start_b, end_b, ids_b) = probe["gpu_runs"]
    assert start_b < end_a and start_a < end_b  # two half-GPU tasks share the one GPU at once
    assert ids_a == ids_b == [0]


def test_failed_job_exits_1_and_no_wait_returns_an_id(
    local_cluster: tuple[ClusterState, Path], tmp_path: Path
) -> None:
    _, cluster_dir = local_cluster
    (tmp_path / "fail.py").write_text("raise SystemExit('deliberate failure')\n")
    failed = _submit(cluster_dir, "python", "fail.py", working_dir=tmp_path)
    assert failed.returncode == 1 and "FAILED" in failed.stdout
    # The job's sleep is its workload (a job still running when it is stopped), not a wait for anything.
    (tmp_path / "slow.py").write_text("import time; print('started', flush=True); time.sleep(300)\n")
    submitted = fracture_tune(
        "submit",
        "--no-wait",
        "--cluster-dir",
        str(cluster_dir),
        "--working-dir",
        str(tmp_path),
        "--",
        "python",
        "slow.py",
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[2].rstrip(":")
    assert fracture_tune("jobs", "status", job_id, "--cluster-dir", str(cluster_dir)).returncode == 0
    stopped = fracture_tune("jobs", "stop", job_id, "--cluster-dir", str(cluster_dir))
    assert "STOPPED" in stopped.stdout
    assert fracture_tune("jobs", "status", job_id, "--cluster-dir", str(cluster_dir)).returncode == 1


def _mlflow_post(tracking_uri: str, endpoint: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{tracking_uri}/api/2.0/mlflow/{endpoint}",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _write_images(root: Path, per_class: int = 40) -> None:
    """Tiny grayscale PNGs: fractured ones carry a dark diagonal line, so AUROC is computable."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, folder in ((1, "Fractured"), (0, "Non_fractured")):
        (root / folder).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(90, 160, size=(64, 64), dtype=np.uint8)
            if label:
                offset = int(rng.integers(-10, 10))
                for x in range(8, 56):
                    pixels[min(63, max(0, x + offset)), x] = 10
            Image.fromarray(pixels).save(root / folder / f"{folder}-{index}.png")


def test_search_submitted_as_a_job_uses_both_nodes_and_logs_every_trial_to_mlflow(
    local_cluster: tuple[ClusterState, Path], tmp_path: Path
) -> None:
    state, cluster_dir = local_cluster
    images, storage = tmp_path / "images", tmp_path / "runs"
    _write_images(images)
    experiment = f"cluster-test-{tmp_path.name}"
    result = _submit(
        cluster_dir,
        "search",
        "--config",
        "configs/quickstart.yaml",
        "--name",
        "cluster-e2e",
        "--storage",
        str(storage),
        "--set",
        f"dataset.path={images}",
        "--set",
        f"dataset.cache_root={tmp_path / 'datasets'}",
        "--set",
        "budget.num_trials=2",
        "--set",
        "training.epochs=2",
        "--set",
        "scheduler.max_t=2",
        "--set",
        "resources.max_concurrent_trials=2",
        "--set",
        "resources.cpus_per_trial=1",
        "--set",
        "searcher.n_startup_trials=2",
        "--set",
        f"tracking.experiment_name={experiment}",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"--tracking-uri {state.tracking_uri}" in result.stdout  # the cluster's server, passed through

    import pandas as pd

    results = pd.read_csv(storage / "cluster-e2e" / "results.csv")
    assert len(results) == 2 and set(results["status"]) <= {"finished", "stopped_by_asha"}
    assert results["node_id"].nunique() == 2  # one trial per single-CPU node, side by side

    tracking_uri = state.tracking_uri or ""
    experiment_id = _mlflow_get(tracking_uri, "experiments/get-by-name", experiment_name=experiment)
    runs = _mlflow_post(
        tracking_uri, "runs/search", {"experiment_ids": [experiment_id["experiment"]["experiment_id"]]}
    ).get("runs", [])
    tags = [{tag["key"]: tag["value"] for tag in run["data"].get("tags", [])} for run in runs]
    trial_runs = [tag for tag in tags if "mlflow.parentRunId" in tag]
    assert len(runs) == 3 and len(trial_runs) == 2  # the search's parent run + one child per trial
    assert {tag["node_id"] for tag in trial_runs} == set(results["node_id"])
    assert all(run["info"]["status"] == "FINISHED" for run in runs)


def _mlflow_get(tracking_uri: str, endpoint: str, **query: str) -> Any:
    from urllib.parse import urlencode

    url = f"{tracking_uri}/api/2.0/mlflow/{endpoint}?{urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_down_leaves_no_process_behind(local_cluster: tuple[ClusterState, Path]) -> None:
    # Runs last in this module (pytest keeps file order): takes the fixture's cluster down itself.
    state, cluster_dir = local_cluster
    sessions = {record.label: session_members(record) for record in state.all_processes()}
    assert all(sessions.values()), sessions
    down = fracture_tune("cluster", "down", "--cluster-dir", str(cluster_dir))
    assert down.returncode == 0, down.stderr
    for label in ("ray-head", "ray-worker-1", "mlflow-server"):
        assert f"stopped {label}" in down.stdout
    leftover = [pid for pids in sessions.values() for pid in pids if _alive(pid)]
    assert leftover == []
    assert not Path(state.ray_temp_root).exists()
    again = fracture_tune("cluster", "down", "--cluster-dir", str(cluster_dir))
    assert again.returncode == 0 and "nothing to stop" in again.stdout
