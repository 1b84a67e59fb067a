"""Image files made on the fly for the data-layer tests (no binaries are committed)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def gradient(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """A distinct uint8 test picture: a gradient plus seeded noise (so every seed gives other pixels)."""
    rng = np.random.default_rng(seed)
    base = np.add.outer(np.arange(height) * 3, np.arange(width) * 5) % 200
    return (base + rng.integers(0, 50, size=(height, width))).astype(np.uint8)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def make_class_tree(root: Path, counts: dict[str, int], size: int = 24, seed: int = 0) -> Path:
    """``root/<class>/img_<i>.png`` with distinct pixels for every file."""
    for class_index, (folder, count) in enumerate(counts.items()):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            write_png(
                root / folder / f"img_{index:03d}.png",
                gradient(size, size, seed * 10_000 + class_index * 1000 + index),
            )
    return root


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width×height (a decompression bomb) with no pixel data: bytes, not RAM."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def truncated_jpeg(path: Path, seed: int = 0) -> Path:
    full = path.with_suffix(".full.jpg")
    Image.fromarray(gradient(64, 64, seed)).save(full, quality=95)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def exif_rotated_jpeg(path: Path, orientation: int = 6) -> Path:
    """60 wide × 30 tall: left half dark, right half bright, with an EXIF orientation tag."""
    pixels = np.zeros((30, 60), dtype=np.uint8)
    pixels[:, 30:] = 230
    pixels[:, :30] = 20
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    return path
