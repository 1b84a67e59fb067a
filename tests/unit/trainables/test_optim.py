"""The learning-rate schedules a trial can sample, as multipliers per optimiser step, and the loss's class
weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.optim import build_loss, build_optimizer, lr_multiplier


def test_warm_up_rises_linearly_then_the_schedule_takes_over() -> None:
    steps = [lr_multiplier(s, total_steps=100, warmup_steps=10, schedule="constant") for s in range(12)]
    assert steps[:3] == pytest.approx([0.1, 0.2, 0.3]) and steps[9:] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("schedule", "at_start", "at_half", "at_end"),
    [("constant", 1.0, 1.0, 1.0), ("cosine", 1.0, 0.5, 0.0), ("step", 1.0, 0.1, 0.01)],
)
def test_each_schedule_has_its_shape(schedule: str, at_start: float, at_half: float, at_end: float) -> None:
    value = lambda step: lr_multiplier(step, total_steps=100, warmup_steps=0, schedule=schedule)  # noqa: E731
    assert (value(0), value(50), value(100)) == pytest.approx((at_start, at_half, at_end), abs=1e-9)


def test_onecycle_starts_at_a_25th_peaks_at_30_percent_and_ends_at_a_25000th() -> None:
    value = lambda step: lr_multiplier(step, total_steps=1000, warmup_steps=0, schedule="onecycle")  # noqa: E731
    assert value(0) == pytest.approx(1 / 25)
    assert value(300) == pytest.approx(1.0) and max(value(s) for s in range(1000)) == pytest.approx(1.0)
    assert value(1000) == pytest.approx(1 / 25_000)
    assert not math.isnan(value(999))


def test_balanced_class_weights_undo_the_class_ratio() -> None:
    config = TrainConfig.from_flat({"class_weighting": "balanced"})
    loss = build_loss(config, np.array([0, 0, 0, 1]), torch.device("cpu"))
    assert loss.weight is not None
    assert loss.weight.tolist() == pytest.approx([4 / 6, 4 / 2])
    assert build_loss(TrainConfig.from_flat({}), np.array([0, 1]), torch.device("cpu")).weight is None


def test_the_optimiser_is_the_configured_one_with_its_settings() -> None:
    parameters = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(
        parameters,
        TrainConfig.from_flat({"optimizer": "sgd", "lr": 0.1, "momentum": 0.8}),
        torch.device("cpu"),
    )
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8 and sgd.defaults["lr"] == 0.1
    adamw = build_optimizer(
        parameters, TrainConfig.from_flat({"optimizer": "adamw", "weight_decay": 0.01}), torch.device("cpu")
    )
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.01
