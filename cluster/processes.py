"""Start and stop background services by session, so `cluster down` stops exactly what `up` started.

Each service (`ray start --block`, `mlflow server`) is launched as the leader of a new session
(``setsid``). Everything it spawns keeps that session id — Ray's raylet, GCS, dashboard, agents and the
task workers, which get their own process *groups* but not their own session — so the session id
is a precise handle: stopping it never touches another user's Ray, unlike a blanket ``ray stop``.
PIDs are recorded with their start time (``/proc/PID/stat``) so a reused PID is never mistaken for ours.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessRecord:
    """One service we started: a session leader, identified by PID and start time."""

    label: str
    pid: int
    start_ticks: int
    log_path: str


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    if not fields:
        return None
    # After the name: state(0) ppid(1) pgrp(2) session(3) ... starttime is stat field 22 → index 19.
    return int(fields[19])


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] in ("Z", "X")


def is_running(record: ProcessRecord) -> bool:
    """True while the recorded process (same PID *and* same start time) is alive."""
    ticks = process_start_ticks(record.pid)
    return ticks == record.start_ticks and not _is_zombie(record.pid)


def session_members(record: ProcessRecord) -> list[int]:
    """Live PIDs in the recorded leader's session that started no earlier than the leader."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        if not fields or fields[0] in ("Z", "X") or int(fields[3]) != record.pid:
            continue
        if int(fields[19]) >= record.start_ticks:
            members.append(pid)
    return sorted(members)


def start_session_leader(
    label: str, command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> ProcessRecord:
    """Start ``command`` as a new session leader with stdout/stderr going to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ticks = process_start_ticks(process.pid)
    if ticks is None:  # exited before we could read it; record anyway so the caller sees it dead
        ticks = -1
    logger.debug("started %s pid=%d: %s", label, process.pid, " ".join(command))
    return ProcessRecord(label=label, pid=process.pid, start_ticks=ticks, log_path=str(log_path))


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return str(pid)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it doesn't linger as a zombie (no-op otherwise)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_session_gone(record: ProcessRecord, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not session_members(record):
            return True
        time.sleep(0.25)
    return False


def stop_session(record: ProcessRecord, grace_s: float = 15.0) -> list[int]:
    """SIGTERM the leader and its session, SIGKILL what remains after ``grace_s``; return PIDs seen.

    Refuses to touch anything when the recorded PID now belongs to another process (PID reuse).
    """
    leader_ticks = process_start_ticks(record.pid)
    if leader_ticks is not None and leader_ticks != record.start_ticks:
        logger.warning("pid %d is no longer %s (reused); leaving it alone", record.pid, record.label)
        return []
    members = session_members(record)
    if not members:
        _reap(record.pid)
        return []
    # The leader alone first: `ray start --block` shuts its children down in order on SIGTERM, and
    # signalling them all at once leaves the GCS waiting on peers that are already gone.
    _signal_all([record.pid], signal.SIGTERM)
    if _wait_session_gone(record, grace_s / 2):
        return members
    _signal_all(session_members(record), signal.SIGTERM)
    if _wait_session_gone(record, grace_s / 2):
        return members
    leftover = session_members(record)
    names = [_command_name(pid) for pid in leftover]
    logger.warning("%s: %s ignored SIGTERM for %.0f s; sending SIGKILL", record.label, names, grace_s)
    _signal_all(leftover, signal.SIGKILL)
    time.sleep(0.5)
    _reap(record.pid)
    return members


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    # Ray's GCS listens on all interfaces: a port taken on 0.0.0.0 is taken for us too.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel says is free now (another process may take it before we use it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])
