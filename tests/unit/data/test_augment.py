"""Batched augmentation: geometry, identity at zero strength, range, determinism."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fracture_tune.data.augment import (
    SEED_AUGMENTATION,
    AugmentConfig,
    affine_matrices,
    augment_batch,
    perspective_matrices,
    warp,
)

NOTHING = AugmentConfig().scaled(0.0)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(size: int = 8, side: int = 32) -> torch.Tensor:
    return torch.rand(size, 1, side, side, generator=_generator(123))


def test_zero_strength_is_identity() -> None:
    images = _batch()
    assert NOTHING.is_identity
    assert torch.equal(augment_batch(images, NOTHING, _generator()), images)


def test_flip_flips_horizontally() -> None:
    images = _batch()
    out = augment_batch(images, replace(NOTHING, flip_p=1.0), _generator())
    assert torch.equal(out, images.flip(-1))


def test_identity_geometry_resamples_exactly() -> None:
    images = _batch()
    identity = affine_matrices(torch.zeros(8), torch.zeros(8, 2), torch.ones(8), torch.zeros(8))
    assert torch.allclose(warp(images, identity), images, atol=1e-6)


def test_known_rotation_moves_known_pixel() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 2, 5] = 1.0  # upper right of centre
    quarter_turn = affine_matrices(torch.tensor([90.0]), torch.zeros(1, 2), torch.ones(1), torch.zeros(1))
    rotated = warp(image, quarter_turn)
    # counter-clockwise on screen: upper right -> upper left, like torch.rot90
    assert rotated[0, 0, 2, 2] == pytest.approx(1.0, abs=1e-5)
    assert rotated.sum() == pytest.approx(1.0, abs=1e-5)
    images = _batch(4, 16)
    turn4 = affine_matrices(torch.full((4,), 90.0), torch.zeros(4, 2), torch.ones(4), torch.zeros(4))
    assert torch.allclose(warp(images, turn4), torch.rot90(images, 1, dims=(-2, -1)), atol=1e-5)


def test_translation_shifts_by_whole_pixels() -> None:
    images = _batch(2, 16)
    shift = affine_matrices(torch.zeros(2), torch.tensor([[3.0, -2.0]] * 2), torch.ones(2), torch.zeros(2))
    out = warp(images, shift)
    # +3 px right and 2 px up: out[y, x] = in[y + 2, x - 3]
    assert torch.allclose(out[..., :-2, 3:], images[..., 2:, :-3], atol=1e-5)
    assert torch.all(out[..., :, :3] == 0) and torch.all(out[..., -2:, :] == 0)  # uncovered area is black


def test_perspective_moves_corners_inward() -> None:
    inward = torch.tensor([[[1.0, 2.0], [3.0, 1.0], [0.5, 0.5], [2.0, 0.0]]])
    homography = perspective_matrices(inward, 8, 10)[0]
    corners = torch.tensor([[-5.0, -4.0, 1.0], [5.0, -4.0, 1.0], [5.0, 4.0, 1.0], [-5.0, 4.0, 1.0]])
    mapped = corners @ homography.T
    mapped = mapped[:, :2] / mapped[:, 2:]
    expected = torch.tensor([[-4.0, -2.0], [2.0, -3.0], [4.5, 3.5], [-3.0, 4.0]])
    assert torch.allclose(mapped, expected, atol=1e-4)
    assert torch.allclose(perspective_matrices(torch.zeros(2, 4, 2), 8, 8), torch.eye(3).expand(2, 3, 3))


def test_seed_recipe_keeps_shape_dtype_and_range() -> None:
    images = _batch(16, 32)
    out = augment_batch(images, SEED_AUGMENTATION, _generator())
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, images)


def test_same_seed_same_views_and_samples_differ() -> None:
    images = _batch(1, 32).expand(6, 1, 32, 32).contiguous()
    first = augment_batch(images, SEED_AUGMENTATION, _generator(7))
    again = augment_batch(images, SEED_AUGMENTATION, _generator(7))
    other = augment_batch(images, SEED_AUGMENTATION, _generator(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # one random view per sample, not one per batch
    assert not torch.allclose(first[0], first[1])


def test_brightness_scales_within_range() -> None:
    images = torch.full((64, 1, 4, 4), 0.5)
    out = augment_batch(images, replace(NOTHING, brightness=0.1), _generator())
    factors = out[:, 0, 0, 0] / 0.5
    assert factors.min() >= 0.9 - 1e-6 and factors.max() <= 1.1 + 1e-6
    assert factors.std() > 0.02


def test_scaled_multiplies_magnitudes_and_caps_probabilities() -> None:
    doubled = SEED_AUGMENTATION.scaled(2.0)
    assert doubled.degrees == 20.0 and doubled.shear == 10.0
    assert doubled.flip_p == 0.5 and doubled.perspective_p == 0.3
    assert SEED_AUGMENTATION.scaled(0.5).flip_p == 0.25
    with pytest.raises(ValueError):
        SEED_AUGMENTATION.scaled(-1.0)
