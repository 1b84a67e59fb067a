"""A retrain keeps the weights of the epoch the search's rule scores its curve by (what re-ranking reads), and
shows each epoch while it trains when asked."""

from __future__ import annotations

import math

import numpy as np
import torch

from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.search.retrain.progress import RetrainProgress
from fracture_tune.search.retrain.retrain import ScoreEpochWeights, train_and_score, trained_config
from fracture_tune.trainables.score import ScoreRule


def _train(keeper: ScoreEpochWeights, curve: list[float]) -> torch.nn.Linear:
    """A stand-in for fit: epoch e sets every weight to e, then calls back with that epoch's metric."""
    model = torch.nn.Linear(2, 1)
    for epoch, value in enumerate(curve, start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        keeper(
            {"epoch": float(epoch), "val_auroc": value},
            lambda: {"model": {k: v.clone() for k, v in model.state_dict().items()}},
        )
    return model


def test_the_model_holds_its_score_epochs_weights_and_its_score() -> None:
    keeper = ScoreEpochWeights(ScoreRule("val_auroc", "max", min_epochs=2))
    model = _train(keeper, [0.95, 0.7, 0.85, 0.8, 0.6])  # epoch 1's spike is before min_epochs
    assert keeper.restore(model) == 3
    assert torch.all(model.weight == 3.0) and keeper.score == 0.85


def test_without_a_rule_the_model_keeps_its_last_epoch() -> None:
    keeper = ScoreEpochWeights(None)
    model = _train(keeper, [0.6, 0.9, 0.7])
    assert keeper.restore(model) == 3 and torch.all(model.weight == 3.0) and math.isnan(keeper.score)


def test_training_shows_a_line_per_epoch_with_the_models_label_and_its_score_metric() -> None:
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 24).astype(np.int64)
    split = np.array([0] * 32 + [1] * 8 + [2] * 8, dtype=np.int8)
    data = DatasetArrays(rng.integers(0, 255, (48, 16, 16)).astype(np.uint8), labels, split)
    config = trained_config(
        {"model": "tiny_cnn", "width": 2, "batch_size": 16, "num_threads": 1}, epochs=2, seed=0, device="cpu"
    )
    lines: list[str] = []
    rule = ScoreRule("val_loss", "min")
    train_and_score("seed 0", config, data, "train", rule, RetrainProgress(lines.append, min_gap_s=0.0))
    assert [line.split("] ", 1)[1].split(" val_loss=")[0] for line in lines] == [
        "seed 0: epoch 1/2",
        "seed 0: epoch 2/2",
    ]
    assert all(line.startswith("[0m") and line.endswith(" s/epoch)") for line in lines)
