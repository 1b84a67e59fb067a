"""The one preprocessing function for image files: decode, orient, grayscale, resize.

``prepare`` (every training image) and ``predict`` (every image a user scores) both call
:func:`decode_image` — or :func:`decode_image_bytes`, the same code for a file's bytes held in memory (what
the served MLflow model receives) — so a model never sees pixels prepared differently from the ones it was
trained on.

Choices, so they are written down once:
- EXIF orientation is applied (``ImageOps.exif_transpose``) before anything else looks at the pixels.
- Every mode becomes 8-bit grayscale. 8-bit colour modes use Pillow's ITU-R 601-2 luma; alpha is ignored.
  16-bit integer data (``I;16*``, and ``I`` when it fits 0..65535) is mapped linearly from the full
  0..65535 range (divide by 257): never clipped at 255, and an 8-bit image saved as 16 bits decodes to the
  same pixels. Data that uses fewer bits (12-bit detectors) therefore comes out darker, the same way for
  every image. Float (``F``) data in 0..1 is scaled by 255, other float or 32-bit ranges are min–max scaled.
- Resizing squashes to ``image_size``×``image_size`` with Pillow's antialiased bilinear filter, like the
  seed's ``Resize((128, 128))``. JPEGs are decoded in draft mode (libjpeg's DCT scaling to the smallest
  size still ≥ the target and straight to luma), which is ~3× faster and never materialises pixels the
  resize would throw away.
- Files over ``max_pixels`` (header size, checked before decoding) are rejected as decompression bombs.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 64 megapixels: far above any radiograph (a 43×43 cm detector at 100 µm is ~18 MP), far below what
# would exhaust a worker's memory. Pillow's own limit (~89 MP warning, ~179 MP error) is a backstop.
DEFAULT_MAX_PIXELS = 64_000_000

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class RejectedImage(Exception):
    """A file that cannot become a training/prediction image, with the reason in words."""

    def __init__(self, path: str | os.PathLike[str] | bytes, reason: str) -> None:
        self.path = os.fsdecode(path)
        self.reason = reason
        super().__init__(f"{printable_path(self.path)}: {reason}")


def printable_path(path: str) -> str:
    """The path as text that can be printed and stored as UTF-8 (undecodable bytes shown as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def decode_image(
    path: str | os.PathLike[str] | bytes, image_size: int, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode one file into uint8 grayscale pixels of shape [image_size, image_size].

    Raises :class:`RejectedImage` naming the file and the reason for empty, unreadable, non-image,
    truncated or oversized files.
    """
    file_path = Path(os.fsdecode(path))
    return _decode_opened(file_path, file_path, image_size, max_pixels)


def decode_image_bytes(
    content: bytes | bytearray, image_size: int, *, name: str = "bytes", max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """An image file's bytes (as read from disk or received over HTTP) → what :func:`decode_image` gives
    for that file, through the same code; ``name`` is what a :class:`RejectedImage` calls it."""
    if not isinstance(content, bytes | bytearray):
        raise TypeError(f"expected an image file's bytes, got {type(content).__name__}")
    return _decode_opened(io.BytesIO(bytes(content)), name, image_size, max_pixels)


def _decode_opened(
    source: Path | io.BytesIO, name: str | Path, image_size: int, max_pixels: int
) -> np.ndarray:
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    try:
        empty = source.stat().st_size == 0 if isinstance(source, Path) else not source.getbuffer().nbytes
        if empty:
            raise RejectedImage(name, "empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                _check_pixel_count(name, image.size, max_pixels)
                gray = _decode_to_gray(image, image_size)
    except RejectedImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise RejectedImage(name, f"decompression bomb guard: {error}") from error
    except UnidentifiedImageError as error:
        raise RejectedImage(name, "not a recognised image format") from error
    except FileNotFoundError as error:
        raise RejectedImage(name, "file not found") from error
    except (PermissionError, IsADirectoryError) as error:
        raise RejectedImage(name, f"cannot read file: {error.strerror}") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated"), and some
        # plugins as SyntaxError/ValueError/EOFError.
        raise RejectedImage(name, f"corrupt or truncated image data: {error}") from error
    return gray


def _check_pixel_count(path: str | Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise RejectedImage(
            path,
            f"decompression bomb guard: {width}x{height} = {width * height:,} pixels "
            f"exceeds the limit of {max_pixels:,}",
        )
    if width < 1 or height < 1:
        raise RejectedImage(path, f"image has no pixels ({width}x{height})")


def _decode_to_gray(image: Image.Image, image_size: int) -> np.ndarray:
    if image.format == "JPEG":
        image.draft("L", (image_size, image_size))
    return decode_pil_image(image, image_size)


def decode_pil_image(image: Image.Image, image_size: int) -> np.ndarray:
    """An image already in memory (a PIL image) → uint8 [image_size, image_size], as ``decode_image`` does
    for files: EXIF orientation, 8-bit grayscale, squash-resize. Raises ``RejectedImage`` for no pixels."""
    if image.width < 1 or image.height < 1:
        raise RejectedImage("image", f"image has no pixels ({image.width}x{image.height})")
    oriented = ImageOps.exif_transpose(image)
    gray = to_gray8(oriented)
    if gray.size != (image_size, image_size):
        gray = gray.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8).copy()


def to_gray8(image: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit grayscale ("L"), scaling high bit depths instead of clipping them."""
    if image.mode == "L":
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(_scale_to_uint8(values, image.mode))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("L")


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
