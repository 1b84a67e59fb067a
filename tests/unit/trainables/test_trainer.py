"""One trial's training epoch and its state: a user notices if an epoch reports metrics that do not match
what it trained on, if a resumed trial trains differently from one that never stopped, if a damaged
checkpoint is resumed silently, or if batching silently skips images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fracture_tune.data.augment import AugmentConfig
from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.models import build_model
from fracture_tune.trainables.trainer import EpochTrainer, batch_bounds

SIZE = 16


def _trainer(seed: int = 0) -> EpochTrainer:
    labels = np.array([0, 1] * 8)
    images = np.where(labels[:, None, None] == 1, 200, 40).astype(np.uint8) * np.ones(
        (1, SIZE, SIZE), np.uint8
    )
    torch.manual_seed(seed)
    config = TrainConfig.from_flat(
        {"model": "tiny_cnn", "width": 4, "batch_size": 6, "epochs": 3, "lr": 0.01, "seed": seed}
    )
    return EpochTrainer(
        model=build_model("tiny_cnn", input_size=SIZE, width=4),
        config=config,
        device=torch.device("cpu"),
        images=torch.from_numpy(images).unsqueeze(1),
        labels=labels,
        augmentation=AugmentConfig().scaled(0),
    )


def test_an_epoch_reports_finite_metrics_over_every_image_and_moves_the_weights() -> None:
    trainer = _trainer()
    before = [p.detach().clone() for p in trainer.model.parameters()]

    metrics = trainer.train_epoch(1)

    assert metrics["epoch"] == 1.0
    assert math.isfinite(metrics["train_loss"]) and metrics["train_loss"] > 0
    assert 0.0 <= metrics["train_accuracy"] <= 1.0
    assert (metrics["train_accuracy"] * 16) == pytest.approx(round(metrics["train_accuracy"] * 16))
    assert metrics["lr"] > 0 and metrics["images_per_second"] > 0
    assert any(not torch.equal(old, new) for old, new in zip(before, trainer.model.parameters(), strict=True))


def test_restored_state_trains_the_next_epoch_like_an_uninterrupted_run() -> None:
    uninterrupted = _trainer()
    history = [uninterrupted.train_epoch(1)]
    state = uninterrupted.state(history)
    saved_weights = {name: value.clone() for name, value in state["model"].items()}
    expected = uninterrupted.train_epoch(2)

    resumed = _trainer(seed=0)
    assert resumed.restore(state) == history
    replayed = resumed.train_epoch(2)

    assert replayed["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-6)
    assert replayed["train_accuracy"] == expected["train_accuracy"]
    for name, value in state["model"].items():  # training on did not change the snapshot
        torch.testing.assert_close(value, saved_weights[name])


def test_restore_refuses_a_state_whose_history_does_not_match_its_epoch() -> None:
    trainer = _trainer()
    history = [trainer.train_epoch(1)]
    state = trainer.state(history)
    state["epoch"] = 3

    with pytest.raises(FractureTuneError, match="history does not match"):
        _trainer().restore(state)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 16])
def test_batches_are_contiguous_and_drop_at_most_a_single_trailing_image(batch_size: int) -> None:
    for count in range(1, 40):
        bounds = batch_bounds(count, batch_size)
        covered = [row for start, end in bounds for row in range(start, end)]

        assert covered == list(range(len(covered)))
        assert count - len(covered) in (0, 1)
        assert all(end - start <= batch_size for start, end in bounds)
        if len(bounds) > 1:
            assert all(end - start > 1 for start, end in bounds) or batch_size == 1
