"""`cluster down` stops what `cluster up` started: a started service is recorded as running with its own
start time and log file, stopping it leaves it not running, and port checks see a port someone holds."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

from cli_runs import wait_for

from fracture_tune.cluster.processes import (
    ProcessRecord,
    free_port,
    is_running,
    port_is_free,
    process_start_ticks,
    start_session_leader,
    stop_session,
)


def test_a_started_service_is_running_until_stopped(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "sleeper.log"
    record = start_session_leader("sleeper", ["sleep", "30"], dict(os.environ), log)
    try:
        assert record.label == "sleeper" and record.log_path == str(log) and log.parent.is_dir()
        assert record.start_ticks == process_start_ticks(record.pid)
        assert is_running(record)
        # the same PID with another start time is a process the kernel gave that PID later: not ours
        reused = dataclasses.replace(record, start_ticks=record.start_ticks + 1)
        assert not is_running(reused) and stop_session(reused) == [] and is_running(record)
    finally:
        stopped = stop_session(record, grace_s=4)
    assert stopped == [record.pid]
    assert not is_running(record)
    assert stop_session(record, grace_s=1) == []  # stopping twice is harmless


def test_the_service_output_goes_to_its_log(tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    log.write_text("earlier run\n")
    record = start_session_leader("echo", ["sh", "-c", "echo hello; echo oops >&2"], dict(os.environ), log)
    wait_for(lambda: not is_running(record), 10, "the echo service to exit", interval=0.02)
    assert log.read_text().splitlines()[0] == "earlier run"  # appended, never truncated
    assert "hello" in log.read_text() and "oops" in log.read_text()


def test_a_record_for_a_pid_that_never_existed_is_not_running() -> None:
    assert not is_running(ProcessRecord("ghost", 2**22 + 7, 1, "/dev/null"))


def test_port_checks_see_a_listening_socket() -> None:
    port = free_port()
    assert port_is_free(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert not port_is_free(port)
