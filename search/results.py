"""The results table (one row per trial) and the best-trial rule.

Rows come from Tune's ``ResultGrid`` (``trial_rows``); everything after that is pure functions over plain
rows, unit-tested without Ray.

A row is a dict: ``trial_id``, ``trial_index``, ``status`` (why the trial ended, as recorded when it
happened — finished | stopped_by_asha | time_budget | interrupted | error — or ``running`` when nothing was
recorded: still running, or its driver was killed; see ``stops``), ``stop_detail``, ``epochs``,
``metric_history`` (metric per epoch, epoch 1 first), ``last_metric``, ``best_metric``, ``best_epoch``,
``node_id``, ``mlflow_run_id``, ``best_checkpoint``, ``error`` and ``config`` (the trial's flat config).
``to_frame`` flattens ``config`` into ``config/<key>`` columns.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.search.records import RESULTS_CSV_FILE, RESULTS_PARQUET_FILE, BestTrial, write_best_trial
from fracture_tune.search.stops import ERROR, RUNNING, StopLedger, TrialStop, describe

if TYPE_CHECKING:
    from fracture_tune.search.config import ExperimentConfig

logger = logging.getLogger(__name__)

Row = dict[str, Any]


def trial_index(experiment_tag: str) -> int:
    """Tune numbers trials in creation order at the start of their experiment tag (``7_lr=...``)."""
    head = str(experiment_tag).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def trial_rows(result_grid: Any, config: ExperimentConfig, run_dir: Path) -> list[Row]:
    """One row per trial from a ``ResultGrid`` (histories from each trial's progress on disk, stop reasons
    from the search's ``StopLedger``)."""
    stops = StopLedger(run_dir).all()
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
        stop = stops.get(trial_id)
        if result.error and (stop is None or stop.reason != ERROR):
            stop = TrialStop(ERROR, len(history), str(result.error).strip().splitlines()[-1][:500])
        status = stop.reason if stop is not None else RUNNING
        detail = ""
        if stop is not None:
            planned = config.planned_epochs
            detail = stop.detail if stop.reason == ERROR else describe(stop.reason, stop.epoch, planned)
        row: Row = {
            "trial_id": trial_id,
            "trial_index": trial_index(str((result.metrics or {}).get("experiment_tag", ""))),
            "status": status,
            "stop_detail": detail,
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


def best_of_history(history: list[float], mode: str) -> tuple[float, int]:
    """(best value, its 1-based epoch); ties go to the earlier epoch."""
    if not history:
        return math.nan, 0
    pick = max if mode == "max" else min
    best = pick(history)
    return best, history.index(best) + 1


def summarise_history(row: Row, mode: str) -> Row:
    """Fill last/best metric and best epoch from ``metric_history``."""
    history = [float(value) for value in row.get("metric_history", [])]
    best, epoch = best_of_history(history, mode)
    return {
        **row,
        "epochs": len(history),
        "last_metric": history[-1] if history else math.nan,
        "best_metric": best,
        "best_epoch": epoch,
    }


@dataclass(frozen=True)
class Selection:
    row: Row
    score: float
    epoch: int
    note: str  # how the rule was applied, for the report


def _score(row: Row, scope: str, mode: str) -> tuple[float, int]:
    history = [float(value) for value in row.get("metric_history", [])]
    if scope == "last_epoch":
        return (history[-1], len(history)) if history else (math.nan, 0)
    return best_of_history(history, mode)


def select_best_trial(
    rows: list[Row], mode: str, scope: str = "best_epoch", min_epochs: int = 1
) -> Selection:
    """Pick the winner: best score among trials with ≥ ``min_epochs`` epochs (see ``BestTrialRule``).

    The score is the metric at the trial's best epoch (``scope="best_epoch"``) or its last epoch. Ties
    → fewer epochs, then lower trial index. Errored trials count only if they reached ``min_epochs``.
    Raises ValueError when no trial reported the metric at all.
    """
    return rank_trials(rows, mode, scope, min_epochs)[0]


def rank_trials(
    rows: list[Row], mode: str, scope: str = "best_epoch", min_epochs: int = 1
) -> list[Selection]:
    """Every trial with a score, best first, by ``select_best_trial``'s rule (its first entry is the winner):
    the trials with >= ``min_epochs`` epochs, then the others."""
    scored = []
    for row in rows:
        score, epoch = _score(row, scope, mode)
        if math.isfinite(score):
            scored.append((row, score, epoch))
    if not scored:
        raise ValueError("no trial reported the metric; nothing to select")
    eligible = [item for item in scored if len(item[0].get("metric_history", [])) >= min_epochs]
    note = f"best {scope.replace('_', ' ')} among trials with >= {min_epochs} epochs"
    if not eligible:
        eligible = scored
        note = f"no trial reached {min_epochs} epochs; best {scope.replace('_', ' ')} among all trials"
    sign = -1.0 if mode == "max" else 1.0

    def order(item: tuple[Row, float, int]) -> tuple[float, int, int]:
        return sign * item[1], len(item[0].get("metric_history", [])), int(item[0]["trial_index"])

    # After the eligible trials come the others (a top-k list may need them), in the same order.
    rest = [item for item in scored if not any(item[0] is chosen[0] for chosen in eligible)]
    return [
        Selection(row=row, score=score, epoch=epoch, note=note)
        for row, score, epoch in sorted(eligible, key=order) + sorted(rest, key=order)
    ]


def rows_from_frame(frame: Any) -> list[Row]:
    """``read_results``' table back as rows (``config`` and ``metric_history`` unpacked; NaN config values,
    a conditional parameter the trial's model does not take, left out)."""
    import json

    rows = []
    for record in frame.to_dict("records"):
        row: Row = {key: value for key, value in record.items() if not key.startswith("config/")}
        row["metric_history"] = [float(value) for value in json.loads(record.get("metric_history") or "[]")]
        row["config"] = {
            key.removeprefix("config/"): value.item() if hasattr(value, "item") else value
            for key, value in record.items()
            if key.startswith("config/") and _present(value)
        }
        rows.append(row)
    return rows


def to_frame(rows: list[Row]) -> Any:
    """The results table as a pandas DataFrame (``config/<key>`` columns, history as a JSON string)."""
    import json

    import pandas as pd

    records = []
    for row in rows:
        flat = {key: value for key, value in row.items() if key not in ("config", "metric_history")}
        flat["metric_history"] = json.dumps([float(v) for v in row.get("metric_history", [])])
        for key, value in sorted(row.get("config", {}).items()):
            flat[f"config/{key}"] = value if isinstance(value, int | float | str | bool) else str(value)
        records.append(flat)
    frame = pd.DataFrame.from_records(records)
    return frame.sort_values("trial_index").reset_index(drop=True) if len(frame) else frame


def write_results(run_dir: Path, rows: list[Row]) -> Any:
    frame = to_frame(rows)
    frame.to_parquet(Path(run_dir) / RESULTS_PARQUET_FILE, index=False)
    frame.to_csv(Path(run_dir) / RESULTS_CSV_FILE, index=False)
    return frame


def read_results(run_dir: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(Path(run_dir) / RESULTS_PARQUET_FILE)


def format_summary(frame: Any, metric: str, mode: str, top: int = 5) -> str:
    """Status counts and the top trials by best metric, as fixed-width text."""
    if not len(frame):
        return "no trials"
    counts = frame["status"].value_counts().to_dict()
    by_status = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    lines = [f"{len(frame)} trials: {by_status}"]
    ranked = frame.dropna(subset=["best_metric"]).sort_values("best_metric", ascending=(mode == "min"))
    config_columns = [column for column in frame.columns if column.startswith("config/")]
    varied = [c for c in config_columns if frame[c].astype(str).nunique(dropna=False) > 1]
    lines.append(f"top {min(top, len(ranked))} by {metric} ({mode}):")
    lines.append(f"  {'trial':<14} {'status':<15} {'best':>8} {'@ep':>4} {'epochs':>6}  config")
    for _, row in ranked.head(top).iterrows():
        # A conditional parameter the trial's model does not take is missing (NaN) in its row: not shown.
        config = " ".join(f"{c.removeprefix('config/')}={_short(row[c])}" for c in varied if _present(row[c]))
        lines.append(
            f"  {row['trial_id']:<14} {row['status']:<15} {row['best_metric']:>8.4f} "
            f"{int(row['best_epoch']):>4} {int(row['epochs']):>6}  {config}"
        )
    return "\n".join(lines)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


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
