"""Run the CLI as a user does, in a fresh process, and wait for what it starts (integration + reliability)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

Observe = Callable[..., None]


def cli_env(**extra: str) -> dict[str, str]:
    """The user's environment minus anything that would attach to someone else's Ray or MLflow."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_RUN_ID", None)
    env["PYTHONDONTWRITEBYTECODE"] = ""  # Ray workers import torch: bytecode saves seconds per worker
    env.update(extra)
    return env


def fracture_tune(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``fracture-tune ARGS`` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "fracture_tune.cli", *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:"))]


def bytes_under(path: Path, pattern: str = "*") -> int:
    return sum(item.stat().st_size for item in path.rglob(pattern) if item.is_file())


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``condition`` every ``interval`` s until it returns something truthy, and return that.

    After ``timeout`` s it fails with an AssertionError naming ``what``. Tests wait with this rather than
    a fixed sleep: a sleep long enough for a loaded 2-core machine is wasted time everywhere else, and one
    short enough to be cheap can end before the thing it waits for. An assertion inside ``condition``
    (e.g. "the process is still alive") fails the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow_server(folder: Path, port: int, log_name: str = "server.log") -> subprocess.Popen[bytes]:
    """``mlflow server`` on 127.0.0.1:port with its database in ``folder``; returns once /health answers."""
    import urllib.request

    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--default-artifact-root",
            str(folder / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / log_name).open("a"),
        start_new_session=True,
    )

    def healthy() -> bool:
        assert server.poll() is None, (folder / log_name).read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return True
        except OSError:
            return False

    wait_for(healthy, 180, "the mlflow server to answer /health", interval=1.0)
    return server


def stop_process_group(process: subprocess.Popen[Any], sig: int = 15) -> None:
    """Signal the group this test started (start_new_session=True) and reap the leader."""
    import signal

    try:
        os.killpg(process.pid, signal.Signals(sig))
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
