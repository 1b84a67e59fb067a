"""The /proc reader behind the "what listens where" tests (tests/support/listening.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from listening import (
    ALL_INTERFACES,
    LOOPBACK,
    NODE_ADDRESS,
    Listener,
    decode_address,
    listening_inodes,
    listening_sockets,
    parse_proc_net_line,
    process_name,
    reach,
)

# Rows as /proc/net/tcp and /proc/net/tcp6 print them (x86: each 32-bit word of the address little-endian).
TCP = "\n".join(
    [
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
        "   0: 0100007F:849D 00000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0",
        "   1: 00000000:812F 00000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0",
        "   2: 020200C0:18EB 00000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0",
        "   3: 0100007F:849D 0100007F:D6A2 01"
        " 00000000:00000000 00:00000000 00000000     0        0 444 1 0 20 4 30 10 -1",
    ]
)
TCP6 = "\n".join(
    [
        "  sl  local_address                         remote_address                        st"
        " tx_queue rx_queue tr tm->when",
        "   0: 0000000000000000FFFF00000100007F:E0CD 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 555 1 0 100 0 0 10 0",
        "   1: 00000000000000000000000000000000:CDF1 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 666 1 0 100 0 0 10 0",
        "   2: 0000000000000000FFFF0000020200C0:2711 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 777 1 0 100 0 0 10 0",
        "   3: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 888 1 0 100 0 0 10 0",
        "   4: 000000FD000000000000000002000000:1F91 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 999 1 0 100 0 0 10 0",
    ]
)


@pytest.mark.parametrize(
    ("hex_address", "expected"),
    [
        ("0100007F:849D", ("127.0.0.1", 33949)),
        ("00000000:812F", ("0.0.0.0", 33071)),
        ("020200C0:18EB", ("192.0.2.2", 6379)),
        ("0000000000000000FFFF00000100007F:E0CD", ("::ffff:127.0.0.1", 57549)),
        ("0000000000000000FFFF0000020200C0:2711", ("::ffff:192.0.2.2", 10001)),
        ("00000000000000000000000000000000:CDF1", ("::", 52721)),
        ("00000000000000000000000001000000:1F90", ("::1", 8080)),
        ("000000FD000000000000000002000000:1F91", ("fd00::2", 8081)),
    ],
)
def test_decode_address_little_endian(hex_address: str, expected: tuple[str, int]) -> None:
    assert decode_address(hex_address, byteorder="little") == expected


def test_decode_address_big_endian_host() -> None:
    assert decode_address("7F000001:1F90", byteorder="big") == ("127.0.0.1", 8080)
    assert decode_address("00000000000000000000FFFFC0000202:2711", byteorder="big") == (
        "::ffff:192.0.2.2",
        10001,
    )


def test_parse_proc_net_line_keeps_state_and_inode_and_skips_the_header() -> None:
    header, listen, _, _, established = TCP.splitlines()
    assert parse_proc_net_line(header) is None
    assert parse_proc_net_line(listen) == ("127.0.0.1", 33949, "0A", 111)
    assert parse_proc_net_line(established) == ("127.0.0.1", 33949, "01", 444)


def _fake_proc(root: Path) -> Path:
    """A /proc with both tables and three processes: 100 → child 101 (which inherited 100's socket); 200."""
    (root / "net").mkdir(parents=True)
    (root / "net" / "tcp").write_text(TCP)
    (root / "net" / "tcp6").write_text(TCP6)
    processes = {
        100: (1, b"/venv/bin/python\0-m\0fracture_tune.cli\0search\0", "python", [111, 555]),
        101: (100, b"ray::IDLE" + b" " * 40 + b"\0", "ray::IDLE", [111, 666, 444]),
        102: (101, b"/venv/lib/ray/core/src/ray/gcs/gcs_server\0--log_dir=/tmp\0", "gcs_server", [777]),
        200: (1, b"/usr/bin/other\0", "other", [222, 333]),
    }
    for pid, (parent, cmdline, comm, inodes) in processes.items():
        folder = root / str(pid)
        (folder / "fd").mkdir(parents=True)
        (folder / "stat").write_text(f"{pid} ({comm}) S {parent} {pid} {pid} 0 -1 4194560 0 0 0 0 0 0")
        (folder / "cmdline").write_bytes(cmdline)
        (folder / "comm").write_text(comm + "\n")
        for fd, inode in enumerate(inodes, start=3):
            os.symlink(f"socket:[{inode}]", folder / "fd" / str(fd))
        os.symlink("/dev/null", folder / "fd" / "0")
    return root


def test_listening_inodes_reads_both_tables_listen_state_only(tmp_path: Path) -> None:
    inodes = listening_inodes(_fake_proc(tmp_path))
    assert 444 not in inodes  # an established connection
    assert inodes[111] == ("127.0.0.1", 33949) and inodes[666] == ("::", 52721)
    assert len(inodes) == 8


def test_listening_sockets_of_a_process_tree(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path)
    found = listening_sockets([100], proc)
    assert found == [
        Listener("::ffff:192.0.2.2", 10001, 102, "gcs_server"),
        Listener("127.0.0.1", 33949, 100, "fracture_tune.cli"),  # inherited by 101: listed once
        Listener("::", 52721, 101, "ray::IDLE"),
        Listener("::ffff:127.0.0.1", 57549, 100, "fracture_tune.cli"),
    ]
    assert [listener.reach for listener in found] == [NODE_ADDRESS, LOOPBACK, ALL_INTERFACES, LOOPBACK]
    assert listening_sockets([101], proc)[0] == Listener("::ffff:192.0.2.2", 10001, 102, "gcs_server")
    assert listening_sockets([12345], proc) == []  # a process that is gone


def test_process_name_of_a_python_script(tmp_path: Path) -> None:
    folder = tmp_path / "7"
    folder.mkdir()
    (folder / "cmdline").write_bytes(
        b"/venv/bin/python\0-u\0/venv/lib/ray/dashboard/dashboard.py\0--host=x\0"
    )
    (folder / "comm").write_text("python\n")
    assert process_name(7, tmp_path) == "dashboard/dashboard.py"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", LOOPBACK),
        ("::1", LOOPBACK),
        ("::ffff:127.0.0.1", LOOPBACK),
        ("0.0.0.0", ALL_INTERFACES),
        ("::", ALL_INTERFACES),
        ("192.0.2.2", NODE_ADDRESS),
        ("::ffff:192.0.2.2", NODE_ADDRESS),
    ],
)
def test_reach(address: str, expected: str) -> None:
    assert reach(address) == expected


def test_the_sockets_this_process_binds_are_found_on_this_kernel() -> None:
    """Round trip through the real /proc: what we bind is what the reader reports."""
    binds = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")]
    binds += [(socket.AF_INET6, "::ffff:127.0.0.1")]
    sockets = []
    try:
        for family, host in binds:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
            sock.listen()
        expected = {(host, sock.getsockname()[1]) for (_, host), sock in zip(binds, sockets, strict=True)}
        found = {(listener.address, listener.port) for listener in listening_sockets([os.getpid()])}
        assert expected <= found
        unlistened = socket.socket()
        sockets.append(unlistened)
        unlistened.bind(("127.0.0.1", 0))  # bound, not listening: not reported
        assert unlistened.getsockname()[1] not in {port for _, port in found}
    finally:
        for sock in sockets:
            sock.close()
