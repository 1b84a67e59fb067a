"""retrain --rerank and --ensemble on a hand-written search's results (no Ray needed)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from retrain_fixtures import fake_search, write_trials

from fracture_tune.cli import main

pytestmark = pytest.mark.integration

BASE = {"model": "tiny_cnn", "batch_size": 16, "seed": 0}
# The search's order: A (0.80), B (0.75), C (0.70); A2 is A with another seed (not a distinct
# configuration) and too short for the best-trial rule (min_epochs 2). B and C train at other sides than
# the prepared 32 px, so the ensemble resizes for them.
TRIALS = [
    ("A", {**BASE, "width": 4, "lr": 0.01}, [0.70, 0.80]),
    ("A2", {**BASE, "width": 4, "lr": 0.01, "seed": 5}, [0.85]),
    ("B", {**BASE, "width": 8, "lr": 0.02, "input_size": 24}, [0.60, 0.75]),
    ("C", {**BASE, "width": 6, "lr": 0.005, "input_size": 16}, [0.50, 0.70]),
]


@pytest.fixture(scope="module")
def ensemble_retrain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("ensemble")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    info = fake_search(tmp_path, uri, TRIALS[0][1])
    write_trials(info["run_dir"], TRIALS, **{"best_trial.min_epochs": 2, "evaluation.rerank_top_k": 2})
    argv = [
        "retrain",
        "--search",
        "fake",
        "--storage",
        str(tmp_path / "runs"),
        "--epochs",
        "2",
        "--ensemble",
        "3",
        "--no-baseline",
        "--resamples",
        "100",
        "--tracking-uri",
        uri,
    ]
    assert main(argv) == 0
    folder = info["run_dir"] / "retrain"
    report = json.loads((folder / "report.json").read_text())
    with open(folder / "test_predictions.csv", newline="") as stream:
        predictions = list(csv.DictReader(stream))
    return {**info, "uri": uri, "tmp": tmp_path, "report": report, "predictions": predictions}


def test_rerank_follows_the_search_config_and_the_best_mean_wins(ensemble_retrain: dict[str, Any]) -> None:
    report = ensemble_retrain["report"]
    entries = report["rerank"]["entries"]
    # the two best distinct configurations
    assert sorted(entry["trial_id"] for entry in entries) == ["A", "B"]
    means = {entry["trial_id"]: entry["mean"] for entry in entries}
    winner = max(means, key=lambda trial_id: means[trial_id])
    assert report["rerank"]["winner"] == winner == report["trial"]["trial_id"]
    assert report["rerank"]["search_winner"] == "A"
    assert all(entry["seeds"] == [1000] for entry in entries)  # fresh seeds, not the trials' own


def test_ensemble_members_are_the_best_distinct_configurations_after_reranking(
    ensemble_retrain: dict[str, Any],
) -> None:
    report = ensemble_retrain["report"]
    members = report["ensemble"]["members"]
    reranked = [entry["trial_id"] for entry in report["rerank"]["entries"]]
    assert [member["trial_id"] for member in members] == [*reranked, "C"]  # A2 repeats A: left out
    sizes = {member["trial_id"]: member["input_size"] for member in members}
    assert sizes == {"A": 32, "B": 24, "C": 16}
    difference = report["ensemble"]["auroc_minus_single_best"]
    single = report["ensemble"]["single_best"]["test"]["auroc"]["value"]
    assert difference["value"] == pytest.approx(report["optimized"]["test"]["auroc"]["value"] - single)
    assert difference["lower"] <= difference["value"] <= difference["upper"]


def test_the_ensembles_probability_is_the_mean_of_its_members(ensemble_retrain: dict[str, Any]) -> None:
    rows = ensemble_retrain["predictions"]
    ensemble = np.array([float(row["probability"]) for row in rows])
    members = np.array([[float(row[f"probability_member_{index}"]) for row in rows] for index in (1, 2, 3)])
    single = np.array([float(row["probability_single_best"]) for row in rows])
    # Each member column is that model scored on its own (the engine's predict_proba at its own side).
    np.testing.assert_allclose(ensemble, members.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(single, members[0], atol=0)
    assert np.abs(members[0] - members[1]).max() > 1e-3  # the members differ: the mean is not one of them


def test_the_registered_ensemble_predicts_the_same_in_a_fresh_process(
    ensemble_retrain: dict[str, Any],
) -> None:
    expected = {row["source_path"]: float(row["probability"]) for row in ensemble_retrain["predictions"]}
    files = [str(Path(ensemble_retrain["source"]) / relative) for relative in expected]
    script = (
        "import sys, json; from fracture_tune import load_classifier;"
        "c = load_classifier('models:/fracture-classifier@champion', tracking_uri=sys.argv[1]);"
        "print(json.dumps([c.is_ensemble, len(c.members), c.predict_proba(sys.argv[2:]).tolist()]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, ensemble_retrain["uri"], *files],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    is_ensemble, members, probabilities = json.loads(result.stdout.strip().splitlines()[-1])
    assert is_ensemble and members == 3
    assert probabilities == pytest.approx(list(expected.values()), abs=1e-6)


def test_ensemble_without_a_search_and_too_large_an_ensemble_are_refused(
    ensemble_retrain: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    storage = str(ensemble_retrain["tmp"] / "runs")
    uri = ensemble_retrain["uri"]
    config = ensemble_retrain["tmp"] / "config.json"
    config.write_text(json.dumps(TRIALS[0][1]))
    dataset = str(ensemble_retrain["prepared"].cache_dir)
    assert (
        main(
            [
                "retrain",
                "--config-json",
                str(config),
                "--dataset",
                dataset,
                "--ensemble",
                "2",
                "--tracking-uri",
                uri,
            ]
        )
        == 2
    )
    assert "--ensemble needs --search NAME" in capsys.readouterr().err
    assert (
        main(
            [
                "retrain",
                "--search",
                "fake",
                "--storage",
                storage,
                "--ensemble",
                "4",
                "--rerank",
                "0",
                "--epochs",
                "1",
                "--no-baseline",
                "--tracking-uri",
                uri,
            ]
        )
        == 2
    )
    assert "--ensemble 4: search 'fake' has 3 distinct configuration(s)" in capsys.readouterr().err
