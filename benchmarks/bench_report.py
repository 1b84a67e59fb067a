"""The JSON a benchmark writes beside its printed table: command, date, machine and the figures.

Result files are named for what, where and when they measured: ``<what>_<machine>_<date>``, e.g.
``benchmarks/results/scaling_1-vs-2-trials_2core-vm_2026-11-27.json`` (``default_out`` builds such a name).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any


def write_report(out: Path | None, **figures: Any) -> dict[str, Any]:
    """``figures`` with the command line, the date and the machine (load average now); written to ``out``."""
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
        out.write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
    return report


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
