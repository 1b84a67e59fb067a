"""The report's plots are PNG files that show what they claim: the data drawn, visible in the pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from fracture_tune.classifier.evaluation import confusion_counts
from fracture_tune.classifier.plots import (
    plot_base_vs_optimized,
    plot_confusion_matrix,
    plot_roc,
    plot_training_curves,
    save_gradcam_overlay,
)

LABELS = np.array([0, 0, 1, 1, 1, 0])
SCORES = np.array([0.1, 0.6, 0.7, 0.9, 0.4, 0.2])
# The ROC of LABELS/SCORES worked by hand: scores descending are 0.9+ 0.7+ 0.6- 0.4+ 0.2- 0.1-.
ROC_FPR = [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1]
ROC_TPR = [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1]
FIRST, SECOND = (31, 119, 180), (255, 127, 14)  # matplotlib's first two line colours (C0, C1)


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


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every matplotlib figure saved during the test (they stay readable after pyplot closes them)."""
    saved: list[Figure] = []
    original = Figure.savefig

    def savefig(self: Figure, *args: Any, **kwargs: Any) -> None:
        saved.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def _pixels(path: Path) -> np.ndarray:
    """The PNG as RGB [H, W, 3] ints, after checking it is a real, drawn-on image."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] > 100 and image.size[1] > 100
        rgb = np.asarray(image.convert("RGB")).astype(int)
    background = (rgb == 255).all(axis=2)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20, "the image is (nearly) one colour"
    assert (~background).mean() > 0.02, "the image is nearly blank"
    return rgb


def _count_near(rgb: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    return int((np.abs(rgb - np.array(colour)).max(axis=2) <= tolerance).sum())


def test_roc_plot_draws_the_curve_the_diagonal_and_the_threshold(
    tmp_path: Path, figures: list[Figure]
) -> None:
    path = plot_roc(LABELS, SCORES, tmp_path / "roc.png", "AUROC 0.78", operating_point=(0.33, 0.67))
    (axes,) = figures[-1].axes
    curves = {line.get_label(): line for line in axes.get_lines()}
    assert set(curves) == {"model AUROC 0.78", "chance"}
    assert list(curves["model AUROC 0.78"].get_xdata()) == pytest.approx(ROC_FPR)
    assert list(curves["model AUROC 0.78"].get_ydata()) == pytest.approx(ROC_TPR)
    (threshold,) = axes.collections
    (point,) = threshold.get_offsets().tolist()
    assert point == pytest.approx([0.33, 0.67])
    rgb = _pixels(path)
    assert _count_near(rgb, FIRST) > 300  # the 2-px curve runs corner to corner
    assert _count_near(rgb, (255, 0, 0), tolerance=60) > 20  # the threshold's red dot


def test_confusion_matrix_shows_the_counts(tmp_path: Path, figures: list[Figure]) -> None:
    counts = confusion_counts(LABELS, SCORES)
    path = plot_confusion_matrix(counts, ("no", "yes"), tmp_path / "cm.png")
    (axes,) = figures[-1].axes
    matrix = counts.as_matrix()
    assert np.array_equal(axes.images[0].get_array(), matrix)
    assert sorted(int(text.get_text()) for text in axes.texts) == sorted(matrix.ravel().tolist())
    rgb = _pixels(path)
    assert _count_near(rgb, (8, 48, 107), tolerance=30) > 2000  # the largest count's dark-blue cell


@pytest.mark.parametrize("kind", ["training curves", "base vs optimized"])
def test_curve_plots_draw_two_curves_in_each_panel(kind: str, tmp_path: Path, figures: list[Figure]) -> None:
    first, second = _history(5, 0.1), _history(5, 0.25)
    if kind == "training curves":
        path = plot_training_curves(first, tmp_path / "curves.png")
        expected = [
            [[row["train_loss"] for row in first], [row["val_loss"] for row in first]],
            [[row["train_accuracy"] for row in first], [row["val_accuracy"] for row in first]],
        ]
    else:
        path = plot_base_vs_optimized({"base": first, "optimized": second}, tmp_path / "sub" / "cmp.png")
        expected = [
            [[row["val_accuracy"] for row in first], [row["val_accuracy"] for row in second]],
            [[row["val_loss"] for row in first], [row["val_loss"] for row in second]],
        ]
    panels = [axes for axes in figures[-1].axes if axes.get_lines()]
    assert len(panels) == 2
    for axes, curves in zip(panels, expected, strict=True):
        lines = axes.get_lines()
        assert [list(line.get_xdata()) for line in lines] == [[1, 2, 3, 4, 5]] * 2
        assert [list(line.get_ydata()) for line in lines] == [pytest.approx(curve) for curve in curves]
    rgb = _pixels(path)
    half = rgb.shape[1] // 2
    for panel in (rgb[:, :half], rgb[:, half:]):  # both colours in both panels
        assert _count_near(panel, FIRST) > 100 and _count_near(panel, SECOND) > 100


def test_gradcam_overlay_colours_the_image(tmp_path: Path) -> None:
    heatmap = np.random.default_rng(0).random((16, 16))
    path = save_gradcam_overlay(np.full((16, 16), 128, np.uint8), heatmap, tmp_path / "g.png", "p=0.7")
    rgb = _pixels(path)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    assert (saturation > 60).mean() > 0.3  # jet over grey, not the grey image alone
