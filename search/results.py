"""The results table (one row per trial) and the best-trial rule, as pure functions over plain rows.

A row is a dict: ``trial_id``, ``trial_index``, ``status`` (finished | stopped | error | running |
pending), ``epochs``, ``metric_history`` (metric per epoch, epoch 1 first), ``last_metric``,
``best_metric``, ``best_epoch``, ``node_id``, ``mlflow_run_id``, ``best_checkpoint``, ``error`` and
``config`` (the trial's flat config). ``to_frame`` flattens ``config`` into ``config/<key>`` columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_tune.search.records import RESULTS_CSV_FILE, RESULTS_PARQUET_FILE

Row = dict[str, Any]


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
    return {**row, "epochs": len(history), "last_metric": history[-1] if history else math.nan,
            "best_metric": best, "best_epoch": epoch}


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

    row, score, epoch = min(eligible, key=order)
    return Selection(row=row, score=score, epoch=epoch, note=note)


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
    lines.append(f"  {'trial':<14} {'status':<9} {'best':>8} {'@ep':>4} {'epochs':>6}  config")
    for _, row in ranked.head(top).iterrows():
        # A conditional parameter the trial's model does not take is missing (NaN) in its row: not shown.
        config = " ".join(f"{c.removeprefix('config/')}={_short(row[c])}" for c in varied if _present(row[c]))
        lines.append(
            f"  {row['trial_id']:<14} {row['status']:<9} {row['best_metric']:>8.4f} "
            f"{int(row['best_epoch']):>4} {int(row['epochs']):>6}  {config}"
        )
    return "\n".join(lines)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
