"""A worker node of a 2-node local cluster dies mid-search (its whole Ray session SIGKILLed).

The trial that ran there fails with the node, is retried from its checkpoint on the head node
(``max_failures``), and the search, submitted as a Ray job, completes with every trial in the results
table and in MLflow. (What a `cluster up` cluster listens on is measured in test_security.py.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from cli_runs import Observe, cli_env, fracture_tune, stop_process_group, wait_for
from search_fixtures import write_search_config

from fracture_tune.cluster.processes import session_members
from fracture_tune.cluster.services import list_nodes
from fracture_tune.cluster.state import ClusterState, load_state

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

# 20 epochs of ~0.8 s (aug_factor 40): Tune copies its result files to the run folder at each experiment
# snapshot (every 10 s in a small search), so a trial must run longer than that to be seen on the worker.
EPOCHS = 20


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[tuple[ClusterState, Path]]:
    cluster_dir = tmp_path / "cluster"
    up = fracture_tune(
        "cluster",
        "up",
        "--workers",
        "1",
        "--cpus-per-node",
        "1",
        "--cluster-dir",
        str(cluster_dir),
        cwd=tmp_path,
        timeout=400,
    )
    try:
        state = load_state(cluster_dir)
        assert up.returncode == 0 and state is not None, up.stdout + up.stderr
        yield state, cluster_dir
    finally:
        fracture_tune("cluster", "down", "--cluster-dir", str(cluster_dir), cwd=tmp_path)


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
    token = Path(state.token_path or "").read_text().strip()
    nodes = list_nodes(state.dashboard_url, token)
    worker_node = next(node["node_id"] for node in nodes if not node.get("is_head_node"))
    head_node = next(node["node_id"] for node in nodes if node.get("is_head_node"))

    config = write_search_config(
        tmp_path,
        budget={"num_trials": 4, "time_budget_s": 900},
        training={"epochs": EPOCHS, "aug_factor": 40},
        scheduler={"max_t": EPOCHS, "grace_period": EPOCHS},
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
        [
            sys.executable,
            "-m",
            "fracture_tune.cli",
            "submit",
            "--cluster-dir",
            str(cluster_dir),
            "--working-dir",
            str(job_dir),
            "--",
            "search",
            "--config",
            "search.yaml",
            "--name",
            "nl",
            "--storage",
            str(storage),
        ],
        cwd=job_dir,
        env=cli_env(),
        stdout=(tmp_path / "submit.out").open("w"),
        stderr=(tmp_path / "submit.err").open("w"),
        start_new_session=True,
    )
    try:
        victim = wait_for(
            lambda: _trial_on(run_dir, worker_node) or submit.poll() is not None,
            400,
            "a trial running on the worker node",
        )
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


def _child_runs(tracking_uri: str, experiment: str) -> list[str]:
    """Trial ids of the child runs in ``experiment`` (over the server's REST API)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    return [run.data.tags["fracture_tune.trial_id"] for run in runs if "mlflow.parentRunId" in run.data.tags]
