"""predict on a folder of mixed files: good images scored, bad ones reported per file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fracture_tune.classifier.package import classifier_metadata, sha256_of_file, write_package_files
from fracture_tune.classifier.predict import (
    expand_inputs,
    load_classifier,
    predict_files,
    write_predictions,
)
from fracture_tune.data.decode import decode_image
from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.engine import predict_proba
from fracture_tune.trainables.models import build_model

IMAGE_SIZE = 32


def _model_folder(root: Path, threshold: float = 0.5, **recorded: str) -> Path:
    config = TrainConfig.from_flat({"model": "tiny_cnn", "width": 3, "device": "cpu"})
    torch.manual_seed(0)
    model = build_model("tiny_cnn", input_size=IMAGE_SIZE, width=3).eval()
    with torch.no_grad():  # make the output depend visibly on brightness
        model[-1].weight.copy_(torch.tensor([[-2.0, -2.0, -2.0], [2.0, 2.0, 2.0]]))
    metadata = classifier_metadata(
        config,
        image_size=IMAGE_SIZE,
        threshold=threshold,
        class_names=("non_fractured", "fractured"),
        split_hash="h",
        **recorded,
    )
    folder = root / "model"
    _, weights = write_package_files(folder / "extra_files", model, metadata)
    # retrain's record of the weights, beside the model folder: load_classifier refuses a model without it
    (root / "report.json").write_text(json.dumps({"model": {"weights_sha256": sha256_of_file(weights)}}))
    return folder


def _mixed_files(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "jpeg": root / "good.jpg",
        "png16": root / "wide.png",
        "pdf": root / "scan.pdf",
        "text_jpg": root / "notes.jpg",
        "truncated": root / "cut.jpg",
    }
    Image.fromarray(rng.integers(0, 255, (64, 48), dtype=np.uint8)).save(files["jpeg"], quality=90)
    Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)).save(files["png16"])
    files["pdf"].write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n")
    files["text_jpg"].write_text("this is not an image\n")
    files["truncated"].write_bytes(files["jpeg"].read_bytes()[:200])
    return files


def test_mixed_files_are_reported_per_file(tmp_path: Path) -> None:
    classifier = load_classifier(str(_model_folder(tmp_path)))
    files = _mixed_files(tmp_path / "in")
    inputs = [str(files[key]) for key in ("jpeg", "pdf", "text_jpg", "png16", "truncated")]
    rows, _images, good = predict_files(classifier, [Path(p) for p in inputs + [str(tmp_path / "gone.png")]])
    by_name = {Path(row.path).name: row for row in rows}
    assert [row.status for row in rows] == ["ok", "rejected", "rejected", "ok", "rejected", "missing"]
    for name in ("scan.pdf", "notes.jpg", "cut.jpg"):
        assert by_name[name].reason and by_name[name].probability is None and by_name[name].label == ""
    assert by_name["gone.png"].reason == "no such file"
    # Same preprocessing as training: decode_image + the engine's predict_proba, to the last bit.
    for key in ("jpeg", "png16"):
        name = files[key].name
        expected = predict_proba(
            classifier.model, decode_image(files[key], IMAGE_SIZE)[None], classifier.config
        )[0]
        assert by_name[name].probability == pytest.approx(expected, abs=1e-7)
        assert 0.0 <= by_name[name].probability <= 1.0
        assert by_name[name].label == ("fractured" if by_name[name].probability >= 0.5 else "non_fractured")
    assert good == [0, 3]


def test_threshold_changes_labels_and_outputs_round_trip(tmp_path: Path) -> None:
    classifier = load_classifier(str(_model_folder(tmp_path)))
    files = _mixed_files(tmp_path / "in")
    paths = expand_inputs([str(tmp_path / "in")])  # a folder: image suffixes only, sorted
    assert {path.name for path in paths} == {"good.jpg", "wide.png", "notes.jpg", "cut.jpg"}
    low, _, _ = predict_files(classifier, [files["jpeg"]], threshold=0.0)
    high, _, _ = predict_files(classifier, [files["jpeg"]], threshold=1.01)
    assert low[0].label == "fractured" and high[0].label == "non_fractured"
    rows, _, _ = predict_files(classifier, paths)
    json_rows = json.loads(write_predictions(rows, tmp_path / "p.json").read_text())
    assert [row["status"] for row in json_rows] == [row.status for row in rows]
    csv_text = write_predictions(rows, tmp_path / "p.csv").read_text().splitlines()
    assert csv_text[0] == "path,status,probability,label,reason" and len(csv_text) == len(rows) + 1


def test_predict_takes_paths_pil_images_and_uint8_arrays_alike(tmp_path: Path) -> None:
    """What a notebook passes: the same radiograph as a file, a PIL image, an array or the file's bytes
    scores the same."""
    classifier = load_classifier(str(_model_folder(tmp_path)))
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, (48, 48), dtype=np.uint8)
    path = tmp_path / "scan.png"
    Image.fromarray(pixels).save(path)
    inputs = [str(path), Image.open(path), pixels, path.read_bytes(), str(tmp_path / "gone.png")]
    frame = classifier.predict(inputs)
    assert list(frame.columns) == ["input", "status", "probability", "label", "reason"]
    assert list(frame["status"]) == ["ok", "ok", "ok", "ok", "missing"]
    assert list(frame["input"][:4]) == [str(path), "image[1]", "array[2]", "bytes[3]"]
    folder = classifier.predict(tmp_path)  # a folder: each image file in it
    assert list(folder["input"]) == [str(path)] and folder["probability"][0] == frame["probability"][0]
    expected = predict_proba(classifier.model, decode_image(path, IMAGE_SIZE)[None], classifier.config)[0]
    assert frame["probability"][:4].tolist() == pytest.approx([expected] * 4, abs=1e-7)
    assert classifier.predict(path.read_bytes())["probability"][0] == pytest.approx(expected, abs=1e-7)
    # A batch array is one row per image; a single 2-D array is one image.
    batch = classifier.predict(np.stack([pixels, 255 - pixels]))
    assert len(batch) == 2 and batch["probability"][0] == pytest.approx(expected, abs=1e-7)
    assert classifier.predict_proba(pixels).shape == (1,)


def test_predict_rejects_what_is_not_an_image(tmp_path: Path) -> None:
    classifier = load_classifier(str(_model_folder(tmp_path)))
    frame = classifier.predict([np.zeros((8, 8), dtype=np.float32)])
    assert frame["status"][0] == "rejected" and "uint8" in frame["reason"][0]
    with pytest.raises(FractureTuneError, match=r"\[H, W\] or \[N, H, W\]"):
        classifier.predict(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(FractureTuneError, match="expected a path, an image file's bytes, a PIL image or"):
        classifier.predict([42])
    text = classifier.predict(b"this is not an image")
    assert text["status"][0] == "rejected" and text["reason"][0] == "not a recognised image format"


def test_load_classifier_fails_closed_without_a_record_and_on_changed_weights(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path)
    report = tmp_path / "report.json"
    report.write_text("{not json")
    with pytest.raises(FractureTuneError, match="no sha256 of its weights was recorded") as unreadable:
        load_classifier(str(folder))
    assert "unreadable" in str(unreadable.value) and "--skip-hash-check" in (unreadable.value.hint or "")
    report.unlink()
    with pytest.raises(FractureTuneError, match=r"report.json \(missing\)"):
        load_classifier(str(folder))
    assert load_classifier(str(folder), verify=False).threshold == 0.5  # the explicit opt-out
    report.write_text(json.dumps({"model": {"weights_sha256": "0" * 64}}))
    with pytest.raises(FractureTuneError, match="differs from 0000000000000000... recorded by retrain"):
        load_classifier(str(folder))


def test_a_model_trained_on_synthetic_images_is_loaded_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The demo's model never stands in silently for one trained on radiographs."""
    demo = _model_folder(tmp_path / "demo", training_data="synthetic")
    real = _model_folder(tmp_path / "real", training_data="images")
    with caplog.at_level(logging.WARNING, logger="fracture_tune.classifier.predict"):
        load_classifier(str(real))
        assert not caplog.records
        load_classifier(str(demo))
    assert len(caplog.records) == 1 and caplog.records[0].levelno == logging.WARNING
    assert caplog.records[0].getMessage() == (
        f"{demo} was trained on synthetic images, not radiographs: its scores on real X-rays mean nothing "
        "(retrain on your own images)"
    )
