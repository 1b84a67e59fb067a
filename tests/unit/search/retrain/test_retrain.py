"""A retrain keeps the weights of the epoch the search's rule scores its curve by (what re-ranking reads)."""

from __future__ import annotations

import math

import torch

from fracture_tune.search.retrain.retrain import ScoreEpochWeights
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
