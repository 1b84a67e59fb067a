"""Shared fixtures. The FracAtlas images are read from $FRACATLAS_DIR (read-only; README: Data credit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FRACATLAS = Path(os.environ.get("FRACATLAS_DIR", REPO_ROOT.parent / "shared" / "data" / "fracatlas"))


@pytest.fixture(scope="session")
def fracatlas_dir() -> Path:
    if not (FRACATLAS / "MANIFEST.csv").exists():
        pytest.skip(f"real data not found at {FRACATLAS}")
    return FRACATLAS
