"""The on-disk model package, both ways: what ``retrain`` writes into MLflow's model and what ``predict``
reads back.

A logged model folder (an MLflow pyfunc: ``pyfunc_model.py``) carries two files of ours under
``artifacts/``, the ones both ``predict`` and MLflow's pyfunc load:
- ``fracture_tune_model.json`` — the preprocessing (image size, normalisation), class names, the operating
  threshold and the training config: everything ``predict`` needs besides the weights;
- ``weights.pt`` — the state_dict, read with ``torch.load(weights_only=True)`` into the eager model
  (Grad-CAM needs its module hooks).
An ensemble is one package too: its metadata adds ``members`` (per member its flat engine config, input side
and label; the top-level ``config`` is the best member's, ``input_size`` the ensemble's), and ``weights.pt``
is the ``ProbabilityEnsemble``'s one state_dict (``members.0.…``), hashed like a single model's.
Models logged before the pyfunc (MLflow's PyTorch flavour) hold the same two files under ``extra_files/``;
they are read from there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.errors import FractureTuneError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from fracture_tune.trainables.config import TrainConfig
    from fracture_tune.trainables.ensemble import ProbabilityEnsemble

METADATA_FILE = "fracture_tune_model.json"
WEIGHTS_FILE = "weights.pt"
# The loader MLflow copies into a logged model and runs to load it ("models from code").
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")
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
    members: Sequence[dict[str, Any]] | None = None,
    input_size: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What a model needs besides its weights to be used like it was trained (stored with it).

    ``members`` (``ensemble_members_metadata``) makes it an ensemble's: ``config`` is then the best member's
    and ``input_size`` defaults to ``image_size``, the side ``build_ensemble`` gives the ensemble. A single
    model's ``input_size`` defaults to its config's (0: the image size).
    """
    if input_size is None:
        input_size = image_size if members else (config.input_size or image_size)
    metadata = {
        "format_version": FORMAT_VERSION,
        "config": config.to_flat(),
        "model_kwargs": dict(config.model_kwargs),
        "image_size": int(image_size),
        "input_size": int(input_size),
        "normalisation": dict(NORMALISATION),
        "threshold": float(threshold),
        "class_names": list(class_names),
        "dataset_key": dataset_key,
        "split_hash": split_hash,
        **extra,
    }
    if members:
        metadata["members"] = [dict(member) for member in members]
    return metadata


def ensemble_members_metadata(
    configs: Sequence[dict[str, Any]], labels: Sequence[str], *, image_size: int
) -> list[dict[str, Any]]:
    """``classifier_metadata``'s ``members``: per member its flat engine config (checked and completed by
    ``TrainConfig``), its input side (its ``input_size``, else ``image_size``) and ``label``."""
    from fracture_tune.trainables.config import TrainConfig

    if len(configs) != len(labels):
        raise FractureTuneError(f"{len(configs)} member config(s) but {len(labels)} label(s)")
    members = []
    for flat, label in zip(configs, labels, strict=True):
        config = TrainConfig.from_flat(flat)
        members.append(
            {"config": config.to_flat(), "input_size": int(config.input_size or image_size), "label": label}
        )
    return members


def build_ensemble(
    models: Sequence[nn.Module], configs: Sequence[dict[str, Any]], image_size: int
) -> ProbabilityEnsemble:
    """The trained ``models`` (flat engine ``configs``, same order) as one ``ProbabilityEnsemble``, which
    takes the prepared images' side (``image_size``) and resizes for each member that trained at another."""
    from fracture_tune.trainables.ensemble import ProbabilityEnsemble

    sizes = [int(config.get("input_size") or image_size) for config in configs]
    return ProbabilityEnsemble(list(models), sizes, int(image_size)).eval()


def write_package_files(folder: Path, model: nn.Module, metadata: dict[str, Any]) -> tuple[Path, Path]:
    """The two files ``predict`` reads (metadata JSON, state_dict), written into ``folder``."""
    import torch

    _check_model_matches_metadata(model, metadata)
    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / WEIGHTS_FILE
    torch.save({key: value.contiguous() for key, value in model.state_dict().items()}, weights_path)
    metadata_path = folder / METADATA_FILE
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return metadata_path, weights_path


def _check_model_matches_metadata(model: nn.Module, metadata: dict[str, Any]) -> None:
    """An ensemble's package needs its ``members`` in the metadata (a single model's must have none), else
    the package is written but cannot be read back."""
    from fracture_tune.trainables.ensemble import ProbabilityEnsemble

    members = metadata.get("members") or []
    count = len(model.members) if isinstance(model, ProbabilityEnsemble) else 0
    if len(members) != count:
        raise FractureTuneError(
            f"the metadata lists {len(members)} ensemble member(s) but the model is "
            + (f"an ensemble of {count}" if count else f"a single {type(model).__name__}"),
            hint="pass classifier_metadata(..., members=ensemble_members_metadata(...)) for an ensemble, "
            "and no members for a single model",
        )
    if not isinstance(model, ProbabilityEnsemble):
        return
    recorded = (int(metadata["input_size"]), [int(member["input_size"]) for member in members])
    if recorded != (model.input_size, list(model.input_sizes)):
        raise FractureTuneError(
            f"the metadata's input sizes {recorded} (ensemble, members) differ from the ensemble's "
            f"{(model.input_size, list(model.input_sizes))}",
            hint="build both from the same configs and image size: build_ensemble, ensemble_members_metadata",
        )


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
    """The eager model (CPU, eval mode) and its metadata from the two package files: a
    ``ProbabilityEnsemble`` when the metadata lists ``members``."""
    import torch

    metadata = json.loads(Path(metadata_file).read_text(encoding="utf-8"))
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    model = _ensemble(metadata) if metadata.get("members") else _single_model(metadata)
    model.load_state_dict(state)
    model.eval()
    return model, metadata


def _single_model(metadata: dict[str, Any]) -> nn.Module:
    from fracture_tune.trainables.models import build_model

    model_kwargs = dict(metadata.get("model_kwargs", {}))
    # The stored weights replace any pretrained start; the original file need not exist here.
    model_kwargs.pop("pretrained_path", None)
    return build_model(metadata["config"]["model"], input_size=int(metadata["input_size"]), **model_kwargs)


def _ensemble(metadata: dict[str, Any]) -> ProbabilityEnsemble:
    from fracture_tune.trainables.config import TrainConfig
    from fracture_tune.trainables.ensemble import ProbabilityEnsemble
    from fracture_tune.trainables.models import build_model

    models, sizes = [], []
    for member in metadata["members"]:
        config = TrainConfig.from_flat(member["config"])
        model_kwargs = {key: value for key, value in config.model_kwargs.items() if key != "pretrained_path"}
        sizes.append(int(member["input_size"]))
        models.append(build_model(config.model, input_size=sizes[-1], **model_kwargs))
    return ProbabilityEnsemble(models, sizes, int(metadata["input_size"]))


def model_inputs(images: np.ndarray, input_size: int) -> torch.Tensor:
    """uint8 [N, S, S] → the normalised float [N, 1, S', S'] forward takes (the engine's own functions)."""
    import numpy as np
    import torch

    from fracture_tune.trainables.device import images_to_device, normalise, to_unit_range

    on_cpu = images_to_device(np.ascontiguousarray(images), int(input_size), torch.device("cpu"))
    return normalise(to_unit_range(on_cpu), channels_last=False)


def ensemble_probabilities(
    ensemble: nn.Module, images: np.ndarray, input_size: int, batch_size: int = 256
) -> np.ndarray:
    """P(positive) from an ensemble's forward pass on uint8 images [N, S, S], preprocessed by ``model_inputs``
    (CPU, in batches)."""
    import numpy as np
    import torch

    model = ensemble.cpu().eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            logits = model(model_inputs(np.asarray(images[start : start + batch_size]), int(input_size)))
            chunks.append(torch.softmax(logits.float(), dim=1)[:, 1])
    return torch.cat(chunks).numpy().astype(np.float64) if chunks else np.zeros(0, dtype=np.float64)
