"""What a retrain trains: a search's best trial, a trial by its MLflow run id, or a given config."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.records import BestTrial, SearchRecord, score_rule_of

if TYPE_CHECKING:
    from fracture_tune.search.retrain.types import RetrainOptions


@dataclass
class RetrainSource:
    """What to retrain and where it came from."""

    config: dict[str, Any]
    dataset_dir: Path
    description: str
    search_name: str = ""
    run_dir: Path | None = None
    record: SearchRecord | None = None
    trial: BestTrial | None = None


def resolve_source(options: RetrainOptions) -> RetrainSource:
    """--search NAME | --run-id ID | --config-json FILE → the config, the dataset and the provenance."""
    chosen = [
        flag
        for flag, value in (
            ("--search", options.search),
            ("--run-id", options.run_id),
            ("--config-json", options.config),
        )
        if value
    ]
    if len(chosen) != 1:
        raise FractureTuneError(
            "retrain needs exactly one of --search, --run-id, --config-json "
            f"(got {', '.join(chosen) or 'none'})",
            hint="e.g. fracture-tune retrain --search quickstart",
        )
    if isinstance(options.config, dict):
        return _source_from_config(options.config, "config given as a dict", options.dataset)
    if options.config:
        return _source_from_json(Path(options.config), options.dataset)
    search_name = options.search or _search_of_run(str(options.run_id), options.tracking_uri)
    from fracture_tune.search.records import read_best_trial, read_search_record, run_dir_for

    run_dir = run_dir_for(search_name, options.storage)
    record = read_search_record(run_dir)
    trial = (
        read_best_trial(run_dir)
        if options.search
        else _trial_from_results(run_dir, record, str(options.run_id))
    )
    dataset_dir = Path(options.dataset) if options.dataset else Path(record.dataset_cache_dir)
    return RetrainSource(
        config=dict(trial.config),
        dataset_dir=dataset_dir,
        description=f"search {search_name!r}, trial {trial.trial_id}",
        search_name=search_name,
        run_dir=run_dir,
        record=record,
        trial=trial,
    )


def _source_from_json(path: Path, dataset: Path | None) -> RetrainSource:
    import json

    if not path.is_file():
        raise FractureTuneError(f"--config-json {str(path)!r} does not exist")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise FractureTuneError(f"--config-json {str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise FractureTuneError(f"--config-json {str(path)!r} must hold a flat object of engine keys")
    return _source_from_config(config, f"config {path.name}", dataset)


def _source_from_config(config: dict[str, Any], description: str, dataset: Path | None) -> RetrainSource:
    if dataset is None:
        raise FractureTuneError(
            "a config given as JSON (--config-json) needs --dataset CACHE_DIR (a prepared dataset folder)",
            hint="fracture-tune data prepare SRC prints the folder to pass",
        )
    return RetrainSource(config=dict(config), dataset_dir=Path(dataset), description=description)


def _search_of_run(run_id: str, tracking_uri: str | None) -> str:
    from fracture_tune.classifier.tracking_uri import resolve_tracking_uri
    from fracture_tune.search.tracking import SEARCH_NAME_TAG, make_client

    client = make_client(resolve_tracking_uri(tracking_uri))
    try:
        run = client.get_run(run_id)
    except Exception as error:  # noqa: BLE001 - any lookup failure means: this id is not usable here
        raise FractureTuneError(
            f"MLflow run {run_id!r} not found: {error}",
            hint="copy the trial's run id from the MLflow UI; pass --tracking-uri",
        ) from error
    name = run.data.tags.get(SEARCH_NAME_TAG, "")
    if not name:
        raise FractureTuneError(
            f"MLflow run {run_id!r} is not a fracture-tune trial (no {SEARCH_NAME_TAG} tag)",
            hint="pick a trial run (a child of a search's parent run)",
        )
    return str(name)


def _trial_from_results(run_dir: Path, record: SearchRecord, run_id: str) -> BestTrial:
    import json

    from fracture_tune.search.results import read_results

    frame = read_results(run_dir)
    rows = frame[frame["mlflow_run_id"] == run_id]
    if rows.empty:
        raise FractureTuneError(
            f"no trial with MLflow run id {run_id!r} in {run_dir}/results.parquet",
            hint=f"run `fracture-tune search sync-mlflow {record.name}` or pick another run",
        )
    row = rows.iloc[0]
    config = {
        column.removeprefix("config/"): _plain(value)
        for column, value in row.items()
        if column.startswith("config/") and not _is_missing(value)
    }
    history = [float(value) for value in json.loads(row.get("metric_history") or "[]")]
    score, score_epoch = score_rule_of(record).score(history)  # the search's own rule, as search show ranks
    return BestTrial(
        trial_id=str(row["trial_id"]),
        trial_index=int(row["trial_index"]),
        config=config,
        metric=record.metric,
        mode=record.mode,
        metric_value=float(score),
        best_epoch=int(score_epoch),
        epochs_run=len(history),
        metric_range=(min(history), max(history)) if history else (math.nan, math.nan),
        checkpoint_path=str(row.get("best_checkpoint", "")),
        mlflow_run_id=run_id,
        status=str(row["status"]),
        metric_by_epoch=history,
    )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """numpy scalars from pandas → Python scalars (TrainConfig coerces types by key)."""
    return value.item() if hasattr(value, "item") else value
