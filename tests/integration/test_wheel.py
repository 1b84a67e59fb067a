"""The wheel works outside the checkout: built from the repository's files, installed into another
environment, ``fracture-tune demo`` runs from an empty folder.

The new environment gets the project's dependencies (torch, Ray, MLflow: ~6.5 GB) from the test's own
environment through a ``.pth`` path entry, so it installs nothing but the wheel; a plain path entry does
not activate the checkout's editable install, and the test checks that ``fracture_tune`` is imported from
the new environment's site-packages.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cli_runs import REPO_ROOT, cli_env

pytestmark = [pytest.mark.integration, pytest.mark.wheel]


def _repository_files(target: Path) -> Path:
    """The files git would clone (tracked, plus new ones not ignored): no venv, caches or build output."""
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _build_wheel(tmp_path: Path) -> Path:
    source = _repository_files(tmp_path / "source")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("fracture_tune-*.whl")
    return wheel


def _environment_with(wheel: Path, root: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    python = root / "bin" / "python"
    packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(packages) / "project-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return root


def test_the_wheel_installs_one_package_and_runs_the_demo_from_an_empty_folder(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"fracture_tune", wheel.name.split("-py")[0] + ".dist-info"}, top_level
    shipped = {"fracture_tune/configs/quickstart.yaml", "fracture_tune/classifier/predict.py"}
    assert shipped <= set(names)
    assert not any(part in name for name in names for part in ("/tests/", "/benchmarks/", ".venv"))
    assert "License-Expression: MIT" in metadata

    environment = _environment_with(wheel, tmp_path / "env")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = cli_env(PATH=f"{environment / 'bin'}{os.pathsep}{os.environ['PATH']}")
    where = subprocess.run(
        [str(environment / "bin" / "python"), "-c", "import fracture_tune; print(fracture_tune.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(environment) and not Path(where).is_relative_to(REPO_ROOT)

    version = subprocess.run(
        ["fracture-tune", "--version"], cwd=empty, env=env, capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"fracture-tune {importlib.metadata.version('fracture-tune')}"
    demo = subprocess.run(
        ["fracture-tune", "demo", "--name", "wheel-demo", "--retrain-epochs", "3"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Demo finished" in demo.stdout and "registered models:/fracture-classifier/1" in demo.stdout
    assert (empty / ".fracture-tune" / "runs" / "wheel-demo" / "retrain" / "report.json").is_file()
    assert (empty / "mlflow.db").is_file()
