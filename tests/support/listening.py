"""Which TCP ports a set of processes listens on, and on which address: read from /proc, as the kernel has it.

``/proc/net/tcp`` and ``/proc/net/tcp6`` list every socket of the network namespace with its local address
(hex, in the kernel's byte order), its state (``0A`` = LISTEN) and its inode; ``/proc/PID/fd/*`` links to
``socket:[INODE]`` for each socket a process holds. Joining the two names the process behind each listening
port — without psutil, ``ss -p`` or root. Used by the security tests to check what a search or ``cluster up``
actually binds, not what its command line asks for.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"
PROC = Path("/proc")

LOOPBACK = "loopback"
ALL_INTERFACES = "all interfaces"
NODE_ADDRESS = "node address"


@dataclass(frozen=True, order=True)
class Listener:
    """One listening TCP socket: where it listens and which process holds it."""

    address: str  # 127.0.0.1, 0.0.0.0, ::, ::ffff:127.0.0.1, 192.0.2.2, …
    port: int
    pid: int
    process: str  # the process as `ps` shows it: gcs_server, raylet, ray::IDLE, dashboard/agent.py, …

    @property
    def reach(self) -> str:
        return reach(self.address)

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.process} {host}:{self.port}"


def decode_address(hex_address: str, byteorder: str = sys.byteorder) -> tuple[str, int]:
    """``0100007F:1F90`` → ``("127.0.0.1", 8080)``; IPv6 (incl. v4-mapped ``::ffff:a.b.c.d``) likewise.

    The kernel prints the address as 32-bit words in host byte order (little-endian on x86 and ARM), the
    port as a plain hex number.
    """
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    if len(raw) not in (4, 16):
        raise ValueError(f"not an IPv4 or IPv6 address: {hex_address!r}")
    words = [raw[index : index + 4] for index in range(0, len(raw), 4)]
    ordered = b"".join(word[::-1] if byteorder == "little" else word for word in words)
    if len(ordered) == 4:
        return socket.inet_ntop(socket.AF_INET, ordered), int(port_hex, 16)
    address = ipaddress.IPv6Address(ordered)
    if address.ipv4_mapped is not None:  # Python 3.11 would print ::ffff:7f00:1
        return f"::ffff:{address.ipv4_mapped}", int(port_hex, 16)
    return str(address), int(port_hex, 16)


def parse_proc_net_line(line: str) -> tuple[str, int, str, int] | None:
    """(address, port, state, inode) of one ``/proc/net/tcp[6]`` row; None for the header."""
    fields = line.split()
    if len(fields) < 10 or fields[0] == "sl":
        return None
    address, port = decode_address(fields[1])
    return address, port, fields[3].upper(), int(fields[9])


def listening_inodes(proc: Path = PROC) -> dict[int, tuple[str, int]]:
    """Socket inode → (address, port) for every TCP socket in LISTEN state, IPv4 and IPv6."""
    found: dict[int, tuple[str, int]] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        for line in lines:
            row = parse_proc_net_line(line)
            if row is not None and row[2] == LISTEN:
                found[row[3]] = (row[0], row[1])
    return found


def socket_inodes(pid: int, proc: Path = PROC) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open (empty when it is gone or not ours to read)."""
    inodes = set()
    try:
        entries = list((proc / str(pid) / "fd").iterdir())
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return set()
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:  # closed between listing and reading
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _parent_of(pid: int, proc: Path = PROC) -> int | None:
    try:
        raw = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[1])


def with_descendants(pids: Iterable[int], proc: Path = PROC) -> set[int]:
    """``pids`` and every live process below them in the process tree."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            parent = _parent_of(int(entry.name), proc)
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = list(pids)
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, []))
    return found


def process_name(pid: int, proc: Path = PROC) -> str:
    """``ray::IDLE`` for a Ray worker (Ray rewrites its title), the script for a Python daemon
    (``dashboard/agent.py``), else the executable's name (``gcs_server``, ``raylet``)."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        comm = (proc / str(pid) / "comm").read_text().strip()
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return f"pid {pid}"
    words = [word.decode(errors="replace") for word in argv if word]
    if not words:
        return comm
    if len(words) == 1 and " " in words[0]:  # a rewritten title: one string with spaces
        words = words[0].split()
    program = Path(words[0]).name
    if program.startswith("ray::"):
        return program
    if program.startswith("python"):
        script = next((word for word in words[1:] if not word.startswith("-")), "")
        if words[1:2] == ["-m"] and len(words) > 2:
            return words[2]
        if words[1:2] == ["-c"]:
            return f"{program} -c"
        return "/".join(Path(script).parts[-2:]) if script else program
    return program


def listening_sockets(pids: Iterable[int], proc: Path = PROC) -> list[Listener]:
    """Every listening TCP socket held by ``pids`` or their descendants, sorted by port.

    A socket inherited by a child is held by both: it is listed once, under the lowest pid.
    """
    listening = listening_inodes(proc)
    found: dict[int, Listener] = {}
    for pid in sorted(with_descendants(pids, proc)):
        for inode in socket_inodes(pid, proc) & listening.keys():
            if inode not in found:
                address, port = listening[inode]
                found[inode] = Listener(address, port, pid, process_name(pid, proc))
    return sorted(found.values(), key=lambda listener: (listener.port, listener.address, listener.pid))


def reach(address: str) -> str:
    """Who can connect: ``loopback`` (this machine only), ``all interfaces`` (0.0.0.0 / ::), or the
    ``node address`` (one of the machine's own network addresses)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_unspecified:
        return ALL_INTERFACES
    return NODE_ADDRESS


def exposed(listeners: Iterable[Listener]) -> list[Listener]:
    """The listeners another machine could reach (not loopback)."""
    return [listener for listener in listeners if listener.reach != LOOPBACK]
