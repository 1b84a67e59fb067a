"""retrain end to end on a prepared synthetic set with a hand-written search record (no Ray needed)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from retrain_fixtures import fake_search

from fracture_tune.cli import main
from fracture_tune.search.records import read_search_record, write_search_record

pytestmark = pytest.mark.integration

TRIAL_CONFIG = {"model": "tiny_cnn", "width": 8, "lr": 0.01, "batch_size": 16, "seed": 3}


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("retrain")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    info = fake_search(tmp_path, uri, TRIAL_CONFIG)
    argv = [
        "retrain",
        "--search",
        "fake",
        "--storage",
        str(tmp_path / "runs"),
        "--epochs",
        "3",
        "--tracking-uri",
        uri,
    ]
    assert main(argv) == 0
    report = json.loads((info["run_dir"] / "retrain" / "report.json").read_text())
    return {**info, "uri": uri, "tmp": tmp_path, "argv": argv, "report": report}


def test_report_has_test_metrics_with_intervals_threshold_and_baseline(retrained: dict[str, Any]) -> None:
    report, folder = retrained["report"], retrained["run_dir"] / "retrain"
    for section in (
        report["optimized"]["test"],
        report["optimized"]["threshold"]["test"],
        report["baseline"]["test"],
    ):
        assert set(section) == {"accuracy", "balanced_accuracy", "auroc", "sensitivity", "specificity", "f1"}
        for interval in section.values():
            assert interval["lower"] <= interval["value"] <= interval["upper"]
    assert (
        report["baseline"]["recipe"]["model"] == "base_cnn"
        and report["baseline"]["recipe"]["batch_size"] == 16
    )
    assert report["config"]["epochs"] == 3 and report["config"]["seed"] == 3
    threshold = report["optimized"]["threshold"]
    assert threshold["chosen_on"] == "validation" and threshold["validation"]["sensitivity"] >= 0.9
    assert report["reproduction"]["checked"] and report["reproduction"]["epoch"] == 2
    assert report["dataset"]["test_size"] == sum(threshold["test_confusion"].values())
    for name in (
        "report.md",
        "confusion_matrix.png",
        "roc.png",
        "training_curves.png",
        "base_vs_optimized.png",
    ):
        assert (folder / name).stat().st_size > 0
    assert "seed base CNN" in (folder / "report.md").read_text()


def test_mlflow_run_is_nested_and_records_model_hash(retrained: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    from fracture_tune.classifier.package import sha256_of_file, sha256_of_folder

    client = MlflowClient(tracking_uri=retrained["uri"])
    run = client.get_run(retrained["report"]["mlflow"]["run_id"])
    assert run.data.tags["mlflow.parentRunId"] == retrained["parent_run_id"]
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_auroc"] == pytest.approx(
        retrained["report"]["optimized"]["test"]["auroc"]["value"]
    )
    local_model = Path(retrained["report"]["model"]["local_dir"])
    assert run.data.tags["model_sha256"] == sha256_of_folder(local_model)
    assert run.data.tags["weights_sha256"] == sha256_of_file(local_model / "artifacts" / "weights.pt")
    version = client.get_model_version_by_alias("fracture-classifier", "champion")
    assert (
        str(version.version) == "1"
        and version.tags["split_hash"] == retrained["report"]["dataset"]["split_hash"]
    )


def test_retrain_run_lists_the_prepared_dataset_as_its_input(retrained: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=retrained["uri"]).get_run(retrained["report"]["mlflow"]["run_id"])
    dataset = retrained["report"]["dataset"]
    (only,) = run.inputs.dataset_inputs
    assert {tag.key: tag.value for tag in only.tags} == {"mlflow.data.context": "training"}
    assert (only.dataset.name, only.dataset.digest) == ("src", dataset["key"])
    assert json.loads(only.dataset.source) == {"uri": str(retrained["source"])}
    profile = json.loads(only.dataset.profile)
    assert profile["split_hash"] == dataset["split_hash"] and profile["cache_dir"] == dataset["cache_dir"]
    for split in ("train", "val", "test"):
        assert sum(profile["counts"][split].values()) == dataset[f"{split}_size"], split
    assert set(profile["counts"]["test"]) == set(dataset["class_names"])
    assert profile["num_rows"] == sum(dataset[f"{split}_size"] for split in ("train", "val", "test"))


def test_registered_model_predicts_the_same_in_a_fresh_process(retrained: dict[str, Any]) -> None:
    folder = retrained["run_dir"] / "retrain"
    with open(folder / "test_predictions.csv", newline="") as stream:
        expected = {row["source_path"]: float(row["probability"]) for row in csv.DictReader(stream)}
    files = [str(retrained["source"] / relative) for relative in expected]
    out = retrained["tmp"] / "preds.json"
    command = [
        sys.executable,
        "-m",
        "fracture_tune.cli",
        "predict",
        *files,
        "--model",
        "models:/fracture-classifier@champion",
        "--tracking-uri",
        retrained["uri"],
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    rows = json.loads(out.read_text())
    assert [row["status"] for row in rows] == ["ok"] * len(expected)
    for row, (relative, probability) in zip(rows, expected.items(), strict=True):
        assert row["path"].endswith(relative)
        assert row["probability"] == pytest.approx(probability, abs=1e-6)
    # MLflow's own loader, in a fresh process, scores the same image files' bytes with the same numbers.
    script = (
        "import sys, json, pathlib, mlflow.pyfunc, pandas as pd; mlflow.set_tracking_uri(sys.argv[1]);"
        "m = mlflow.pyfunc.load_model('models:/fracture-classifier@champion');"
        "out = m.predict(pd.DataFrame({'image': [pathlib.Path(f).read_bytes() for f in sys.argv[2:]]}));"
        "print(json.dumps(out.to_dict(orient='list')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, retrained["uri"], *files],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    threshold = retrained["report"]["optimized"]["threshold"]["value"]
    assert served["probability"] == pytest.approx([row["probability"] for row in rows], abs=1e-6)
    assert served["label"] == [row["label"] for row in rows]
    assert served["threshold"] == [threshold] * len(rows)


def test_second_retrain_moves_champion_only_if_better(retrained: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    first_auroc = retrained["report"]["optimized"]["test"]["auroc"]["value"]
    argv = [
        *retrained["argv"],
        "--no-baseline",
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--out",
        str(retrained["tmp"] / "second"),
    ]
    assert main(argv) == 0
    second = json.loads((retrained["tmp"] / "second" / "report.json").read_text())
    client = MlflowClient(tracking_uri=retrained["uri"])
    version = client.get_model_version("fracture-classifier", "2")
    assert float(version.tags["previous_champion_test_auroc"]) == pytest.approx(first_auroc, abs=1e-6)
    better = second["optimized"]["test"]["auroc"]["value"] > first_auroc
    champion = str(client.get_model_version_by_alias("fracture-classifier", "champion").version)
    assert champion == ("2" if better else "1")
    assert second["registry"]["champion"] is better
    # Two seeds: the trial's own (3) is the registered one; the spread covers both.
    assert second["seeds"]["seeds"] == [3, 4] and second["config"]["seed"] == 3
    auroc_spread = second["seeds"]["spread"]["auroc"]
    assert auroc_spread["min"] <= second["optimized"]["test"]["auroc"]["value"] <= auroc_spread["max"]


def test_mismatched_split_hash_names_both_hashes(
    retrained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = retrained["run_dir"]
    record = read_search_record(run_dir)
    real_hash = record.split_hash
    record.split_hash = "0" * 64
    write_search_record(run_dir, record)
    try:
        assert main(retrained["argv"]) == 2
    finally:
        record.split_hash = real_hash
        write_search_record(run_dir, record)
    error = capsys.readouterr().err
    assert "0" * 64 in error and real_hash in error and "hint:" in error


def test_the_demos_model_gives_way_to_one_of_real_images_and_is_never_used_silently(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The newcomer's path: the demo registers a model of synthetic images as @champion; a retrain on real
    images takes the alias although it was tested on another split; a later model that does not take it says
    which URI to use; loading the demo's model warns."""
    import logging

    from retrain_fixtures import write_line_images

    from fracture_tune.classifier.predict import load_classifier
    from fracture_tune.data.prepare import prepare_dataset
    from fracture_tune.data.synth import generate_synthetic_dataset

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "recipe.json").write_text(json.dumps(TRIAL_CONFIG))
    caches = {
        name: prepare_dataset(source, cache_root=tmp_path / "datasets", image_size=32, workers=1).cache_dir
        for name, source in (
            ("demo", generate_synthetic_dataset(tmp_path / "demo", n=80, size=32)),
            ("xrays", write_line_images(tmp_path / "xrays")),
        )
    }

    def retrain_on(name: str, out: str) -> str:
        argv = ["retrain", "--config-json", "recipe.json", "--dataset", str(caches[name]), "--out", out]
        assert (
            main([*argv, "--epochs", "2", "--no-baseline", "--resamples", "50", "--tracking-uri", uri]) == 0
        )
        return capsys.readouterr().out

    demo = retrain_on("demo", "r1")
    assert "] seed 3: epoch 1/2 val_auroc=" in demo and "] seed 3: epoch 2/2 val_auroc=" in demo
    assert "registered models:/fracture-classifier/1; champion: True (no champion yet)" in demo
    real = retrain_on("xrays", "r2")
    assert (
        "registered models:/fracture-classifier/2; champion: True (champion v1 was trained on synthetic "
        "images; this model, trained on real ones, replaces it)"
    ) in real
    again = retrain_on("demo", "r3")
    assert "registered models:/fracture-classifier/3; champion: False (" in again
    assert (
        "not promoted: models:/fracture-classifier@champion is still version 2; to use this model, pass its "
        "version: --model models:/fracture-classifier/3"
    ) in again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fracture_tune.classifier.predict"):
        load_classifier("models:/fracture-classifier@champion", tracking_uri=uri)
        assert not caplog.records
        load_classifier("models:/fracture-classifier/3", tracking_uri=uri)
    assert [record.getMessage() for record in caplog.records] == [
        "models:/fracture-classifier/3 was trained on synthetic images, not radiographs: its scores on real "
        "X-rays mean nothing (retrain on your own images)"
    ]
