"""What `cluster up|down|status` print: the addresses to copy, a loud warning when auth is off, which
services were stopped, and a status whose exit code turns non-zero as soon as anything is down."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.cluster.auth import create_token_file
from fracture_tune.cluster.local import ClusterStatus, StopReport
from fracture_tune.cluster.processes import ProcessRecord
from fracture_tune.cluster.report import print_down, print_status, print_up
from fracture_tune.cluster.state import ClusterState


def _state(
    tmp_path: Path, auth: bool = True, tracking_uri: str | None = "http://127.0.0.1:5000"
) -> ClusterState:
    nodes = [ProcessRecord(f"node-{i}", 1000 + i, 1, "/dev/null") for i in range(3)]
    return ClusterState(
        gcs_address="127.0.0.1:6379",
        dashboard_url="http://127.0.0.1:8265",
        client_address="ray://127.0.0.1:10001",
        tracking_uri=tracking_uri,
        auth_enabled=auth,
        token_path=str(create_token_file(tmp_path)) if auth else None,
        ray_temp_root=str(tmp_path / "ray"),
        nodes=nodes,
    )


def test_up_prints_the_commands_to_copy_and_never_the_whole_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state(tmp_path)
    print_up(state, tmp_path)
    out = capsys.readouterr().out
    assert "3 nodes (head + 2 workers)" in out
    assert (
        "fracture-tune submit --address http://127.0.0.1:8265 -- search --config configs/quickstart.yaml "
        "--tracking-uri http://127.0.0.1:5000" in out
    )
    assert f"RAY_AUTH_TOKEN_PATH={state.token_path}" in out
    assert Path(state.token_path or "").read_text().strip() not in out


def test_up_without_auth_or_mlflow_warns_and_leaves_tracking_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    print_up(_state(tmp_path, auth=False, tracking_uri=None), tmp_path)
    out = capsys.readouterr().out
    assert "DISABLED" in out
    assert "--tracking-uri" not in out and "MLflow server" not in out and "RAY_AUTH" not in out


def test_down_reports_stopped_and_already_gone_services(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    print_down(StopReport(stopped={"ray-head": [11, 12]}, already_gone=["mlflow (pid 9)"]), tmp_path)
    out = capsys.readouterr().out
    assert "stopped ray-head: 2 processes (pids 11, 12)" in out
    assert "already gone, nothing to stop: mlflow (pid 9)" in out
    assert "nothing was running" not in out
    assert f"runs in {tmp_path / 'mlflow.db'}" in out
    print_down(StopReport(had_state=False), tmp_path)
    assert "nothing to stop" in capsys.readouterr().out


def test_status_lists_nodes_and_fails_when_anything_is_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = {
        "node_id": "abcdef0123456789",
        "is_head_node": True,
        "state": "ALIVE",
        "resources_total": {"CPU": 2.0, "memory": 2 * 2**30, "node:127.0.0.1": 1.0},
    }
    healthy = ClusterStatus(_state(tmp_path), {"ray-head": True}, [node], None, True)
    assert print_status(healthy, tmp_path) == 0
    out = capsys.readouterr().out
    assert "node abcdef012345 head   ALIVE CPU=2 memory=2.0GiB" in out
    assert "node:" not in out.replace("node abcdef", "")
    assert "(healthy)" in out
    down = ClusterStatus(_state(tmp_path), {"ray-head": True, "worker": False}, [], "refused", False)
    assert print_status(down, tmp_path) == 1
    out = capsys.readouterr().out
    assert "NOT RUNNING" in out and "head unreachable (refused)" in out and "NOT ANSWERING" in out
    assert print_status(None, tmp_path) == 1
