"""State file, PID/session handling and `cluster down` on stale state — real processes, no Ray."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runs import wait_for

from fracture_tune.cli import main
from fracture_tune.cluster.auth import apply_local_cluster_auth, create_token_file, masked_token
from fracture_tune.cluster.local import LocalClusterSpec, start_local_cluster, stop_local_cluster
from fracture_tune.cluster.processes import (
    ProcessRecord,
    is_running,
    process_start_ticks,
    session_members,
    start_session_leader,
    stop_session,
)
from fracture_tune.cluster.state import ClusterState, load_state, save_state, state_path
from fracture_tune.errors import FractureTuneError


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] not in ("Z", "X")


def _state(tmp_path: Path, nodes: list[ProcessRecord], mlflow: ProcessRecord | None = None) -> ClusterState:
    return ClusterState(
        gcs_address="192.0.2.2:6379",
        dashboard_url="http://127.0.0.1:8265",
        client_address="ray://127.0.0.1:10001",
        tracking_uri="http://127.0.0.1:5000",
        auth_enabled=True,
        token_path=str(create_token_file(tmp_path)),
        ray_temp_root=str(tmp_path / "ray-tmp"),
        nodes=nodes,
        mlflow=mlflow,
    )


def _dead_record(label: str) -> ProcessRecord:
    process = subprocess.Popen(["sleep", "0"], start_new_session=True)
    ticks = process_start_ticks(process.pid) or 0
    process.wait()
    return ProcessRecord(label=label, pid=process.pid, start_ticks=ticks, log_path="/dev/null")


def _session_with_children(tmp_path: Path) -> ProcessRecord:
    # A leader with two children that stops them on SIGTERM, like `ray start --block` and its daemons.
    script = "trap 'kill 0; exit 0' TERM; sleep 60 & sleep 60 & wait"
    return start_session_leader("fake-node", ["bash", "-c", script], dict(os.environ), tmp_path / "fake.log")


def _wait_for_children(leader: ProcessRecord) -> list[int]:
    """The session's members once the leader's two children are up (bash forks them after it starts)."""

    def all_up() -> list[int] | None:
        members = session_members(leader)
        return members if len(members) >= 3 else None

    return list(wait_for(all_up, 10, "the fake node's two children to start", interval=0.05))


def test_state_round_trips_and_is_written_atomically(tmp_path: Path) -> None:
    record = ProcessRecord(label="ray-head", pid=123, start_ticks=456, log_path="/x.log")
    state = _state(tmp_path, [record], mlflow=ProcessRecord("mlflow-server", 9, 8, "/m.log"))
    path = save_state(state, tmp_path)
    assert path == state_path(tmp_path)
    loaded = load_state(tmp_path)
    assert loaded == state
    assert [item.name for item in tmp_path.iterdir() if item.name.startswith(".state.")] == []
    token = Path(state.token_path or "").read_text()
    assert token not in path.read_text()  # only the token's path is recorded, never the token


def test_unreadable_state_file_names_the_file(tmp_path: Path) -> None:
    state_path(tmp_path).write_text("{not json")
    with pytest.raises(FractureTuneError, match="state.json"):
        load_state(tmp_path)


def test_token_file_is_private_and_never_printed_whole(tmp_path: Path) -> None:
    token_path = create_token_file(tmp_path)
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    token = token_path.read_text()
    assert len(token) == 64
    assert token not in masked_token(token_path)
    assert masked_token(token_path).startswith(token[:4])


def test_stop_session_stops_leader_and_children_and_nothing_else(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    leader = _session_with_children(tmp_path)
    members = _wait_for_children(leader)
    assert leader.pid in members and len(members) == 3
    stopped = stop_session(leader, grace_s=5)
    assert set(stopped) == set(members)
    assert not any(_alive(pid) for pid in members)
    assert bystander.poll() is None  # a process outside the session is untouched
    bystander.kill()
    bystander.wait()


def test_reused_pid_is_not_ours(tmp_path: Path) -> None:
    # Our own PID with another start time: a recorded process whose PID the kernel gave to someone else.
    impostor = ProcessRecord(
        "ray-head", os.getpid(), (process_start_ticks(os.getpid()) or 0) + 1, "/dev/null"
    )
    assert not is_running(impostor)
    assert stop_session(impostor) == []
    assert _alive(os.getpid())


def test_down_with_stale_state_is_a_noop_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _state(
        tmp_path, [_dead_record("ray-head"), _dead_record("ray-worker-1")], _dead_record("mlflow-server")
    )
    save_state(state, tmp_path)
    assert main(["cluster", "down", "--cluster-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "already gone" in out and "ray-head" in out and "nothing was running" in out
    assert not state_path(tmp_path).exists()
    assert main(["cluster", "down", "--cluster-dir", str(tmp_path)]) == 0  # twice is fine
    assert "nothing to stop" in capsys.readouterr().out


def test_down_stops_recorded_sessions(tmp_path: Path) -> None:
    head = _session_with_children(tmp_path)
    save_state(_state(tmp_path, [head]), tmp_path)
    members = _wait_for_children(head)
    report = stop_local_cluster(tmp_path)
    assert report.stopped["fake-node"] and not any(_alive(pid) for pid in members)
    assert not state_path(tmp_path).exists()


def test_up_refuses_while_a_recorded_cluster_runs(tmp_path: Path) -> None:
    head = _session_with_children(tmp_path)
    save_state(_state(tmp_path, [head]), tmp_path)
    try:
        with pytest.raises(FractureTuneError, match="already running"):
            start_local_cluster(LocalClusterSpec(workers=0), tmp_path)
    finally:
        stop_local_cluster(tmp_path)


def test_status_without_cluster_says_how_to_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "status", "--cluster-dir", str(tmp_path)]) == 1
    assert "fracture-tune cluster up" in capsys.readouterr().out


def test_local_auth_applies_only_to_the_recorded_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _state(tmp_path, [_dead_record("ray-head")])
    save_state(state, tmp_path)
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        # setenv first so monkeypatch records each one and undoes what apply_local_cluster_auth sets below
        # (a bare delenv of an unset variable records nothing: the token settings leaked into later tests'
        # ray.init, which then failed with "Authentication token is missing or incorrect").
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)
    assert not apply_local_cluster_auth("http://10.0.0.5:8265", tmp_path)
    assert "RAY_AUTH_TOKEN_PATH" not in os.environ
    assert apply_local_cluster_auth("http://127.0.0.1:8265", tmp_path)
    assert os.environ["RAY_AUTH_MODE"] == "token"
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == state.token_path
    monkeypatch.setenv("RAY_AUTH_TOKEN", "someone-elses")
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    assert not apply_local_cluster_auth("ray://127.0.0.1:10001", tmp_path)  # an explicit token wins


def test_cli_entry_point_lists_cluster_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fracture_tune.cli", "cluster", "up", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in ("--workers", "--cpus-per-node", "--no-mlflow", "--no-auth", "--port", "--gpus-per-worker"):
        assert flag in result.stdout
