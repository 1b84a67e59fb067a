"""How well a search's validation ranking predicts test AUROC: each trial's kept checkpoint scored on the test
split (for measurement only: nothing is chosen on it).

    python benchmarks/selection_noise.py --run-dir WORK/runs/selection-s0 [--run-dir ...] --out noise.json

Per search: the Spearman rank correlation between the trials' search score (the best-trial rule's: the
metric at the best epoch; a fold mean with ``evaluation.folds``) and their test AUROC, over the trials that
reached the rule's ``min_epochs`` (the ones the rule chooses among); and the test AUROC of the trial the rule
chose against the best and the median test AUROC among those trials. A trial with folds is scored as the mean
probability of its fold models. Checkpoints are the trial's best epoch when kept, else its latest.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from bench_report import markdown_table, write_report


def trial_test_auroc(checkpoint_dir: str, data: Any) -> float:
    import torch

    from fracture_tune.trainables.checkpoint import load_checkpoint
    from fracture_tune.trainables.config import TrainConfig
    from fracture_tune.trainables.engine import predict_proba
    from fracture_tune.trainables.metrics import binary_metrics
    from fracture_tune.trainables.models import build_model

    state = load_checkpoint(checkpoint_dir)
    config = TrainConfig.from_flat({**state["config"], "device": "cpu"})
    test_rows = data.indices("test")
    probabilities = []
    for model_state in [fold["model"] for fold in state.get("folds", [])] or [state["model"]]:
        side = config.input_size or data.image_size
        model = build_model(config.model, input_size=side, **config.model_kwargs)
        model.load_state_dict(model_state)
        model.eval()
        with torch.inference_mode():
            probabilities.append(predict_proba(model, data.images[test_rows], config, device="cpu"))
    labels = np.asarray(data.labels[test_rows])
    return float(binary_metrics(labels, np.mean(probabilities, axis=0))["auroc"])


def measure(run_dir: Path) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from fracture_tune.data.cache import load_prepared
    from fracture_tune.search.config import load_config
    from fracture_tune.search.records import RESOLVED_CONFIG_FILE, read_best_trial, read_search_record
    from fracture_tune.search.results import read_results, rows_from_frame

    config = load_config(run_dir / RESOLVED_CONFIG_FILE)
    record = read_search_record(run_dir)
    data = load_prepared(record.dataset_cache_dir).arrays
    chosen = read_best_trial(run_dir).trial_id
    rule = config.best_trial
    trials = []
    for row in rows_from_frame(read_results(run_dir)):
        if len(row["metric_history"]) < rule.min_epochs or not row.get("best_checkpoint"):
            continue
        trials.append(
            {
                "trial_id": row["trial_id"],
                "search_score": float(row["best_metric"]),
                "epochs": len(row["metric_history"]),
                "test_auroc": trial_test_auroc(str(row["best_checkpoint"]), data),
            }
        )
    scores = [trial["search_score"] for trial in trials]
    tests = [trial["test_auroc"] for trial in trials]
    rho, p_value = spearmanr(scores, tests) if len(trials) > 2 else (float("nan"), float("nan"))
    chosen_test = next((trial["test_auroc"] for trial in trials if trial["trial_id"] == chosen), float("nan"))
    return {
        "search": run_dir.name,
        "folds": config.evaluation.folds,
        "trials_scored": len(trials),
        "min_epochs": rule.min_epochs,
        "spearman_search_score_vs_test_auroc": float(rho),
        "spearman_p_value": float(p_value),
        "chosen_trial": chosen,
        "chosen_test_auroc": chosen_test,
        "best_test_auroc": max(tests, default=float("nan")),
        "median_test_auroc": statistics.median(tests) if tests else float("nan"),
        "trials": trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, action="append", required=True, help="a search's run folder")
    parser.add_argument(
        "--out",
        type=Path,
        help='write the measurements here as JSON: {"results": [one per search]} and the commit, machine',
    )
    args = parser.parse_args()
    results = [measure(run_dir.resolve()) for run_dir in args.run_dir]
    print(markdown(results))
    write_report(args.out, results=results)


def markdown(results: list[dict[str, Any]]) -> str:
    header = [
        "search",
        "folds",
        "trials",
        "Spearman(search score, test AUROC)",
        "chosen trial's test AUROC",
        "best / median test AUROC",
    ]
    rows = [
        [
            result["search"],
            result["folds"] or "-",
            result["trials_scored"],
            f"{result['spearman_search_score_vs_test_auroc']:.2f} (p {result['spearman_p_value']:.2g})",
            f"{result['chosen_test_auroc']:.3f}",
            f"{result['best_test_auroc']:.3f} / {result['median_test_auroc']:.3f}",
        ]
        for result in results
    ]
    return markdown_table(header, rows)


if __name__ == "__main__":
    main()
