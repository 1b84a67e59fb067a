"""Ray token authentication for the local cluster.

Ray 2.60 reads the token from ``RAY_AUTH_TOKEN``, else the file at ``RAY_AUTH_TOKEN_PATH``, else
``~/.ray/auth_token``, whenever ``RAY_AUTH_MODE=token``. `cluster up` writes its own token file (0600)
under the cluster dir and starts every node with those two variables, so the daemons, the job drivers
they spawn and our clients all agree — without touching the user's ``~/.ray``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fracture_tune.cluster.state import ClusterState, load_state

TOKEN_FILE_NAME = "auth_token"


def create_token_file(cluster_dir: Path) -> Path:
    """Write a fresh random token readable by the owner only."""
    path = Path(cluster_dir) / TOKEN_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    # O_EXCL + mode 0o600: the token is never readable by others, not even for an instant.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(secrets.token_hex(32))
    return path.resolve()


def masked_token(token_path: str | Path) -> str:
    """The token as safe to print: its first 4 characters only."""
    token = Path(token_path).read_text(encoding="utf-8").strip()
    return f"{token[:4]}…({len(token)} chars)"


def ray_auth_env(auth_enabled: bool, token_path: str | None) -> dict[str, str]:
    """Environment variables a Ray process (node, driver, client) needs for this cluster."""
    if not auth_enabled:
        return {"RAY_AUTH_MODE": "disabled"}
    assert token_path is not None  # invariant of ClusterState: auth on ⇒ a token file
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}


def _addresses_of(state: ClusterState) -> set[str]:
    port_only = {state.gcs_address.rsplit(":", 1)[-1]}
    hosts = ("127.0.0.1", "localhost", state.gcs_address.rsplit(":", 1)[0])
    dashboard_port = state.dashboard_url.rsplit(":", 1)[-1]
    client_port = state.client_address.rsplit(":", 1)[-1]
    found = {state.gcs_address, state.dashboard_url, state.client_address, "auto"}
    for host in hosts:
        found |= {f"{host}:{port}" for port in port_only}
        found |= {
            f"http://{host}:{dashboard_port}",
            f"{host}:{dashboard_port}",
            f"ray://{host}:{client_port}",
        }
    return found


def apply_local_cluster_auth(address: str | None, cluster_dir: Path) -> bool:
    """Before ``import ray``: point this process at the local cluster's token if ``address`` is it.

    Returns True when variables were set. Leaves an explicit ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``
    (a remote cluster's token) alone.
    """
    state = load_state(cluster_dir)
    if state is None or address is None or address.rstrip("/") not in _addresses_of(state):
        return False
    if "RAY_AUTH_TOKEN" in os.environ or "RAY_AUTH_TOKEN_PATH" in os.environ:
        return False
    os.environ.update(ray_auth_env(state.auth_enabled, state.token_path))
    return True
