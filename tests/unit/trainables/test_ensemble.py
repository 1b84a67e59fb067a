"""An ensemble scores the mean of its members' probabilities, each member seeing images at its own side."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.device import images_to_device, normalise, to_unit_range
from fracture_tune.trainables.ensemble import ProbabilityEnsemble
from fracture_tune.trainables.models import build_model

SIDE = 48


def _members() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    small = build_model("base_cnn", input_size=32).eval()  # flattens: only a 32 px input fits it
    large = build_model("tunable_cnn", input_size=SIDE, c1=4, c2=4, c3=4, dropout=0.5).eval()
    with torch.no_grad():  # push the two apart, so a mean differs visibly from either member
        small.classifier[-1].bias.copy_(torch.tensor([1.0, -1.0]))
        large.classifier[-1].bias.copy_(torch.tensor([-1.0, 1.0]))
    return [small, large]


def model_inputs(pixels: np.ndarray, side: int) -> torch.Tensor:
    """What the engine feeds a model trained at ``side`` (``engine.predict_proba``'s preprocessing)."""
    return normalise(to_unit_range(images_to_device(pixels, side, torch.device("cpu"))), channels_last=False)


def _pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, SIDE, SIDE), dtype=np.uint8)


def _batch() -> torch.Tensor:
    return model_inputs(_pixels(), SIDE)


def test_probability_is_the_mean_of_the_members_each_at_its_own_input_size() -> None:
    small, large = _members()
    ensemble = ProbabilityEnsemble([small, large], [32, SIDE], SIDE).eval()
    images = _batch()
    with torch.no_grad():
        # Each member on its own, fed the way training feeds it: the uint8 images resized by the engine.
        resized = model_inputs(_pixels(), 32)
        expected = torch.stack([torch.softmax(small(resized), 1), torch.softmax(large(images), 1)])[..., 1]
        logits = ensemble(images)
        members = ensemble.member_probabilities(images)
    assert logits.shape == (3, 2)
    torch.testing.assert_close(members, expected)
    torch.testing.assert_close(torch.softmax(logits, 1)[:, 1], expected.mean(0), atol=1e-6, rtol=0)
    assert float((expected[0] - expected[1]).abs().min()) > 0.1  # the mean is not just one member's


def test_forward_stays_finite_when_every_member_is_certain() -> None:
    small, large = _members()
    with torch.no_grad():
        for member in (small, large):
            member.classifier[-1].bias.copy_(torch.tensor([-1e4, 1e4]))
        logits = ProbabilityEnsemble([small, large], [32, SIDE], SIDE).eval()(_batch())
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(torch.softmax(logits, 1)[:, 1], torch.ones(3))


def test_members_and_input_sizes_must_pair_up() -> None:
    with pytest.raises(FractureTuneError, match="one input size per member"):
        ProbabilityEnsemble(_members(), [32], SIDE)
