"""PNG plots for the retrain report: confusion matrix, ROC, training curves, base vs optimized, Grad-CAM.

matplotlib with the Agg backend (no display needed); every function writes one file and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from fracture_tune.classifier.evaluation import ConfusionCounts, roc_points

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

EpochHistory = Sequence[Mapping[str, float]]


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def plot_confusion_matrix(
    counts: ConfusionCounts, class_names: Sequence[str], path: Path, title: str = "Test confusion matrix"
) -> Path:
    pyplot = _pyplot()
    matrix = counts.as_matrix()
    figure, axes = pyplot.subplots(figsize=(4.2, 3.8))
    axes.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        colour = "white" if value > matrix.max() / 2 else "black"
        axes.text(col, row, str(int(value)), ha="center", va="center", color=colour, fontsize=12)
    axes.set_xticks([0, 1], labels=list(class_names))
    axes.set_yticks([0, 1], labels=list(class_names))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    return _save(figure, path)


def plot_roc(
    labels: np.ndarray,
    scores: np.ndarray,
    path: Path,
    auroc_text: str = "",
    operating_point: tuple[float, float] | None = None,
) -> Path:
    """ROC curve; ``operating_point`` = (false positive rate, sensitivity) of the chosen threshold."""
    pyplot = _pyplot()
    fpr, tpr, _ = roc_points(labels, scores)
    figure, axes = pyplot.subplots(figsize=(4.5, 4.2))
    axes.plot(fpr, tpr, lw=2, label=f"model {auroc_text}".strip())
    axes.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    if operating_point is not None:
        axes.scatter([operating_point[0]], [operating_point[1]], color="red", zorder=3, label="threshold")
    axes.set_xlabel("false positive rate (1 - specificity)")
    axes.set_ylabel("sensitivity")
    axes.set_title("Test ROC")
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_training_curves(history: EpochHistory, path: Path, title: str = "Training curves") -> Path:
    """Train/validation loss and accuracy per epoch (the seed's two panels)."""
    pyplot = _pyplot()
    epochs = [row["epoch"] for row in history]
    figure, (loss_axes, accuracy_axes) = pyplot.subplots(1, 2, figsize=(9, 3.6))
    loss_axes.plot(epochs, [row["train_loss"] for row in history], label="train")
    loss_axes.plot(epochs, [row["val_loss"] for row in history], label="validation")
    loss_axes.set_title("loss")
    accuracy_axes.plot(epochs, [row["train_accuracy"] for row in history], label="train")
    accuracy_axes.plot(epochs, [row["val_accuracy"] for row in history], label="validation")
    accuracy_axes.set_title("accuracy")
    for axes in (loss_axes, accuracy_axes):
        _integer_epochs(axes)
        axes.legend()
    figure.suptitle(title)
    return _save(figure, path)


def plot_base_vs_optimized(
    histories: Mapping[str, EpochHistory], path: Path, metric: str = "val_accuracy"
) -> Path:
    """The seed's overlay: validation curves of the base recipe and the optimized model."""
    pyplot = _pyplot()
    figure, (metric_axes, loss_axes) = pyplot.subplots(1, 2, figsize=(9, 3.6))
    for label, history in histories.items():
        epochs = [row["epoch"] for row in history]
        metric_axes.plot(epochs, [row[metric] for row in history], label=label)
        loss_axes.plot(epochs, [row["val_loss"] for row in history], label=label)
    metric_axes.set_title(metric.replace("_", " "))
    loss_axes.set_title("validation loss")
    for axes in (metric_axes, loss_axes):
        _integer_epochs(axes)
        axes.legend()
    figure.suptitle("Base vs optimized")
    return _save(figure, path)


def _integer_epochs(axes: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_gradcam_overlay(image_uint8: np.ndarray, heatmap: np.ndarray, path: Path, caption: str) -> Path:
    """The grayscale image with the Grad-CAM heatmap (jet, 40 % opacity) over it."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(3.2, 3.4))
    axes.imshow(image_uint8, cmap="gray", vmin=0, vmax=255)
    axes.imshow(heatmap, cmap="jet", alpha=0.4, vmin=0.0, vmax=1.0)
    axes.set_title(caption, fontsize=9)
    axes.axis("off")
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path
