"""What `fracture-tune submit -- search ...` sends to the head: options read as the user wrote them
(`--opt V` or `--opt=V`), the config path made relative to the upload, a `--set dataset.path` override
obeyed over the config, and a missing config file named before anything is uploaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.cluster.job_data import option_values, plan_search_job
from fracture_tune.errors import FractureTuneError


def test_option_values_reads_both_spellings_in_order() -> None:
    command = ["search", "--set", "a=1", "--config=x.yaml", "--set=b=2", "--storage", "/s", "--set"]
    assert option_values(command, "--set") == ["a=1", "b=2"]  # a trailing --set without value is ignored
    assert option_values(command, "--config") == ["x.yaml"]
    assert option_values(command, "--tracking-uri") == []
    assert option_values(["--settings", "z"], "--set") == []


def _project(tmp_path: Path, dataset_path: str) -> Path:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "exp.yaml").write_text(f"dataset:\n  path: {dataset_path}\n")
    return tmp_path


def test_equals_form_config_is_rewritten_relative_to_the_upload(tmp_path: Path) -> None:
    project = _project(tmp_path, "synthetic")
    plan = plan_search_job(
        ["search", f"--config={project / 'configs' / 'exp.yaml'}"], project, project, False, False
    )
    assert plan.command == ["search", "--config=configs/exp.yaml"]


def test_a_set_dataset_path_overrides_the_configs(tmp_path: Path) -> None:
    project = _project(tmp_path, "/nowhere/on/the/head")
    (project / "images").mkdir()
    (project / "images" / "a.png").write_bytes(b"x")
    command = ["search", "--config", "configs/exp.yaml", "--set", "dataset.path=images"]
    plan = plan_search_job(command, project, project, False, False)
    assert plan.command == command
    assert plan.notes == ["dataset images is uploaded with the working dir"]


def test_a_missing_config_and_a_command_without_one(tmp_path: Path) -> None:
    with pytest.raises(FractureTuneError, match="--config nope.yaml: no such file"):
        plan_search_job(["search", "--config", "nope.yaml"], tmp_path, tmp_path, True, False)
    plan = plan_search_job(["search", "--name", "x"], tmp_path, tmp_path, False, False)
    assert plan.command == ["search", "--name", "x"] and plan.notes == []
