"""Submit `fracture-tune` commands as Ray jobs (Ray's Job Submission API) and follow them.

The job's driver runs on the cluster head, in a copy of the submitting folder (``runtime_env.working_dir``:
configs and data paths resolve there) without the venv, caches, MLflow stores and git data. The code it runs
is the submitting machine's ``fracture_tune`` package, shipped beside it (``runtime_env.py_modules``), so
``python -m fracture_tune.cli`` on the cluster runs exactly the code that submitted the job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from fracture_tune.cluster.auth import apply_local_cluster_auth
from fracture_tune.cluster.state import ClusterState, load_state

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

logger = logging.getLogger(__name__)

# Never uploaded: environments, caches, local tracking stores, VCS data (gitignore rules apply too).
WORKING_DIR_EXCLUDES = [
    ".venv",
    "venv",
    ".fracture-tune",
    "mlruns",
    "mlartifacts",
    "mlflow.db",
    ".git",
    "**/__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
    "build",
    "dist",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
EXIT_CODES = {"SUCCEEDED": 0}  # FAILED, STOPPED → 1


def default_address(cluster_dir: Path) -> str:
    """The local cluster's Jobs API when one is recorded, else Ray's env vars, else Ray's default."""
    state = load_state(cluster_dir)
    if state is not None:
        return state.dashboard_url
    return (
        os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or "http://127.0.0.1:8265"
    )


def local_cluster_for(address: str, cluster_dir: Path) -> ClusterState | None:
    """The recorded local cluster if ``address`` points at it."""
    state = load_state(cluster_dir)
    if state is None:
        return None
    port = urlparse(address if "://" in address else f"http://{address}").port
    ours = {urlparse(state.dashboard_url).port, urlparse(state.client_address).port}
    return state if port in ours else None


def address_is_this_machine(address: str) -> bool:
    host = urlparse(address if "://" in address else f"http://{address}").hostname or ""
    return host in LOCAL_HOSTS


def connect(address: str, cluster_dir: Path) -> JobSubmissionClient:
    """A Jobs API client; for our local cluster the token is found through the state file."""
    apply_local_cluster_auth(address, cluster_dir)
    from ray.job_submission import JobSubmissionClient

    # Ray logs one INFO line per .gitignore it honours while packaging the working dir, several times.
    logging.getLogger("ray._private.runtime_env.packaging").setLevel(logging.WARNING)
    return JobSubmissionClient(address)


# The fracture_tune package's own parts, wherever it is installed (a wheel, or a checkout in editable mode).
PACKAGE_PARTS = (
    "__init__.py",
    "__main__.py",
    "cli.py",
    "errors.py",
    "version.py",
    "py.typed",
    "data",
    "trainables",
    "classifier",
    "search",
    "cluster",
    "configs",
)


def stage_package(scratch: Path) -> Path:
    """Copy the running ``fracture_tune`` package to ``scratch/fracture_tune`` for ``py_modules``.

    Ray names an uploaded module after its folder, and in a checkout the package's folder is the repository
    root (any name, with .venv and caches inside): only the package's own parts are copied.
    """
    from fracture_tune.version import PACKAGE_DIR

    source = PACKAGE_DIR
    target = scratch / "fracture_tune"
    target.mkdir(parents=True)
    for part in PACKAGE_PARTS:
        path = source / part
        if path.is_dir():
            shutil.copytree(path, target / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.is_file():
            shutil.copy2(path, target / part)
    return target


def build_runtime_env(
    working_dir: Path, env_vars: dict[str, str], package_dir: Path | None = None
) -> dict[str, Any]:
    return {
        "working_dir": str(working_dir),
        "excludes": list(WORKING_DIR_EXCLUDES),
        **({"py_modules": [str(package_dir)]} if package_dir is not None else {}),
        # The driver and trials must not inherit a run id meant for someone else (mlflow#15713).
        "env_vars": {"MLFLOW_RUN_ID": "", **env_vars},
    }


def build_entrypoint(command: Sequence[str], subcommands: Collection[str]) -> str:
    """``search --config …`` → ``python -m fracture_tune.cli search --config …`` (the shipped code).

    Anything that is not a fracture-tune subcommand (``python script.py``) runs as given.
    """
    args = list(command)
    if args[:1] == ["fracture-tune"]:
        args = args[1:]
    elif args[:1] and args[0] not in subcommands:
        return shlex.join(args)
    return shlex.join(["python", "-m", "fracture_tune.cli", *args])


def submit(client: JobSubmissionClient, entrypoint: str, runtime_env: dict[str, Any]) -> str:
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
    logger.debug("submitted %s: %s", job_id, entrypoint)
    return str(job_id)


def follow_logs(client: JobSubmissionClient, job_id: str) -> None:
    """Print the job's log as it grows, until the job ends."""

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            print(chunk, end="", flush=True)

    asyncio.run(tail())


def final_status(client: JobSubmissionClient, job_id: str) -> str:
    return str(client.get_job_status(job_id).value)


def exit_code(status: str) -> int:
    """0 when the job succeeded, 1 when it failed or was stopped."""
    return EXIT_CODES.get(status, 1)
