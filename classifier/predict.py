"""Use a trained classifier: load it (registry, run or folder), score images, report per image.

Every file goes through ``data.decode.decode_image`` — the function that prepared the training images —
and the engine's ``predict_proba`` (an ensemble: the same preprocessing, then the mean of its members'
probabilities), so a served image is preprocessed exactly like a training one.
A file that cannot be decoded (a PDF, a text file named .jpg, a truncated JPEG) becomes a row with
``status=rejected`` and the reason; the batch goes on. From Python, ``Classifier.predict`` also takes an image
file's bytes (decoded by the same code as the file), PIL images and uint8 arrays, which go through the same
grayscale conversion and resize.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fracture_tune.classifier.call_environment import call_environment
from fracture_tune.classifier.evaluation import (
    ConfusionCounts,
    MetricInterval,
    bootstrap_metrics,
    confusion_counts,
)
from fracture_tune.classifier.package import (
    METADATA_FILE,
    PACKAGE_FOLDERS,
    ensemble_probabilities,
    find_package,
    hash_recorded_beside,
    model_inputs,
    read_package,
    verify_weights,
)
from fracture_tune.classifier.registry import (
    MLFLOW_URI_SCHEMES,
    SYNTHETIC_DATA,
    TRAINING_DATA_TAG,
    download_model,
)
from fracture_tune.data.decode import (
    RejectedImage,
    decode_image,
    decode_image_bytes,
    decode_pil_image,
    printable_path,
)
from fracture_tune.errors import FractureTuneError

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
# a path, an image file's bytes, a uint8 array or a PIL image
ImageInput = str | os.PathLike[str] | bytes | np.ndarray | Any


@dataclass
class Classifier:
    """A trained classifier: the eager model plus what ``retrain`` stored with it (``package.py``)."""

    model: nn.Module
    metadata: dict[str, Any]
    source: str

    @property
    def image_size(self) -> int:
        return int(self.metadata["image_size"])

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def class_names(self) -> tuple[str, str]:
        negative, positive = self.metadata["class_names"]
        return str(negative), str(positive)

    @property
    def config(self) -> dict[str, Any]:
        """The flat engine config it was trained with (an ensemble's: its best member's)."""
        return dict(self.metadata["config"])

    @property
    def is_ensemble(self) -> bool:
        """Several models whose probabilities are averaged (``trainables/ensemble.py``)."""
        return bool(self.metadata.get("members"))

    @property
    def members(self) -> list[dict[str, Any]]:
        """An ensemble's members (``config``, ``input_size``, ``label`` each); empty for a single model."""
        return [dict(member) for member in self.metadata.get("members") or []]

    def predict(
        self, images: ImageInput | Sequence[ImageInput], threshold: float | None = None
    ) -> pd.DataFrame:
        """One row per image: ``input``, ``probability`` (of the positive class), ``label`` at the threshold
        (the registered one unless given), ``status`` (ok | rejected | missing) and ``reason``.

        ``images``: a path (a file, or a folder searched for image files), an image file's bytes, a PIL
        image, a uint8 array [H, W] (one image) or [N, H, W] (a batch), or a list of these. Images of another
        size are resized like training images; a file that cannot be read becomes a ``rejected`` row, not an
        exception.
        """
        import pandas as pd

        rows, decoded, good_rows = decode_inputs(images, self.image_size)
        _score_rows(self, rows, decoded, good_rows, threshold)
        frame = pd.DataFrame([asdict(row) for row in rows], columns=list(PredictionRow.__dataclass_fields__))
        return frame.rename(columns={"path": "input"})

    def predict_proba(self, images: ImageInput | Sequence[ImageInput]) -> np.ndarray:
        """P(positive) per image (NaN for an image that could not be read)."""
        frame = self.predict(images)
        return frame["probability"].astype(float).to_numpy()


def load_classifier(
    model: str | os.PathLike[str], tracking_uri: str | None = None, verify: bool = True
) -> Classifier:
    """Rebuild the eager model (CPU, eval mode) from ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
    ``runs:/RUN_ID/model`` or a local model folder (a retrain's ``model/`` or its run folder).

    Fail closed: the weights' sha256 must equal what retrain recorded — the ``weights_sha256`` tag of the run
    that logged a registered or run model (read from the tracking store), or ``report.json`` beside a local
    folder — else ``FractureTuneError`` (a model with no record is refused too). ``verify=False`` skips only
    that comparison, for a model from elsewhere that you trust; the weights are still read with
    ``torch.load(weights_only=True)``, which never runs code from the file.
    """
    from fracture_tune.classifier.registry import hash_recorded_in_mlflow
    from fracture_tune.classifier.tracking_uri import resolve_tracking_uri

    model_ref = os.fspath(model)
    local = Path(model_ref).expanduser()
    with call_environment(), tempfile.TemporaryDirectory(prefix="fracture-tune-load-") as scratch:
        if local.exists():
            folder = find_package(local)
            if folder is None:
                raise FractureTuneError(
                    f"{str(local)!r} is not a fracture-tune model folder (no {METADATA_FILE} under "
                    f"{' or '.join(f'{name}/' for name in PACKAGE_FOLDERS)})",
                    hint="pass the model folder written by `fracture-tune retrain` "
                    "(.fracture-tune/runs/NAME/retrain/model) or a models:/NAME@champion URI",
                )
            recorded = hash_recorded_beside(folder)
        elif model_ref.startswith(MLFLOW_URI_SCHEMES):
            uri = resolve_tracking_uri(tracking_uri)
            folder = download_model(model_ref, uri, Path(scratch))
            recorded = hash_recorded_in_mlflow(model_ref, uri)
        else:
            raise FractureTuneError(
                f"model {model_ref!r} is neither an existing folder nor an MLflow URI",
                hint="use models:/fracture-classifier@champion, runs:/RUN_ID/model or a local model folder",
            )
        if verify:
            verify_weights(folder, recorded, model_ref)
        network, metadata = read_package(folder)
    if metadata.get(TRAINING_DATA_TAG) == SYNTHETIC_DATA:
        log.warning(
            "%s was trained on synthetic images, not radiographs: its scores on real X-rays mean nothing "
            "(retrain on your own images)",
            model_ref,
        )
    return Classifier(model=network, metadata=metadata, source=model_ref)


def classifier_inputs(classifier: Classifier, images: np.ndarray) -> torch.Tensor:
    return model_inputs(images, int(classifier.metadata["input_size"]))


def classifier_probabilities(classifier: Classifier, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """P(positive) for uint8 images [N, S, S], through the engine's own inference path (an ensemble: its
    module, on the same preprocessing: ``package.ensemble_probabilities``)."""
    from fracture_tune.trainables.engine import predict_proba

    if len(images) == 0:
        return np.zeros(0, dtype=np.float64)
    if not classifier.is_ensemble:
        config = {**classifier.config, "device": "cpu"}
        return np.asarray(predict_proba(classifier.model, images, config), dtype=np.float64)
    side = int(classifier.metadata["input_size"])
    return ensemble_probabilities(classifier.model, images, side, batch_size)


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files as given (any suffix: decode decides), folders searched recursively for image suffixes."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            found = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            if not found:
                log.warning("no image files (%s) under %s", ", ".join(sorted(IMAGE_SUFFIXES)), path)
            skipped = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
            if skipped:  # said once, so a PDF in the folder is not silently ignored
                log.warning(
                    "skipped %d non-image file(s) under %s: %s",
                    len(skipped),
                    path,
                    ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""),
                )
            paths.extend(found)
        else:
            paths.append(path)
    return paths


@dataclass
class PredictionRow:
    path: str
    status: str  # ok | rejected | missing
    probability: float | None = None
    label: str = ""
    reason: str = ""


def decode_files(paths: Iterable[Path], image_size: int) -> tuple[list[PredictionRow], np.ndarray, list[int]]:
    """Rows for every path, the decoded images of the good ones, and those rows' indices."""
    return decode_inputs(list(paths), image_size)


def decode_inputs(
    images: ImageInput | Sequence[ImageInput], image_size: int
) -> tuple[list[PredictionRow], np.ndarray, list[int]]:
    """Rows for every input (path, PIL image or uint8 array), the decoded images of the good ones, and
    those rows' indices."""
    rows: list[PredictionRow] = []
    decoded: list[np.ndarray] = []
    good_rows: list[int] = []
    for shown, item in _each_input(images):
        try:
            pixels = _decode_one(item, image_size)
        except FileNotFoundError:
            rows.append(PredictionRow(shown, "missing", reason="no such file"))
            continue
        except RejectedImage as rejected:
            rows.append(PredictionRow(shown, "rejected", reason=rejected.reason))
            continue
        good_rows.append(len(rows))
        rows.append(PredictionRow(shown, "ok"))
        decoded.append(pixels)
    stacked = np.stack(decoded) if decoded else np.zeros((0, image_size, image_size), np.uint8)
    return rows, stacked, good_rows


def _each_input(images: ImageInput | Sequence[ImageInput]) -> Iterable[tuple[str, Any]]:
    """(what to call it in the table, the input) for every image in ``images``."""
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            yield "array[0]", images
            return
        if images.ndim != 3:
            raise FractureTuneError(
                f"an image array must be [H, W] or [N, H, W] uint8 grayscale, got shape {images.shape}",
                hint="convert colour images to grayscale first, or pass file paths",
            )
        for index, image in enumerate(images):
            yield f"array[{index}]", image
        return
    if isinstance(images, str | os.PathLike | bytes | bytearray) or _is_pil_image(images):
        images = [images]
    for index, item in enumerate(images):
        if isinstance(item, str | os.PathLike):
            for path in expand_inputs([os.fspath(item)]):  # a folder: its image files, recursively
                yield printable_path(str(path)), path
        elif isinstance(item, bytes | bytearray):
            yield f"bytes[{index}]", item
        elif isinstance(item, np.ndarray):
            yield f"array[{index}]", item
        elif _is_pil_image(item):
            yield f"image[{index}]", item
        else:
            raise FractureTuneError(
                f"input {index} is a {type(item).__name__}: expected a path, an image file's bytes, a PIL "
                "image or a uint8 array"
            )


def _decode_one(item: Any, image_size: int) -> np.ndarray:
    from PIL import Image

    if isinstance(item, Path):
        if not item.exists():
            raise FileNotFoundError(item)
        return decode_image(item, image_size)
    if isinstance(item, bytes | bytearray):
        return decode_image_bytes(item, image_size)
    if isinstance(item, np.ndarray):
        if item.ndim != 2 or item.dtype != np.uint8:
            raise RejectedImage(
                "array", f"expected a uint8 [H, W] grayscale array, got {item.dtype} of shape {item.shape}"
            )
        item = Image.fromarray(item)
    return decode_pil_image(item, image_size)


def _is_pil_image(value: Any) -> bool:
    from PIL import Image

    return isinstance(value, Image.Image)


def _score_rows(
    classifier: Classifier,
    rows: list[PredictionRow],
    images: np.ndarray,
    good_rows: list[int],
    threshold: float | None,
) -> None:
    cutoff = classifier.threshold if threshold is None else float(threshold)
    probabilities = classifier_probabilities(classifier, images)
    negative, positive = classifier.class_names
    for row_index, probability in zip(good_rows, probabilities, strict=True):
        rows[row_index].probability = float(probability)
        rows[row_index].label = positive if probability >= cutoff else negative


def predict_files(
    classifier: Classifier, paths: Sequence[Path], threshold: float | None = None
) -> tuple[list[PredictionRow], np.ndarray, list[int]]:
    """Score every file; returns the rows, the decoded images and the row index of each image."""
    rows, images, good_rows = decode_files(paths, classifier.image_size)
    _score_rows(classifier, rows, images, good_rows, threshold)
    return rows, images, good_rows


def write_predictions(rows: Sequence[PredictionRow], out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records = [asdict(row) for row in rows]
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    elif out.suffix.lower() == ".csv":
        with out.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(PredictionRow.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(records)
    else:
        raise FractureTuneError(f"--out {str(out)!r}: unknown format", hint="use a .csv or .json file name")
    return out


def write_explanations(
    classifier: Classifier,
    rows: Sequence[PredictionRow],
    images: np.ndarray,
    good_rows: Sequence[int],
    out_dir: Path,
    batch_size: int = 32,
) -> list[Path]:
    """A Grad-CAM overlay PNG per predicted image, named ``NNNN_<file stem>_gradcam.png``."""
    from fracture_tune.classifier.plots import save_gradcam_overlay
    from fracture_tune.trainables.explain import grad_cam

    written: list[Path] = []
    for start in range(0, len(good_rows), batch_size):
        inputs = classifier_inputs(classifier, images[start : start + batch_size])
        heatmaps = grad_cam(classifier.model, inputs).numpy()
        # Show the pixels the model saw (input_size), undoing the normalisation.
        shown = ((inputs[:, 0].numpy() * 0.5 + 0.5) * 255).clip(0, 255).astype(np.uint8)
        for offset, row_index in enumerate(good_rows[start : start + batch_size]):
            row = rows[row_index]
            name = f"{row_index:04d}_{Path(row.path).stem[:60]}_gradcam.png"
            caption = f"{Path(row.path).name[:40]}\nP({classifier.class_names[1]}) = {row.probability:.3f}"
            overlay = save_gradcam_overlay(shown[offset], heatmaps[offset], Path(out_dir) / name, caption)
            written.append(overlay)
    return written


@dataclass
class FolderEvaluation:
    rows: list[PredictionRow]
    labels: np.ndarray
    probabilities: np.ndarray
    threshold: float
    intervals: dict[str, MetricInterval]
    counts: ConfusionCounts


def evaluate_folder(
    classifier: Classifier,
    source: Path,
    *,
    label_map: dict[str, int] | None = None,
    threshold: float | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> FolderEvaluation:
    """Metrics with bootstrap CIs on a labelled folder (class sub-folders or a CSV, as ``data prepare``)."""
    from fracture_tune.data.sources import scan_source

    scan = scan_source(source, label_map)
    cutoff = classifier.threshold if threshold is None else float(threshold)
    rows, _images, good_rows = predict_files(classifier, [item.path for item in scan.files], cutoff)
    if not good_rows:
        raise FractureTuneError(
            f"none of the {len(rows)} files under {str(source)!r} could be decoded",
            hint="check the files; `fracture-tune data prepare` lists every rejection",
        )
    labels = np.array([scan.files[index].label for index in good_rows], dtype=np.int64)
    probabilities = np.array([rows[index].probability for index in good_rows], dtype=np.float64)
    intervals = bootstrap_metrics(labels, probabilities, threshold=cutoff, n_resamples=n_resamples, seed=seed)
    return FolderEvaluation(
        rows, labels, probabilities, cutoff, intervals, confusion_counts(labels, probabilities, cutoff)
    )


def format_table(rows: Sequence[PredictionRow]) -> str:
    """A fixed-width table for the terminal: path, probability, label, status, reason."""
    width = min(max([len(row.path) for row in rows] + [4]), 70)
    lines = [f"{'path':<{width}}  {'prob':>6}  {'label':<14}  {'status':<8}  reason"]
    for row in rows:
        probability = f"{row.probability:.4f}" if row.probability is not None else "-"
        path = row.path if len(row.path) <= width else "…" + row.path[-(width - 1) :]
        label = row.label or "-"
        lines.append(f"{path:<{width}}  {probability:>6}  {label:<14}  {row.status:<8}  {row.reason}")
    return "\n".join(lines)
