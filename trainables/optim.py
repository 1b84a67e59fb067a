"""Optimiser, learning-rate schedule and loss of one trial, from its `TrainConfig`.

Schedules are multipliers of ``lr`` per optimiser step: a linear warm-up over ``warmup_epochs`` then
- constant: 1;
- cosine: half a cosine from 1 to 0 over the remaining steps;
- step: ×0.1 at 50 % and again at 75 % of the remaining steps;
- onecycle: a 30 % linear rise from 1/25 to 1, then a cosine to 1/25 000, expressed as a multiplier so
  warm-up composes with it. It starts at 1/25 of the peak like ``torch.optim.lr_scheduler.OneCycleLR``'s
  ``div_factor=25`` and ends at 1/25 000 of the peak, i.e. torch's ``final_div_factor=1000``, not its default
  1e4 (which ends at 1/250 000). Two more differences from torch's (``anneal_strategy='cos'``): the rise is
  linear, not a cosine; and over N steps (0 … N-1, after warm-up) the peak and the end fall at steps 0.3·N
  and N, not torch's 0.3·N - 1 and N - 1, so the cosine part is torch's one step later and the end is the
  lr left after the last optimiser step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from fracture_tune.trainables.config import TrainConfig


def build_optimizer(
    parameters: Iterable[nn.Parameter], config: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    # The fused kernels are CUDA's fastest path; on CPU torch picks its single-tensor loop (foreach measured
    # no faster for these models on the 2-core VM).
    fused = True if device.type == "cuda" else None
    params = list(parameters)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused
    )


def lr_multiplier(step: int, *, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """The factor applied to the base lr at optimiser step ``step`` (0-based)."""
    warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    remaining = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / remaining))
    if schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "step":
        shape = 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    elif schedule == "onecycle":
        start, end, rise = 1 / 25, 1 / 25_000, 0.3
        if progress < rise:
            shape = start + (1 - start) * progress / rise
        else:
            shape = end + (1 - end) * 0.5 * (1 + math.cos(math.pi * (progress - rise) / (1 - rise)))
    else:
        shape = 1.0
    return warmup * shape


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR (a ``functools.partial``, so its state_dict holds plain values)."""
    multiplier = functools.partial(
        lr_multiplier,
        total_steps=steps_per_epoch * config.epochs,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        schedule=config.schedule,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def build_loss(config: TrainConfig, train_labels: np.ndarray, device: torch.device) -> nn.CrossEntropyLoss:
    """Cross entropy with optional label smoothing and balanced class weights (n / (2 · n_class))."""
    weight = None
    if config.class_weighting == "balanced":
        counts = np.bincount(train_labels.astype(np.int64), minlength=2).astype(np.float64)
        weight = torch.tensor(
            len(train_labels) / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=device
        )
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
