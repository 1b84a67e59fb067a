"""The seed's sequential Optuna protocol (docs/seed_recipes.md), re-implemented for side-by-side benchmarks.

One process, one trial at a time: ``optuna`` TPE (``TPESampler(seed)``, Optuna's defaults) with
``MedianPruner``, ``trial.report`` / ``trial.should_prune`` after every epoch. Each trial trains the
tunable CNN with the seed's input pipeline (torchvision ``ImageFolder`` + PIL decode/resize/augment every
epoch, ``DataLoader(num_workers=0)``, ``loss.item()`` every step: ``benchmarks/seed_pipeline.py``) on a
slice of the augmented training set (each sliced image repeated ``aug_factor`` times per epoch) and
evaluates on at most ``val_limit`` validation images. The images are the prepared dataset's source files,
linked into class folders, so both sides of a comparison train and validate on the same rows.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seed_pipeline import seed_transform
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets

from fracture_tune.data.dataset import PreparedDataset
from fracture_tune.trainables.engine import select_indices
from fracture_tune.trainables.metrics import binary_metrics
from fracture_tune.trainables.models import build_model

log = logging.getLogger(__name__)

# The seed's space (docs/seed_recipes.md); ``width_scale`` divides the conv widths to fit a time budget.
SEED_SPACE: dict[str, list[Any]] = {
    "dropout": [0.3, 0.5, 0.7],
    "c1": [16, 32, 64],
    "c2": [32, 64, 128],
    "c3": [64, 128, 256],
    "batch_size": [32, 64, 128],
}
SEED_LR_RANGE = (1e-5, 1e-2)


def scaled_space(width_scale: int) -> dict[str, list[Any]]:
    space = dict(SEED_SPACE)
    for key in ("c1", "c2", "c3"):
        space[key] = [max(1, width // width_scale) for width in SEED_SPACE[key]]
    return space


@dataclass
class SeedProtocolSettings:
    trials: int = 20
    epochs: int = 7
    slice_images: int = 1000  # images per epoch = distinct images x aug_factor
    aug_factor: int = 10
    val_limit: int = 200
    image_size: int = 64
    width_scale: int = 1
    seed: int = 0
    metric: str = "val_auroc"  # the objective; val_accuracy is the seed's own
    threads: int = 0  # 0 = torch's default (all cores, as the seed ran)

    @property
    def train_limit(self) -> int:
        return max(2, self.slice_images // self.aug_factor)


@dataclass
class SeedTrial:
    number: int
    params: dict[str, Any]
    state: str = "RUNNING"
    epochs: list[dict[str, float]] = field(default_factory=list)  # metrics + "elapsed_s" since the start

    def best(self, metric: str) -> float:
        return max((row[metric] for row in self.epochs), default=float("nan"))


@dataclass
class SeedProtocolResult:
    trials: list[SeedTrial]
    wall_seconds: float
    settings: SeedProtocolSettings

    def best_trial(self) -> SeedTrial:
        scored = [trial for trial in self.trials if trial.epochs]
        return max(scored, key=lambda trial: (trial.best(self.settings.metric), -trial.number))

    def counts(self) -> dict[str, int]:
        states = [trial.state for trial in self.trials]
        return {state: states.count(state) for state in sorted(set(states))}


def link_image_folder(root: Path, dataset: PreparedDataset, rows: Sequence[int] | np.ndarray) -> Path:
    """Class folders of symlinks to the rows' source files (``0_negative``/``1_positive``: index = label)."""
    source_root = Path(json.loads((Path(dataset.root) / "meta.json").read_text())["source"])
    for row in rows:
        source = Path(dataset.source_paths[row])
        source = source if source.is_absolute() else source_root / source
        folder = root / ("1_positive" if dataset.arrays.labels[row] == 1 else "0_negative")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{row:06d}{source.suffix.lower()}").symlink_to(source.resolve())
    return root


class SeedObjective:
    """The seed's objective: train ``epochs`` epochs, report each to Optuna, return the best metric."""

    def __init__(self, train_root: Path, val_root: Path, settings: SeedProtocolSettings) -> None:
        self.settings = settings
        size = settings.image_size
        self.train_folder = datasets.ImageFolder(str(train_root), transform=seed_transform(True, size))
        self.val_folder = datasets.ImageFolder(str(val_root), transform=seed_transform(False, size))
        self.trials: list[SeedTrial] = []
        self.started = time.perf_counter()

    def __call__(self, trial: Any) -> float:
        import optuna

        space = scaled_space(self.settings.width_scale)
        params = {"lr": trial.suggest_float("lr", *SEED_LR_RANGE, log=True)}
        params.update({key: trial.suggest_categorical(key, choices) for key, choices in space.items()})
        record = SeedTrial(trial.number, params)
        self.trials.append(record)
        torch.manual_seed(self.settings.seed + trial.number)
        model = build_model(
            "tunable_cnn",
            input_size=self.settings.image_size,
            **{k: params[k] for k in ("c1", "c2", "c3", "dropout")},
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
        indices = list(range(len(self.train_folder))) * self.settings.aug_factor
        train = DataLoader(
            Subset(self.train_folder, indices),
            batch_size=params["batch_size"],
            shuffle=True,
            num_workers=0,
            generator=torch.Generator().manual_seed(trial.number),
        )
        val = DataLoader(self.val_folder, batch_size=params["batch_size"], shuffle=False, num_workers=0)
        for epoch in range(1, self.settings.epochs + 1):
            train_loss = _train_epoch(model, optimizer, train)
            metrics = {f"val_{k}": v for k, v in _evaluate(model, val).items()}
            metrics.update(
                epoch=float(epoch), train_loss=train_loss, elapsed_s=time.perf_counter() - self.started
            )
            record.epochs.append(metrics)
            trial.report(metrics[self.settings.metric], epoch)
            if trial.should_prune():
                record.state = "PRUNED"
                raise optuna.TrialPruned()
        record.state = "COMPLETE"
        return record.best(self.settings.metric)


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader) -> float:
    criterion = nn.CrossEntropyLoss()
    model.train()
    running, steps = 0.0, 0
    for images, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
        running += loss.item()  # the seed's per-step host sync
        steps += 1
    return running / max(steps, 1)


def _evaluate(model: nn.Module, loader: DataLoader) -> dict[str, float]:
    model.eval()
    probabilities, labels = [], []
    with torch.no_grad():
        for images, batch_labels in loader:
            probabilities.append(torch.softmax(model(images), dim=1)[:, 1].numpy())
            labels.append(batch_labels.numpy())
    return binary_metrics(np.concatenate(labels), np.concatenate(probabilities).astype(np.float64))


def run_seed_protocol(dataset: PreparedDataset, settings: SeedProtocolSettings) -> SeedProtocolResult:
    """Run the whole sequential study; the wall time includes linking the folders and every decode."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seed-protocol-") as scratch:
        train_rows = select_indices(dataset.arrays, ["train"], settings.train_limit)
        val_rows = select_indices(dataset.arrays, ["val"], settings.val_limit)
        objective = SeedObjective(
            link_image_folder(Path(scratch) / "train", dataset, train_rows),
            link_image_folder(Path(scratch) / "val", dataset, val_rows),
            settings,
        )
        objective.started = started
        sampler = optuna.samplers.TPESampler(seed=settings.seed)  # Optuna's defaults, as the seed
        pruner = optuna.pruners.MedianPruner()
        study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
        study.optimize(objective, n_trials=settings.trials)
    return SeedProtocolResult(objective.trials, time.perf_counter() - started, settings)
