"""Use a trained classifier: load it (registry, run or folder), score image files, report per file.

Every file goes through ``data.decode.decode_image`` — the function that prepared the training images —
and the engine's ``predict_proba``, so a served image is preprocessed exactly like a training one.
A file that cannot be decoded (a PDF, a text file named .jpg, a truncated JPEG) becomes a row with
``status=rejected`` and the reason; the batch goes on.
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fracture_tune.data.decode import RejectedImage, decode_image, printable_path
from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.evaluation import (
    ConfusionCounts,
    MetricInterval,
    bootstrap_metrics,
    confusion_counts,
)
from fracture_tune.search.registry import METADATA_FILE, WEIGHTS_FILE, resolve_tracking_uri, sha256_of_file

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
_MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:", "s3://", "gs://", "wasbs://", "dbfs:/", "http")


@dataclass
class LoadedClassifier:
    """The eager model plus what ``retrain`` stored with it (see ``search.registry``)."""

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
        return dict(self.metadata["config"])


def _package_dir(model_ref: str, tracking_uri: str | None, scratch: Path) -> Path:
    local = Path(model_ref).expanduser()
    if local.exists():
        for candidate in (local, local / "model", local / "retrain" / "model"):
            if (candidate / "extra_files" / METADATA_FILE).is_file():
                return candidate
        raise FractureTuneError(
            f"{str(local)!r} is not a fracture-tune model folder (no extra_files/{METADATA_FILE})",
            hint="pass the model folder written by `fracture-tune retrain` "
            "(.fracture-tune/runs/NAME/retrain/model) or a models:/NAME@champion URI",
        )
    if not model_ref.startswith(_MLFLOW_SCHEMES):
        raise FractureTuneError(
            f"model {model_ref!r} is neither an existing folder nor an MLflow URI",
            hint="use models:/fracture-classifier@champion, runs:/RUN_ID/model or a local model folder",
        )
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_ref, dst_path=str(scratch)))
    except (MlflowException, OSError) as error:
        raise FractureTuneError(
            f"cannot fetch model {model_ref!r} from {mlflow.get_tracking_uri()}: {error}",
            hint="check the name/alias (`mlflow models` UI) and pass --tracking-uri if it lives elsewhere",
        ) from error


def verify_recorded_hash(folder: Path) -> None:
    """Refuse weights whose sha256 differs from what ``retrain`` recorded in ``report.json`` beside them."""
    report = folder.parent / "report.json"
    if not report.is_file():
        return  # a downloaded or copied model folder: nothing recorded to compare with
    try:
        recorded = json.loads(report.read_text(encoding="utf-8"))["model"]["weights_sha256"]
    except (ValueError, KeyError, TypeError):
        return
    weights = folder / "extra_files" / WEIGHTS_FILE
    if recorded and weights.is_file() and sha256_of_file(weights) != recorded:
        raise FractureTuneError(
            f"{weights}: sha256 {sha256_of_file(weights)[:16]}... differs from {str(recorded)[:16]}... "
            f"recorded by retrain in {report}",
            hint="the model file changed after retrain: restore it or run `fracture-tune retrain` again",
        )


def load_classifier(model_ref: str, tracking_uri: str | None = None) -> LoadedClassifier:
    """Rebuild the eager model from a registry URI, a run URI or a local folder (CPU, eval mode)."""
    import torch

    from fracture_tune.trainables.models import build_model

    with tempfile.TemporaryDirectory(prefix="fracture-tune-load-") as scratch:
        folder = _package_dir(model_ref, tracking_uri, Path(scratch))
        verify_recorded_hash(folder)
        metadata = json.loads((folder / "extra_files" / METADATA_FILE).read_text(encoding="utf-8"))
        state = torch.load(folder / "extra_files" / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model_kwargs = dict(metadata.get("model_kwargs", {}))
    # The stored weights replace any pretrained start; the original file need not exist here.
    model_kwargs.pop("pretrained_path", None)
    model = build_model(metadata["config"]["model"], input_size=int(metadata["input_size"]), **model_kwargs)
    model.load_state_dict(state)
    model.eval()
    return LoadedClassifier(model=model, metadata=metadata, source=model_ref)


def model_inputs(images: np.ndarray, input_size: int) -> torch.Tensor:
    """uint8 [N, S, S] → the normalised float [N, 1, S', S'] forward takes (the engine's own functions)."""
    import torch

    from fracture_tune.trainables.device import images_to_device, normalise, to_unit_range

    on_cpu = images_to_device(np.ascontiguousarray(images), int(input_size), torch.device("cpu"))
    return normalise(to_unit_range(on_cpu), channels_last=False)


def classifier_inputs(classifier: LoadedClassifier, images: np.ndarray) -> torch.Tensor:
    return model_inputs(images, int(classifier.metadata["input_size"]))


def classifier_probabilities(classifier: LoadedClassifier, images: np.ndarray) -> np.ndarray:
    """P(positive) for uint8 images [N, S, S], through the engine's own inference path."""
    from fracture_tune.trainables.engine import predict_proba

    if len(images) == 0:
        return np.zeros(0, dtype=np.float64)
    config = {**classifier.config, "device": "cpu"}
    return np.asarray(predict_proba(classifier.model, images, config), dtype=np.float64)


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
                log.warning("skipped %d non-image file(s) under %s: %s", len(skipped), path,
                            ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))  # fmt: skip
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
    rows: list[PredictionRow] = []
    images: list[np.ndarray] = []
    good_rows: list[int] = []
    for path in paths:
        shown = printable_path(str(path))
        if not path.exists():
            rows.append(PredictionRow(shown, "missing", reason="no such file"))
            continue
        try:
            images.append(decode_image(path, image_size))
        except RejectedImage as rejected:
            rows.append(PredictionRow(shown, "rejected", reason=rejected.reason))
            continue
        good_rows.append(len(rows))
        rows.append(PredictionRow(shown, "ok"))
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size), np.uint8)
    return rows, stacked, good_rows


def predict_files(
    classifier: LoadedClassifier, paths: Sequence[Path], threshold: float | None = None
) -> tuple[list[PredictionRow], np.ndarray, list[int]]:
    """Score every file; returns the rows, the decoded images and the row index of each image."""
    cutoff = classifier.threshold if threshold is None else float(threshold)
    rows, images, good_rows = decode_files(paths, classifier.image_size)
    probabilities = classifier_probabilities(classifier, images)
    negative, positive = classifier.class_names
    for row_index, probability in zip(good_rows, probabilities, strict=True):
        rows[row_index].probability = float(probability)
        rows[row_index].label = positive if probability >= cutoff else negative
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
    classifier: LoadedClassifier,
    rows: Sequence[PredictionRow],
    images: np.ndarray,
    good_rows: Sequence[int],
    out_dir: Path,
    batch_size: int = 32,
) -> list[Path]:
    """A Grad-CAM overlay PNG per predicted image, named ``NNNN_<file stem>_gradcam.png``."""
    from fracture_tune.search.plots import save_gradcam_overlay
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
    classifier: LoadedClassifier,
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
