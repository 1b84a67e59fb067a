"""The on-disk model package, both ways: what ``retrain`` writes into MLflow's model and what ``predict``
reads back.

A logged model folder (an MLflow pyfunc: ``pyfunc_model.py``) carries two files of ours under
``artifacts/``, the ones both ``predict`` and MLflow's pyfunc load:
- ``fracture_tune_model.json`` — the preprocessing (image size, normalisation), class names, the operating
  threshold and the training config: everything ``predict`` needs besides the weights;
- ``weights.pt`` — the state_dict, read with ``torch.load(weights_only=True)`` into the eager model
  (Grad-CAM needs its module hooks).
Models logged before the pyfunc (MLflow's PyTorch flavour) hold the same two files under ``extra_files/``;
they are read from there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.data.errors import FractureTuneError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from fracture_tune.trainables.config import TrainConfig

METADATA_FILE = "fracture_tune_model.json"
WEIGHTS_FILE = "weights.pt"
# Where a model folder keeps the two files: the pyfunc's artifacts (now), the PyTorch flavour's (before).
PACKAGE_FOLDERS = ("artifacts", "extra_files")
FORMAT_VERSION = 1
# pixels / 255, then (x - mean) / std: what the engine feeds a model (trainables/device.py).
NORMALISATION = {"scale": 1 / 255, "mean": 0.5, "std": 0.5}


def classifier_metadata(
    config: TrainConfig,
    *,
    image_size: int,
    threshold: float,
    class_names: tuple[str, str] | list[str],
    dataset_key: str = "",
    split_hash: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """What a model needs besides its weights to be used like it was trained (stored with it)."""
    return {
        "format_version": FORMAT_VERSION,
        "config": config.to_flat(),
        "model_kwargs": dict(config.model_kwargs),
        "image_size": int(image_size),
        "input_size": int(config.input_size or image_size),
        "normalisation": dict(NORMALISATION),
        "threshold": float(threshold),
        "class_names": list(class_names),
        "dataset_key": dataset_key,
        "split_hash": split_hash,
        **extra,
    }


def write_package_files(folder: Path, model: nn.Module, metadata: dict[str, Any]) -> tuple[Path, Path]:
    """The two files ``predict`` reads (metadata JSON, state_dict), written into ``folder``."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / WEIGHTS_FILE
    torch.save({key: value.contiguous() for key, value in model.state_dict().items()}, weights_path)
    metadata_path = folder / METADATA_FILE
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return metadata_path, weights_path


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Written by MLflow into a folder downloaded from a models:/NAME URI (the name and version): not logged.
DOWNLOAD_ONLY_FILES = frozenset({"registered_model_meta"})


def sha256_of_folder(folder: Path) -> str:
    """One sha256 for the files of a logged model folder: of the sorted ``relative/path sha256`` lines of
    every file MLflow logged — all it serves from (MLmodel, python_model.pkl, the two package files, the
    environment files, the input example) — whether the folder came from a run or the registry."""
    folder = Path(folder)
    lines = sorted(
        f"{path.relative_to(folder).as_posix()} {sha256_of_file(path)}\n"
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).as_posix() not in DOWNLOAD_ONLY_FILES
    )
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def package_file(folder: Path, name: str) -> Path:
    """``folder``'s ``METADATA_FILE`` or ``WEIGHTS_FILE``, wherever this model's format keeps it (the
    current place when it is in none)."""
    for subfolder in PACKAGE_FOLDERS:
        if (folder / subfolder / name).is_file():
            return folder / subfolder / name
    return folder / PACKAGE_FOLDERS[0] / name


def find_package(local: Path) -> Path | None:
    """The model folder at or under ``local`` (a model folder, a retrain folder, a search's run folder)."""
    for candidate in (local, local / "model", local / "retrain" / "model"):
        if package_file(candidate, METADATA_FILE).is_file():
            return candidate
    return None


# How a user loads a model whose weights nothing recorded (a model from elsewhere), and what that skips.
SKIP_CHECK_HINT = (
    "if you trust this model as it is, load it with --skip-hash-check (Python: verify=False); that "
    "skips only the comparison with retrain's record — the weights are still read with "
    "torch.load(weights_only=True)"
)


@dataclass(frozen=True)
class RecordedHash:
    """The weights' sha256 as ``retrain`` recorded it (None: nothing recorded), and where it was read."""

    sha256: str | None
    where: str


def hash_recorded_beside(folder: Path) -> RecordedHash:
    """``model.weights_sha256`` of the ``report.json`` retrain wrote beside its ``model/`` folder."""
    report = folder.parent / "report.json"
    try:
        recorded = json.loads(report.read_text(encoding="utf-8"))["model"]["weights_sha256"]
    except FileNotFoundError:
        return RecordedHash(None, f"{report} (missing)")
    except (ValueError, KeyError, TypeError):
        return RecordedHash(None, f"{report} (unreadable or without model.weights_sha256)")
    return RecordedHash(str(recorded) if recorded else None, str(report))


def verify_weights(folder: Path, recorded: RecordedHash, source: str) -> None:
    """Refuse the model unless its weights' sha256 equals the one retrain recorded (fail closed)."""
    weights = package_file(folder, WEIGHTS_FILE)
    if recorded.sha256 is None:
        raise FractureTuneError(
            f"model {source!r}: no sha256 of its weights was recorded by retrain (looked in "
            f"{recorded.where}); refusing to load weights that cannot be checked",
            hint=SKIP_CHECK_HINT,
        )
    actual = sha256_of_file(weights) if weights.is_file() else "missing"
    if actual != recorded.sha256:
        raise FractureTuneError(
            f"model {source!r}: {WEIGHTS_FILE} sha256 {actual[:16]}... differs from "
            f"{recorded.sha256[:16]}... recorded by retrain in {recorded.where}: the weights changed after "
            "retrain",
            hint="restore the model as retrain wrote it, or retrain it; " + SKIP_CHECK_HINT,
        )


def read_package(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The eager model (CPU, eval mode) and its metadata from a model folder (check it first:
    ``verify_weights``)."""
    return read_package_files(package_file(folder, METADATA_FILE), package_file(folder, WEIGHTS_FILE))


def read_package_files(metadata_file: Path, weights_file: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The eager model (CPU, eval mode) and its metadata from the two package files."""
    import torch

    from fracture_tune.trainables.models import build_model

    metadata = json.loads(Path(metadata_file).read_text(encoding="utf-8"))
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    model_kwargs = dict(metadata.get("model_kwargs", {}))
    # The stored weights replace any pretrained start; the original file need not exist here.
    model_kwargs.pop("pretrained_path", None)
    model = build_model(metadata["config"]["model"], input_size=int(metadata["input_size"]), **model_kwargs)
    model.load_state_dict(state)
    model.eval()
    return model, metadata


def model_inputs(images: np.ndarray, input_size: int) -> torch.Tensor:
    """uint8 [N, S, S] → the normalised float [N, 1, S', S'] forward takes (the engine's own functions)."""
    import numpy as np
    import torch

    from fracture_tune.trainables.device import images_to_device, normalise, to_unit_range

    on_cpu = images_to_device(np.ascontiguousarray(images), int(input_size), torch.device("cpu"))
    return normalise(to_unit_range(on_cpu), channels_last=False)
