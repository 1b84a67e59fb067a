"""The search's own report: what was searched, what won, whether the records agree, and what mattered.

Written at the end of every search into ``<run folder>/report/`` — ``search_report.md``, ``importance.csv``
and ``importance.json`` (the table ``search show`` prints), ``importance.png``, ``history.png`` and
``reconciliation.json`` beside the run folder's ``results.csv`` — and logged to the search's MLflow parent run
under ``report/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.search.importance import ImportanceReport, ImportanceTable, write_importance_report
from fracture_tune.search.reconcile import Reconciliation

if TYPE_CHECKING:
    from fracture_tune.search.config import ExperimentConfig
    from fracture_tune.search.records import BestTrial

REPORT_FOLDER = "report"
REPORT_FILE = "search_report.md"
IMPORTANCE_JSON = "importance.json"


@dataclass(frozen=True)
class SearchReport:
    folder: Path
    markdown: Path
    importance: ImportanceReport


def write_search_report(
    run_dir: Path,
    name: str,
    rows: list[dict[str, Any]],
    config: ExperimentConfig,
    best: BestTrial | None,
    records: Reconciliation,
) -> SearchReport:
    """Write the report's files (see the module) and return where they are."""
    folder = Path(run_dir) / REPORT_FOLDER
    importance = write_importance_report(rows, config.space.resolved_params(), config.metric_mode, folder)
    _write_text(folder / IMPORTANCE_JSON, json.dumps(importance.table.to_dict(), indent=1))
    markdown = _markdown(name, rows, config, best, records, importance)
    _write_text(folder / REPORT_FILE, markdown)
    return SearchReport(folder, folder / REPORT_FILE, importance)


def read_importance(run_dir: Path) -> ImportanceTable | None:
    """The importance table a finished search wrote (None before its end, or for an older search)."""
    try:
        raw = json.loads((Path(run_dir) / REPORT_FOLDER / IMPORTANCE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ImportanceTable.from_dict(raw)


def _markdown(
    name: str,
    rows: list[dict[str, Any]],
    config: ExperimentConfig,
    best: BestTrial | None,
    records: Reconciliation,
    importance: ImportanceReport,
) -> str:
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[str(row["status"])] = statuses.get(str(row["status"]), 0) + 1
    rule = config.score_rule
    words = "best epoch at or after" if rule.scope == "best_epoch" else "last epoch; counts from"
    lines = [
        f"# Search {name}",
        "",
        f"{len(rows)} trials: "
        + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())),
        "",
        f"A trial's score: its {rule.metric} ({rule.mode}), {words} epoch {rule.min_epochs}.",
        "",
    ]
    if best is not None:
        lines += [
            f"Best trial: **{best.trial_id}**, score {best.metric_value:.4f} at epoch {best.best_epoch} of "
            f"{best.epochs_run} ({best.status}); config "
            f"`{json.dumps(best.config, sort_keys=True, default=str)}`",
            "",
        ]
    lines += ["## Records", "", "```", records.summary(), "```", "", "## What mattered", ""]
    lines += ["```", importance.table.to_text(), "```", ""]
    lines += [
        f"![parameter importances]({importance.importance_plot.name})",
        "",
        f"![optimisation history]({importance.history_plot.name})",
        "",
    ]
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
