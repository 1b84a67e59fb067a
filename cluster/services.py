"""Command lines and health checks for the services a local cluster runs: Ray nodes and MLflow."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_tune.cluster.processes import ProcessRecord, free_port, is_running
from fracture_tune.errors import FractureTuneError

MEGABYTE = 1024 * 1024


def venv_bin() -> Path:
    """The bin dir of the Python running us: its `ray`, `mlflow` and `python` serve the whole cluster."""
    return Path(sys.executable).parent


@dataclass(frozen=True)
class NodeCommand:
    """Arguments for one `ray start --block` node on this machine."""

    temp_dir: Path
    num_cpus: int
    object_store_mb: int
    num_gpus: int = 0
    resources: dict[str, float] | None = None

    def agent_ports(self) -> list[str]:
        # Ray's fixed defaults (e.g. dashboard agent 52365) collide when several nodes share a host.
        return [
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--dashboard-agent-grpc-port",
            str(free_port()),
            "--runtime-env-agent-port",
            str(free_port()),
            "--metrics-export-port",
            str(free_port()),
        ]

    def common(self) -> list[str]:
        args = [
            str(venv_bin() / "ray"),
            "start",
            "--block",
            "--disable-usage-stats",
            "--temp-dir",
            str(self.temp_dir),
            "--num-cpus",
            str(self.num_cpus),
            "--num-gpus",
            str(self.num_gpus),
            "--object-store-memory",
            str(self.object_store_mb * MEGABYTE),
        ]
        if self.resources:
            args += ["--resources", json.dumps(self.resources)]
        return args + self.agent_ports()


def head_command(node: NodeCommand, gcs_port: int, dashboard_port: int, client_port: int) -> list[str]:
    return node.common() + [
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(gcs_port),
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard_port),
        "--ray-client-server-port",
        str(client_port),
    ]


def worker_command(node: NodeCommand, gcs_address: str) -> list[str]:
    return node.common() + ["--address", gcs_address]


def mlflow_command(cluster_dir: Path, port: int, backend_store_uri: str | None = None) -> list[str]:
    """``mlflow server`` on 127.0.0.1; runs in ``backend_store_uri`` (never a password) or the sqlite file."""
    cluster_dir = cluster_dir.resolve()
    return [
        str(venv_bin() / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_store_uri or f"sqlite:///{cluster_dir / 'mlflow.db'}",
        # Clients upload artifacts over HTTP (mlflow-artifacts:/), so a job's artifacts land here and
        # not in the Ray working dir of whichever node ran it.
        "--serve-artifacts",
        "--artifacts-destination",
        str(cluster_dir / "mlartifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def http_get_json(url: str, token: str | None = None, timeout_s: float = 5.0) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body = response.read().decode("utf-8")
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return body


def log_tail(record: ProcessRecord, lines: int = 15) -> str:
    try:
        text = Path(record.log_path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    what: str, check: Callable[[], bool], record: ProcessRecord, timeout_s: float, poll_s: float = 0.5
) -> None:
    """Poll ``check`` until it holds; fail fast if ``record``'s process died, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError) as error:
            last_error = f" (last error: {error})"
        if not is_running(record):
            raise FractureTuneError(
                f"{what}: {record.label} (pid {record.pid}) exited during startup. "
                f"Last lines of {record.log_path}:\n{log_tail(record)}",
                hint="fix the cause shown in the log, then run `fracture-tune cluster up` again",
            )
        time.sleep(poll_s)
    raise FractureTuneError(
        f"{what}: not ready after {timeout_s:.0f} s{last_error}. Last lines of {record.log_path}:\n"
        f"{log_tail(record)}",
        hint="the machine may be overloaded; retry with a longer --timeout or fewer --workers",
    )


def list_nodes(dashboard_url: str, token: str | None) -> list[dict[str, Any]]:
    """Nodes the cluster reports (Ray's State API through the dashboard), alive and dead."""
    payload = http_get_json(f"{dashboard_url}/api/v0/nodes?limit=1000&detail=true", token)
    return list(payload["data"]["result"]["result"])


def mlflow_is_healthy(tracking_uri: str) -> bool:
    return str(http_get_json(f"{tracking_uri}/health")).strip() == "OK"
