"""The JSON a benchmark writes beside its printed table (command, commit, date, machine and the figures), and
the Markdown rows it prints for BENCHMARKS.md.

Needs only the standard library and ``fracture_tune.search.records`` (itself standard library only at import),
so the GPU scripts (throughput.py, step_profile.py) use it on a machine with nothing but torch.

Result files are named for what, where and when they measured: ``<what>_<machine>_<date>``, e.g.
``benchmarks/results/scaling_1-vs-2-trials_2core-vm_2026-11-27.json`` (``default_out`` builds such a name).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def write_report(out: Path | None, **figures: Any) -> dict[str, Any]:
    """``figures`` with the command line, the commit, the date and the machine (load average now); written to
    ``out`` when given. A figure named like one of those fields replaces it (throughput.py's ``machine``)."""
    from fracture_tune.search.records import code_version

    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "commit": code_version(),  # the code measured (``+dirty``: with uncommitted changes)
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "platform": platform.platform(),
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_at_end": os.getloadavg(),
        },
        **figures,
    }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=_plain), encoding="utf-8")
        print(f"wrote {out}")
    return report


def _plain(value: Any) -> Any:
    """What ``json`` cannot write: numpy scalars and arrays as numbers and lists, anything else as text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def table_row(cells: Sequence[object]) -> str:
    """One Markdown table row, ``| a | b |``; a ``|`` inside a cell is escaped so it stays one cell."""
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The header, a ``| --- |`` rule and one line a row, as BENCHMARKS.md holds its tables."""
    lines = [table_row(header), table_row(["---"] * len(header))]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells under a header of {len(header)}: {list(row)!r}")
        lines.append(table_row(row))
    return "\n".join(lines)


def fracatlas_dir() -> Path:
    """The FracAtlas image folder: ``$FRACATLAS_DIR``, else the Makefile's default (``FRACATLAS_DIR ?=``)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "fracatlas"
    return Path(os.environ.get("FRACATLAS_DIR") or default)


def machine_tag() -> str:
    """``<cpus>core-vm`` on a virtual machine, else ``<cpus>core-<architecture>`` (e.g. ``2core-vm``)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        virtual = " hypervisor" in Path("/proc/cpuinfo").read_text()
    except OSError:
        virtual = False
    return f"{cpus}core-vm" if virtual else f"{cpus}core-{platform.machine()}"


def default_out(what: str, parent: Path = Path("bench")) -> Path:
    """``parent/<what>_<machine>_<UTC date>``: where a run goes when ``--out`` is not given."""
    return parent / f"{what}_{machine_tag()}_{time.strftime('%Y-%m-%d', time.gmtime())}"
