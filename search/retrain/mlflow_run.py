"""The retrain's MLflow run: a child of the search's parent run with params, final metrics, per-epoch curves,
the prepared dataset as its input, the report as artifacts and the classifier logged as an MLflow pyfunc that
scores image files (``pyfunc_model.py``). A model trained on generated images (``data synth``, the demo) says
so in its run's and its version's ``training_data`` tag and in its metadata (``load_classifier`` warns).
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fracture_tune.classifier.package import (
    PYFUNC_ENTRY,
    WEIGHTS_FILE,
    classifier_metadata,
    package_file,
    sha256_of_file,
    sha256_of_folder,
    write_package_files,
)
from fracture_tune.search.retrain.report import LoggedModel, RegistryEntry, TrackingRef, flat_metrics

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature
    from torch import nn

    from fracture_tune.data.dataset import DatasetArrays
    from fracture_tune.search.retrain.report import RetrainReport
    from fracture_tune.search.retrain.source import RetrainSource
    from fracture_tune.search.retrain.types import RetrainOptions, TrainedModel

MODEL_ARTIFACT_NAME = "model"


def log_classifier(
    *, run_id: str, model: nn.Module, example_image: bytes, metadata: dict[str, Any], local_dir: Path
) -> LoggedModel:
    """Log ``model`` to run ``run_id`` as the image-scoring pyfunc (``pyfunc_model.py``) and copy the logged
    folder to ``local_dir``.

    ``example_image``: an image file's bytes (e.g. a training image as PNG), the model's input example; MLflow
    scores it while logging, so a model that cannot serve is never logged.
    """
    import mlflow
    import mlflow.pyfunc
    import pandas as pd
    import torch

    from fracture_tune.classifier.pyfunc_model import (
        IMAGE_COLUMN,
        METADATA_ARTIFACT,
        WEIGHTS_ARTIFACT,
        WEIGHTS_SHA256_CONFIG,
    )

    cpu_model = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format).eval()
    with tempfile.TemporaryDirectory(prefix="fracture-tune-model-") as scratch:
        metadata_path, weights_path = write_package_files(Path(scratch), cpu_model, metadata)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT_NAME,
                python_model=str(PYFUNC_ENTRY),  # models from code: MLflow runs a copy, unpickles nothing
                artifacts={METADATA_ARTIFACT: str(metadata_path), WEIGHTS_ARTIFACT: str(weights_path)},
                model_config={WEIGHTS_SHA256_CONFIG: sha256_of_file(weights_path)},
                signature=served_signature(),
                input_example=pd.DataFrame({IMAGE_COLUMN: [example_image]}),
                # Explicit, so MLflow does not spawn a process to infer requirements.
                pip_requirements=serving_requirements(),
                metadata={"fracture_tune": metadata},
            )
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    downloaded = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(local_dir))
    )
    return LoggedModel(
        uri=info.model_uri,
        local_dir=str(downloaded),
        model_sha256=sha256_of_folder(downloaded),
        weights_sha256=sha256_of_file(package_file(downloaded, WEIGHTS_FILE)),
    )


def served_signature() -> ModelSignature:
    """In: ``image`` (binary: an image file's bytes). Out: ``probability``, ``label``, ``threshold``."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    from fracture_tune.classifier.pyfunc_model import IMAGE_COLUMN

    return ModelSignature(
        inputs=Schema([ColSpec(DataType.binary, IMAGE_COLUMN)]),
        outputs=Schema(
            [
                ColSpec(DataType.double, "probability"),
                ColSpec(DataType.string, "label"),
                ColSpec(DataType.double, "threshold"),
            ]
        ),
    )


# What the pyfunc imports when it is loaded; each pinned to the version that logged the model.
SERVING_DISTRIBUTIONS = ("fracture-tune", "torch", "torchvision", "numpy", "pandas", "pillow")


def serving_requirements() -> list[str]:
    """``name==version`` of every ``SERVING_DISTRIBUTIONS`` installed here (MLflow adds its own pin).

    fracture-tune itself is a requirement: the pyfunc is this package's code, so an environment built from
    these lines needs it installable (a wheel, ``pip install -e``); ``--env-manager local`` uses this one.
    """
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in SERVING_DISTRIBUTIONS:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


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


def record_retrain(
    options: RetrainOptions,
    source: RetrainSource,
    data: DatasetArrays,
    primary: TrainedModel,
    report: RetrainReport,
    out_dir: Path,
    *,
    members: list[dict[str, Any]] | None = None,
) -> None:
    """The retrain's MLflow run (a child of the search's parent run), the logged model and its registration;
    fills ``report.mlflow``, ``report.model`` and ``report.registry``.

    An ensemble: ``primary.model`` is the ``ProbabilityEnsemble`` (``package.build_ensemble``),
    ``primary.config`` its best member's config and ``members`` ``package.ensemble_members_metadata(...)``.
    """
    import mlflow

    from fracture_tune.classifier.tracking_uri import resolve_tracking_uri
    from fracture_tune.search.records import code_version
    from fracture_tune.search.tracking import (
        SEARCH_NAME_TAG,
        ensure_experiment,
        make_client,
        redact_secrets,
    )

    record = source.record
    uri = resolve_tracking_uri(options.tracking_uri, record.tracking_uri if record else None)
    mlflow.set_tracking_uri(uri)
    client = make_client(uri)
    experiment_id = (
        record.experiment_id if record else ensure_experiment(client, "fracture-tune-retrain", uri)
    )
    parent = record.parent_run_id if record else ""
    tags = {
        SEARCH_NAME_TAG: source.search_name,
        "fracture_tune.kind": "retrain",
        "fracture_tune.trial_id": source.trial.trial_id if source.trial else "",
        "dataset_key": data.dataset_key,
        "split_hash": data.split_hash,
        "code_version": code_version(),
    }
    run_id = start_child_run(
        client,
        experiment_id=experiment_id,
        parent_run_id=parent,
        run_name=f"retrain-{source.search_name or 'config'}",
        tags=tags,
    )
    report.mlflow = TrackingRef(redact_secrets(uri), experiment_id, run_id, parent)
    try:
        _log_and_register(client, run_id, options, source, data, primary, report, out_dir, members)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise


def trained_on_synthetic(cache_dir: Path) -> bool:
    """Whether the prepared dataset at ``cache_dir`` holds generated images: the folder it was prepared from
    held the marker ``data synth`` writes, which ``data prepare`` lists among the entries it ignored."""
    from fracture_tune.data.prepare import load_report
    from fracture_tune.data.synth import MARKER

    try:
        ignored = load_report(cache_dir).ignored
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(entry.get("path") == MARKER for entry in ignored)


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 [H, W] pixels as a PNG file's bytes (lossless: decoding gives the same pixels back)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def _log_and_register(
    client: Any,
    run_id: str,
    options: RetrainOptions,
    source: RetrainSource,
    data: DatasetArrays,
    primary: TrainedModel,
    report: RetrainReport,
    out_dir: Path,
    members: list[dict[str, Any]] | None = None,
) -> None:
    import shutil

    from fracture_tune.classifier.registry import (
        REAL_DATA,
        SYNTHETIC_DATA,
        TRAINING_DATA_TAG,
        register_version,
    )
    from fracture_tune.search.dataset_lineage import dataset_lineage, log_dataset_input
    from fracture_tune.search.retrain.report_files import write_report
    from fracture_tune.trainables.config import TrainConfig

    log_dataset_input(client, run_id, dataset_lineage(data, source.dataset_dir), context="training")
    synthetic = trained_on_synthetic(source.dataset_dir)
    training_data = SYNTHETIC_DATA if synthetic else REAL_DATA
    client.set_tag(run_id, TRAINING_DATA_TAG, training_data)
    history = {"": primary.history}
    if "baseline" in report.history:
        history["baseline_"] = report.history["baseline"]
    log_run_values(
        client,
        run_id,
        params={
            **primary.config,
            "train_on": options.train_on,
            "target_sensitivity": options.target_sensitivity,
        },
        metrics=flat_metrics(report),
        history=history,
    )
    threshold = report.optimized.threshold.value
    test_auroc = report.optimized.test["auroc"].value
    metadata = classifier_metadata(
        TrainConfig.from_flat(primary.config),
        image_size=data.image_size,
        threshold=threshold,
        class_names=data.class_names,
        dataset_key=data.dataset_key,
        split_hash=data.split_hash,
        members=members,
        test_auroc=test_auroc,
        source_run_id=run_id,
        search=source.search_name,
        threshold_rule=f"sensitivity >= {options.target_sensitivity} on validation",
        training_data=training_data,
    )
    shutil.rmtree(out_dir / "model", ignore_errors=True)
    logged = log_classifier(
        run_id=run_id,
        model=primary.model,
        example_image=png_bytes(data.images[data.indices("train")[0]]),
        metadata=metadata,
        local_dir=out_dir / "model",
    )
    client.set_tag(run_id, "model_sha256", logged.model_sha256)
    client.set_tag(run_id, "weights_sha256", logged.weights_sha256)
    report.model = logged
    if options.register:
        registration = register_version(
            client,
            model_uri=logged.uri,
            name=options.register_name,
            run_id=run_id,
            test_auroc=test_auroc,
            split_hash=data.split_hash,
            policy=options.promote,
            synthetic=synthetic,
            version_tags={
                "dataset_key": data.dataset_key,
                "threshold": repr(threshold),
                "model_sha256": logged.model_sha256,
                "search": source.search_name,
            },
        )
        decision = registration.decision
        previous = decision.previous.version if decision.previous else ""
        report.registry = RegistryEntry(
            name=registration.name,
            version=registration.version,
            champion=decision.promote,
            decision=decision.reason,
            uri=f"models:/{registration.name}/{registration.version}",
            champion_version=registration.version if decision.promote else previous,
        )
    for path in write_report(out_dir, report):
        client.log_artifact(run_id, str(path), "report")
    for name in [*report.plots.values(), "test_predictions.csv"]:
        client.log_artifact(run_id, str(out_dir / name), "report")
