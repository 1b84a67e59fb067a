"""Tiny two-class image folders for search tests (no dependency on the synthetic generator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_line_dataset(root: Path, per_class: int = 60, size: int = 32, seed: int = 0) -> Path:
    """``Fractured/`` images carry a bright diagonal line on noise, ``Non_fractured/`` do not.

    Learnable in an epoch or two but not trivially (noise + random line position), so trials differ.
    """
    rng = np.random.default_rng(seed)
    for label, folder in ((1, "Fractured"), (0, "Non_fractured")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = rng.normal(100, 30, (size, size))
            image[:, size // 3 : 2 * size // 3] += 40  # a "bone shaft"
            if label:
                offset = int(rng.integers(-size // 4, size // 4))
                for row in range(size):
                    column = min(size - 1, max(0, row + offset))
                    image[row, column] += 60
            pixels = np.clip(image, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{folder}_{index:03d}.png")
    return root
