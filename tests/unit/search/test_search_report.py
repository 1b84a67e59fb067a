"""The report every search leaves in ``<run folder>/report/``: what ran, what won, what mattered.

A user opening ``search_report.md`` sees how many trials ended how, the best trial and its score, whether the
records agree, and the importance table; ``search show`` reads the importance table back from
``importance.json`` (nothing before a search's end).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from fracture_tune.search.config import config_from_dict
from fracture_tune.search.reconcile import Reconciliation
from fracture_tune.search.records import BestTrial
from fracture_tune.search.search_report import read_importance, write_search_report

RAW_CONFIG = {
    "dataset": {"image_size": 32},
    "space": {
        "params": {
            "lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-1, "log": True},
            "batch_size": {"type": "categorical", "choices": [16, 32]},
        }
    },
    "best_trial": {"min_epochs": 2},
}


def _rows(n: int = 30) -> list[dict[str, Any]]:
    """Trials whose score peaks at lr=1e-3; one in three finished, the rest stopped by ASHA."""
    rng = random.Random(0)
    rows = []
    for index in range(n):
        config = {"lr": 10 ** rng.uniform(-5, -1), "batch_size": rng.choice([16, 32])}
        score = 0.95 - 0.1 * abs(math.log10(config["lr"]) + 3) + rng.gauss(0, 0.003)
        status = "finished" if index % 3 == 0 else "stopped_by_asha"
        rows.append(
            {
                "trial_id": f"t{index:02d}",
                "trial_index": index,
                "status": status,
                "score": score,
                "config": config,
            }
        )
    return rows


def _best(row: dict[str, Any]) -> BestTrial:
    return BestTrial(
        trial_id=row["trial_id"],
        trial_index=row["trial_index"],
        config=row["config"],
        metric="val_auroc",
        mode="max",
        metric_value=row["score"],
        best_epoch=3,
        epochs_run=4,
        metric_range=(0.5, row["score"]),
        checkpoint_path="",
        mlflow_run_id="",
        status=row["status"],
    )


def test_the_report_names_the_trial_counts_the_winner_and_the_records_verdict(tmp_path: Path) -> None:
    rows = _rows()
    best_row = max(rows, key=lambda row: row["score"])
    records = Reconciliation(trials=len(rows), compared=["results.parquet", "optuna"])

    report = write_search_report(
        tmp_path, "quick", rows, config_from_dict(RAW_CONFIG), _best(best_row), records
    )

    text = report.markdown.read_text(encoding="utf-8")
    assert report.folder == tmp_path / "report"
    assert text.startswith("# Search quick")
    assert "30 trials: 10 finished, 20 stopped_by_asha" in text
    assert f"Best trial: **{best_row['trial_id']}**, score {best_row['score']:.4f} at epoch 3 of 4" in text
    assert "records agree: 30 trials in results.parquet, optuna" in text
    assert "best epoch at or after epoch 2" in text
    for plot in (report.importance.importance_plot, report.importance.history_plot):
        assert plot.is_file() and f"]({plot.name})" in text


def test_search_show_reads_back_the_importance_table_the_report_wrote(tmp_path: Path) -> None:
    assert read_importance(tmp_path) is None  # a search that has not ended yet

    report = write_search_report(
        tmp_path, "quick", _rows(), config_from_dict(RAW_CONFIG), None, Reconciliation(trials=30)
    )

    table = read_importance(tmp_path)
    assert table is not None
    assert table.importances[0][0] == "lr"  # the parameter that drives the score
    assert table.to_dict() == report.importance.table.to_dict()
    assert "Best trial" not in report.markdown.read_text(encoding="utf-8")
