"""The embedded default dataset: procedural long-bone radiographs, fractured and not (numpy + PIL only).

Each image is a projection of one or two bone shafts (a cortical tube around a darker medulla, with
rounded, flared ends) inside a soft-tissue limb, at a random pose, size, exposure and noise level. A
fractured image carries a break of varying subtlety: a faint partial crack, a complete line, or a
displaced/angulated break. Both classes carry distractors (skin folds crossing the whole image, bright
growth-arrest lines, bone texture) so that "any line" is not the answer. Files are written as real images
in mixed modes (8-bit L PNG/JPEG, RGB JPEG, a few 16-bit PNG) and sizes, so ``prepare`` is exercised the
way real folders exercise it. Same (n, seed, size) → byte-identical files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from fracture_tune.data.synth_draw import draw_radiograph
from fracture_tune.errors import FractureTuneError

log = logging.getLogger(__name__)

POSITIVE_FOLDER = "Fractured"
NEGATIVE_FOLDER = "Non_fractured"
MARKER = ".synth.json"  # written last; hidden, so prepare lists it as ignored rather than as an image


def generate_synthetic_dataset(
    out_dir: str | os.PathLike[str], n: int = 600, seed: int = 0, size: int = 256
) -> Path:
    """Write ``n`` synthetic radiographs (half fractured) under ``out_dir``; return the folder.

    A folder already generated with the same (n, seed, size) is returned as it is.
    """
    if n < 2:
        raise FractureTuneError(f"--n must be at least 2 (one image per class), got {n}")
    if not 32 <= size <= 2048:
        raise FractureTuneError(f"--size must be between 32 and 2048 pixels, got {size}")
    out = Path(out_dir).expanduser()
    settings = {"generator_version": 1, "n": n, "seed": seed, "size": size}
    if _already_generated(out, settings):
        log.info("synthetic dataset already in %s (same n, seed, size)", out)
        return out
    for folder in (POSITIVE_FOLDER, NEGATIVE_FOLDER):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for index in range(n):
        fractured = index % 2 == 1
        rng = np.random.default_rng([seed, index])
        height, width = _image_shape(rng, size)
        pixels = draw_radiograph(rng, height, width, fractured)
        folder = POSITIVE_FOLDER if fractured else NEGATIVE_FOLDER
        _save(out / folder, f"synth_{index:05d}", pixels, rng)
    (out / MARKER).write_text(json.dumps(settings) + "\n", encoding="utf-8")
    log.info("wrote %d synthetic radiographs to %s", n, out)
    return out


def _already_generated(out: Path, settings: dict[str, int]) -> bool:
    if not out.exists():
        return False
    if not out.is_dir():
        raise FractureTuneError(f"{str(out)!r} exists and is not a folder", hint="choose another OUT folder")
    marker = out / MARKER
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == settings:
        return True
    if any(out.iterdir()):
        raise FractureTuneError(
            f"{str(out)!r} is not empty and was not generated with "
            f"n={settings['n']}, seed={settings['seed']}, "
            f"size={settings['size']}",
            hint="pass an empty or new OUT folder (synth never overwrites other files)",
        )
    return False


def _image_shape(rng: np.random.Generator, size: int) -> tuple[int, int]:
    if rng.random() < 0.3:
        return size, size
    height = int(round(size * rng.uniform(0.85, 1.3)))
    width = int(round(size * rng.uniform(0.75, 1.15)))
    return height, width


def _save(folder: Path, stem: str, pixels: np.ndarray, rng: np.random.Generator) -> None:
    """pixels: float [H, W] in 0..1. Mixed modes and formats, chosen by the image's own rng."""
    kind = rng.random()
    quality = int(rng.integers(88, 97))
    gray8 = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
    if kind < 0.06:  # 16-bit PNG: the full 0..65535 range, as 16-bit detectors write it
        gray16 = np.clip(np.rint(pixels * 65535.0), 0, 65535).astype(np.uint16)
        Image.fromarray(gray16).save(folder / f"{stem}.png")
    elif kind < 0.30:  # RGB JPEG with R = G = B, like many exported radiographs
        Image.fromarray(np.repeat(gray8[:, :, None], 3, axis=2)).save(folder / f"{stem}.jpg", quality=quality)
    elif kind < 0.65:
        Image.fromarray(gray8).save(folder / f"{stem}.jpg", quality=quality)
    else:
        Image.fromarray(gray8).save(folder / f"{stem}.png")
