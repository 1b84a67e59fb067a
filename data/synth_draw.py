"""Drawing one synthetic radiograph: geometry of bones, breaks and distractors, then exposure and noise.

Intensities are X-ray-like projections: a pixel's brightness is proportional to the length of each
structure's chord along the beam, so a cortical tube shows bright edges and a darker medulla.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def draw_radiograph(rng: np.random.Generator, height: int, width: int, fractured: bool) -> np.ndarray:
    """A float image in 0..1 of shape [height, width]."""
    scale = min(height, width)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(-0.7, 0.7) + (np.pi / 2 if rng.random() < 0.25 else 0.0)
    centre_y = height / 2 + rng.uniform(-0.12, 0.12) * scale
    centre_x = width / 2 + rng.uniform(-0.12, 0.12) * scale
    along = (y - centre_y) * np.cos(theta) + (x - centre_x) * np.sin(theta)
    across = -(y - centre_y) * np.sin(theta) + (x - centre_x) * np.cos(theta)
    radius = rng.uniform(0.07, 0.12) * scale
    bone, break_at = _bone_with_optional_break(rng, along, across, radius, scale, fractured)
    tissue_radius = radius * rng.uniform(2.3, 3.6) * _swelling(rng, along, break_at, scale)
    tissue = rng.uniform(0.12, 0.28) * np.sqrt(np.clip(1 - (across / tissue_radius) ** 2, 0, None))
    if rng.random() < 0.35:  # a second, thinner bone beside the first (forearm, lower leg)
        offset = radius * rng.uniform(2.1, 2.8) * rng.choice([-1.0, 1.0])
        bone += _bone(
            rng,
            along - rng.uniform(-0.1, 0.1) * scale,
            across - offset,
            radius * rng.uniform(0.55, 0.8),
            scale,
        )
    image = rng.uniform(0.02, 0.12) + tissue + rng.uniform(0.35, 0.6) * bone
    image += _skin_folds(rng, y, x, scale)
    return _expose(rng, image, y, x, scale)


def _swelling(
    rng: np.random.Generator, along: np.ndarray, break_at: float | None, scale: float
) -> np.ndarray:
    """Soft-tissue swelling around a break (a real radiographic sign), from absent to marked."""
    if break_at is None:
        return np.ones_like(along)
    strength, reach = rng.uniform(0.15, 0.7), rng.uniform(0.08, 0.2) * scale
    return 1 + strength * np.exp(-(((along - break_at) / reach) ** 2))


def _bone(
    rng: np.random.Generator, along: np.ndarray, across: np.ndarray, radius: float, scale: float
) -> np.ndarray:
    half_length = rng.uniform(0.3, 0.75) * scale
    flare = rng.uniform(0.15, 0.6)
    medulla_ratio = rng.uniform(0.45, 0.7)
    bone = _shaft(along, across, radius, half_length, flare, medulla_ratio)
    if rng.random() < 0.3:  # growth-arrest lines: thin bright transverse lines, a fracture look-alike
        for position in rng.uniform(-0.6, 0.6, size=int(rng.integers(1, 3))) * half_length:
            bone *= 1 + rng.uniform(0.1, 0.3) * np.exp(-(((along - position) / rng.uniform(0.6, 1.2)) ** 2))
    return bone * _texture(rng, along.shape)


def _shaft(
    along: np.ndarray,
    across: np.ndarray,
    radius: float,
    half_length: float,
    flare: float,
    medulla_ratio: float,
) -> np.ndarray:
    """Projection of a cortical tube with rounded, flared ends; brightness ~ chord length / diameter."""
    end_weight = np.clip((np.abs(along) / half_length - 0.65) / 0.35, 0, 1) ** 2
    outer = radius * (1 + flare * end_weight)
    inner = outer * (medulla_ratio + (0.9 - medulla_ratio) * end_weight)  # thin cortex near the ends
    beyond_end = np.clip(np.abs(along) - half_length, 0, None)
    distance_sq = beyond_end**2 + across**2
    outer_chord = 2 * np.sqrt(np.clip(outer**2 - distance_sq, 0, None))
    inner_chord = 2 * np.sqrt(np.clip(inner**2 - distance_sq, 0, None))
    return ((outer_chord - inner_chord) + 0.35 * inner_chord) / (2 * radius)


def _bone_with_optional_break(
    rng: np.random.Generator,
    along: np.ndarray,
    across: np.ndarray,
    radius: float,
    scale: float,
    fractured: bool,
) -> tuple[np.ndarray, float | None]:
    """The bone, and where along it the break is (None when intact)."""
    # The bone is drawn from the same random parameters on both sides of the break.
    state = rng.bit_generator.state
    intact = _bone(rng, along, across, radius, scale)
    if not fractured:
        return intact, None
    kind = rng.random()
    position = rng.uniform(-0.45, 0.45) * scale * 0.6
    angle = rng.uniform(-0.9, 0.9)  # transverse to oblique
    signed = (along - position) * np.cos(angle) + across * np.sin(angle)
    pixel = scale / 40.0  # break widths are set so that most stay visible at a 64 px cache size
    if kind < 0.15:  # hairline, often incomplete
        depth, width = rng.uniform(0.4, 0.75), rng.uniform(0.6, 1.4) * pixel
        reach = rng.uniform(-0.3, 0.6) * radius if rng.random() < 0.5 else 10 * radius
        extent = 1 / (1 + np.exp(-(reach - across * rng.choice([-1.0, 1.0])) / pixel))
        return intact * (1 - depth * extent * np.exp(-((signed / width) ** 2))), position
    depth, width = rng.uniform(0.6, 1.0), rng.uniform(1.0, 2.5) * pixel
    broken = intact
    if kind >= 0.5:  # displaced and/or angulated: the far fragment is redrawn shifted and turned
        turn = rng.uniform(-0.25, 0.25)
        shift = rng.uniform(0.15, 0.9) * radius * rng.choice([-1.0, 1.0])
        rel_along, rel_across = along - position, across - shift
        moved_along = rel_along * np.cos(turn) - rel_across * np.sin(turn) + position
        moved_across = rel_along * np.sin(turn) + rel_across * np.cos(turn)
        resume = rng.bit_generator.state
        rng.bit_generator.state = state  # same bone parameters for the far fragment
        far = _bone(rng, moved_along, moved_across, radius, scale)
        rng.bit_generator.state = resume
        side = 1 / (1 + np.exp(-signed / (0.7 * pixel)))
        broken = intact * (1 - side) + far * side
    return broken * (1 - depth * np.exp(-((signed / width) ** 2))), position


def _texture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    coarse = rng.normal(0, 1, size=(8, 8)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse).resize((shape[1], shape[0]), Image.Resampling.BICUBIC))
    return 1 + rng.uniform(0.03, 0.1) * smooth


def _skin_folds(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, scale: float) -> np.ndarray:
    """Faint lines across the whole image (skin folds, cassette edges) in both classes."""
    folds = np.zeros_like(y)
    if rng.random() < 0.35:
        for _ in range(int(rng.integers(1, 3))):
            angle = rng.uniform(0, np.pi)
            offset = rng.uniform(0.2, 0.8) * scale
            distance = y * np.cos(angle) + x * np.sin(angle) - offset
            width = rng.uniform(0.8, 2.5) * scale / 256.0
            folds += rng.uniform(-0.06, 0.04) * np.exp(-((distance / width) ** 2))
    return folds


def _expose(
    rng: np.random.Generator, image: np.ndarray, y: np.ndarray, x: np.ndarray, scale: float
) -> np.ndarray:
    """Detector response: exposure gradient, gain, gamma, blur and noise."""
    ramp_angle = rng.uniform(0, 2 * np.pi)
    ramp = (y * np.cos(ramp_angle) + x * np.sin(ramp_angle)) / scale
    image = image * rng.uniform(0.75, 1.15) + rng.uniform(-0.08, 0.08) * (ramp - ramp.mean())
    image = np.clip(image, 0, 1) ** rng.uniform(0.8, 1.25)
    image = _gaussian_blur(image, rng.uniform(0.5, 1.3) * scale / 256.0)
    image = image + rng.normal(0, rng.uniform(0.01, 0.035), size=image.shape)
    return np.clip(image, 0, 1)


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    reach = max(1, int(np.ceil(3 * sigma)))
    offsets = np.arange(-reach, reach + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    for axis in (0, 1):
        padded = np.pad(image, [(reach, reach) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        length = image.shape[axis]
        image = sum(
            weight * np.take(padded, np.arange(i, i + length), axis=axis) for i, weight in enumerate(weights)
        )
    return image
