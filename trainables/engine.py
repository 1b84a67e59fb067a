"""The training engine: fits one model on `DatasetArrays`, knowing nothing of Ray or MLflow.

One trial's split lives on its device once, as uint8; every batch is gathered, augmented and normalised
there. Losses and correct counts accumulate on the device and cross to the host once per epoch, so a GPU
never waits for Python between steps. After each epoch ``callback(metrics, snapshot)`` is called;
``snapshot()`` returns the full training state for ``trainables.checkpoint.save_checkpoint``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fracture_tune.data.augment import SEED_AUGMENTATION
from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.data.folds import fold_view
from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.device import (
    autocast,
    configure_cuda,
    configure_threads,
    images_to_device,
    normalise,
    resolve_device,
    to_unit_range,
)
from fracture_tune.trainables.metrics import binary_metrics
from fracture_tune.trainables.models import build_model
from fracture_tune.trainables.trainer import EpochTrainer, TrainingDiverged

log = logging.getLogger(__name__)

__all__ = [
    "FitResult",
    "TrainingDiverged",
    "fit",
    "fit_folds",
    "fold_means",
    "predict_proba",
    "select_indices",
]

Snapshot = Callable[[], dict[str, Any]]
EpochCallback = Callable[[dict[str, float], Snapshot], None]
# Fixed seed for the train/val slices, so every trial of a search sees the same images.
_SLICE_SEED = 20240611


@dataclass
class FitResult:
    model: nn.Module  # on the training device, in eval mode
    history: list[dict[str, float]]
    config: TrainConfig
    device: torch.device
    snapshot: Snapshot  # the final training state (for save_checkpoint)


def as_train_config(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    return config if isinstance(config, TrainConfig) else TrainConfig.from_flat(config)


def select_indices(data: DatasetArrays, splits: Sequence[str], limit: int) -> np.ndarray:
    """Rows of ``splits``; with ``limit``, a fixed-seed random slice of that many (ascending)."""
    for split in splits:
        if split not in ("train", "val", "test"):
            raise FractureTuneError(f"unknown split {split!r}; expected train, val or test")
    rows = np.sort(np.concatenate([data.indices(split) for split in splits]))
    if limit and limit < rows.size:
        rows = np.sort(np.random.default_rng(_SLICE_SEED).permutation(rows)[:limit])
    return rows


def fit(
    config: TrainConfig | dict[str, Any],
    data: DatasetArrays,
    *,
    callbacks: Sequence[EpochCallback] = (),
    resume_state: dict[str, Any] | None = None,
    train_splits: Sequence[str] = ("train",),
    eval_split: str | None = "val",
) -> FitResult:
    """Train ``config`` on ``data``; resume after ``resume_state["epoch"]`` when given."""
    cfg = as_train_config(config)
    device = _configured_device(cfg)
    run = _start_run(cfg, data, device, train_splits, eval_split)
    history: list[dict[str, float]] = []
    if resume_state is not None:
        history = run.trainer.restore(resume_state)
    log.info(
        "training %s on %s: %d train, %d %s images, %d epochs from epoch %d",
        cfg.model,
        device,
        run.train_size,
        run.eval_labels.size,
        eval_split,
        cfg.epochs,
        len(history) + 1,
    )
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        started = time.perf_counter()
        metrics = run.epoch(epoch)
        metrics["epoch_seconds"] = time.perf_counter() - started
        history.append(metrics)
        _log_epoch(epoch, cfg, metrics)
        snapshot = _snapshot_function(run.trainer, history)
        for callback in callbacks:
            callback(dict(metrics), snapshot)
    run.model.eval()
    return FitResult(
        model=run.model,
        history=history,
        config=cfg,
        device=device,
        snapshot=_snapshot_function(run.trainer, history),
    )


def fit_folds(
    config: TrainConfig | dict[str, Any],
    data: DatasetArrays,
    folds: np.ndarray,
    *,
    callbacks: Sequence[EpochCallback] = (),
    resume_state: dict[str, Any] | None = None,
) -> list[dict[str, float]]:
    """Cross-validated training: one model per fold (``data/folds.py``), trained in lockstep.

    Each epoch trains every fold's model once and scores it on its held-out fold; the metrics passed to
    ``callbacks`` are the means over folds (``val_auroc`` is the mean fold AUROC, so ASHA and the searcher
    rank on it), plus ``val_<metric>_fold_sd`` (the spread between folds) and ``folds``. The test rows
    (fold ``NOT_IN_A_FOLD``) are never read. Returns the history of fold means.
    """
    cfg = as_train_config(config)
    device = _configured_device(cfg)
    fold_ids = sorted(int(fold) for fold in np.unique(folds) if fold >= 0)
    if len(fold_ids) < 2:
        raise FractureTuneError(f"cross-validation needs >= 2 folds; the assignment has {len(fold_ids)}")
    runs = [_start_run(cfg, fold_view(data, folds, fold), device, ("train",), "val") for fold in fold_ids]
    history: list[dict[str, float]] = []
    if resume_state is not None:
        states = resume_state.get("folds") or []
        if len(states) != len(runs):
            raise FractureTuneError(
                f"the checkpoint holds {len(states)} fold(s), the search {len(runs)}",
                hint="resume with the search's own evaluation.folds",
            )
        for run, state in zip(runs, states, strict=True):
            run.trainer.restore(state)
        history = [dict(row) for row in resume_state["history"]]
    log.info(
        "training %s on %s: %d folds of %s train images, %d epochs from epoch %d",
        cfg.model,
        device,
        len(runs),
        "/".join(str(run.train_size) for run in runs),
        cfg.epochs,
        len(history) + 1,
    )
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        started = time.perf_counter()
        metrics = fold_means([run.epoch(epoch) for run in runs])
        metrics["epoch_seconds"] = time.perf_counter() - started
        history.append(metrics)
        _log_epoch(epoch, cfg, metrics)
        snapshot = _folds_snapshot_function(runs, history)
        for callback in callbacks:
            callback(dict(metrics), snapshot)
    return history


def fold_means(per_fold: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over folds; ``val_*`` metrics also get ``<name>_fold_sd`` (standard deviation)."""
    means: dict[str, float] = {}
    for name in per_fold[0]:
        values = np.array([metrics[name] for metrics in per_fold], dtype=np.float64)
        means[name] = float(values.mean())
        if name.startswith("val_"):
            means[f"{name}_fold_sd"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    means["folds"] = float(len(per_fold))
    return means


@dataclass
class _Run:
    """One model's training on one train/eval pair of splits."""

    model: nn.Module
    trainer: EpochTrainer
    eval_images: torch.Tensor | None
    eval_labels: np.ndarray
    train_size: int
    config: TrainConfig
    device: torch.device

    def epoch(self, epoch: int) -> dict[str, float]:
        metrics = self.trainer.train_epoch(epoch)
        if self.eval_images is not None:
            metrics.update(
                _evaluate(self.model, self.eval_images, self.eval_labels, self.config, self.device, epoch)
            )
        return metrics


def _configured_device(cfg: TrainConfig) -> torch.device:
    device = resolve_device(cfg.device)
    configure_threads(cfg, device)
    configure_cuda(cfg, device)
    return device


def _start_run(
    cfg: TrainConfig,
    data: DatasetArrays,
    device: torch.device,
    train_splits: Sequence[str],
    eval_split: str | None,
) -> _Run:
    train_rows = select_indices(data, train_splits, cfg.train_limit)
    if train_rows.size < 2:
        raise FractureTuneError(
            f"the {'+'.join(train_splits)} split has {train_rows.size} images; need >= 2",
            hint="prepare a larger dataset or raise train_limit",
        )
    eval_rows = select_indices(data, [eval_split], cfg.val_limit) if eval_split else np.empty(0, np.int64)
    input_size = cfg.input_size or data.image_size
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, input_size=input_size, **cfg.model_kwargs).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trainer = EpochTrainer(
        model=model,
        config=cfg,
        device=device,
        images=images_to_device(data.images[train_rows], input_size, device),
        labels=np.asarray(data.labels[train_rows]),
        augmentation=SEED_AUGMENTATION.scaled(cfg.aug_strength),
    )
    eval_images = images_to_device(data.images[eval_rows], input_size, device) if eval_rows.size else None
    return _Run(
        model, trainer, eval_images, np.asarray(data.labels[eval_rows]), int(train_rows.size), cfg, device
    )


def _log_epoch(epoch: int, cfg: TrainConfig, metrics: dict[str, float]) -> None:
    # DEBUG: what a user sees per epoch is the caller's (Tune's results, retrain's progress lines).
    log.debug(
        "epoch %d/%d %s",
        epoch,
        cfg.epochs,
        " ".join(f"{key}={value:.4g}" for key, value in metrics.items() if key != "epoch"),
    )


def _folds_snapshot_function(runs: Sequence[_Run], history: list[dict[str, float]]) -> Snapshot:
    frozen = [dict(row) for row in history]

    def snapshot() -> dict[str, Any]:
        states = [run.trainer.state(frozen) for run in runs]
        # "model" (the first fold's) keeps the checkpoint readable wherever one model is expected.
        return {
            "epoch": len(frozen),
            "history": frozen,
            "model": states[0]["model"],
            "folds": states,
            "config": states[0]["config"],
        }

    return snapshot


def _snapshot_function(trainer: EpochTrainer, history: list[dict[str, float]]) -> Snapshot:
    frozen = [dict(row) for row in history]
    return lambda: trainer.state(frozen)


def _evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    cfg: TrainConfig,
    device: torch.device,
    epoch: int,
) -> dict[str, float]:
    probabilities = _positive_probabilities(model, images, cfg, device)
    if not np.all(np.isfinite(probabilities)):
        raise TrainingDiverged(
            f"the model's outputs became NaN/inf at epoch {epoch}",
            hint="lower lr, set grad_clip (e.g. 1.0) or use a warm-up",
        )
    return {f"val_{name}": float(value) for name, value in binary_metrics(labels, probabilities).items()}


def _positive_probabilities(
    model: nn.Module, images: torch.Tensor, cfg: TrainConfig, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    model.eval()
    outputs = []
    with torch.inference_mode(), autocast(cfg, device):
        for start in range(0, images.shape[0], batch_size):
            batch = normalise(to_unit_range(images[start : start + batch_size]), cfg.channels_last)
            outputs.append(torch.softmax(model(batch).float(), dim=1)[:, 1])
    if not outputs:
        return np.empty(0, dtype=np.float64)
    return torch.cat(outputs).cpu().numpy().astype(np.float64)


def predict_proba(
    model: nn.Module,
    images_uint8: np.ndarray,
    config: TrainConfig | dict[str, Any],
    *,
    device: str | torch.device | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Probability of the positive class for uint8 images [N, S, S], preprocessed exactly as in training."""
    cfg = as_train_config(config)
    target = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(target)
    input_size = cfg.input_size or int(images_uint8.shape[-1])
    results = []
    for start in range(0, len(images_uint8), batch_size):
        chunk = images_to_device(images_uint8[start : start + batch_size], input_size, target)
        results.append(_positive_probabilities(model, chunk, cfg, target, batch_size))
    return np.concatenate(results) if results else np.empty(0, dtype=np.float64)
