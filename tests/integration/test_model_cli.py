"""search → retrain → predict / evaluate / export, all through the CLI, on tiny synthetic images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from search_fixtures import search_command, write_search_config

pytestmark = pytest.mark.integration

TINY = [
    "--set",
    "budget.num_trials=3",
    "--set",
    "training.epochs=2",
    "--set",
    "scheduler.max_t=2",
    "--set",
    "best_trial.min_epochs=1",
]


def _cli(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "fracture_tune.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


@pytest.fixture(scope="module")
def searched_and_retrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("model_cli")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = write_search_config(tmp_path)
    searched = subprocess.run(
        search_command(
            "--config", str(config), "--name", "cli", "--tracking-uri", uri, "--num-cpus", "2", *TINY
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert searched.returncode == 0, searched.stdout[-3000:] + searched.stderr[-5000:]
    retrained = _cli(tmp_path, "retrain", "--search", "cli", "--epochs", "3", "--tracking-uri", uri)
    run_dir = tmp_path / ".fracture-tune" / "runs" / "cli"
    report = json.loads((run_dir / "retrain" / "report.json").read_text())
    return {"tmp": tmp_path, "uri": uri, "run_dir": run_dir, "report": report, "stdout": retrained.stdout}


def test_retrain_of_the_search_winner(searched_and_retrained: dict[str, Any]) -> None:
    run_dir, report = searched_and_retrained["run_dir"], searched_and_retrained["report"]
    best = json.loads((run_dir / "best_trial.json").read_text())
    assert report["trial"]["trial_id"] == best["trial_id"]
    for key, value in best["config"].items():
        if key not in ("epochs", "num_threads", "train_limit", "val_limit"):
            assert report["config"][key] == value, key
    assert report["config"]["epochs"] == 3
    record = json.loads((run_dir / "search_record.json").read_text())
    assert report["mlflow"]["parent_run_id"] == record["parent_run_id"]
    assert report["registry"]["version"] == "1" and report["registry"]["champion"]
    assert "registered models:/fracture-classifier/1" in searched_and_retrained["stdout"]


def test_predict_evaluate_and_export_use_the_champion(searched_and_retrained: dict[str, Any]) -> None:
    tmp, uri = searched_and_retrained["tmp"], searched_and_retrained["uri"]
    (tmp / "upload.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    images = tmp / "images"
    predicted = _cli(
        tmp,
        "predict",
        str(images / "Fractured"),
        str(tmp / "upload.pdf"),
        "--tracking-uri",
        uri,
        "--out",
        "preds.csv",
        "--explain",
        "cams",
    )
    frame = pd.read_csv(tmp / "preds.csv")
    assert (frame["status"] == "ok").sum() == 60 and frame.loc[
        frame["status"] == "rejected", "path"
    ].str.endswith("upload.pdf").all()
    assert frame["probability"].dropna().between(0, 1).all()
    assert len(list((tmp / "cams").glob("*_gradcam.png"))) == 60
    assert "60 of 61 files predicted" in predicted.stdout
    only_bad = _cli(tmp, "predict", str(tmp / "upload.pdf"), "--tracking-uri", uri, check=False)
    assert only_bad.returncode == 1 and "rejected" in only_bad.stdout
    evaluated = _cli(tmp, "evaluate", "--data", str(images), "--tracking-uri", uri, "--out", "eval.json")
    metrics = json.loads((tmp / "eval.json").read_text())["metrics"]
    assert metrics["auroc"]["lower"] <= metrics["auroc"]["value"] <= metrics["auroc"]["upper"]
    assert "balanced_accuracy" in evaluated.stdout
    exported = _cli(tmp, "export", "--tracking-uri", uri, "--out", "model.pt2")  # torch.export by default
    assert "(pt2; max abs difference" in exported.stdout
    sidecar = json.loads((tmp / "model.pt2.json").read_text())
    assert sidecar["format"] == "pt2" and sidecar["verified_max_abs_diff"] <= 1e-5
    assert sidecar["class_names"][1] == "fractured"


def test_retrain_a_chosen_trial_by_run_id(searched_and_retrained: dict[str, Any]) -> None:
    tmp, run_dir = searched_and_retrained["tmp"], searched_and_retrained["run_dir"]
    frame = pd.read_parquet(run_dir / "results.parquet")
    best_id = json.loads((run_dir / "best_trial.json").read_text())["trial_id"]
    other = frame[frame["trial_id"] != best_id].iloc[0]
    _cli(
        tmp,
        "retrain",
        "--run-id",
        other["mlflow_run_id"],
        "--epochs",
        "1",
        "--no-baseline",
        "--no-register",
        "--tracking-uri",
        searched_and_retrained["uri"],
        "--out",
        "chosen",
    )
    report = json.loads((tmp / "chosen" / "report.json").read_text())
    assert report["trial"]["trial_id"] == other["trial_id"]
    assert report["config"]["lr"] == pytest.approx(other["config/lr"])
    assert "registry" not in report and report["baseline"] is None
