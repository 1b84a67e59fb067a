"""``--address`` is checked before anything starts: a malformed one names the forms Ray accepts."""

from __future__ import annotations

import pytest

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.driver import check_ray_address


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:port", "ray://head"])
def test_an_address_without_a_port_is_rejected(address: str) -> None:
    with pytest.raises(FractureTuneError, match="is not host:port"):
        check_ray_address(address)


def test_auto_and_no_address_are_left_to_ray() -> None:
    check_ray_address(None)
    check_ray_address("auto")


def test_a_listening_port_passes() -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        host, port = server.getsockname()
        check_ray_address(f"{host}:{port}")
        check_ray_address(f"ray://{host}:{port}")
