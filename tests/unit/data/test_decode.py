"""decode_image: every mode to 8-bit gray, orientation, and each kind of bad file rejected with a reason;
decode_image_bytes: the same for a file's bytes in memory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from image_factory import exif_rotated_jpeg, gradient, png_header_only, truncated_jpeg, write_png
from PIL import Image

from fracture_tune.data.decode import RejectedImage, decode_image, decode_image_bytes

SIZE = 24


def _save_in_mode(path: Path, gray: np.ndarray, mode: str) -> tuple[Path, np.ndarray]:
    """Save ``gray`` in ``mode``; return the file and the 8-bit picture decoding should give back."""
    image = Image.fromarray(gray)
    expected = gray
    if mode == "I;16":
        image = Image.fromarray(gray.astype(np.uint16) * 257)
    elif mode == "I":
        image = Image.fromarray(gray.astype(np.int32) * 257)
    elif mode == "F":
        image = Image.fromarray(gray.astype(np.float32) / 255.0)
    elif mode == "1":
        image = image.point(lambda value: 255 if value >= 128 else 0).convert("1")
        expected = np.where(gray >= 128, 255, 0).astype(np.uint8)
    elif mode == "RGBA":
        rgba = np.dstack([gray, gray, gray, np.full_like(gray, 90)])
        image = Image.fromarray(rgba)
    elif mode == "P":
        image = Image.fromarray(np.dstack([gray] * 3)).convert(
            "P", palette=Image.Palette.ADAPTIVE, colors=256
        )
    elif mode in ("RGB", "CMYK"):
        image = Image.fromarray(np.dstack([gray] * 3)).convert(mode)
    elif mode == "LA":
        image = image.convert("LA")
    suffix = ".tif" if mode in ("I", "F", "CMYK") else ".png"
    path = path.with_suffix(suffix)
    image.save(path)
    assert Image.open(path).mode.startswith(mode[:1])
    return path, expected


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "CMYK", "I;16", "I", "F", "1", "LA"])
def test_every_mode_decodes_to_the_same_gray_pixels(tmp_path: Path, mode: str) -> None:
    gray = gradient(SIZE, SIZE, seed=3)
    path, expected = _save_in_mode(tmp_path / f"picture_{mode.replace(';', '_')}", gray, mode)
    decoded = decode_image(path, SIZE)
    assert decoded.dtype == np.uint8 and decoded.shape == (SIZE, SIZE)
    tolerance = 3 if mode == "P" else 1  # an adaptive palette approximates the grays
    assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= tolerance, mode


def test_sixteen_bit_values_are_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 32896, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    decoded = decode_image(path, 4)
    # 1000/257 ≈ 4 (a clipping conversion would give 255); 65535 → 255.
    assert decoded[0].tolist() == [0, 4, 128, 255]


def test_resize_squashes_to_the_requested_square(tmp_path: Path) -> None:
    path = write_png(tmp_path / "wide.png", gradient(20, 80))
    assert decode_image(path, 16).shape == (16, 16)
    jpeg = tmp_path / "big.jpg"
    Image.fromarray(gradient(400, 300)).save(jpeg, quality=95)
    assert decode_image(jpeg, 32).shape == (32, 32)


def test_cmyk_jpeg_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(np.dstack([gradient(32, 32)] * 3)).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    assert decode_image(path, 16).shape == (16, 16)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Orientation 6 means "rotate 90° clockwise to display": the dark left half ends up on top.
    rotated = decode_image(exif_rotated_jpeg(tmp_path / "rotated.jpg", orientation=6), 32)
    upright = decode_image(exif_rotated_jpeg(tmp_path / "upright.jpg", orientation=1), 32)
    assert upright[:, :12].mean() < 60 and upright[:, -12:].mean() > 190
    assert rotated[:12, :].mean() < 60 and rotated[-12:, :].mean() > 190


@pytest.mark.parametrize(
    ("maker", "reason"),
    [
        (lambda folder: _write(folder / "zero.jpg", b""), "empty file"),
        (
            lambda folder: _write(folder / "notes.jpg", b"this is a text file, not a JPEG\n" * 4),
            "not a recognised image",
        ),
        (lambda folder: truncated_jpeg(folder / "truncated.jpg"), "truncated"),
        (lambda folder: png_header_only(folder / "bomb.png", 20000, 20000), "decompression bomb"),
        (lambda folder: folder / "missing.png", "file not found"),
    ],
    ids=["zero-byte", "text-as-jpg", "truncated-jpeg", "20000x20000-bomb", "missing"],
)
def test_bad_files_are_rejected_with_file_and_reason(tmp_path: Path, maker: object, reason: str) -> None:
    path = maker(tmp_path)  # type: ignore[operator]
    started = time.perf_counter()
    with pytest.raises(RejectedImage) as raised:
        decode_image(path, SIZE)
    assert reason in raised.value.reason
    assert path.name in str(raised.value)
    assert time.perf_counter() - started < 2.0  # the bomb is refused from its header, never allocated


def test_bytes_decode_like_the_file_they_came_from(tmp_path: Path) -> None:
    """What the served model receives (a file's bytes) gives the pixels ``predict`` reads from the file:
    JPEG draft mode, EXIF orientation, 16-bit scaling and the resize included."""
    jpeg = tmp_path / "big.jpg"
    Image.fromarray(np.dstack([gradient(400, 300)] * 3)).save(jpeg, quality=90)
    sixteen = tmp_path / "deep.png"
    Image.fromarray(gradient(40, 50).astype(np.uint16) * 200).save(sixteen)
    rotated = exif_rotated_jpeg(tmp_path / "rotated.jpg")
    for path in (jpeg, sixteen, rotated, write_png(tmp_path / "g.png", gradient())):
        from_bytes = decode_image_bytes(path.read_bytes(), SIZE)
        assert np.array_equal(from_bytes, decode_image(path, SIZE)), path.name


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"this is a text file, not a JPEG\n" * 4, "not a recognised image"),
        (None, "truncated"),
    ],
    ids=["empty", "text", "truncated-jpeg"],
)
def test_bad_bytes_are_rejected_with_the_reason_a_file_gets(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    data = truncated_jpeg(tmp_path / "cut.jpg").read_bytes() if content is None else content
    with pytest.raises(RejectedImage) as raised:
        decode_image_bytes(data, SIZE, name="upload[3]")
    assert reason in raised.value.reason and "upload[3]" in str(raised.value)
    with pytest.raises(TypeError, match="expected an image file's bytes, got str"):
        decode_image_bytes("scan.png", SIZE)  # type: ignore[arg-type]


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = write_png(tmp_path / "moderate.png", gradient(100, 100))
    with pytest.raises(RejectedImage, match="10,000 pixels exceeds the limit of 5,000"):
        decode_image(path, SIZE, max_pixels=5000)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_unreadable_file_is_rejected(tmp_path: Path) -> None:
    path = write_png(tmp_path / "locked.png", gradient())
    path.chmod(0)
    with pytest.raises(RejectedImage, match="cannot read"):
        decode_image(path, SIZE)


def test_directory_instead_of_file_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "looks_like.png"
    folder.mkdir()
    with pytest.raises(RejectedImage, match="cannot read"):
        decode_image(folder, SIZE)


def test_non_utf8_file_name_decodes(tmp_path: Path) -> None:
    raw_path = os.fsencode(tmp_path) + b"/caf\xe9.png"
    with open(raw_path, "wb") as handle:
        Image.fromarray(gradient()).save(handle, format="PNG")
    assert decode_image(raw_path, SIZE).shape == (SIZE, SIZE)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
