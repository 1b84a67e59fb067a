"""One trial's optimisation state and its training epoch, with no per-step host synchronisation."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from fracture_tune.data.augment import AugmentConfig, augment_batch
from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.checkpoint import numpy_rng_state, restore_numpy_rng_state
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.device import autocast, detached_cpu_copy, normalise, to_unit_range
from fracture_tune.trainables.optim import build_loss, build_optimizer, build_scheduler


class TrainingDiverged(FractureTuneError):
    """The training loss (or the model's output) became NaN or infinite."""


def batch_bounds(num_samples: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch [start, end) pairs; a trailing batch of one is dropped (batch norm cannot train on it)."""
    bounds = [(start, min(start + batch_size, num_samples)) for start in range(0, num_samples, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()
    return bounds


def compile_model(model: nn.Module, config: TrainConfig) -> nn.Module:
    """``model`` itself, or compiled with ``config.compile_mode`` when ``config.compile``.

    Static shapes (``dynamic=False``): an epoch's short last batch gets its own graph instead of turning the
    whole model into a slower shape-generic one.
    """
    if not config.compile:
        return model
    mode = None if config.compile_mode == "default" else config.compile_mode
    return torch.compile(model, mode=mode, dynamic=False)  # type: ignore[return-value]


class EpochTrainer:
    """Holds model, optimiser, schedule, loss, the device-resident train split and the RNGs."""

    def __init__(
        self,
        *,
        model: nn.Module,
        config: TrainConfig,
        device: torch.device,
        images: torch.Tensor,
        labels: np.ndarray,
        augmentation: AugmentConfig,
    ) -> None:
        self.model, self.config, self.device = model, config, device
        self.images = images  # uint8 [N, 1, S, S] on device
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(device)
        self.augmentation = augmentation
        self.bounds = batch_bounds(images.shape[0] * config.aug_factor, config.batch_size)
        self.optimizer = build_optimizer(model.parameters(), config, device)
        self.scheduler = build_scheduler(self.optimizer, config, len(self.bounds))
        self.loss_fn = build_loss(config, labels, device)
        self.step_model = compile_model(model, config)
        # Both draw on the CPU: randperm is cheap there, and augmentation's per-image parameters (~200 tiny
        # operations a batch) would each be a kernel launch on a GPU (data/augment.py; BENCHMARKS.md
        # "Where a GPU step's time goes").
        self.shuffle_rng = torch.Generator().manual_seed(config.seed)
        self.augment_rng = torch.Generator().manual_seed(config.seed + 1)

    def _epoch_order(self) -> torch.Tensor:
        """aug_factor passes over the split, shuffled together: the seed's repeated-index dataset."""
        count = self.images.shape[0]
        repeated = torch.arange(count).repeat(self.config.aug_factor)
        order = repeated[torch.randperm(repeated.numel(), generator=self.shuffle_rng)]
        return order.to(self.device, non_blocking=True)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch; returns train_loss, train_accuracy, lr, images_per_second (and epoch)."""
        self.model.train()
        order = self._epoch_order()
        step_losses = torch.zeros(len(self.bounds), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        started = time.perf_counter()
        for step, (start, end) in enumerate(self.bounds):
            rows = order[start:end]
            loss, batch_correct = self._train_step(self.images[rows], self.labels[rows])
            step_losses[step] = loss
            correct += batch_correct
        # The one host synchronisation of the epoch.
        losses = step_losses.cpu().numpy().astype(np.float64)
        total_correct = int(correct.item())
        seconds = time.perf_counter() - started
        self._raise_if_diverged(losses, epoch)
        sizes = np.array([end - start for start, end in self.bounds], dtype=np.float64)
        return {
            "epoch": float(epoch),
            "train_loss": float(np.sum(losses * sizes) / sizes.sum()),
            "train_accuracy": float(total_correct / sizes.sum()),
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "images_per_second": float(sizes.sum() / max(seconds, 1e-9)),
        }

    def _train_step(
        self, images_uint8: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.compile and self.config.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # the last step's graph outputs are no longer read
        batch = to_unit_range(images_uint8)
        batch = augment_batch(batch, self.augmentation, self.augment_rng)
        batch = normalise(batch, self.config.channels_last)
        with autocast(self.config, self.device):
            logits = self.step_model(batch)
        loss = self.loss_fn(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach(), (logits.detach().argmax(dim=1) == labels).sum()

    def _raise_if_diverged(self, losses: np.ndarray, epoch: int) -> None:
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            step = int(bad[0]) + 1
            raise TrainingDiverged(
                f"training diverged: loss became {losses[bad[0]]} at epoch {epoch}, step {step} "
                f"of {len(losses)} (lr={self.config.lr:g})",
                hint="lower lr, set grad_clip (e.g. 1.0), add warmup_epochs, or use a smaller batch size",
            )

    def state(self, history: list[dict[str, float]]) -> dict[str, Any]:
        """The full training state after the last epoch in ``history``."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": numpy_rng_state(),
            "shuffle": self.shuffle_rng.get_state(),
            "augment": self.augment_rng.get_state(),
        }
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return detached_cpu_copy(
            {
                "epoch": len(history),
                "history": history,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng,
                "config": self.config.to_flat(),
            }
        )

    def restore(self, state: dict[str, Any]) -> list[dict[str, float]]:
        """Load a ``state()``; returns the history so far (training continues at the next epoch)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        restore_numpy_rng_state(rng["numpy"])
        self.shuffle_rng.set_state(rng["shuffle"])
        self.augment_rng.set_state(rng["augment"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        history = [dict(row) for row in state["history"]]
        finite = all(math.isfinite(value) for row in history for value in row.values())
        if len(history) != int(state["epoch"]) or not finite:
            raise FractureTuneError(
                "the checkpoint's history does not match its epoch",
                hint="the checkpoint is damaged; resume from an earlier one",
            )
        return history
