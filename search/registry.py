"""Log the retrained classifier with MLflow's PyTorch flavour, register it and move the champion alias.

The logged model folder holds, besides MLflow's ``pt2`` export (safe to load, no pickle):
- ``extra_files/fracture_tune_model.json`` — the preprocessing (image size, normalisation), class names,
  the operating threshold and the training config: everything ``predict`` needs, and
- ``extra_files/weights.pt`` — the state_dict, so ``predict --explain`` can rebuild the eager model
  (Grad-CAM needs module hooks, which an exported graph does not have).

The ``champion`` alias moves only when the new version beats the current champion's test AUROC on the
same split hash (``decide_champion``, a pure function); both numbers are stored as version tags.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fracture_tune.data.errors import FractureTuneError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from torch import nn

    from fracture_tune.trainables.config import TrainConfig

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_NAME = "model"
METADATA_FILE = "fracture_tune_model.json"
WEIGHTS_FILE = "weights.pt"
PROMOTION_POLICIES = ("if-better", "always", "never")


def resolve_tracking_uri(explicit: str | None, recorded: str | None = None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the search's URI (unless redacted), else sqlite."""
    from fracture_tune.search.tracking import resolve_tracking_uri as resolve_search_uri

    return resolve_search_uri(explicit, recorded if recorded and "***" not in recorded else None)


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ChampionState:
    version: str
    test_auroc: float
    split_hash: str


@dataclass(frozen=True)
class ChampionDecision:
    promote: bool
    reason: str
    previous: ChampionState | None


def decide_champion(
    new_test_auroc: float, new_split_hash: str, current: ChampionState | None, policy: str = "if-better"
) -> ChampionDecision:
    """Whether the new version becomes the champion, and why (in words for the report and tags)."""
    if policy not in PROMOTION_POLICIES:
        raise FractureTuneError(
            f"unknown promotion policy {policy!r}; use one of {', '.join(PROMOTION_POLICIES)}"
        )
    if policy == "never":
        return ChampionDecision(False, "promotion disabled (--promote never)", current)
    if policy == "always":
        return ChampionDecision(True, "promotion forced (--promote always)", current)
    if current is None:
        return ChampionDecision(True, "no champion yet", None)
    if current.split_hash != new_split_hash:
        return ChampionDecision(
            False,
            f"champion v{current.version} was tested on split {current.split_hash[:12]}, this model on "
            f"{new_split_hash[:12]}: AUROCs on different test sets are not comparable",
            current,
        )
    if not math.isfinite(new_test_auroc) or new_test_auroc <= current.test_auroc:
        return ChampionDecision(
            False,
            f"test AUROC {new_test_auroc:.4f} does not beat champion v{current.version}'s "
            f"{current.test_auroc:.4f}",
            current,
        )
    return ChampionDecision(
        True,
        f"test AUROC {new_test_auroc:.4f} beats champion v{current.version}'s {current.test_auroc:.4f}",
        current,
    )


def current_champion(client: MlflowClient, name: str) -> ChampionState | None:
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None  # no registered model, or no alias yet
    tags = version.tags or {}
    try:
        auroc = float(tags.get("test_auroc", "nan"))
    except ValueError:
        auroc = math.nan
    # A champion without a readable AUROC is treated as beatable by any finite AUROC on its split.
    return ChampionState(
        str(version.version), auroc if math.isfinite(auroc) else -math.inf, tags.get("split_hash", "")
    )


@dataclass(frozen=True)
class LoggedClassifier:
    model_uri: str
    local_dir: Path
    model_sha256: str
    weights_sha256: str


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
    flat = config.to_flat()
    return {
        "format_version": 1,
        "config": flat,
        "model_kwargs": dict(config.model_kwargs),
        "image_size": int(image_size),
        "input_size": int(config.input_size or image_size),
        "normalisation": {"scale": 1 / 255, "mean": 0.5, "std": 0.5},
        "threshold": float(threshold),
        "class_names": list(class_names),
        "dataset_key": dataset_key,
        "split_hash": split_hash,
        **extra,
    }


def write_package_files(folder: Path, model: nn.Module, metadata: dict[str, Any]) -> tuple[Path, Path]:
    """The two files ``predict`` reads (metadata JSON, state_dict) into ``folder``."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / WEIGHTS_FILE
    torch.save({key: value.contiguous() for key, value in model.state_dict().items()}, weights_path)
    metadata_path = folder / METADATA_FILE
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return metadata_path, weights_path


def log_classifier(
    *, run_id: str, model: nn.Module, example_batch: np.ndarray, metadata: dict[str, Any], local_dir: Path
) -> LoggedClassifier:
    """Log ``model`` (eval mode, CPU) to run ``run_id`` and copy the logged folder to ``local_dir``.

    ``example_batch``: float32 [B>1, 1, S, S], already normalised (what forward takes); B > 1 so the
    exported graph keeps a dynamic batch dimension.
    """
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    cpu_model = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        example_logits = cpu_model(torch.from_numpy(example_batch)).numpy()
    with tempfile.TemporaryDirectory(prefix="fracture-tune-model-") as scratch, _prediction_device("cpu"):
        # The pt2 export holds CPU weights and cannot be moved to a GPU: MLflow's check of the input
        # example must load it on the CPU even where a GPU is visible (it defaults to cuda there).
        metadata_path, weights_path = write_package_files(Path(scratch), cpu_model, metadata)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pytorch.log_model(
                cpu_model,
                name=MODEL_ARTIFACT_NAME,
                signature=infer_signature(example_batch, example_logits),
                input_example=example_batch,
                serialization_format="pt2",
                # Explicit, so MLflow does not spawn a process to infer requirements.
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                metadata={"fracture_tune": metadata},
                extra_files=[str(metadata_path), str(weights_path)],
            )
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    downloaded = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(local_dir))
    )
    return LoggedClassifier(
        model_uri=info.model_uri,
        local_dir=downloaded,
        model_sha256=sha256_of_file(downloaded / "data" / "model.pt2"),
        weights_sha256=sha256_of_file(downloaded / "extra_files" / WEIGHTS_FILE),
    )


@contextlib.contextmanager
def _prediction_device(device: str) -> Iterator[None]:
    """Set ``MLFLOW_DEFAULT_PREDICTION_DEVICE`` (where MLflow's pyfunc loads a model) for a block."""
    previous = os.environ.get("MLFLOW_DEFAULT_PREDICTION_DEVICE")
    os.environ["MLFLOW_DEFAULT_PREDICTION_DEVICE"] = device
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_DEFAULT_PREDICTION_DEVICE", None)
        else:
            os.environ["MLFLOW_DEFAULT_PREDICTION_DEVICE"] = previous


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    decision: ChampionDecision


def register_version(
    client: MlflowClient,
    *,
    model_uri: str,
    name: str,
    run_id: str,
    test_auroc: float,
    split_hash: str,
    version_tags: dict[str, str],
    policy: str = "if-better",
) -> Registration:
    """A new version of ``name`` from ``model_uri``; the champion alias moved per ``decide_champion``."""
    import mlflow

    champion = current_champion(client, name)
    decision = decide_champion(test_auroc, split_hash, champion, policy)
    version = mlflow.register_model(model_uri, name, await_registration_for=60)
    tags = {
        **version_tags,
        "test_auroc": repr(float(test_auroc)),  # full precision: compared later
        "split_hash": split_hash,
        "source_run_id": run_id,
        "champion_decision": decision.reason,
        "previous_champion_version": champion.version if champion else "",
        "previous_champion_test_auroc": repr(champion.test_auroc) if champion else "",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version.version), key, value)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version.version))
    log.info("registered %s v%s; champion: %s", name, version.version, decision.reason)
    return Registration(name, str(version.version), decision)


def start_child_run(
    client: MlflowClient, *, experiment_id: str, parent_run_id: str, run_name: str, tags: dict[str, str]
) -> str:
    """A run tagged as the child of ``parent_run_id`` (explicit ids: no fluent nesting, mlflow#15713)."""
    run_tags = dict(tags)
    if parent_run_id:
        run_tags["mlflow.parentRunId"] = parent_run_id
    return str(client.create_run(experiment_id, run_name=run_name, tags=run_tags).info.run_id)


def log_run_values(
    client: MlflowClient,
    run_id: str,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    history: dict[str, list[dict[str, float]]],
) -> None:
    """Params, final metrics (finite only) and per-epoch curves (``<prefix><key>`` at step = epoch)."""
    import time

    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    param_list = [Param(key, str(value)[:6000]) for key, value in sorted(params.items())]
    metric_list = [
        Metric(key, float(value), now, 0) for key, value in sorted(metrics.items()) if math.isfinite(value)
    ]
    for prefix, rows in history.items():
        for row in rows:
            step = int(row["epoch"])
            metric_list += [
                Metric(f"{prefix}{key}", float(value), now, step)
                for key, value in row.items()
                if key != "epoch" and math.isfinite(value)
            ]
    for start in range(0, max(len(param_list), 1), 100):
        client.log_batch(run_id, params=param_list[start : start + 100])
    for start in range(0, len(metric_list), 1000):
        client.log_batch(run_id, metrics=metric_list[start : start + 1000])
