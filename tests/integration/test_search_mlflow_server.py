"""A short search against a real ``mlflow server``; the parent/child link checked over the REST API."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runs import free_port, start_mlflow_server, stop_process_group
from search_fixtures import search_command, write_search_config

pytestmark = pytest.mark.integration


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = start_mlflow_server(tmp_path, port)  # returns once /health answers (a poll, not a sleep)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(server)


def test_search_logs_children_under_the_parent_on_a_server(tmp_path: Path, mlflow_server: str) -> None:
    config = write_search_config(
        tmp_path,
        budget={"num_trials": 3},
        training={"epochs": 2},
        scheduler={"max_t": 2},
        checkpoint={"num_to_keep": 2},
    )
    done = subprocess.run(
        search_command(
            "--config", str(config), "--name", "srv", "--tracking-uri", mlflow_server, "--num-cpus", "2"
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    api = f"{mlflow_server}/api/2.0/mlflow"
    with urllib.request.urlopen(f"{api}/experiments/get-by-name?experiment_name=search-it", timeout=30) as r:
        experiment = json.loads(r.read())["experiment"]
    runs = _post(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})[
        "runs"
    ]
    tags = [{tag["key"]: tag["value"] for tag in run["data"].get("tags", [])} for run in runs]
    parents = [run for run, tag in zip(runs, tags, strict=True) if "mlflow.parentRunId" not in tag]
    assert len(parents) == 1
    parent_id = parents[0]["info"]["run_id"]
    children = [tag for tag in tags if "mlflow.parentRunId" in tag]
    assert len(children) == 3 and all(tag["mlflow.parentRunId"] == parent_id for tag in children)
    record = json.loads((tmp_path / ".fracture-tune" / "runs" / "srv" / "search_record.json").read_text())
    assert record["tracking_uri"] == mlflow_server and record["parent_run_id"] == parent_id
