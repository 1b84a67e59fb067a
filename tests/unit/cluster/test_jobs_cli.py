"""`fracture-tune submit` and `fracture-tune jobs`: the command after `--` reaches the job intact, a search
on the local cluster logs to its MLflow server and shares the project's cache and runs folder, an empty
command is refused with an example, and `jobs status` exits non-zero for a failed job."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fracture_tune import cli
from fracture_tune.cluster import jobs, jobs_cli
from fracture_tune.cluster.state import ClusterState, save_state


def test_submit_and_jobs_arguments_parse_as_typed() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["submit", "--no-wait", "--", "search", "--config", "c.yaml", "--name", "x"])
    assert args.command == ["--", "search", "--config", "c.yaml", "--name", "x"] and args.no_wait
    logs = parser.parse_args(["jobs", "logs", "raysubmit_1", "--follow", "--address", "http://h:8265"])
    assert (logs.job_id, logs.follow, logs.address) == ("raysubmit_1", True, "http://h:8265")
    assert not hasattr(parser.parse_args(["jobs", "list"]), "job_id")
    with pytest.raises(SystemExit):
        parser.parse_args(["jobs", "status"])  # an ID is required


@pytest.mark.parametrize("command", [["submit"], ["submit", "--"], ["submit", "--", "fracture-tune"]])
def test_submit_without_a_command_is_refused_with_an_example(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert "error: no command to run" in err and "hint: fracture-tune submit -- search" in err


class _FakeClient:
    def __init__(self, status: str = "RUNNING") -> None:
        self.submitted: list[dict[str, Any]] = []
        self.status = status

    def submit_job(self, entrypoint: str, runtime_env: dict[str, Any]) -> str:
        self.submitted.append({"entrypoint": entrypoint, "runtime_env": runtime_env})
        return "raysubmit_42"

    def get_job_info(self, job_id: str) -> SimpleNamespace:
        return SimpleNamespace(
            status=SimpleNamespace(value=self.status), entrypoint="e", driver_node_id=None, message=""
        )


def test_a_search_on_the_local_cluster_logs_to_its_mlflow_and_shares_project_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project, cluster_dir = tmp_path / "project", tmp_path / "cluster"
    (project / "configs").mkdir(parents=True)
    (project / "configs" / "exp.yaml").write_text("dataset:\n  path: synthetic\n")
    save_state(
        ClusterState(
            gcs_address="127.0.0.1:6379",
            dashboard_url="http://127.0.0.1:8265",
            client_address="ray://127.0.0.1:10001",
            tracking_uri="http://127.0.0.1:5123",
            auth_enabled=False,
            token_path=None,
            ray_temp_root=str(tmp_path / "ray"),
        ),
        cluster_dir,
    )
    monkeypatch.chdir(project)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = _FakeClient()
    monkeypatch.setattr(jobs_cli, "_client", lambda args: client)
    monkeypatch.setattr(jobs, "stage_package", lambda scratch: scratch)
    argv = ["submit", "--no-wait", "--cluster-dir", str(cluster_dir), "--", "search", "--config"]
    assert cli.main([*argv, "configs/exp.yaml"]) == 0
    [job] = client.submitted
    entrypoint = job["entrypoint"]
    assert "search --config configs/exp.yaml --tracking-uri http://127.0.0.1:5123" in entrypoint
    assert f"dataset.cache_root={project.resolve() / '.fracture-tune' / 'datasets'}" in entrypoint
    assert f"--storage {project.resolve() / '.fracture-tune' / 'runs'}" in entrypoint
    assert job["runtime_env"]["env_vars"]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5123"
    out = capsys.readouterr().out
    assert "submitted job raysubmit_42" in out and "fracture-tune jobs stop raysubmit_42" in out


@pytest.mark.parametrize(
    ("status", "code"), [("RUNNING", 0), ("SUCCEEDED", 0), ("FAILED", 1), ("STOPPED", 1)]
)
def test_jobs_status_exits_non_zero_only_for_a_job_that_ended_badly(
    status: str, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(jobs_cli, "_client", lambda args: _FakeClient(status))
    assert cli.main(["jobs", "status", "raysubmit_7"]) == code
    assert f"job raysubmit_7: {status}" in capsys.readouterr().out


def test_register_jobs_adds_the_cluster_dir_option_to_each_command() -> None:
    parser = argparse.ArgumentParser()
    seen: list[str] = []
    jobs_cli.register_jobs(parser.add_subparsers(), lambda sub: seen.append(sub.prog))
    assert seen == [
        f"{parser.prog} {name}" for name in ("submit", "jobs list", "jobs status", "jobs logs", "jobs stop")
    ]
