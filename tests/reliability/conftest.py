"""The fault-injection tests' ``observe`` fixture: record what was observed.

Each test calls ``observe(...)`` with the fault it injected and the figures it saw (trials completed,
MLflow runs, bytes on disk). When ``RELIABILITY_OBSERVATIONS`` names a folder (the report script
``tools/reliability_table.py`` sets it) the figures are written there as JSON and become a row of
``docs/reliability.md``; otherwise they are only kept in the test's memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runs import REPO_ROOT, Observe


@pytest.fixture()
def observe(request: pytest.FixtureRequest) -> Iterator[Observe]:
    """``observe(fault=..., observed=..., **figures)``: one row of the reliability table."""
    rows: list[dict[str, Any]] = []

    def record(*, fault: str, observed: str, **figures: Any) -> None:
        rows.append({"fault": fault, "observed": observed, "figures": figures})

    yield record
    folder = os.environ.get("RELIABILITY_OBSERVATIONS")
    if not folder or not rows:
        return
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    node = request.node
    for index, row in enumerate(rows):
        row["test"] = f"{Path(str(node.fspath)).relative_to(REPO_ROOT)}::{node.name}"
        name = f"{node.name}-{index}.json".replace("/", "_")
        (target / name).write_text(json.dumps(row, indent=1, default=str), encoding="utf-8")
