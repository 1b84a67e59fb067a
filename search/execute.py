"""``fracture-tune search`` end to end, its resume, and the MLflow backfill."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.collect import attach_mlflow_ids, choose_best, trial_rows
from fracture_tune.search.config import ExperimentConfig, config_to_yaml
from fracture_tune.search.driver import (
    SearchOptions,
    check_cluster_resources,
    check_local_gpus,
    check_pretrained_files,
    check_ray_address,
    load_resume_state,
    new_record,
    open_parent_run,
    prepare_search_dataset,
    start_ray,
)
from fracture_tune.search.records import RESOLVED_CONFIG_FILE, SearchRecord, write_search_record
from fracture_tune.search.results import format_summary, write_results
from fracture_tune.search.tracking import ParentRun, bound_http_retries

logger = logging.getLogger(__name__)


def callbacks_for(config: ExperimentConfig, options: SearchOptions, parent: ParentRun) -> list[Any]:
    from fracture_tune.search.mlflow_callback import MlflowTrialCallback, TrialRunLogger
    from fracture_tune.search.progress import ProgressCallback

    trial_logger = TrialRunLogger(parent, options.name, config.metric, config.planned_epochs)
    progress = ProgressCallback(
        config.metric, config.metric_mode, config.budget.num_trials, config.planned_epochs
    )
    return [MlflowTrialCallback(trial_logger), progress]


def run_search(config: ExperimentConfig, options: SearchOptions) -> int:
    run_dir = options.run_dir
    if (run_dir / RESOLVED_CONFIG_FILE).exists():
        raise FractureTuneError(
            f"a search named {options.name!r} already exists in {run_dir}",
            hint=f"continue it with --resume {options.name}, or choose another --name",
        )
    check_local_gpus(config, options)
    check_pretrained_files(config, options)
    check_ray_address(options.address)
    prepared = prepare_search_dataset(config)
    bound_http_retries()
    parent = open_parent_run(config, options, prepared)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESOLVED_CONFIG_FILE).write_text(config_to_yaml(config), encoding="utf-8")
    record = new_record(config, options, prepared, parent)
    write_search_record(run_dir, record)
    print(
        f"search {options.name}: {config.budget.num_trials} trials, metric {config.metric} "
        f"({config.metric_mode}); run folder {run_dir}; MLflow {record.tracking_uri} run {parent.run_id}",
        flush=True,
    )
    start_ray(options)
    check_cluster_resources(config)
    from fracture_tune.search.tuner import build_tuner

    tuner = build_tuner(
        config,
        prepared.dataset.arrays,
        options.name,
        options.storage.resolve(),
        callbacks_for(config, options, parent),
    )
    return _fit_and_finish(tuner, config, options, parent, record)


def resume_search(options: SearchOptions) -> int:
    config, record = load_resume_state(options)
    if "***" not in record.tracking_uri and not options.tracking_uri:
        options = replace(options, tracking_uri=record.tracking_uri)
    prepared = prepare_search_dataset(config)
    if prepared.dataset.split_hash != record.split_hash:
        raise FractureTuneError(
            f"the dataset changed since search {options.name!r} started (split hash "
            f"{prepared.dataset.split_hash} != {record.split_hash})",
            hint="resume needs the same data; start a new search instead",
        )
    check_pretrained_files(config, options)  # the weights file may have moved since the search started
    check_ray_address(options.address)
    bound_http_retries()
    parent = open_parent_run(config, options, prepared, existing_run_id=record.parent_run_id)
    write_search_record(options.run_dir, replace(record, status="running"))
    print(f"resuming search {options.name} from {options.run_dir}", flush=True)
    start_ray(options)
    from fracture_tune.search.tuner import restore_tuner

    tuner = restore_tuner(config, prepared.dataset.arrays, options.run_dir)
    return _fit_and_finish(tuner, config, options, parent, record)


def _fit_and_finish(
    tuner: Any, config: ExperimentConfig, options: SearchOptions, parent: ParentRun, record: SearchRecord
) -> int:
    try:
        result_grid = tuner.fit()
    except KeyboardInterrupt:
        write_search_record(options.run_dir, replace(record, status="interrupted"))
        print(f"interrupted; continue with: fracture-tune search --resume {options.name}", flush=True)
        return 130
    frame, best = finish_search(result_grid, config, options.run_dir, parent)
    status = "finished" if best is not None else "failed"
    write_search_record(
        options.run_dir, replace(record, status=status, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    )
    print(format_summary(frame, config.metric, config.metric_mode), flush=True)
    if best is None:
        print("no trial reported the metric; see the errors above", flush=True)
        return 1
    print(
        f"best trial {best.trial_id}: {config.metric}={best.metric_value:.4f} at epoch {best.best_epoch} "
        f"-> {options.run_dir / 'best_trial.json'}",
        flush=True,
    )
    return 0


def finish_search(
    result_grid: Any, config: ExperimentConfig, run_dir: Path, parent: ParentRun
) -> tuple[Any, Any]:
    rows = trial_rows(result_grid, config)
    # MLflow may be unreachable now: the results table and best_trial.json are written regardless.
    with parent.lock:
        client, experiment_id, parent_run_id = parent.client, parent.experiment_id, parent.run_id
        _mlflow_best_effort(run_dir, attach_mlflow_ids, rows, client, experiment_id, parent_run_id)
    frame = write_results(run_dir, rows)
    best = choose_best(rows, config, run_dir)
    tags = {"num_trials": str(len(rows))}
    metrics: dict[str, float] = {}
    if best is not None:
        tags.update(
            {
                "best_trial_id": best.trial_id,
                "best_mlflow_run_id": best.mlflow_run_id,
                "best_config": str(best.config),
                "best_epoch": str(best.best_epoch),
            }
        )
        metrics[f"best_{config.metric}"] = best.metric_value
    _mlflow_best_effort(run_dir, parent.finish, "FINISHED" if best is not None else "FAILED", tags, metrics)
    with parent.lock:
        _mlflow_best_effort(run_dir, parent.client.log_artifact, parent.run_id, str(run_dir / "results.csv"))
    return frame, best


def _mlflow_best_effort(run_dir: Path, function: Any, *args: Any) -> None:
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 - results on disk matter more than their MLflow copy
        logger.warning(
            "MLflow unreachable at the end of the search (%s); results on disk are complete: "
            "backfill with `fracture-tune search sync-mlflow %s`",
            str(error).splitlines()[0][:200],
            run_dir.name,
        )


def sync_mlflow(options: SearchOptions) -> int:
    """Backfill MLflow from Tune's results on disk (e.g. after the driver lost its tracking server)."""
    from ray.tune import ExperimentAnalysis

    from fracture_tune.search.mlflow_callback import TrialRunLogger

    config, record = load_resume_state(options)
    if "***" not in record.tracking_uri and not options.tracking_uri:
        options = replace(options, tracking_uri=record.tracking_uri)
    from fracture_tune.search.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(options.tracking_uri, config.tracking.tracking_uri)
    parent = ParentRun.start(uri, record.experiment_id, options.name, record.parent_run_id)
    trial_logger = TrialRunLogger(parent, options.name, config.metric, config.planned_epochs)
    analysis = ExperimentAnalysis(str(options.run_dir))
    synced = 0
    for trial in analysis.trials:
        frame = analysis.trial_dataframes.get(trial.trial_id)
        config_values = dict(trial.config)
        for _, row in frame.iterrows() if frame is not None else []:
            trial_logger.log_result(trial.trial_id, config_values, row.to_dict())
        epochs = (
            int(frame["epoch"].max()) if frame is not None and "epoch" in frame.columns and len(frame) else 0
        )
        if trial.status == "ERROR":
            trial_logger.finish(
                trial.trial_id, config_values, epochs, error="trial failed (synced from disk)"
            )
        elif trial.status == "TERMINATED":
            trial_logger.finish(trial.trial_id, config_values, epochs)
        synced += 1
    # Reopening the parent set it RUNNING; put back what the search itself ended with.
    ended = (
        "FINISHED" if record.status == "finished" else ("FAILED" if record.status == "failed" else "KILLED")
    )
    parent.finish(ended, {}, {})
    print(f"synced {synced} trials of {options.name} into MLflow run {parent.run_id}", flush=True)
    return 0
