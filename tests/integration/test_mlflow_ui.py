"""The MLflow UI in a real browser: ``tools/mlflow_ui_check.py`` against a small finished search.

The check serves the search's store with ``mlflow server``, opens the search's runs page in headless Chromium,
expands the parent run and reads the rendered DOM. Here it must pass on a fresh search, and fail naming the
trial once that trial's run is deleted in MLflow (the page lists active runs only): proof that it reads the
page rather than the store. Chromium is installed with apt-get when missing and this is root with apt-get
(CI; ~80 s on 2 cores, apt-get update included); elsewhere the test is skipped with the command to run.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runs import REPO_ROOT, cli_env
from search_fixtures import child_runs, search_command, write_search_config

pytestmark = pytest.mark.integration

CHECK = REPO_ROOT / "tools" / "mlflow_ui_check.py"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _installed_chromium() -> str | None:
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """A Chromium binary: the one on PATH, else apt-get's (root with apt-get only), else a skip."""
    found = _installed_chromium()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("no Chromium, and installing it needs root with apt-get: apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    started = time.monotonic()
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"Chromium is not installed and `{' '.join(command)}` failed: {done.stderr[-500:]}")
    found = _installed_chromium()
    if found is None:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    sys.stderr.write(f"installed Chromium with apt-get in {time.monotonic() - started:.0f} s\n")
    return found


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 3-trial search on tiny images; its folder and tracking URI."""
    tmp_path = tmp_path_factory.mktemp("ui-search")
    config = write_search_config(
        tmp_path, budget={"num_trials": 3}, training={"epochs": 2}, scheduler={"max_t": 2}
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        search_command("--config", str(config), "--name", "ui", "--tracking-uri", uri, "--num-cpus", "2"),
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return tmp_path, uri


def _ui_check(tmp_path: Path, uri: str, chromium: str, screenshot: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(CHECK),
        "--search",
        "ui",
        "--tracking-uri",
        uri,
        "--scratch",
        str(tmp_path / "ui-check"),
        "--screenshot",
        str(screenshot),
    ]
    return subprocess.run(
        command, cwd=tmp_path, env=cli_env(CHROMIUM=chromium), capture_output=True, text=True, timeout=600
    )


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_runs_page_lists_the_parent_and_every_trial(chromium: str, finished_search: tuple[Path, str]) -> None:
    tmp_path, uri = finished_search
    done = _ui_check(tmp_path, uri, chromium, tmp_path / "runs.png")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ui-check: OK: parent run 'ui' and its 3 trial runs are listed" in done.stdout
    assert "#/experiments/" in done.stdout and "/runs?searchFilter=" in done.stdout
    assert _png_size(tmp_path / "runs.png") == (1600, 1000)


def test_check_fails_naming_a_trial_the_page_does_not_list(
    chromium: str, finished_search: tuple[Path, str]
) -> None:
    from mlflow import MlflowClient

    tmp_path, uri = finished_search
    _, trials = child_runs(uri)
    deleted_id, deleted_name = trials[0].info.run_id, trials[0].info.run_name
    MlflowClient(uri).delete_run(deleted_id)  # the page's "State: Active" hides it; the store still has it
    try:
        done = _ui_check(tmp_path, uri, chromium, tmp_path / "missing.png")
    finally:
        MlflowClient(uri).restore_run(deleted_id)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ui-check: FAILED: the runs page of search 'ui' does not list:" in done.stderr
    missing = [line for line in done.stderr.splitlines() if line.startswith("  - ")]
    assert missing == [
        f"  - trial run {deleted_name!r} ({deleted_id}) (deleted in MLflow: the page lists active runs)"
    ]
