"""The local cluster's Ray token: a private file, never printed whole, used when --address names that
cluster and never over a token the user set."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fracture_tune.cluster.auth import apply_local_cluster_auth, create_token_file, masked_token, ray_auth_env
from fracture_tune.cluster.state import ClusterState, save_state


def test_the_token_file_is_readable_by_its_owner_only_and_printed_masked(tmp_path: Path) -> None:
    path = create_token_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text()
    assert len(token) == 64 and masked_token(path) == f"{token[:4]}…(64 chars)"
    assert create_token_file(tmp_path).read_text() != token  # a fresh token each time


def test_ray_is_told_the_mode_and_where_the_token_is() -> None:
    assert ray_auth_env(False, None) == {"RAY_AUTH_MODE": "disabled"}
    assert ray_auth_env(True, "/c/auth_token") == {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": "/c/auth_token",
    }


def test_an_address_of_the_local_cluster_gets_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    token = create_token_file(tmp_path)
    save_state(
        ClusterState(
            gcs_address="127.0.0.1:6390",
            dashboard_url="http://127.0.0.1:8270",
            client_address="ray://127.0.0.1:10005",
            tracking_uri=None,
            auth_enabled=True,
            token_path=str(token),
            ray_temp_root=str(tmp_path / "ray"),
        ),
        tmp_path,
    )
    assert not apply_local_cluster_auth("10.0.0.9:6379", tmp_path)  # another cluster: left alone
    assert "RAY_AUTH_TOKEN_PATH" not in os.environ
    assert apply_local_cluster_auth("localhost:6390", tmp_path)
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == str(token) and os.environ["RAY_AUTH_MODE"] == "token"


def test_a_token_the_user_set_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "theirs")
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert not apply_local_cluster_auth("auto", tmp_path)  # no state file either
    assert os.environ["RAY_AUTH_TOKEN"] == "theirs"
