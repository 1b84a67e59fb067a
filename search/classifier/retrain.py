"""Retrain: the chosen configuration, trained for the full schedule, tested once, logged and registered.

1. What to train (``source.py``): the search's best trial (``best_trial.json``, the search's own rule), a
   trial picked by its MLflow run id, or a flat config.
2. The prepared dataset is the one the search used; its key and split hash must equal the search
   record's (a re-prepared dataset with another split would leak test images into the comparison).
3. Train N seeds; the first seed (the trial's own) is the model that is reported and registered.
4. Threshold chosen on VALIDATION for the target sensitivity; the TEST split is scored once per model.
5. Report (JSON + Markdown + plots), an MLflow run nested under the search's parent run, the registry.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.classifier.evaluation import MetricInterval
from fracture_tune.search.classifier.report import (
    DatasetSummary,
    RetrainReport,
    baseline_result,
    optimized_result,
    reproduction_check,
    seed_spread,
    trial_summary,
)
from fracture_tune.search.classifier.report_files import write_plots, write_report, write_test_predictions
from fracture_tune.search.classifier.source import RetrainSource, resolve_source
from fracture_tune.search.environment import call_environment

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

# Keys a retrain overrides: the full data and all this machine's threads, whatever the trial used.
FULL_RUN_OVERRIDES: dict[str, Any] = {"train_limit": 0, "val_limit": 0, "num_threads": 0}
TRAIN_ON_CHOICES = ("train", "train+val")


@dataclass
class RetrainOptions:
    search: str | None = None
    run_id: str | None = None
    config: dict[str, Any] | Path | None = None  # a flat engine config, or a JSON file of one; needs dataset
    dataset: Path | None = None  # the prepared cache folder (default: the search's)
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
class RetrainResult:
    """What a retrain produced: the typed report (also ``report.json``/``report.md`` in ``out_dir``)."""

    report: RetrainReport
    out_dir: Path

    @property
    def test_metrics(self) -> dict[str, MetricInterval]:
        """Test metrics at threshold 0.5 with 95 % bootstrap CIs (``auroc``, ``sensitivity``, …)."""
        return self.report.optimized.test

    @property
    def model_uri(self) -> str:
        """The logged model (``runs:/…`` or ``models:/m-…``), loadable with ``load_classifier``."""
        return self.report.model.uri if self.report.model else ""

    @property
    def registered_uri(self) -> str | None:
        """``models:/NAME/VERSION`` when the model was registered."""
        return self.report.registry.uri if self.report.registry else None


@dataclass
class TrainedModel:
    """One trained model with its validation and test probabilities (the test split scored once)."""

    label: str
    config: dict[str, Any]
    model: nn.Module
    history: list[dict[str, float]]
    val_probabilities: np.ndarray
    test_probabilities: np.ndarray
    train_seconds: float


def retrain(
    search: str | None = None,
    *,
    run_id: str | None = None,
    config: dict[str, Any] | str | os.PathLike[str] | None = None,
    dataset: str | os.PathLike[str] | None = None,
    storage: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    epochs: int = 30,
    train_on: str = "train",
    seeds: int = 1,
    tracking_uri: str | None = None,
    register_name: str = "fracture-classifier",
    register: bool = True,
    promote: str = "if-better",
    target_sensitivity: float = 0.9,
    baseline: bool = True,
    resamples: int = 1000,
    device: str | None = None,
) -> RetrainResult:
    """Retrain a search's best trial (``search``), a trial by MLflow ``run_id``, or a flat ``config`` (a dict
    or a JSON file; needs ``dataset``, a prepared cache folder) for ``epochs``; test it once, log it to MLflow
    under the search's run and register it as ``register_name`` (the ``champion`` alias per ``promote``).

    Raises ``FractureTuneError`` for bad input; prints nothing (progress goes to ``logging``).
    """
    as_path = lambda value: Path(value) if value is not None else None  # noqa: E731
    options = RetrainOptions(
        search=search,
        run_id=run_id,
        config=config if isinstance(config, dict) or config is None else Path(config),
        dataset=as_path(dataset),
        storage=as_path(storage),
        out_dir=as_path(out_dir),
        epochs=epochs,
        train_on=train_on,
        seeds=seeds,
        tracking_uri=tracking_uri,
        register_name=register_name,
        register=register,
        promote=promote,
        target_sensitivity=target_sensitivity,
        baseline=baseline,
        resamples=resamples,
        device=device,
    )
    return run_retrain(options)


def run_retrain(options: RetrainOptions) -> RetrainResult:
    """Everything a retrain does; the report is also written as report.json/.md in the output folder."""
    _validate(options)
    with call_environment():
        from fracture_tune.data.prepare import load_prepared
        from fracture_tune.search.classifier.baseline import base_recipe_config
        from fracture_tune.search.classifier.mlflow_run import record_retrain

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
        base = None
        if options.baseline:
            base = train_and_score(
                "seed base CNN", base_recipe_config(primary.config, options.epochs), data, options.train_on
            )
        report = _build_report(options, source, data, models, base)
        write_test_predictions(out_dir, dataset.source_paths, data, primary)
        report.plots = write_plots(out_dir, data, primary, report.optimized, base)
        record_retrain(options, source, data, primary, report, out_dir)
        write_report(out_dir, report)
    return RetrainResult(report, out_dir)


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
    baseline: TrainedModel | None,
) -> RetrainReport:
    primary = models[0]
    test_labels = np.asarray(data.labels[data.indices("test")])
    target, resamples = options.target_sensitivity, options.resamples
    history = {"optimized": primary.history}
    if baseline is not None:
        history["baseline"] = baseline.history
    warnings = []
    if options.train_on == "train+val":
        warnings.append("trained on train+val: the threshold was chosen on images the model trained on")
    return RetrainReport(
        source=source.description,
        search=source.search_name,
        trial=trial_summary(source.trial),
        dataset=DatasetSummary(
            cache_dir=str(source.dataset_dir),
            key=data.dataset_key,
            split_hash=data.split_hash,
            class_names=list(data.class_names),
            train_size=int(data.indices("train").size),
            val_size=int(data.indices("val").size),
            test_size=int(data.indices("test").size),
        ),
        train_on=options.train_on,
        epochs=options.epochs,
        config=primary.config,
        optimized=optimized_result(primary, data, target_sensitivity=target, resamples=resamples),
        seeds=seed_spread(models, test_labels),
        reproduction=reproduction_check(source.trial, primary.history, options.train_on),
        baseline=(
            baseline_result(baseline, data, target_sensitivity=target, resamples=resamples)
            if baseline is not None
            else None
        ),
        history=history,
        warnings=warnings,
    )
