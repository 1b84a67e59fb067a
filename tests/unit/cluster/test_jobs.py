"""What a submitted job runs: entrypoint, runtime_env, config/data locations, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from cli_runs import REPO_ROOT

from fracture_tune.cluster.job_data import plan_search_job
from fracture_tune.cluster.jobs import (
    WORKING_DIR_EXCLUDES,
    build_entrypoint,
    build_runtime_env,
    exit_code,
    stage_package,
)
from fracture_tune.errors import FractureTuneError

SUBCOMMANDS = {"search", "retrain", "data", "cluster"}


def _project(tmp_path: Path, dataset_path: str) -> Path:
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    (project / "configs" / "exp.yaml").write_text(f"dataset:\n  path: {dataset_path}\n")
    return project


def test_fracture_tune_commands_run_the_uploaded_code() -> None:
    search = ["search", "--config", "configs/quickstart.yaml", "--set", "budget.num_trials=2"]
    assert build_entrypoint(search, SUBCOMMANDS) == (
        "python -m fracture_tune.cli search --config configs/quickstart.yaml --set budget.num_trials=2"
    )
    assert build_entrypoint(["fracture-tune", *search], SUBCOMMANDS).startswith(
        "python -m fracture_tune.cli search"
    )
    assert build_entrypoint(["python", "my job.py"], SUBCOMMANDS) == "python 'my job.py'"


def test_runtime_env_excludes_environments_caches_and_tracking_stores(tmp_path: Path) -> None:
    env = build_runtime_env(tmp_path, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert env["working_dir"] == str(tmp_path)
    for excluded in (".venv", ".fracture-tune", "mlruns", "mlartifacts", "mlflow.db", ".git"):
        assert excluded in env["excludes"] and excluded in WORKING_DIR_EXCLUDES
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert env["env_vars"]["MLFLOW_RUN_ID"] == ""


def test_the_job_ships_the_package_under_its_import_name(tmp_path: Path) -> None:
    # A checkout's package folder is the repository root (.venv, tests, caches inside): only the package's
    # own parts travel, under the folder name Ray imports it by.
    package = stage_package(tmp_path)
    assert package.name == "fracture_tune"
    # What the wheel holds (pyproject.toml's packages and package data), read from the repository.
    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    rooms = {name.split(".")[1] for name in setuptools["packages"] if "." in name}
    root_modules = {path.name for path in REPO_ROOT.glob("*.py")}
    assert sorted(path.name for path in package.iterdir()) == sorted(
        {*root_modules, *rooms, "py.typed", "configs"}
    )
    assert (package / "cli.py").is_file() and (package / "configs" / "quickstart.yaml").is_file()
    assert (package / "classifier" / "pyfunc_model.py").is_file()
    assert not list(package.rglob("__pycache__"))
    env = build_runtime_env(tmp_path, {}, package)
    assert env["py_modules"] == [str(package)]


def test_exit_codes() -> None:
    assert exit_code("SUCCEEDED") == 0
    assert exit_code("FAILED") == 1 and exit_code("STOPPED") == 1


def test_synthetic_data_needs_nothing(tmp_path: Path) -> None:
    project = _project(tmp_path, "synthetic")
    command = ["search", "--config", "configs/exp.yaml"]
    plan = plan_search_job(command, project, project, head_is_this_machine=False, data_on_head=False)
    assert plan.command == command


def test_dataset_inside_project_is_uploaded_with_a_path_relative_to_it(tmp_path: Path) -> None:
    project = _project(tmp_path, "images")
    (project / "images" / "Fractured").mkdir(parents=True)
    (project / "images" / "Fractured" / "a.png").write_bytes(b"x" * 10)
    # Submitting from a sub-folder: config and data paths are rewritten relative to the working dir.
    command = ["search", "--config", "../configs/exp.yaml", "--set", "dataset.path=../images"]
    plan = plan_search_job(
        command, project, project / "configs", head_is_this_machine=False, data_on_head=False
    )
    assert plan.command[:3] == ["search", "--config", "configs/exp.yaml"]
    assert plan.command[-2:] == ["--set", "dataset.path=images"]


def test_dataset_outside_project_is_read_in_place_on_a_local_head(tmp_path: Path) -> None:
    outside = tmp_path / "shared" / "fracatlas"
    outside.mkdir(parents=True)
    project = _project(tmp_path, "../shared/fracatlas")
    plan = plan_search_job(
        ["search", "--config", "configs/exp.yaml"],
        project,
        project,
        head_is_this_machine=True,
        data_on_head=False,
    )
    assert plan.command[-2:] == ["--set", f"dataset.path={outside}"]


def test_dataset_outside_project_is_rejected_for_a_remote_head(tmp_path: Path) -> None:
    (tmp_path / "shared" / "fracatlas").mkdir(parents=True)
    project = _project(tmp_path, "../shared/fracatlas")
    command = ["search", "--config", "configs/exp.yaml"]
    with pytest.raises(FractureTuneError) as raised:
        plan_search_job(command, project, project, head_is_this_machine=False, data_on_head=False)
    assert "../shared/fracatlas" in raised.value.message and str(tmp_path / "shared") in raised.value.message
    assert raised.value.hint and "--set dataset.path=" in raised.value.hint
    # The user vouches for the path on the head: passed on untouched.
    plan = plan_search_job(command, project, project, head_is_this_machine=False, data_on_head=True)
    assert plan.command == command


def test_config_outside_the_upload_is_rejected(tmp_path: Path) -> None:
    project = _project(tmp_path, "synthetic")
    (tmp_path / "elsewhere.yaml").write_text("dataset: {path: synthetic}\n")
    with pytest.raises(FractureTuneError, match="outside the uploaded working dir"):
        plan_search_job(["search", "--config", "../elsewhere.yaml"], project, project, False, False)
