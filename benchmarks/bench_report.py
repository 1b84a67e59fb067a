"""The JSON a benchmark writes beside its printed table: command, date, machine and the figures."""

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
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"platform": platform.platform(), "cpus": len(os.sched_getaffinity(0)),
                    "load_average_at_end": os.getloadavg()},  # fmt: skip
        **figures,
    }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
    return report
