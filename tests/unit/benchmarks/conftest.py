"""benchmarks/ holds scripts, not a package: its modules import each other by name, as when run."""

from __future__ import annotations

import sys

from cli_runs import REPO_ROOT

if str(REPO_ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
