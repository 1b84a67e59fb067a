"""Export a trained classifier to TorchScript (or ONNX when the ``onnx`` package is installed).

The exported graph is the network only: input float32 [B, 1, S, S] normalised like training
(pixels / 255, then (x - 0.5) / 0.5), output logits [B, 2] (softmax column 1 = the positive class).
A sidecar ``<FILE>.json`` next to the export holds that preprocessing, the class names and the threshold.
Every export is checked against the eager model on a batch of real-looking inputs before it is kept.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.classifier.predict import Classifier, classifier_inputs

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("torchscript", "onnx")
MAX_ABS_DIFF = 1e-5


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sidecar: Path
    format: str
    max_abs_diff: float


def _verification_batch(classifier: Classifier, batch_size: int, seed: int) -> np.ndarray:
    """Random uint8 images with radiograph-like structure (smooth background + noise), as the model sees."""
    rng = np.random.default_rng(seed)
    size = classifier.image_size
    ramp = np.linspace(30, 200, size)[None, :, None] * rng.uniform(0.5, 1.0, (batch_size, 1, 1))
    images = ramp + rng.normal(0, 25, (batch_size, size, size))
    return np.clip(images, 0, 255).astype(np.uint8)


def export_classifier(
    classifier: Classifier, export_format: str, out: Path, *, batch_size: int = 8, seed: int = 0
) -> ExportResult:
    """Write ``out`` in ``export_format``; raise if its outputs differ from the eager model's by > 1e-5."""
    import torch

    if export_format not in EXPORT_FORMATS:
        raise FractureTuneError(
            f"unknown export format {export_format!r}; use one of {', '.join(EXPORT_FORMATS)}"
        )
    inputs = classifier_inputs(classifier, _verification_batch(classifier, batch_size, seed))
    model = classifier.model.eval()
    with torch.no_grad():
        expected = model(inputs).numpy()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if export_format == "torchscript":
        actual = _export_torchscript(model, inputs, out)
    else:
        actual = _export_onnx(model, inputs, out)
    max_abs_diff = float(np.max(np.abs(actual - expected)))
    if not max_abs_diff <= MAX_ABS_DIFF:
        out.unlink(missing_ok=True)
        raise FractureTuneError(
            f"{export_format} export differs from the eager model by {max_abs_diff:.3g} (> {MAX_ABS_DIFF})",
            hint="report this model; try the other export format",
        )
    sidecar = out.with_name(out.name + ".json")
    sidecar.write_text(json.dumps(_sidecar(classifier, export_format, max_abs_diff), indent=2) + "\n")
    log.info("exported %s to %s (max abs diff %.2g)", export_format, out, max_abs_diff)
    return ExportResult(out, sidecar, export_format, max_abs_diff)


def _export_torchscript(model: torch.nn.Module, inputs: torch.Tensor, out: Path) -> np.ndarray:
    import torch

    with torch.no_grad():
        traced = torch.jit.trace(model, inputs[:2], check_trace=False)
    torch.jit.save(traced, str(out))
    reloaded = torch.jit.load(str(out), map_location="cpu")
    with torch.no_grad():
        return np.asarray(reloaded(inputs).numpy())


def _export_onnx(model: torch.nn.Module, inputs: torch.Tensor, out: Path) -> np.ndarray:
    import torch

    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise FractureTuneError(
            f"ONNX export needs the {' and '.join(missing)} package(s), which are not installed",
            hint="pip install onnx onnxruntime (or use --format torchscript)",
        )
    import onnxruntime

    torch.onnx.export(
        model,
        (inputs[:2],),
        str(out),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"image": inputs.numpy()})[0])


def _sidecar(classifier: Classifier, export_format: str, max_abs_diff: float) -> dict[str, object]:
    meta = classifier.metadata
    return {
        "format": export_format,
        "source_model": classifier.source,
        "input": "float32 [B, 1, S, S]: uint8 pixels from data.decode.decode_image (resized to input_size), "
        "/ 255, then (x - 0.5) / 0.5",
        "image_size": meta["image_size"],
        "input_size": meta["input_size"],
        "normalisation": meta.get("normalisation", {"mean": 0.5, "std": 0.5}),
        "output": "logits [B, 2]; softmax column 1 = P(positive)",
        "class_names": meta["class_names"],
        "threshold": meta["threshold"],
        "verified_max_abs_diff": max_abs_diff,
    }
