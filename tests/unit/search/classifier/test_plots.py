"""The report's plots are real PNG files a reader can open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fracture_tune.search.classifier.evaluation import confusion_counts
from fracture_tune.search.classifier.plots import (
    plot_base_vs_optimized,
    plot_confusion_matrix,
    plot_roc,
    plot_training_curves,
    save_gradcam_overlay,
)


def _history(n_epochs: int, offset: float) -> list[dict[str, float]]:
    return [
        {
            "epoch": epoch,
            "train_loss": 1.0 / epoch,
            "val_loss": 1.0 / epoch + offset,
            "train_accuracy": 0.5 + 0.04 * epoch,
            "val_accuracy": 0.5 + 0.03 * epoch - offset,
        }
        for epoch in range(1, n_epochs + 1)
    ]


def test_every_plot_writes_an_openable_png(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.6, 0.7, 0.9, 0.4, 0.2])
    written = [
        plot_confusion_matrix(confusion_counts(labels, scores), ("no", "yes"), tmp_path / "cm.png"),
        plot_roc(labels, scores, tmp_path / "roc.png", "AUROC 0.78", operating_point=(0.33, 0.67)),
        plot_training_curves(_history(5, 0.1), tmp_path / "curves.png"),
        plot_base_vs_optimized(
            {"base": _history(5, 0.2), "optimized": _history(5, 0.0)}, tmp_path / "sub" / "cmp.png"
        ),
        save_gradcam_overlay(
            np.full((16, 16), 128, np.uint8),
            np.random.default_rng(0).random((16, 16)),
            tmp_path / "g.png",
            "p=0.7",
        ),
    ]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size[0] > 100 and image.size[1] > 100
