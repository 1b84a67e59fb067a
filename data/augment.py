"""Batched augmentation on tensors: the seed's torchvision recipe, one call per batch, CPU or CUDA.

The seed applied, per image: RandomHorizontalFlip(0.5), ColorJitter(brightness=0.1, contrast=0.1),
RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.95, 1.05), shear=5) and
RandomPerspective(distortion_scale=0.05, p=0.3). Here every random draw is one tensor for the whole
batch (from a seeded ``torch.Generator``, on the CPU in the engine even for CUDA batches), and affine +
perspective are composed into one homography per image and applied with a single ``grid_sample``.
Empty areas are filled with black (0), as torchvision's default fill. Unlike ColorJitter's random order,
brightness is always applied before contrast; translations are continuous rather than whole pixels.

Geometry convention: coordinates are in pixels, centred on the image centre, y pointing down; a positive
angle rotates counter-clockwise as displayed (like ``torch.rot90`` and torchvision's ``rotate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Magnitudes of the seed's augmentation; ``scaled(0)`` is the identity."""

    flip_p: float = 0.5
    brightness: float = 0.1  # factor drawn from [1 - b, 1 + b]
    contrast: float = 0.1  # factor drawn from [1 - c, 1 + c], around each image's mean
    degrees: float = 10.0  # rotation drawn from [-degrees, degrees]
    translate: float = 0.05  # shift drawn from [-t, t] x width (and x height)
    scale: float = 0.05  # zoom drawn from [1 - s, 1 + s]
    shear: float = 5.0  # x-shear drawn from [-shear, shear] degrees
    perspective: float = 0.05  # torchvision's distortion_scale
    perspective_p: float = 0.3

    def scaled(self, strength: float) -> AugmentConfig:
        """Magnitudes times ``strength``; probabilities times min(strength, 1) (so 0 switches them off)."""
        if strength < 0 or not math.isfinite(strength):
            raise ValueError(f"augmentation strength must be finite and >= 0, got {strength}")
        probability = min(strength, 1.0)
        return replace(
            self,
            flip_p=self.flip_p * probability,
            brightness=self.brightness * strength,
            contrast=self.contrast * strength,
            degrees=self.degrees * strength,
            translate=self.translate * strength,
            scale=self.scale * strength,
            shear=self.shear * strength,
            perspective=self.perspective * strength,
            perspective_p=self.perspective_p * probability,
        )

    @property
    def has_geometry(self) -> bool:
        return any(v > 0 for v in (self.degrees, self.translate, self.scale, self.shear)) or (
            self.perspective > 0 and self.perspective_p > 0
        )

    @property
    def is_identity(self) -> bool:
        return self.flip_p <= 0 and self.brightness <= 0 and self.contrast <= 0 and not self.has_geometry


SEED_AUGMENTATION = AugmentConfig()


def augment_batch(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment float images [B, C, H, W] with values in [0, 1]; returns a new tensor, same dtype/range.

    Every random draw and the per-image parameter math (flip mask, jitter factors, the composed homography
    and its inverse: ~130 operations on [B]-sized tensors) run on ``generator``'s device; the results go to
    the images' device in one copy. With a CPU generator and CUDA images (the engine's setup) those cost no
    kernel launches: 36 operators run on the GPU, not 161 (``benchmarks/step_profile.py`` counts them).
    """
    if config.is_identity:
        return images
    batch = images.shape[0]
    draw_device = generator.device

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return torch.rand((batch, *shape), generator=generator, device=draw_device) * (high - low) + low

    columns: dict[str, torch.Tensor] = {}
    if config.flip_p > 0:
        columns["flip"] = (uniform(0.0, 1.0) < config.flip_p).float()[:, None]
    if config.brightness > 0:
        columns["brightness"] = uniform(1 - config.brightness, 1 + config.brightness)[:, None]
    if config.contrast > 0:
        columns["contrast"] = uniform(1 - config.contrast, 1 + config.contrast)[:, None]
    if config.has_geometry:
        height, width = images.shape[-2:]
        size = torch.tensor([width, height], dtype=torch.float32, device=draw_device)
        forward = affine_matrices(
            angle_deg=uniform(-config.degrees, config.degrees),
            translate_px=uniform(-config.translate, config.translate, 2) * size,
            scale=uniform(1 - config.scale, 1 + config.scale),
            shear_deg=uniform(-config.shear, config.shear),
        )
        if config.perspective > 0 and config.perspective_p > 0:
            # torchvision moves each corner inward by up to distortion_scale * half the side.
            inward = uniform(0.0, 1.0, 4, 2) * config.perspective * size / 2
            inward = inward * (uniform(0.0, 1.0) < config.perspective_p)[:, None, None]
            forward = perspective_matrices(inward, height, width) @ forward
        columns["inverse"] = _inverse_3x3(forward.float()).reshape(batch, 9)
    params = _to_device(torch.cat(list(columns.values()), dim=1), images.device)
    values = dict(
        zip(columns, params.split([column.shape[1] for column in columns.values()], dim=1), strict=True)
    )

    out = images
    if "flip" in values:
        out = torch.where(values["flip"][:, :, None, None] > 0.5, out.flip(-1), out)
    if "brightness" in values:
        out = (out * values["brightness"][:, :, None, None]).clamp(0.0, 1.0)
    if "contrast" in values:
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * values["contrast"][:, :, None, None] + mean).clamp(0.0, 1.0)
    if "inverse" in values:
        out = _warp_with_inverse(out, values["inverse"].reshape(batch, 3, 3))
    return out


def _to_device(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """One host-to-device copy, from pinned memory so it does not wait for the GPU."""
    if values.device == device:
        return values
    if values.device.type == "cpu" and device.type == "cuda":
        values = values.pin_memory()
    return values.to(device, non_blocking=True)


def affine_matrices(
    angle_deg: torch.Tensor, translate_px: torch.Tensor, scale: torch.Tensor, shear_deg: torch.Tensor
) -> torch.Tensor:
    """Forward (input → output) 3x3 matrices [B, 3, 3]: translate · rotate · x-shear · scale."""
    angle = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(angle), torch.sin(angle)
    shear = torch.tan(torch.deg2rad(shear_deg))
    zeros, ones = torch.zeros_like(angle), torch.ones_like(angle)
    # Counter-clockwise on screen with y down: (x, y) -> (x cos + y sin, -x sin + y cos).
    rotate = torch.stack([cos, sin, zeros, -sin, cos, zeros, zeros, zeros, ones], -1).view(-1, 3, 3)
    shear_x = torch.stack([ones, shear, zeros, zeros, ones, zeros, zeros, zeros, ones], -1).view(-1, 3, 3)
    matrix = rotate @ shear_x * torch.stack([scale, scale, ones], -1)[:, None, :]
    matrix[:, 0, 2] = translate_px[:, 0]
    matrix[:, 1, 2] = translate_px[:, 1]
    return matrix


def perspective_matrices(inward_px: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Homographies [B, 3, 3] moving the four image corners inward by ``inward_px`` [B, 4, 2] pixels.

    Corners in order top-left, top-right, bottom-right, bottom-left. Closed form (Heckbert's
    square-to-quad mapping) because batched 8x8 solves cost milliseconds per batch on CPU.
    """
    half = inward_px.new_tensor([width / 2, height / 2])
    corners = half * inward_px.new_tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    quad = corners - torch.sign(corners) * inward_px  # towards the centre
    (x0, x1, x2, x3), (y0, y1, y2, y3) = quad[..., 0].unbind(-1), quad[..., 1].unbind(-1)
    dx1, dx2, dx3 = x1 - x2, x3 - x2, x0 - x1 + x2 - x3
    dy1, dy2, dy3 = y1 - y2, y3 - y2, y0 - y1 + y2 - y3
    den = dx1 * dy2 - dx2 * dy1
    g = (dx3 * dy2 - dx2 * dy3) / den
    h = (dx1 * dy3 - dx3 * dy1) / den
    ones = torch.ones_like(g)
    square_to_quad = torch.stack(
        [x1 - x0 + g * x1, x3 - x0 + h * x3, x0, y1 - y0 + g * y1, y3 - y0 + h * y3, y0, g, h, ones], -1
    ).view(-1, 3, 3)
    image_to_square = inward_px.new_tensor([[1 / width, 0.0, 0.5], [0.0, 1 / height, 0.5], [0.0, 0.0, 1.0]])
    return square_to_quad @ image_to_square


def _inverse_3x3(m: torch.Tensor) -> torch.Tensor:
    """Inverse of [B, 3, 3] by the adjugate (elementwise; torch.linalg.inv is slow on tiny CPU batches)."""
    a, b, c, d, e, f, g, h, i = m.reshape(-1, 9).unbind(-1)
    adjugate = torch.stack(
        [
            e * i - f * h,
            c * h - b * i,
            b * f - c * e,
            f * g - d * i,
            a * i - c * g,
            c * d - a * f,
            d * h - e * g,
            b * g - a * h,
            a * e - b * d,
        ],
        -1,
    ).view(-1, 3, 3)
    determinant = a * adjugate[:, 0, 0] + b * adjugate[:, 1, 0] + c * adjugate[:, 2, 0]
    return adjugate / determinant[:, None, None]


def warp(images: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """Resample images [B, C, H, W] under forward pixel-space homographies [B, 3, 3] (bilinear, fill 0)."""
    return _warp_with_inverse(images, _inverse_3x3(forward.float()).to(images.device))


def _warp_with_inverse(images: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``warp`` given the inverse (output → input) homographies [B, 3, 3], already on the images' device."""
    _, _, height, width = images.shape
    dtype, device = images.dtype, images.device
    xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5 - width / 2
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5 - height / 2
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    inverse = inverse.float()[:, :, :, None, None]  # [B, 3, 3, 1, 1]
    # Elementwise rather than a [H*W, 3] @ [3, 3] matmul: K=3 batched matmuls are slow on CPU.
    src_x, src_y, src_w = (
        inverse[:, row, 0] * grid_x + inverse[:, row, 1] * grid_y + inverse[:, row, 2] for row in range(3)
    )
    src_w = src_w.clamp_min(1e-8)
    # Pixel-centred coordinates -> grid_sample's [-1, 1] (align_corners=False).
    grid = torch.stack([src_x / (src_w * (width / 2)), src_y / (src_w * (height / 2))], dim=-1)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(
        dtype
    )
