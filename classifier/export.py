"""Export a trained classifier: ``torch.export`` (a ``.pt2`` file) by default, TorchScript or ONNX on request.

The exported graph is the network only: input float32 [B, 1, S, S] normalised like training
(pixels / 255, then (x - 0.5) / 0.5), output logits [B, 2] (softmax column 1 = the positive class); the batch
dimension is dynamic (an ensemble's graph holds its members and their resizes: the same input and output).
A sidecar ``<FILE>.json`` next to the export holds that preprocessing, the class names
and the threshold. Every export is loaded back from disk and checked against the eager model on real-looking
inputs, at batch sizes other than the one it was traced with, before it is kept.

- ``pt2`` (default): ``torch.export.save``; load with ``torch.export.load(path).module()``.
- ``torchscript``: ``torch.jit.trace``; torch.jit is deprecated (torch 2.14 warns on every call) but is still
  what LibTorch (C++) and older serving stacks load, so it stays, on request, until torch removes it.
- ``onnx``: torch's ``torch.export``-based exporter (``dynamo=True``), verified with onnxruntime; needs the
  ``onnx`` extra.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fracture_tune.classifier.predict import Classifier, classifier_inputs
from fracture_tune.errors import FractureTuneError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

DEFAULT_FORMAT = "pt2"
EXPORT_FORMATS = ("pt2", "torchscript", "onnx")
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
MAX_ABS_DIFF = 1e-5
# The graph is traced on EXAMPLE_BATCH images (torch.export specialises a dimension of size 0 or 1) and
# verified on a batch of another size and on a single image, so a batch size baked in would show.
EXAMPLE_BATCH = 2

Runner = Callable[["torch.Tensor"], np.ndarray]


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
    classifier: Classifier, export_format: str, out: Path | str, *, batch_size: int = 8, seed: int = 0
) -> ExportResult:
    """Write ``out`` in ``export_format`` (one of ``EXPORT_FORMATS``; the CLI defaults to ``DEFAULT_FORMAT``);
    raise if its outputs differ from the eager model's by more than ``MAX_ABS_DIFF``."""
    import torch

    out = Path(out)
    _check_request(export_format, out, batch_size)
    inputs = classifier_inputs(classifier, _verification_batch(classifier, batch_size, seed))
    model = classifier.model.eval()
    with torch.no_grad():
        expected = model(inputs).numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    run_export = _EXPORTERS[export_format](model, inputs[:EXAMPLE_BATCH], out)
    checks = ((inputs, expected), (inputs[:1], expected[:1]))
    max_abs_diff = max(float(np.max(np.abs(run_export(batch) - want))) for batch, want in checks)
    if not max_abs_diff <= MAX_ABS_DIFF:
        out.unlink(missing_ok=True)
        raise FractureTuneError(
            f"{export_format} export differs from the eager model by {max_abs_diff:.3g} (> {MAX_ABS_DIFF})",
            hint="report this model; try another --format",
        )
    sidecar = out.with_name(out.name + ".json")
    sidecar.write_text(json.dumps(_sidecar(classifier, export_format, max_abs_diff), indent=2) + "\n")
    log.info("exported %s to %s (max abs diff %.2g)", export_format, out, max_abs_diff)
    return ExportResult(out, sidecar, export_format, max_abs_diff)


def _check_request(export_format: str, out: Path, batch_size: int) -> None:
    """Refuse what would fail late, after the model is traced: unknown format, wrong suffix, missing extra."""
    if export_format not in EXPORT_FORMATS:
        raise FractureTuneError(
            f"unknown export format {export_format!r}; use one of {', '.join(EXPORT_FORMATS)}"
        )
    if export_format == "pt2" and out.suffix != ".pt2":
        # torch.export.load warns on any other suffix and a loader may refuse it.
        raise FractureTuneError(
            f"a pt2 export must be a .pt2 file, got {str(out)!r}", hint=f"use --out {out.with_suffix('.pt2')}"
        )
    if batch_size <= EXAMPLE_BATCH:
        raise FractureTuneError(f"batch_size must be > {EXAMPLE_BATCH} (the traced batch), got {batch_size}")
    if export_format == "onnx":
        missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise FractureTuneError(
                f"ONNX export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                "not installed",
                hint="pip install 'fracture-tune[onnx]' (or use the default --format pt2)",
            )


def _batch_dimension() -> dict[int, object]:
    import torch

    return {0: torch.export.Dim("batch", min=1)}


def _export_pt2(model: nn.Module, example: torch.Tensor, out: Path) -> Runner:
    import torch

    program = torch.export.export(model, (example,), dynamic_shapes=(_batch_dimension(),))
    torch.export.save(program, out)
    reloaded = torch.export.load(out).module()

    def run(batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(reloaded(batch).numpy())

    return run


def _export_torchscript(model: nn.Module, example: torch.Tensor, out: Path) -> Runner:
    import torch

    log.warning("TorchScript (torch.jit) is deprecated by torch; the default format, pt2, replaces it")
    with warnings.catch_warnings():  # the one warning above, not one per torch.jit call
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated", category=FutureWarning)
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(out))
        reloaded = torch.jit.load(str(out), map_location="cpu")

    def run(batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(reloaded(batch).numpy())

    return run


def _export_onnx(model: nn.Module, example: torch.Tensor, out: Path) -> Runner:
    import onnxruntime
    import torch

    torch.onnx.export(
        model,
        (example,),
        str(out),
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes=(_batch_dimension(),),
        dynamo=True,
        external_data=False,  # one self-contained file (the models are far below ONNX's 2 GB limit)
        verbose=False,
    )
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def run(batch: torch.Tensor) -> np.ndarray:
        return np.asarray(session.run(["logits"], {"image": batch.numpy()})[0])

    return run


_EXPORTERS: dict[str, Callable[[nn.Module, torch.Tensor, Path], Runner]] = {
    "pt2": _export_pt2,
    "torchscript": _export_torchscript,
    "onnx": _export_onnx,
}


def _sidecar(classifier: Classifier, export_format: str, max_abs_diff: float) -> dict[str, object]:
    meta = classifier.metadata
    sidecar: dict[str, object] = {
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
    if classifier.is_ensemble:
        sidecar["output"] = (
            "logits [B, 2]: log of the members' mean probabilities; softmax column 1 = P(positive)"
        )
        sidecar["members"] = [
            {"label": member["label"], "input_size": member["input_size"]} for member in classifier.members
        ]
    return sidecar
