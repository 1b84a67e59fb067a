"""The results table (one row per trial) and the best-trial rule.

Rows come from Tune's ``ResultGrid`` (``trial_rows``); everything after that is pure functions over plain
rows, unit-tested without Ray.

A row is a dict: ``trial_id``, ``trial_index``, ``status`` (why the trial ended, as recorded when it
happened — finished | stopped_by_asha | time_budget | interrupted | error — or ``running`` when nothing was
recorded: still running, or its driver was killed; see ``stops``), ``stop_detail``, ``epochs``,
``metric_history`` (metric per epoch, epoch 1 first), ``last_metric``, ``score`` and ``score_epoch`` (the
trial's score and the epoch it comes from, by the search's ``ScoreRule``: ``trainables/score.py``),
``node_id``, ``mlflow_run_id``, ``best_checkpoint`` (the score epoch's checkpoint while it is kept),
``error`` and ``config`` (the trial's flat config). ``to_frame`` flattens ``config`` into ``config/<key>``
columns.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.search.records import RESULTS_CSV_FILE, RESULTS_PARQUET_FILE, BestTrial, write_best_trial
from fracture_tune.search.stops import (
    ERROR,
    FINISHED,
    RUNNING,
    STOPPED_BY_ASHA,
    TIME_BUDGET,
    StopLedger,
    TrialStop,
    describe,
)
from fracture_tune.trainables.score import ScoreRule
from fracture_tune.trainables.tune_adapter import EPOCH_MARKER

if TYPE_CHECKING:
    from fracture_tune.search.config import ExperimentConfig

logger = logging.getLogger(__name__)

Row = dict[str, Any]
# Trials that ended for good: only they can be the search's best (an errored or interrupted trial may still
# be resumed, and the Optuna study holds no final value for it).
FINAL_STATUSES = frozenset({FINISHED, STOPPED_BY_ASHA, TIME_BUDGET})


def trial_index(experiment_tag: str) -> int:
    """Tune numbers trials in creation order at the start of their experiment tag (``7_lr=...``)."""
    head = str(experiment_tag).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def trial_rows(result_grid: Any, config: ExperimentConfig, run_dir: Path) -> list[Row]:
    """One row per trial from a ``ResultGrid`` (histories from each trial's progress on disk, stop reasons
    from the search's ``StopLedger``, read once)."""
    stops = StopLedger(run_dir).all()
    rule = config.score_rule
    tags = experiment_tags(result_grid)
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
        # The trial's own folder names it: a result's metrics can be another trial's when Tune never ran it.
        trial_id = Path(result.path).name.removeprefix("trial_")
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
            "trial_index": trial_index(tags.get(trial_id, "")),
            "status": status,
            "stop_detail": detail,
            "metric_history": history,
            "config": dict(result.config or {}),
            "node_id": node,
            "mlflow_run_id": "",
            "error": str(result.error or "")[:500],
            "best_checkpoint": "",
        }
        row = summarise_history(row, rule)
        row["best_checkpoint"] = checkpoint_of_epoch(Path(result.path), int(row["score_epoch"]))
        rows.append(row)
    return rows


def experiment_tags(result_grid: Any) -> dict[str, str]:
    """Each trial's experiment tag (``7_lr=...``: its creation index first), from the Tune trials behind the
    grid: a trial that never reported has none in its metrics."""
    analysis = getattr(result_grid, "_experiment_analysis", None)
    return {str(trial.trial_id): str(trial.experiment_tag) for trial in getattr(analysis, "trials", [])}


def checkpoint_of_epoch(trial_dir: Path, epoch: int) -> str:
    """The trial's kept checkpoint folder of ``epoch`` (the adapter names it in ``epoch.txt``), else ""."""
    if epoch <= 0:
        return ""
    for folder in sorted(Path(trial_dir).glob("checkpoint_*")):
        try:
            if int((folder / EPOCH_MARKER).read_text(encoding="utf-8").strip()) == epoch:
                return str(folder)
        except (OSError, ValueError):
            continue
    return ""


def summarise_history(row: Row, rule: ScoreRule) -> Row:
    """Fill epochs, last metric, score and score epoch from ``metric_history`` by ``rule``."""
    history = [float(value) for value in row.get("metric_history", [])]
    score, epoch = rule.score(history)
    return {
        **row,
        "epochs": len(history),
        "last_metric": history[-1] if history else math.nan,
        "score": score,
        "score_epoch": epoch,
    }


@dataclass(frozen=True)
class Selection:
    row: Row
    score: float
    epoch: int
    note: str  # how the rule was applied, for the report


def select_best_trial(rows: list[Row], rule: ScoreRule) -> Selection:
    """The winner by ``rule`` (``rank_trials``' first entry). Raises ValueError when no trial has a score."""
    return rank_trials(rows, rule)[0]


def counts_for_best(row: Row, rule: ScoreRule) -> bool:
    """Whether a trial can be the search's best: it ended for good and ran at least ``min_epochs``."""
    return row.get("status") in FINAL_STATUSES and rule.eligible(len(row.get("metric_history", [])))


def rank_trials(rows: list[Row], rule: ScoreRule) -> list[Selection]:
    """Every trial with a score, best first: those that count for best (``counts_for_best``) by score, then
    more epochs, then the earlier trial; then the others in the same order (a top-k list may need them).
    When none counts, the first entry is the best of the others and its note says so."""
    scored = []
    for row in rows:
        history = [float(value) for value in row.get("metric_history", [])]
        score, epoch = rule.score(history)
        if math.isfinite(score):
            scored.append((row, score, epoch))
    if not scored:
        raise ValueError("no trial reported the metric; nothing to select")
    words = "best epoch at or after" if rule.scope == "best_epoch" else "last epoch, among trials of >="
    note = (
        f"score: {words} epoch {rule.min_epochs}; trials that ended for good with >= {rule.min_epochs} epochs"
    )
    if not any(counts_for_best(row, rule) for row, _, _ in scored):
        note = f"no trial ended for good with {rule.min_epochs} epochs; best score among all trials"

    def order(item: tuple[Row, float, int]) -> tuple[int, tuple[int, int, float, int, int]]:
        row, score, _ = item
        epochs = len(row.get("metric_history", []))
        return (0 if counts_for_best(row, rule) else 1), rule.rank_key(score, epochs, int(row["trial_index"]))

    return [
        Selection(row=row, score=score, epoch=epoch, note=note)
        for row, score, epoch in sorted(scored, key=order)
    ]


def rows_from_frame(frame: Any, rule: ScoreRule | None = None) -> list[Row]:
    """``read_results``' table back as rows (``config`` and ``metric_history`` unpacked; NaN config values,
    a conditional parameter the trial's model does not take, left out). A table written before scores were
    recorded gets them from ``rule``."""
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
        if rule is not None and "score" not in row:
            row = summarise_history(row, rule)
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


def format_summary(frame: Any, rule: ScoreRule, top: int = 5) -> str:
    """Status counts and the top trials by the best-trial rule's order, as fixed-width text."""
    if not len(frame):
        return "no trials"
    counts = frame["status"].value_counts().to_dict()
    by_status = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    lines = [f"{len(frame)} trials: {by_status}"]
    try:
        ranked = rank_trials(rows_from_frame(frame, rule), rule)
    except ValueError:
        ranked = []
    config_columns = [column for column in frame.columns if column.startswith("config/")]
    varied = [
        c.removeprefix("config/") for c in config_columns if frame[c].astype(str).nunique(dropna=False) > 1
    ]
    lines.append(
        f"top {min(top, len(ranked))} by score ({rule.metric}, {rule.mode}"
        f"{'; ' + ranked[0].note if ranked else ''}):"
    )
    lines.append(f"  {'trial':<14} {'status':<15} {'score':>8} {'@ep':>4} {'epochs':>6}  config")
    for selection in ranked[:top]:
        row = selection.row
        # A conditional parameter the trial's model does not take is missing from its config: not shown.
        config = " ".join(f"{key}={_short(row['config'][key])}" for key in varied if key in row["config"])
        lines.append(
            f"  {row['trial_id']:<14} {row['status']:<15} {selection.score:>8.4f} "
            f"{selection.epoch:>4} {len(row['metric_history']):>6}  {config}"
        )
    return "\n".join(lines)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def choose_best(rows: list[Row], config: ExperimentConfig, run_dir: Path) -> BestTrial | None:
    """The best trial by the search's rule, written to ``best_trial.json``; None when no trial has a score."""
    rule = config.score_rule
    try:
        selection = select_best_trial(rows, rule)
    except ValueError:
        logger.warning("no trial reported %s; no best trial", config.metric)
        return None
    best = best_trial_record(selection, config.metric, config.metric_mode)
    write_best_trial(run_dir, best)
    logger.info("best trial: %s (%s)", best.trial_id, selection.note)
    return best


def best_trial_record(selection: Selection, metric: str, mode: str) -> BestTrial:
    """A ranked trial as the record retrain reads (``metric_value`` is its score, ``best_epoch`` the score's
    epoch)."""
    row = selection.row
    history = [float(v) for v in row["metric_history"]]
    return BestTrial(
        trial_id=str(row["trial_id"]),
        trial_index=int(row["trial_index"]),
        config=dict(row["config"]),
        metric=metric,
        mode=mode,
        metric_value=float(selection.score),
        best_epoch=int(selection.epoch),
        epochs_run=len(history),
        metric_range=(min(history), max(history)) if history else (math.nan, math.nan),
        checkpoint_path=str(row.get("best_checkpoint", "")),
        mlflow_run_id=str(row.get("mlflow_run_id", "")),
        status=str(row.get("status", "")),
        metric_by_epoch=history,
    )
