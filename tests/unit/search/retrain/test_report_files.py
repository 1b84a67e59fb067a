"""The files a retrain leaves: report.json, report.md and test_predictions.csv.

A user would notice a report.json that strict JSON readers reject (a NaN), a report.md that hides a skipped
baseline, a failed reproduction or a model that was not promoted, or a predictions file whose rows do not
line up with the test images and their labels.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.search.retrain.report import (
    DatasetSummary,
    RegistryEntry,
    RetrainReport,
    SeedSpread,
    optimized_result,
)
from fracture_tune.search.retrain.report_files import render_markdown, write_report, write_test_predictions
from fracture_tune.search.retrain.types import TrainedModel


def _data() -> DatasetArrays:
    """40 images: rows 0-19 train, 20-29 validation, 30-39 test; labels alternate."""
    labels = np.arange(40) % 2
    split = np.array([0] * 20 + [1] * 10 + [2] * 10, dtype=np.int8)
    return DatasetArrays(np.zeros((40, 4, 4), np.uint8), labels, split, dataset_key="key", split_hash="hash")


def _trained(data: DatasetArrays, history_epochs: int = 3, weights_epoch: int = 3) -> TrainedModel:
    rng = np.random.default_rng(0)

    def scores(split: str) -> np.ndarray:
        labels = data.labels[data.indices(split)]
        return np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.1, labels.size), 0, 1)

    history = [{"val_auroc": 0.6 + 0.1 * epoch} for epoch in range(history_epochs)]
    return TrainedModel(
        "optimized", {"lr": 0.01}, None, history, scores("val"), scores("test"), 1.0, weights_epoch
    )


def _report(data: DatasetArrays, trained: TrainedModel, **changes: object) -> RetrainReport:
    optimized = optimized_result(trained, data, target_sensitivity=0.9, resamples=30)
    fields = {
        "source": "search 'quick', trial t1",
        "search": "quick",
        "trial": None,
        "dataset": DatasetSummary("/cache", "key", "hash", ["non_fractured", "fractured"], 20, 10, 10),
        "train_on": "train",
        "epochs": 3,
        "config": {"lr": 0.01, "score": math.nan},
        "optimized": optimized,
        "seeds": SeedSpread([0], {}),
        "reproduction": {"checked": False, "reason": "the config was given as JSON"},
        "baseline": None,
        "history": {"optimized": trained.history},
        **changes,
    }
    return RetrainReport(**fields)


def test_test_predictions_line_up_with_the_test_images_and_their_labels(tmp_path: Path) -> None:
    data = _data()
    trained = _trained(data)
    paths = [f"img_{row}.png" for row in range(35)]  # the last five test rows have no recorded path

    path = write_test_predictions(
        tmp_path, paths, data, trained, extra={"member_1": 1 - trained.test_probabilities}
    )

    with path.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(row["row"]) for row in rows] == list(range(30, 40))
    assert [row["source_path"] for row in rows] == [f"img_{r}.png" for r in range(30, 35)] + [""] * 5
    assert [int(row["label"]) for row in rows] == [row % 2 for row in range(30, 40)]
    assert np.allclose([float(row["probability"]) for row in rows], trained.test_probabilities)
    assert np.allclose([float(row["probability_member_1"]) for row in rows], 1 - trained.test_probabilities)


def test_report_json_is_strict_json_with_nan_as_null_and_markdown_beside_it(tmp_path: Path) -> None:
    data = _data()
    report = _report(data, _trained(data))

    json_path, markdown_path = write_report(tmp_path, report)

    payload = json.loads(json_path.read_text(encoding="utf-8"), parse_constant=lambda name: 1 / 0)
    assert payload["config"] == {"lr": 0.01, "score": None}
    assert payload["optimized"]["threshold"]["value"] == report.optimized.threshold.value
    assert "registry" not in payload  # a part the retrain did not produce is left out
    markdown = markdown_path.read_text(encoding="utf-8")
    assert markdown.startswith("# Retrain report — search 'quick', trial t1")
    assert "| auroc |" in markdown and "(skipped)" in markdown  # no baseline was trained
    assert "Not checked: the config was given as JSON." in markdown


def test_markdown_flags_an_earlier_epochs_weights_a_failed_reproduction_and_a_model_not_promoted() -> None:
    data = _data()
    report = _report(
        data,
        _trained(data, history_epochs=3, weights_epoch=2),
        reproduction={
            "checked": True,
            "metric": "val_auroc",
            "epoch": 2,
            "retrained_value": 0.61,
            "trial_range": [0.8, 0.9],
            "within_range": False,
            "reproduced": False,
            "warning": "the retrained model scores below the trial",
        },
        registry=RegistryEntry("fracture-classifier", "4", False, "if-better: worse", "models:/fc/4", "3"),
    )

    markdown = render_markdown(report)

    assert "the model holds epoch 2's weights" in markdown
    assert "retrained 0.6100, **worse than** the trial's range [0.8000, 0.9000]" in markdown
    assert "> the retrained model scores below the trial" in markdown
    assert "Not promoted: models:/fracture-classifier@champion is still version 3" in markdown
