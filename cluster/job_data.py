"""Where a submitted search finds its data, its cache and its tracking server.

The job's driver runs on the cluster head, with the uploaded project copy as its working dir. So:
- a config file must be inside the uploaded working dir;
- ``dataset.path`` inside the project (and not in an excluded folder) travels with the upload, if small;
- ``dataset.path`` elsewhere exists only on the submitting machine — fine when the head *is* this
  machine (the path is passed on, absolute), otherwise rejected with the fix, unless the user says it
  already exists on the head (``--data-on-head``);
- on a local cluster, the dataset cache is the project's, so the head reuses what `data prepare` built.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fracture_tune.data.sources import expand_source_path
from fracture_tune.errors import FractureTuneError

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 400 * 1024 * 1024  # Ray refuses working dirs over 500 MiB; leave room for the code
EXCLUDED_TOP_LEVEL = {".venv", "venv", ".fracture-tune", "mlruns", "mlartifacts", ".git", "build", "dist"}


@dataclass
class JobArguments:
    """The command the job runs (paths rewritten for the head), and notes to show the user."""

    command: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def option_values(command: Sequence[str], option: str) -> list[str]:
    """Values of ``--option V`` / ``--option=V`` in an argv list, in order."""
    values = []
    for index, arg in enumerate(command):
        if arg == option and index + 1 < len(command):
            values.append(command[index + 1])
        elif arg.startswith(option + "="):
            values.append(arg.split("=", 1)[1])
    return values


def _dataset_path(config_file: Path, command: Sequence[str]) -> str:
    overrides = [
        item.split("=", 1)[1] for item in option_values(command, "--set") if item.startswith("dataset.path=")
    ]
    if overrides:
        return overrides[-1]
    raw = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    dataset = raw.get("dataset") or {}
    return str(dataset.get("path", "synthetic")) if isinstance(dataset, dict) else "synthetic"


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def _uploaded_relative(path: Path, working_dir: Path) -> Path | None:
    """Path relative to the working dir if it would be uploaded with it, else None."""
    try:
        relative = path.relative_to(working_dir)
    except ValueError:
        return None
    return None if relative.parts and relative.parts[0] in EXCLUDED_TOP_LEVEL else relative


def _config_in_upload(command: Sequence[str], working_dir: Path, cwd: Path) -> tuple[Path, Path] | None:
    configs = option_values(command, "--config")
    if not configs:
        return None
    config_file = (cwd / configs[-1]).resolve()
    if not config_file.is_file():
        raise FractureTuneError(f"--config {configs[-1]}: no such file ({config_file})")
    relative = _uploaded_relative(config_file, working_dir)
    if relative is None:
        raise FractureTuneError(
            f"--config {configs[-1]} ({config_file}) is outside the uploaded working dir {working_dir}",
            hint="copy the config into the project (e.g. configs/) or pass --working-dir to a folder with it",
        )
    return config_file, relative


def _with_config(command: Sequence[str], config_relative: Path) -> list[str]:
    """``command`` with its (last) --config value replaced by the path inside the working dir."""
    rewritten = list(command)
    for index in range(len(rewritten) - 1, -1, -1):
        if rewritten[index] == "--config" and index + 1 < len(rewritten):
            rewritten[index + 1] = str(config_relative)
            break
        if rewritten[index].startswith("--config="):
            rewritten[index] = f"--config={config_relative}"
            break
    return rewritten


def plan_search_job(
    command: Sequence[str], working_dir: Path, cwd: Path, head_is_this_machine: bool, data_on_head: bool
) -> JobArguments:
    """Check a `search` command's config and data locations; return the command the job runs."""
    plan = JobArguments(command=list(command))
    found = _config_in_upload(command, working_dir, cwd)
    if found is None:
        return plan
    config_file, config_relative = found
    plan.command = _with_config(command, config_relative)
    raw_path = _dataset_path(config_file, command)
    if raw_path == "synthetic" or data_on_head:
        return plan
    # The search expands $VARIABLES and resolves a relative dataset path against its working directory;
    # so do we, here.
    local_path = (cwd / expand_source_path(raw_path)).resolve()
    uploaded = _uploaded_relative(local_path, working_dir)
    if uploaded is not None and local_path.exists() and _tree_bytes(local_path) <= MAX_UPLOAD_BYTES:
        if Path(raw_path) != uploaded:
            plan.command += ["--set", f"dataset.path={uploaded}"]
        plan.notes.append(f"dataset {raw_path} is uploaded with the working dir")
        return plan
    if head_is_this_machine:
        plan.command += ["--set", f"dataset.path={local_path}"]
        plan.notes.append(f"dataset {raw_path} is read in place ({local_path}): the head is this machine")
        return plan
    raise FractureTuneError(
        f"dataset.path {raw_path!r} ({local_path}) is on this machine only: the job's driver runs on the "
        "cluster head, which cannot read it",
        hint="copy the images to storage the head can read and pass `--set dataset.path=/path/on/head` "
        "(or `--data-on-head` if it is already there at that path), or put a small dataset (< 400 MiB) "
        "inside the project so it is uploaded with the working dir",
    )
