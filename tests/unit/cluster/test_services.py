"""The commands `cluster up` runs and how it waits for them: nodes on distinct ports joining the head's
address, MLflow on loopback with its own database, and a service that dies at startup reported at once with
the end of its log, not after the full timeout."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from fracture_tune.cluster.processes import ProcessRecord, start_session_leader, stop_session
from fracture_tune.cluster.services import (
    NodeCommand,
    head_command,
    log_tail,
    mlflow_command,
    wait_until,
    worker_command,
)
from fracture_tune.errors import FractureTuneError


def _value(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_node_commands_carry_resources_and_their_own_agent_ports(tmp_path: Path) -> None:
    node = NodeCommand(tmp_path, num_cpus=2, object_store_mb=100, num_gpus=1, resources={"accel": 1.0})
    head = head_command(node, gcs_port=6390, dashboard_port=8300, client_port=10010)
    assert head[1:3] == ["start", "--block"] and "--head" in head
    assert (_value(head, "--port"), _value(head, "--dashboard-port")) == ("6390", "8300")
    assert _value(head, "--object-store-memory") == str(100 * 1024 * 1024)
    assert json.loads(_value(head, "--resources")) == {"accel": 1.0}
    worker = worker_command(node, "127.0.0.1:6390")
    assert _value(worker, "--address") == "127.0.0.1:6390" and "--head" not in worker
    # two nodes on one machine never share an agent port
    assert _value(head, "--dashboard-agent-listen-port") != _value(worker, "--dashboard-agent-listen-port")


def test_mlflow_serves_on_loopback_from_sqlite_or_the_given_database(tmp_path: Path) -> None:
    command = mlflow_command(tmp_path, 5123)
    assert _value(command, "--host") == "127.0.0.1" and _value(command, "--port") == "5123"
    assert _value(command, "--backend-store-uri") == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert _value(command, "--artifacts-destination") == str(tmp_path.resolve() / "mlartifacts")
    postgres = mlflow_command(tmp_path, 5123, "postgresql://me@db:5432/runs")
    assert _value(postgres, "--backend-store-uri") == "postgresql://me@db:5432/runs"


def test_log_tail_shows_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)))
    assert log_tail(ProcessRecord("svc", 1, 1, str(log)), lines=3) == "line 37\nline 38\nline 39"
    assert log_tail(ProcessRecord("svc", 1, 1, str(tmp_path / "absent.log"))) == "(no log)"


def test_wait_until_fails_fast_when_the_service_died(tmp_path: Path) -> None:
    record = start_session_leader(
        "mlflow-server",
        ["sh", "-c", "echo port already in use; exit 1"],
        dict(os.environ),
        tmp_path / "m.log",
    )
    started = time.monotonic()
    with pytest.raises(FractureTuneError, match="exited during startup") as error:
        wait_until("MLflow health", lambda: False, record, timeout_s=30, poll_s=0.01)
    assert time.monotonic() - started < 5
    assert "port already in use" in error.value.message and f"pid {record.pid}" in error.value.message


def test_wait_until_returns_once_the_check_holds_and_times_out_otherwise(tmp_path: Path) -> None:
    record = start_session_leader("sleeper", ["sleep", "30"], dict(os.environ), tmp_path / "s.log")
    calls: list[int] = []

    def ready_on_third_call() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionRefusedError("not yet")
        return len(calls) >= 3

    try:
        wait_until("ready", ready_on_third_call, record, timeout_s=10, poll_s=0.01)
        assert len(calls) == 3
        with pytest.raises(FractureTuneError, match=r"not ready after 0 s \(last error: boom\)"):
            wait_until("ready", lambda: (_ for _ in ()).throw(ValueError("boom")), record, 0.1, 0.01)
    finally:
        stop_session(record, grace_s=2)
