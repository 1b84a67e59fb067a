"""The installed version and where the package's files are: what records, jobs and ``--version`` name."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# The package's own folder: a checkout's root, or site-packages/fracture_tune.
PACKAGE_DIR = Path(__file__).resolve().parent


def package_version() -> str:
    """``0.1.0`` as installed; ``0+unknown`` when imported from a checkout that was never installed."""
    try:
        return version("fracture-tune")
    except PackageNotFoundError:
        return "0+unknown"
