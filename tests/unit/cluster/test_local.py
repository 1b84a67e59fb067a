"""cluster up's port choice: a taken default moves to a free port outside Ray's worker port range."""

from __future__ import annotations

import pytest

from fracture_tune.cluster import local


def test_a_taken_client_port_never_moves_into_rays_worker_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = {10001, 10000}
    monkeypatch.setattr(local, "port_is_free", lambda port: port not in taken)
    chosen = local.choose_port("client", None)
    assert chosen == 9999 and chosen not in local.RAY_WORKER_PORTS  # 10002..19999 belong to Ray's workers
    assert local.choose_port("dashboard", None) == 8265
    taken.add(8265)
    assert local.choose_port("dashboard", None) == 8266
