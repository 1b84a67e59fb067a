"""A short search against a real ``mlflow server``; the parent/child link checked over the REST API.

The tracking URI carries a token as user-info (``http://TOKEN@host:port``, how some proxies take one): it must
reach no console line, no file of the run folder (tuner.pkl included) and no MLflow param or tag.
"""

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


TOKEN = "tok-7f3a9c2e51d4b8"


def test_search_logs_children_under_the_parent_on_a_server(tmp_path: Path, mlflow_server: str) -> None:
    with_token = mlflow_server.replace("http://", f"http://{TOKEN}@")
    config = write_search_config(
        tmp_path,
        budget={"num_trials": 3},
        training={"epochs": 2},
        scheduler={"max_t": 2},
    )
    done = subprocess.run(
        search_command(
            "--config", str(config), "--name", "srv", "--tracking-uri", with_token, "--num-cpus", "2"
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
    run_dir = tmp_path / ".fracture-tune" / "runs" / "srv"
    record = json.loads((run_dir / "search_record.json").read_text())
    redacted = mlflow_server.replace("http://", "http://***@")
    assert record["tracking_uri"] == redacted and record["parent_run_id"] == parent_id
    assert f"MLflow {redacted} run" in done.stdout
    page = f"{mlflow_server}/#/experiments/{experiment['experiment_id']}/runs?"
    assert f"MLflow runs of srv: {page}" in done.stdout  # the token dropped from the link too

    # The token, anywhere: console, every file the search wrote (binary ones too), MLflow's params and tags.
    assert TOKEN not in done.stdout + done.stderr
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert any(path.name == "tuner.pkl" for path in files) and len(files) > 20
    holding = [str(path.relative_to(run_dir)) for path in files if TOKEN.encode() in path.read_bytes()]
    assert holding == [], f"the token was written to {holding}"
    for run in runs:
        values = [item["value"] for key in ("params", "tags") for item in run["data"].get(key, [])]
        assert not [value for value in values if TOKEN in value], run["info"]["run_name"]
