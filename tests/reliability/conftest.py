"""Shared helpers for the fault-injection tests: run the CLI, record what was observed.

Each test calls ``observe(...)`` with the fault it injected and the figures it saw (trials completed,
MLflow runs, bytes on disk). When ``RELIABILITY_OBSERVATIONS`` names a folder (the report script
``benchmarks/reliability_table.py`` sets it) the figures are written there as JSON and become a row of
``docs/reliability.md``; otherwise they are only kept in the test's memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RELIABILITY_DIR = Path(__file__).resolve().parent
REPO_ROOT = RELIABILITY_DIR.parents[1]
# search_fixtures lives beside the integration tests; reuse its dataset and config writers.
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

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
        [sys.executable, "-m", "search.cli", *args],
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
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)


@pytest.fixture()
def observe(request: pytest.FixtureRequest) -> Iterator[Observe]:
    """``observe(fault=..., observed=..., **figures)``: one row of the reliability table."""
    rows: list[dict[str, Any]] = []

    def record(*, fault: str, observed: str, **figures: Any) -> None:
        rows.append({"fault": fault, "observed": observed, "figures": figures})

    yield record
    folder = os.environ.get("RELIABILITY_OBSERVATIONS")
    if not folder or not rows:
        return
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    node = request.node
    for index, row in enumerate(rows):
        row["test"] = f"{Path(str(node.fspath)).relative_to(REPO_ROOT)}::{node.name}"
        name = f"{node.name}-{index}.json".replace("/", "_")
        (target / name).write_text(json.dumps(row, indent=1, default=str), encoding="utf-8")


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
        ],  # fmt: skip
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
