"""`fracture-tune retrain`: the chosen configuration, trained for the full schedule, tested once.

1. What to train: the search's best trial (``best_trial.json``, the search's own rule), a trial picked by
   its MLflow run id, or a flat config from a JSON file.
2. The prepared dataset is the one the search used; its key and split hash must equal the search
   record's (a re-prepared dataset with another split would leak test images into the comparison).
3. Train N seeds; the first seed (the trial's own) is the model that is reported and registered.
4. Threshold chosen on VALIDATION for the target sensitivity; the TEST split is scored once per model.
5. Report (JSON + Markdown + plots), an MLflow run nested under the search's parent run, the registry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.records import BestTrial
from fracture_tune.search.retrain_report import (
    flat_metrics,
    write_plots,
    write_report,
    write_test_predictions,
)
from fracture_tune.search.retrain_source import RetrainSource, resolve_source

log = logging.getLogger(__name__)

# Keys a retrain overrides: the full data and all this machine's threads, whatever the trial used.
FULL_RUN_OVERRIDES: dict[str, Any] = {"train_limit": 0, "val_limit": 0, "num_threads": 0}
TRAIN_ON_CHOICES = ("train", "train+val")


@dataclass
class RetrainOptions:
    search: str | None = None
    run_id: str | None = None
    config_json: Path | None = None
    dataset: Path | None = None  # the prepared cache folder; required with --config-json
    storage: Path | None = None  # runs root (default ./.fracture-tune/runs)
    out_dir: Path | None = None
    epochs: int = 30
    train_on: str = "train"
    seeds: int = 1
    tracking_uri: str | None = None
    register_name: str = "fracture-classifier"
    register: bool = True
    promote: str = "if-better"
    target_sensitivity: float = 0.9
    baseline: bool = True
    resamples: int = 1000
    device: str | None = None


@dataclass
class TrainedModel:
    """One trained model with its validation and test probabilities (the test split scored once)."""

    label: str
    config: dict[str, Any]
    model: Any
    history: list[dict[str, float]]
    val_probabilities: np.ndarray
    test_probabilities: np.ndarray
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def check_dataset_matches(
    record_key: str, record_split_hash: str, arrays: DatasetArrays, cache_dir: Path
) -> None:
    """Refuse a cache whose key or split differs from what the search recorded."""
    problems = []
    if record_key and arrays.dataset_key != record_key:
        problems.append(f"dataset key: search recorded {record_key}, cache has {arrays.dataset_key}")
    if record_split_hash and arrays.split_hash != record_split_hash:
        problems.append(f"split hash: search recorded {record_split_hash}, cache has {arrays.split_hash}")
    if problems:
        raise FractureTuneError(
            f"the prepared dataset at {str(cache_dir)!r} is not the one the search used ("
            + "; ".join(problems)
            + ")",
            hint="retrain with the search's own cache (it is recorded in search_record.json), re-run "
            "`fracture-tune data prepare` with the same source and parameters (same seed and fractions), "
            "or start a new search on this dataset",
        )


def trained_config(base: dict[str, Any], *, epochs: int, seed: int, device: str | None) -> dict[str, Any]:
    config = {**base, **FULL_RUN_OVERRIDES, "epochs": int(epochs), "seed": int(seed)}
    if device:
        config["device"] = device
    return config


def train_and_score(label: str, config: dict[str, Any], data: DatasetArrays, train_on: str) -> TrainedModel:
    """Fit ``config``; score validation and the untouched test split (once)."""
    from fracture_tune.trainables.engine import fit, predict_proba

    splits = ("train", "val") if train_on == "train+val" else ("train",)
    started = time.perf_counter()
    result = fit(config, data, train_splits=splits, eval_split="val")
    seconds = time.perf_counter() - started
    val_probabilities = predict_proba(result.model, data.images[data.indices("val")], result.config)
    test_probabilities = predict_proba(result.model, data.images[data.indices("test")], result.config)
    log.info("%s: trained %d epochs in %.1f s", label, result.config.epochs, seconds)
    return TrainedModel(
        label,
        result.config.to_flat(),
        result.model.cpu().eval(),
        result.history,
        val_probabilities,
        test_probabilities,
        seconds,
    )


def reproduction_check(
    trial: BestTrial | None, history: list[dict[str, float]], train_on: str
) -> dict[str, Any]:
    """The retrained model's validation metric at the trial's epoch count vs the trial's range (ray#43900)."""
    if trial is None or not history:
        return {"checked": False, "reason": "no search trial to compare with"}
    if train_on == "train+val":
        return {"checked": False, "reason": "trained on train+val: validation scores are not held out"}
    if trial.metric not in history[0]:
        return {"checked": False, "reason": f"metric {trial.metric!r} is not in the training history"}
    epoch = min(max(trial.epochs_run, 1), len(history))
    value = float(history[epoch - 1][trial.metric])
    low, high = trial.metric_range
    within = low <= value <= high
    # Scoring above the trial's best is a reproduction too (longer schedule, more data); only a result
    # worse than everything the trial showed means the selected config did not reproduce (ray#43900).
    better = value > high if trial.mode == "max" else value < low
    check = {
        "checked": True,
        "metric": trial.metric,
        "epoch": epoch,
        "retrained_value": value,
        "trial_range": [low, high],
        "trial_value": trial.metric_value,
        "within_range": within,
        "reproduced": within or better,
    }
    if better:
        check["note"] = (
            f"retrained {trial.metric} at epoch {epoch} is {value:.4f}, better than the trial's range "
            f"[{low:.4f}, {high:.4f}]: the configuration reproduced"
        )
    elif not within:
        check["warning"] = (
            f"reproduction: retrained {trial.metric} at epoch {epoch} is {value:.4f}, worse than the trial's "
            f"range [{low:.4f}, {high:.4f}] over its {trial.epochs_run} epochs (selected value "
            f"{trial.metric_value:.4f}). Differences: full train split, "
            f"a {history[-1]['epoch']:.0f}-epoch "
            "schedule instead of the trial's; seed noise. Treat the search's ranking as uncertain."
        )
        log.warning(check["warning"])
    return check


def seed_spread(models: list[TrainedModel], labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean, std, min and max of the test metrics (threshold 0.5) across the seeds."""
    from fracture_tune.search.evaluation import METRIC_NAMES, binary_metrics

    table = np.array(
        [[binary_metrics(labels, m.test_probabilities)[name] for name in METRIC_NAMES] for m in models]
    )
    return {
        name: {
            "mean": float(table[:, i].mean()),
            "std": float(table[:, i].std(ddof=1)) if len(models) > 1 else 0.0,
            "min": float(table[:, i].min()),
            "max": float(table[:, i].max()),
        }
        for i, name in enumerate(METRIC_NAMES)
    }


def evaluate_model(
    trained: TrainedModel, data: DatasetArrays, *, target_sensitivity: float, resamples: int
) -> dict[str, Any]:
    """Test metrics with CIs at 0.5 and at the validation-chosen operating threshold."""
    from fracture_tune.search.evaluation import (
        binary_metrics,
        bootstrap_metrics,
        confusion_counts,
        intervals_as_dict,
        threshold_for_sensitivity,
    )

    val_labels = np.asarray(data.labels[data.indices("val")])
    test_labels = np.asarray(data.labels[data.indices("test")])
    threshold = threshold_for_sensitivity(val_labels, trained.val_probabilities, target_sensitivity)
    at_half = bootstrap_metrics(test_labels, trained.test_probabilities, threshold=0.5, n_resamples=resamples)
    at_threshold = bootstrap_metrics(
        test_labels, trained.test_probabilities, threshold=threshold, n_resamples=resamples
    )
    counts = confusion_counts(test_labels, trained.test_probabilities, threshold)
    return {
        "test_size": int(test_labels.size),
        "test_positives": int(test_labels.sum()),
        "test": intervals_as_dict(at_half),
        "threshold": {
            "value": threshold,
            "target_sensitivity": target_sensitivity,
            "chosen_on": "validation",
            "validation": binary_metrics(val_labels, trained.val_probabilities, threshold),
            "test": intervals_as_dict(at_threshold),
            "test_confusion": counts.__dict__,
        },
    }


def run_retrain(options: RetrainOptions) -> dict[str, Any]:
    """Everything `fracture-tune retrain` does; returns the report (also written as report.json/.md)."""
    from fracture_tune.data.prepare import load_prepared
    from fracture_tune.search.baseline import base_recipe_config

    _validate(options)
    source = resolve_source(options)
    dataset = load_prepared(source.dataset_dir)
    if source.record is not None:
        check_dataset_matches(
            source.record.dataset_key, source.record.split_hash, dataset.arrays, source.dataset_dir
        )
    data = dataset.arrays
    out_dir = _output_dir(options, source)
    first_seed = int(source.config.get("seed", 0))
    models = [
        train_and_score(
            f"seed {seed}",
            trained_config(source.config, epochs=options.epochs, seed=seed, device=options.device),
            data,
            options.train_on,
        )
        for seed in range(first_seed, first_seed + options.seeds)
    ]
    primary = models[0]
    evaluation = evaluate_model(
        primary, data, target_sensitivity=options.target_sensitivity, resamples=options.resamples
    )
    baseline = None
    if options.baseline:
        baseline = train_and_score(
            "seed base CNN", base_recipe_config(primary.config, options.epochs), data, options.train_on
        )
        baseline.extra = evaluate_model(
            baseline, data, target_sensitivity=options.target_sensitivity, resamples=options.resamples
        )
    report = _build_report(options, source, data, models, evaluation, baseline)
    write_test_predictions(out_dir, dataset.source_paths, data, primary)
    report["plots"] = write_plots(out_dir, data, primary, evaluation, baseline)
    _track(options, source, data, primary, report, out_dir)
    write_report(out_dir, report)
    return report


def _validate(options: RetrainOptions) -> None:
    if options.epochs < 1 or options.seeds < 1 or options.resamples < 1:
        raise FractureTuneError(
            f"--epochs, --seeds and --resamples must be >= 1 (got {options.epochs}, {options.seeds}, "
            f"{options.resamples})"
        )
    if options.train_on not in TRAIN_ON_CHOICES:
        raise FractureTuneError(f"--train-on {options.train_on!r}: use one of {', '.join(TRAIN_ON_CHOICES)}")


def _output_dir(options: RetrainOptions, source: RetrainSource) -> Path:
    if options.out_dir:
        folder = Path(options.out_dir)
    elif source.run_dir is not None:
        folder = source.run_dir / "retrain"
    else:
        folder = Path(".fracture-tune") / "retrain" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def _build_report(
    options: RetrainOptions,
    source: RetrainSource,
    data: DatasetArrays,
    models: list[TrainedModel],
    evaluation: dict[str, Any],
    baseline: TrainedModel | None,
) -> dict[str, Any]:
    primary = models[0]
    test_labels = np.asarray(data.labels[data.indices("test")])
    report: dict[str, Any] = {
        "source": source.description,
        "search": source.search_name,
        "trial": _trial_summary(source.trial),
        "dataset": {
            "cache_dir": str(source.dataset_dir),
            "key": data.dataset_key,
            "split_hash": data.split_hash,
            "class_names": list(data.class_names),
            **{f"{split}_size": int(data.indices(split).size) for split in ("train", "val", "test")},
        },
        "train_on": options.train_on,
        "epochs": options.epochs,
        "config": primary.config,
        "optimized": {
            **evaluation,
            "train_seconds": primary.train_seconds,
            "final_epoch": primary.history[-1] if primary.history else {},
        },
        "seeds": {
            "seeds": [int(m.config["seed"]) for m in models],
            "spread": seed_spread(models, test_labels) if len(models) > 1 else {},
        },
        "reproduction": reproduction_check(source.trial, primary.history, options.train_on),
        "baseline": None,
        "history": {"optimized": primary.history},
    }
    if baseline is not None:
        report["baseline"] = {
            "recipe": baseline.config,
            "train_seconds": baseline.train_seconds,
            **baseline.extra,
        }
        report["history"]["baseline"] = baseline.history
    if options.train_on == "train+val":
        report["warnings"] = ["trained on train+val: the threshold was chosen on images the model trained on"]
    return report


def _trial_summary(trial: BestTrial | None) -> dict[str, Any] | None:
    if trial is None:
        return None
    return {
        "trial_id": trial.trial_id,
        "metric": trial.metric,
        "mode": trial.mode,
        "metric_value": trial.metric_value,
        "best_epoch": trial.best_epoch,
        "epochs_run": trial.epochs_run,
        "metric_range": list(trial.metric_range),
        "mlflow_run_id": trial.mlflow_run_id,
    }


def _track(
    options: RetrainOptions,
    source: RetrainSource,
    data: DatasetArrays,
    primary: TrainedModel,
    report: dict[str, Any],
    out_dir: Path,
) -> None:
    """The MLflow run (child of the search's parent run), the logged model and its registration."""
    import mlflow

    from fracture_tune.search.registry import resolve_tracking_uri, start_child_run
    from fracture_tune.search.tracking import (
        SEARCH_NAME_TAG,
        code_version,
        ensure_experiment,
        make_client,
        redact_uri,
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
    report["mlflow"] = {
        "tracking_uri": redact_uri(uri),
        "experiment_id": experiment_id,
        "run_id": run_id,
        "parent_run_id": parent,
    }
    try:
        _log_and_register(client, options, source, data, primary, report, out_dir)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise


def _log_and_register(
    client: Any,
    options: RetrainOptions,
    source: RetrainSource,
    data: DatasetArrays,
    primary: TrainedModel,
    report: dict[str, Any],
    out_dir: Path,
) -> None:
    import shutil

    from fracture_tune.search.predict import model_inputs
    from fracture_tune.search.registry import (
        classifier_metadata,
        log_classifier,
        log_run_values,
        register_version,
    )
    from fracture_tune.trainables.config import TrainConfig

    run_id = report["mlflow"]["run_id"]
    history = {"": primary.history}
    if report["baseline"] is not None:
        history["baseline_"] = report["history"]["baseline"]
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
    threshold = float(report["optimized"]["threshold"]["value"])
    test_auroc = float(report["optimized"]["test"]["auroc"]["value"])
    metadata = classifier_metadata(
        TrainConfig.from_flat(primary.config),
        image_size=data.image_size,
        threshold=threshold,
        class_names=data.class_names,
        dataset_key=data.dataset_key,
        split_hash=data.split_hash,
        test_auroc=test_auroc,
        source_run_id=run_id,
        search=source.search_name,
        threshold_rule=f"sensitivity >= {options.target_sensitivity} on validation",
    )
    example = model_inputs(data.images[data.indices("train")[:2]], metadata["input_size"]).numpy()
    shutil.rmtree(out_dir / "model", ignore_errors=True)
    logged = log_classifier(
        run_id=run_id,
        model=primary.model,
        example_batch=example,
        metadata=metadata,
        local_dir=out_dir / "model",
    )
    client.set_tag(run_id, "model_sha256", logged.model_sha256)
    client.set_tag(run_id, "weights_sha256", logged.weights_sha256)
    report["model"] = {
        "uri": logged.model_uri,
        "local_dir": str(logged.local_dir),
        "model_sha256": logged.model_sha256,
        "weights_sha256": logged.weights_sha256,
    }
    if options.register:
        registration = register_version(
            client,
            model_uri=logged.model_uri,
            name=options.register_name,
            run_id=run_id,
            test_auroc=test_auroc,
            split_hash=data.split_hash,
            policy=options.promote,
            version_tags={
                "dataset_key": data.dataset_key,
                "threshold": repr(threshold),
                "model_sha256": logged.model_sha256,
                "search": source.search_name,
            },
        )
        report["registry"] = {
            "name": registration.name,
            "version": registration.version,
            "champion": registration.decision.promote,
            "decision": registration.decision.reason,
            "uri": f"models:/{registration.name}/{registration.version}",
        }
    for path in write_report(out_dir, report):
        client.log_artifact(run_id, str(path), "report")
    for name in [*report["plots"].values(), "test_predictions.csv"]:
        client.log_artifact(run_id, str(out_dir / name), "report")
