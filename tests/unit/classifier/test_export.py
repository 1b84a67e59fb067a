"""export: a .pt2 by default, TorchScript and ONNX on request, each loaded back and checked against eager."""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fracture_tune.classifier import export
from fracture_tune.classifier.export import (
    DEFAULT_FORMAT,
    EXAMPLE_BATCH,
    EXPORT_FORMATS,
    MAX_ABS_DIFF,
    export_classifier,
)
from fracture_tune.classifier.package import (
    build_ensemble,
    classifier_metadata,
    ensemble_members_metadata,
)
from fracture_tune.classifier.predict import Classifier
from fracture_tune.cli import build_parser
from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.models import build_model

IMAGE_SIZE = 32
# Every model a search picks by default; enhanced_cnn is tunable_cnn at its defaults.
MODELS = ["tiny_cnn", "tunable_cnn", "base_cnn", "deep_cnn", "resnet18"]


def _classifier(name: str) -> Classifier:
    config = TrainConfig.from_flat({"model": name, "device": "cpu"})
    torch.manual_seed(0)
    model = build_model(name, input_size=IMAGE_SIZE, **config.model_kwargs).eval()
    metadata = classifier_metadata(
        config, image_size=IMAGE_SIZE, threshold=0.4, class_names=("non_fractured", "fractured")
    )
    return Classifier(model=model, metadata=metadata, source=f"test:{name}")


def _unseen_batch() -> torch.Tensor:
    """Neither the traced batch size nor the verified ones: the batch dimension must be dynamic."""
    return torch.randn(5, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))


def _export_parser_action(dest: str) -> Any:
    subcommands = next(a for a in build_parser()._actions if a.dest == "command")
    return next(a for a in subcommands.choices["export"]._actions if a.dest == dest)


def test_the_cli_offers_every_format_and_defaults_to_torch_export() -> None:
    assert DEFAULT_FORMAT == "pt2"
    action = _export_parser_action("format")
    assert tuple(action.choices) == EXPORT_FORMATS and action.default == DEFAULT_FORMAT


@pytest.mark.parametrize("name", MODELS)
def test_pt2_export_loads_with_torch_export_and_matches_eager_at_any_batch_size(
    name: str, tmp_path: Path
) -> None:
    classifier = _classifier(name)
    result = export_classifier(classifier, "pt2", tmp_path / "model.pt2")
    assert result.format == "pt2" and result.max_abs_diff <= MAX_ABS_DIFF
    program = torch.export.load(tmp_path / "model.pt2").module()
    images = _unseen_batch()
    with torch.no_grad():
        torch.testing.assert_close(program(images), classifier.model(images), atol=MAX_ABS_DIFF, rtol=0)
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["format"] == "pt2" and sidecar["verified_max_abs_diff"] == result.max_abs_diff
    assert sidecar["class_names"] == ["non_fractured", "fractured"] and sidecar["threshold"] == 0.4


def test_verification_runs_the_saved_file_on_batch_sizes_it_was_not_traced_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = export._EXPORTERS["pt2"]

    def spying(model: torch.nn.Module, example: torch.Tensor, out: Path) -> export.Runner:
        seen.append(example.shape[0])
        run = real(model, example, out)
        return lambda batch: seen.append(batch.shape[0]) or run(batch)

    monkeypatch.setitem(export._EXPORTERS, "pt2", spying)
    export_classifier(_classifier("tiny_cnn"), "pt2", tmp_path / "model.pt2", batch_size=8)
    assert seen == [EXAMPLE_BATCH, 8, 1]


def test_an_export_that_differs_from_the_eager_model_is_deleted_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export._EXPORTERS["pt2"]

    def drifting(model: torch.nn.Module, example: torch.Tensor, out: Path) -> export.Runner:
        run = real(model, example, out)
        return lambda batch: run(batch) + 10 * MAX_ABS_DIFF

    monkeypatch.setitem(export._EXPORTERS, "pt2", drifting)
    with pytest.raises(FractureTuneError, match="pt2 export differs from the eager model by 0.0001"):
        export_classifier(_classifier("tiny_cnn"), "pt2", tmp_path / "model.pt2")
    assert list(tmp_path.iterdir()) == []


def test_bad_requests_fail_before_anything_is_traced(tmp_path: Path) -> None:
    classifier = _classifier("tiny_cnn")
    with pytest.raises(FractureTuneError, match=r"must be a \.pt2 file") as error:
        export_classifier(classifier, "pt2", tmp_path / "model.pt")
    assert error.value.hint == f"use --out {tmp_path / 'model.pt2'}"
    with pytest.raises(FractureTuneError, match="unknown export format 'tflite'; use one of pt2, torch"):
        export_classifier(classifier, "tflite", tmp_path / "model.tflite")
    with pytest.raises(FractureTuneError, match="batch_size must be > 2"):
        export_classifier(classifier, "pt2", tmp_path / "model.pt2", batch_size=2)
    assert list(tmp_path.iterdir()) == []


def test_torchscript_still_exports_on_request_with_one_deprecation_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    classifier = _classifier("tiny_cnn")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        result = export_classifier(classifier, "torchscript", tmp_path / "model.pt")
    assert [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()] == [
        "TorchScript (torch.jit) is deprecated by torch; the default format, pt2, replaces it"
    ]
    assert not [w for w in caught if "torch.jit" in str(w.message)]  # torch's four FutureWarnings folded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reloaded = torch.jit.load(str(result.path))
    images = _unseen_batch()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(images), classifier.model(images), atol=MAX_ABS_DIFF, rtol=0)


@pytest.mark.parametrize("missing", ["onnx", "onnxscript", "onnxruntime"])
def test_onnx_without_the_extra_names_the_install_command(
    missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == missing else real(name, *args)
    )
    needs = f"ONNX export needs {missing}, which is not installed"
    with pytest.raises(FractureTuneError, match=needs) as error:
        export_classifier(_classifier("tiny_cnn"), "onnx", tmp_path / "model.onnx")
    assert error.value.hint is not None and "pip install 'fracture-tune[onnx]'" in error.value.hint
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_runs_in_onnxruntime_for_every_model(name: str, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")  # torch's dynamo-based exporter
    onnxruntime = pytest.importorskip("onnxruntime")
    classifier = _classifier(name)
    result = export_classifier(classifier, "onnx", tmp_path / "model.onnx")
    assert result.max_abs_diff <= MAX_ABS_DIFF
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.json"]  # no .data file
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    images = _unseen_batch()
    (logits,) = session.run(["logits"], {"image": images.numpy()})
    with torch.no_grad():
        expected = classifier.model(images).numpy()
    np.testing.assert_allclose(logits, expected, atol=MAX_ABS_DIFF, rtol=0)


def _ensemble_classifier() -> Classifier:
    configs = [{"model": "base_cnn", "input_size": 16}, {"model": "deep_cnn"}]
    torch.manual_seed(0)
    models = [build_model("base_cnn", input_size=16), build_model("deep_cnn", input_size=IMAGE_SIZE)]
    metadata = classifier_metadata(
        TrainConfig.from_flat(configs[0]),
        image_size=IMAGE_SIZE,
        threshold=0.4,
        class_names=("non_fractured", "fractured"),
        members=ensemble_members_metadata(configs, ["a", "b"], image_size=IMAGE_SIZE),
    )
    return Classifier(build_ensemble(models, configs, IMAGE_SIZE), metadata, source="test:ensemble")


def _load_export(export_format: str, path: Path) -> Any:
    """The exported file as a function of a float batch, the way its format is served."""
    if export_format == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda images: torch.from_numpy(session.run(["logits"], {"image": images.numpy()})[0])
    if export_format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path))
    return torch.export.load(path).module()


@pytest.mark.parametrize("export_format", EXPORT_FORMATS)
def test_an_ensemble_of_members_at_other_sizes_exports_and_matches_eager(
    export_format: str, tmp_path: Path
) -> None:
    """Each member's antialiased resize is part of the graph, in every format (ONNX: Resize, antialias)."""
    if export_format == "onnx":
        pytest.importorskip("onnxscript")
    classifier = _ensemble_classifier()
    suffix = {"pt2": ".pt2", "torchscript": ".pt", "onnx": ".onnx"}[export_format]
    result = export_classifier(classifier, export_format, tmp_path / f"model{suffix}")
    assert result.max_abs_diff <= MAX_ABS_DIFF
    images = _unseen_batch()
    with torch.no_grad():
        exported, eager = _load_export(export_format, result.path)(images), classifier.model(images)
    torch.testing.assert_close(exported, eager, atol=MAX_ABS_DIFF, rtol=0)
    assert json.loads(result.sidecar.read_text())["members"] == [
        {"label": "a", "input_size": 16},
        {"label": "b", "input_size": IMAGE_SIZE},
    ]
