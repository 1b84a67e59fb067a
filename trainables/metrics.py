"""Binary classification metrics from labels and positive-class probabilities.

Every value is finite, because Tune's schedulers cannot act on NaN (ray#6659). Where a metric is
undefined (a split or slice holding one class only) this module says what it reports instead and logs
a warning:
- AUROC with a single class present: 0.5 (no ranking information).
- sensitivity with no positives / specificity with no negatives: 0.0.
- balanced accuracy: the mean recall over the classes present (as scikit-learn).
- F1 with no true positives: 0.0 (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# Probabilities are clipped before the log so a confident mistake costs ~34.5 nats, not infinity.
_PROBABILITY_EPS = 1e-15


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """loss (cross entropy, nats), accuracy, balanced_accuracy, auroc, sensitivity, specificity, f1."""
    y = np.asarray(labels).astype(np.int64).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape")
    if y.size == 0:
        raise ValueError("no samples to compute metrics on")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or inf")
    p_true = np.clip(np.where(y == 1, p, 1.0 - p), _PROBABILITY_EPS, 1.0)
    predicted = p >= threshold
    positives, negatives = y == 1, y == 0
    tp = int(np.sum(predicted & positives))
    tn = int(np.sum(~predicted & negatives))
    fp = int(np.sum(predicted & negatives))
    fn = int(np.sum(~predicted & positives))
    n_pos, n_neg = tp + fn, tn + fp
    sensitivity = tp / n_pos if n_pos else 0.0
    specificity = tn / n_neg if n_neg else 0.0
    recalls = [rate for rate, count in ((sensitivity, n_pos), (specificity, n_neg)) if count]
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {
        "loss": float(np.mean(-np.log(p_true))),
        "accuracy": (tp + tn) / y.size,
        "balanced_accuracy": float(np.mean(recalls)),
        "auroc": _auroc(y, p, n_pos, n_neg),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "f1": f1,
    }


def _auroc(y: np.ndarray, p: np.ndarray, n_pos: int, n_neg: int) -> float:
    if n_pos == 0 or n_neg == 0:
        log.warning("AUROC is undefined on %d samples of a single class; reporting 0.5", y.size)
        return 0.5
    return rank_auroc(y, p)


def rank_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U, tied scores share their mid-rank).

    Equal to scikit-learn's ``roc_auc_score`` (checked in the tests), without importing it: scikit-learn's
    first import costs ~1.1 s of CPU in every fresh trial worker (BENCHMARKS.md, "Start-up"). ``labels`` are
    0/1 and hold both classes.
    """
    positive = np.asarray(labels).ravel() == 1
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    order = np.argsort(scores, kind="mergesort")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)  # 1-based mid-ranks
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
