"""From Tune's results on disk to the results table, ``best_trial.json`` and the parent run's best tags."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from fracture_tune.search.config import ExperimentConfig
from fracture_tune.search.records import BestTrial, write_best_trial
from fracture_tune.search.results import Row, select_best_trial, summarise_history
from fracture_tune.search.tracking import PARENT_TAG, TRIAL_ID_TAG

logger = logging.getLogger(__name__)


def trial_rows(result_grid: Any, config: ExperimentConfig) -> list[Row]:
    """One row per trial from a ``ResultGrid`` (histories from each trial's progress on disk)."""
    from fracture_tune.search.mlflow_callback import trial_index

    rows = []
    for result in result_grid:
        frame = result.metrics_dataframe
        history: list[float] = []
        node = ""
        if frame is not None and len(frame) and config.metric in frame.columns:
            frame = frame.sort_values("epoch" if "epoch" in frame.columns else "training_iteration")
            frame = (
                frame.drop_duplicates(subset=["epoch"], keep="last") if "epoch" in frame.columns else frame
            )
            history = [float(value) for value in frame[config.metric].tolist()]
            node = str(frame.iloc[-1].get("node_id", frame.iloc[-1].get("node_ip", "")))
        trial_id = str(
            (result.metrics or {}).get("trial_id") or Path(result.path).name.removeprefix("trial_")
        )
        status = (
            "error" if result.error else ("finished" if len(history) >= config.planned_epochs else "stopped")
        )
        row: Row = {
            "trial_id": trial_id,
            "trial_index": trial_index(str((result.metrics or {}).get("experiment_tag", ""))),
            "status": status,
            "metric_history": history,
            "config": dict(result.config or {}),
            "node_id": node,
            "mlflow_run_id": "",
            "error": str(result.error or "")[:500],
            "best_checkpoint": "",
        }
        row = summarise_history(row, config.metric_mode)
        row["best_checkpoint"] = checkpoint_for_epoch(result, int(row["best_epoch"]))
        rows.append(row)
    return rows


def checkpoint_for_epoch(result: Any, epoch: int) -> str:
    """The kept checkpoint of ``epoch``, else the latest one, else ""."""
    for checkpoint, metrics in result.best_checkpoints or []:
        if int(metrics.get("epoch", -1)) == epoch:
            return str(checkpoint.path)
    return str(result.checkpoint.path) if result.checkpoint is not None else ""


def attach_mlflow_ids(rows: list[Row], client: Any, experiment_id: str, parent_run_id: str) -> None:
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=5000
    )
    by_trial = {run.data.tags.get(TRIAL_ID_TAG): run.info.run_id for run in runs}
    for row in rows:
        row["mlflow_run_id"] = by_trial.get(row["trial_id"], "")


def choose_best(rows: list[Row], config: ExperimentConfig, run_dir: Path) -> BestTrial | None:
    rule = config.best_trial
    try:
        selection = select_best_trial(rows, config.metric_mode, scope=rule.scope, min_epochs=rule.min_epochs)
    except ValueError:
        logger.warning("no trial reported %s; no best trial", config.metric)
        return None
    row = selection.row
    history = [float(v) for v in row["metric_history"]]
    best = BestTrial(
        trial_id=row["trial_id"],
        trial_index=int(row["trial_index"]),
        config=dict(row["config"]),
        metric=config.metric,
        mode=config.metric_mode,
        metric_value=float(selection.score),
        best_epoch=int(selection.epoch),
        epochs_run=len(history),
        metric_range=(min(history), max(history)) if history else (math.nan, math.nan),
        checkpoint_path=str(row["best_checkpoint"]),
        mlflow_run_id=str(row["mlflow_run_id"]),
        status=str(row["status"]),
        metric_by_epoch=history,
    )
    write_best_trial(run_dir, best)
    logger.info("best trial: %s (%s)", best.trial_id, selection.note)
    return best
