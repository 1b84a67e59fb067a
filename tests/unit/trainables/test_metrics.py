"""Metric values on hand-computed cases."""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import numpy as np
import pytest
from cli_runs import REPO_ROOT

from fracture_tune.trainables.metrics import binary_metrics


def test_hand_computed_case() -> None:
    labels = np.array([1, 1, 0, 0, 1])
    probabilities = np.array([0.9, 0.4, 0.2, 0.6, 0.7])
    # predicted 1,0,0,1,1 -> TP 2 (0, 4), FN 1 (1), TN 1 (2), FP 1 (3)
    metrics = binary_metrics(labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["sensitivity"] == pytest.approx(2 / 3)
    assert metrics["specificity"] == pytest.approx(1 / 2)
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert metrics["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # positive/negative pairs ranked correctly: 5 of 6
    assert metrics["auroc"] == pytest.approx(5 / 6)
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.4, 0.7]))
    assert metrics["loss"] == pytest.approx(expected_loss)


def test_threshold_moves_predictions() -> None:
    labels = np.array([1, 0, 1, 0])
    probabilities = np.array([0.35, 0.1, 0.8, 0.3])
    assert binary_metrics(labels, probabilities)["sensitivity"] == pytest.approx(0.5)
    lowered = binary_metrics(labels, probabilities, threshold=0.32)
    assert lowered["sensitivity"] == 1.0 and lowered["specificity"] == 1.0


def test_single_class_is_finite_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        metrics = binary_metrics(np.array([0, 0, 0]), np.array([0.1, 0.7, 0.2]))
    assert all(math.isfinite(value) for value in metrics.values())
    assert metrics["auroc"] == 0.5
    assert metrics["sensitivity"] == 0.0
    assert metrics["specificity"] == pytest.approx(2 / 3)
    assert metrics["balanced_accuracy"] == pytest.approx(2 / 3)  # mean over the classes present
    assert metrics["f1"] == 0.0
    assert "AUROC is undefined" in caplog.text


def test_confident_mistake_has_finite_loss() -> None:
    metrics = binary_metrics(np.array([1, 0]), np.array([0.0, 1.0]))
    assert math.isfinite(metrics["loss"]) and metrics["loss"] > 30
    assert metrics["accuracy"] == 0.0


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        binary_metrics(np.array([1, 0]), np.array([0.5]))
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics(np.array([1, 0]), np.array([0.5, np.nan]))


@pytest.mark.parametrize("seed", range(20))
def test_auroc_equals_sklearn_with_ties(seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    labels = rng.integers(0, 2, n)
    labels[:2] = (0, 1)  # both classes
    # Rounded scores: many ties, as a trained model's sigmoid gives on a small validation set.
    probabilities = np.round(rng.random(n) * 0.5 + 0.4 * labels, int(rng.integers(1, 4)))
    assert binary_metrics(labels, probabilities)["auroc"] == pytest.approx(
        roc_auc_score(labels, probabilities), abs=1e-12
    )


def test_metrics_do_not_import_scikit_learn() -> None:
    # A fresh trial worker evaluates every epoch; scikit-learn's import alone costs it ~1 s of CPU.
    code = (
        "import sys, numpy as np; from fracture_tune.trainables.metrics import binary_metrics; "
        "binary_metrics(np.array([0, 1, 1]), np.array([0.2, 0.7, 0.4])); "
        "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
