"""`fracture-tune cluster up|down|status`: the flags a user types reach the cluster spec unchanged, a
missing action is a usage error, and `down`/`status` with no cluster say so instead of failing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fracture_tune import cli
from fracture_tune.cluster import local, report
from fracture_tune.cluster.local import LocalClusterSpec


def test_up_passes_every_flag_into_the_cluster_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started: dict[str, Any] = {}

    def fake_start(spec: LocalClusterSpec, cluster_dir: Path) -> str:
        started.update(spec=spec, cluster_dir=cluster_dir)
        return "state"

    monkeypatch.setattr(local, "start_local_cluster", fake_start)
    monkeypatch.setattr(report, "print_up", lambda state, cluster_dir: started.update(printed=state))
    argv = ["cluster", "up", "--workers", "3", "--cpus-per-node", "2", "--no-mlflow", "--no-auth"]
    argv += ["--gpus-per-worker", "1", "--worker-resources", '{"accelerator_node": 1}', "--port", "7000"]
    argv += ["--timeout", "9", "--cluster-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    spec = started["spec"]
    assert (spec.workers, spec.cpus_per_node, spec.gpus_per_worker) == (3, 2, 1)
    assert spec.with_mlflow is False and spec.auth is False
    assert spec.worker_resources == {"accelerator_node": 1}
    assert spec.ports == {"gcs": 7000, "dashboard": None, "client": None, "mlflow": None}
    assert spec.timeout_s == 9.0
    assert started["cluster_dir"] == tmp_path and started["printed"] == "state"


def test_up_defaults_start_mlflow_with_auth() -> None:
    args = cli.build_parser().parse_args(["cluster", "up"])
    assert args.mlflow is True and args.no_auth is False and args.workers == 1


def test_cluster_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cluster"])
    assert exit_info.value.code == 2
    assert "ACTION" in capsys.readouterr().err


def test_down_and_status_without_a_recorded_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["cluster", "down", "--cluster-dir", str(tmp_path)]) == 0
    assert "nothing to stop" in capsys.readouterr().out
    assert cli.main(["cluster", "status", "--cluster-dir", str(tmp_path)]) == 1
