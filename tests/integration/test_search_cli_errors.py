"""Bad configs stop the CLI with exit code 2 and a message naming the key, before Ray starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from cli_runs import cli_env
from search_fixtures import search_command

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _ray_tripwire(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment where ``import ray`` writes the returned file and fails.

    "Fails before Ray starts" as a fact rather than a duration: a check that ran after ``ray.init`` (or
    after importing Ray, seconds of it) would leave the file, however fast the machine.
    """
    shadow = tmp_path / "tripwire"  # not the cwd: ``python -m`` puts the cwd on sys.path too
    (shadow / "ray").mkdir(parents=True)
    marker = tmp_path / "ray-was-imported"
    (shadow / "ray" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise ImportError('tripwire: the search imported ray')\n"
    )
    path = os.pathsep.join(filter(None, [str(shadow), os.environ.get("PYTHONPATH", "")]))
    return cli_env(PYTHONPATH=path), marker


def test_bad_key_exits_2_naming_the_key_without_starting_ray(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"scheduler": {"grace_perod": 2}}))
    env, ray_imported = _ray_tripwire(tmp_path)
    done = subprocess.run(
        search_command("--config", str(config), "--name", "bad"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not the assertion
    )
    assert not ray_imported.exists(), f"ray was imported before the config was checked: {done.stderr[-2000:]}"
    assert done.returncode == 2
    assert "error:" in done.stderr and "scheduler.grace_perod" in done.stderr
    assert "hint: did you mean 'grace_period'?" in done.stderr
    assert "Started a local Ray instance" not in done.stderr and not (tmp_path / ".fracture-tune").exists()


@pytest.mark.parametrize(
    ("sets", "key", "said"),
    [
        (["training.optimizer=adamm"], "training.optimizer", "did you mean 'adam'?"),
        (
            ["training.model=tunable_cnn", "space.params.dropout={type: float, low: 0.2, high: 1.5}"],
            "space.params.dropout.high",
            "the range reaches 1.5",
        ),
    ],
    ids=["typo-in-a-training-choice", "space-range-outside-the-engine"],
)
def test_values_every_trial_would_reject_exit_2_before_ray(
    tmp_path: Path, sets: list[str], key: str, said: str
) -> None:
    """Each would fail every trial of the search after Ray started; they fail here instead, in seconds."""
    overrides = [item for value in sets for item in ("--set", value)]
    done = subprocess.run(
        search_command("--config", "quickstart", "--name", "bad", *overrides),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "error: " in done.stderr and key in done.stderr and said in done.stderr
    assert "Started a local Ray instance" not in done.stderr and not (tmp_path / ".fracture-tune").exists()


def test_bad_set_override_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text(yaml.safe_dump({"training": {"model": "tunable_cnn"}}))
    done = subprocess.run(
        search_command(
            "--config", str(config), "--set", "scheduler.grace_period=9", "--set", "scheduler.max_t=3"
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "grace_period (9) must be <= max_t (3)" in done.stderr


def test_resume_of_unknown_search_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        search_command("--resume", "nope"), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "no search named 'nope'" in done.stderr


def test_gpu_config_on_a_cpu_machine_exits_2(tmp_path: Path) -> None:
    import torch

    if torch.cuda.device_count() >= 1:
        pytest.skip("this machine has a GPU")
    done = subprocess.run(
        search_command("--config", str(REPO / "configs" / "gpu.yaml"), "--name", "g"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "resources.gpus_per_trial=0.25" in done.stderr
    assert not (tmp_path / ".fracture-tune").exists()


def test_address_where_no_cluster_listens_exits_2_before_ray(tmp_path: Path) -> None:
    """ray.init retries an unreachable GCS for many minutes; the search says so at once instead."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env, ray_imported = _ray_tripwire(tmp_path)
    done = subprocess.run(
        search_command(
            "--config",
            str(REPO / "configs" / "quickstart.yaml"),
            "--name",
            "nowhere",
            "--address",
            f"127.0.0.1:{port}",
        ),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not the assertion
    )
    assert not ray_imported.exists(), f"ray.init was reached (ray imported): {done.stderr[-2000:]}"
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in done.stderr
    assert "fracture-tune cluster up" in done.stderr
    assert not (tmp_path / ".fracture-tune" / "runs" / "nowhere").exists()
    assert not (tmp_path / "mlflow.db").exists()  # nothing was logged for a search that never ran


def _resnet_search(tmp_path: Path, weights: str, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        search_command(
            "--config",
            str(REPO / "configs" / "quickstart.yaml"),
            "--name",
            name,
            "--set",
            "training.model=resnet18",
            "--set",
            f"training.pretrained_path={weights}",
            "--set",
            "space.params={lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}",
            "--set",
            "searcher.points_to_evaluate=[]",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_relative_pretrained_path_exits_2_with_the_absolute_one(tmp_path: Path) -> None:
    """Ray runs each trial in its own folder: a relative weights path would fail in every trial."""
    (tmp_path / "resnet18.pth").write_bytes(b"present")
    done = _resnet_search(tmp_path, "resnet18.pth", "relative")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "training.pretrained_path='resnet18.pth' is a relative path" in done.stderr
    assert f"e.g. {(tmp_path / 'resnet18.pth').resolve()}" in done.stderr
    assert not (tmp_path / ".fracture-tune" / "runs" / "relative").exists()


def test_missing_pretrained_file_exits_2_before_ray_starts(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "resnet18.pth"
    done = _resnet_search(tmp_path, str(missing), "missing")
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"training.pretrained_path='{missing}': no such file" in done.stderr
    assert "Started a local Ray instance" not in done.stderr
    assert not (tmp_path / ".fracture-tune").exists()
