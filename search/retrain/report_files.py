"""The retrain report's files: report.json, report.md, the plots and the per-image test predictions.

Rendering only: every number was computed (``report.py``) before it gets here.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fracture_tune.classifier.evaluation import METRIC_NAMES, MetricInterval, confusion_counts
from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.search.retrain.report import ModelEvaluation, RetrainReport

if TYPE_CHECKING:
    from fracture_tune.search.retrain.types import TrainedModel


def write_test_predictions(
    out_dir: Path,
    source_paths: list[str],
    data: DatasetArrays,
    primary: TrainedModel,
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """``test_predictions.csv``: per test image its path, label and the registered model's probability;
    ``extra`` adds a ``probability_<name>`` column each (an ensemble's single best model and members)."""
    import csv

    path = out_dir / "test_predictions.csv"
    rows = data.indices("test")
    columns = {"probability": primary.test_probabilities}
    columns.update({f"probability_{name}": values for name, values in (extra or {}).items()})
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["row", "source_path", "label", *columns])
        for index, row in enumerate(rows):
            shown = source_paths[row] if row < len(source_paths) else ""
            values = [repr(float(column[index])) for column in columns.values()]
            writer.writerow([int(row), shown, int(data.labels[row]), *values])
    return path


def write_plots(
    out_dir: Path,
    data: DatasetArrays,
    primary: TrainedModel,
    evaluation: ModelEvaluation,
    baseline: TrainedModel | None,
) -> dict[str, str]:
    from fracture_tune.classifier.plots import (
        plot_base_vs_optimized,
        plot_confusion_matrix,
        plot_roc,
        plot_training_curves,
    )

    labels = np.asarray(data.labels[data.indices("test")])
    threshold = evaluation.threshold.value
    at_threshold = evaluation.threshold.test
    auroc = evaluation.test["auroc"]
    plots = {
        "confusion_matrix": plot_confusion_matrix(
            confusion_counts(labels, primary.test_probabilities, threshold),
            data.class_names,
            out_dir / "confusion_matrix.png",
            f"Test, threshold {threshold:.3f}",
        ),
        "roc": plot_roc(
            labels,
            primary.test_probabilities,
            out_dir / "roc.png",
            f"AUROC {auroc.value:.3f} [{auroc.lower:.3f}, {auroc.upper:.3f}]",
            (1 - at_threshold["specificity"].value, at_threshold["sensitivity"].value),
        ),
        "training_curves": plot_training_curves(
            primary.history, out_dir / "training_curves.png", "Optimized model"
        ),
    }
    if baseline is not None:
        plots["base_vs_optimized"] = plot_base_vs_optimized(
            {"base CNN (seed recipe)": baseline.history, "optimized": primary.history},
            out_dir / "base_vs_optimized.png",
        )
    return {name: path.name for name, path in plots.items()}


def write_report(out_dir: Path, report: RetrainReport) -> list[Path]:
    """report.json (NaN → null) and report.md beside the plots."""
    import json

    from fracture_tune.search.records import write_json_atomic

    json_path = out_dir / "report.json"
    write_json_atomic(json_path, _finite_or_none(report.to_dict()))
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(render_markdown(report), encoding="utf-8")
    json.loads(json_path.read_text(encoding="utf-8"))  # fail here, not in a reader, if it is not strict JSON
    return [json_path, markdown_path]


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, np.generic):
        return _finite_or_none(value.item())
    return value


def _interval(interval: MetricInterval | None) -> str:
    if interval is None:
        return "–"
    return f"{interval.value:.3f} [{interval.lower:.3f}, {interval.upper:.3f}]"


def _weights_note(report: RetrainReport) -> str:
    epoch = report.optimized.weights_epoch
    if not epoch or epoch == report.epochs:
        return ""
    return f" (the model holds epoch {epoch}'s weights: its validation score's epoch by the search's rule)"


def render_markdown(report: RetrainReport) -> str:
    optimized, baseline, dataset = report.optimized, report.baseline, report.dataset
    threshold = optimized.threshold
    lines = [
        f"# Retrain report — {report.source}",
        "",
        f"Dataset `{dataset.key}` (split hash `{dataset.split_hash}`): {dataset.train_size} train, "
        f"{dataset.val_size} validation, {dataset.test_size} test images. Trained on "
        f"{report.train_on} for {report.epochs} epochs{_weights_note(report)}; the test split was scored "
        "once.",
        "",
        "## Test metrics (threshold 0.5), 95 % stratified bootstrap CIs",
        "",
        "| metric | optimized | seed base CNN |",
        "| --- | --- | --- |",
    ]
    for name in METRIC_NAMES:
        base = _interval(baseline.test[name]) if baseline else "(skipped)"
        lines.append(f"| {name} | {_interval(optimized.test[name])} | {base} |")
    lines += [
        "",
        f"## Operating threshold {threshold.value:.4f}",
        "",
        f"Chosen on validation for sensitivity ≥ {threshold.target_sensitivity} (validation sensitivity "
        f"{threshold.validation['sensitivity']:.3f}, "
        f"specificity {threshold.validation['specificity']:.3f}). "
        "On test:",
        "",
        "| metric | test at operating threshold |",
        "| --- | --- |",
        *[f"| {name} | {_interval(threshold.test[name])} |" for name in METRIC_NAMES],
        "",
        f"Confusion (test): {asdict(threshold.test_confusion)}",
        "",
    ]
    lines += _markdown_extras(report)
    return "\n".join(lines) + "\n"


def _selection_lines(report: RetrainReport) -> list[str]:
    lines: list[str] = []
    if report.rerank:
        rerank = report.rerank
        lines += [
            "## Re-ranking of the search's finalists",
            "",
            f"Rule: {rerank['rule']}.",
            "",
            f"| trial | search rank | search {rerank['metric']} | fresh seeds | scores | mean |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for entry in rerank["entries"]:
            scores = ", ".join(f"{score:.4f}" for score in entry["scores"])
            lines.append(
                f"| {entry['trial_id']} | {entry['search_rank']} | {entry['search_score']:.4f} | "
                f"{entry['seeds']} | {scores} | **{entry['mean']:.4f}** |"
            )
        winner, search_winner = rerank["winner"], rerank["search_winner"]
        lines += ["", f"Winner: trial {winner} (the search's own best: {search_winner}).", ""]
    if report.ensemble:
        ensemble = report.ensemble
        single = ensemble["single_best"]["test"]["auroc"]
        difference = ensemble["auroc_minus_single_best"]
        lines += [
            "## Ensemble",
            "",
            f"The registered model averages the probabilities of {len(ensemble['members'])} models; "
            "the metrics above are the ensemble's.",
            "",
            "| member | seed | input size | search score | test AUROC (95 % CI) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for member in ensemble["members"]:
            auroc = member["test_auroc"]
            lines.append(
                f"| trial {member['trial_id']} | {member['seed']} | {member['input_size']} | "
                f"{member['search_score']:.4f} | {auroc['value']:.3f} [{auroc['lower']:.3f}, "
                f"{auroc['upper']:.3f}] |"
            )
        lines += [
            "",
            f"Single best model (the first member) test AUROC {single['value']:.3f} "
            f"[{single['lower']:.3f}, {single['upper']:.3f}]; ensemble − single best: "
            f"{difference['value']:+.3f} [{difference['lower']:+.3f}, {difference['upper']:+.3f}] "
            "(paired bootstrap on the same test images).",
            "",
        ]
    return lines


def _markdown_extras(report: RetrainReport) -> list[str]:
    lines = _selection_lines(report) + ["## Reproduction check", ""]
    check = report.reproduction
    if check.get("checked"):
        low, high = check["trial_range"]
        if check["within_range"]:
            verdict = "within"
        elif check.get("reproduced"):
            verdict = "better than"
        else:
            verdict = "**worse than**"
        lines.append(
            f"{check['metric']} at epoch {check['epoch']}: retrained {check['retrained_value']:.4f}, "
            f"{verdict} the trial's range [{low:.4f}, {high:.4f}]."
        )
        if check.get("warning"):
            lines.append(f"\n> {check['warning']}")
    else:
        lines.append(f"Not checked: {check.get('reason')}.")
    spread = report.seeds.spread
    if spread:
        lines += [
            "",
            f"## Seeds {report.seeds.seeds}",
            "",
            "| metric | mean | std | min | max |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {name} | {s['mean']:.3f} | {s['std']:.3f} | {s['min']:.3f} | {s['max']:.3f} |"
            for name, s in spread.items()
        ]
    lines += ["", "## Model", ""]
    if report.model:
        lines.append(
            f"Logged as `{report.model.uri}`, an MLflow pyfunc that scores image files (model folder sha256 "
            f"`{report.model.model_sha256[:16]}…`, weights sha256 `{report.model.weights_sha256[:16]}…`), "
            f"local copy `{report.model.local_dir}`."
        )
    if report.registry:
        lines.append(
            f"Registered as `{report.registry.uri}`; champion: {report.registry.champion} "
            f"({report.registry.decision})."
        )
        if not report.registry.champion:
            note = report.registry.not_champion_note()
            lines.append(f"{note[0].upper()}{note[1:]}.")
    if report.mlflow:
        lines.append(f"MLflow run `{report.mlflow.run_id}` (parent `{report.mlflow.parent_run_id}`).")
    lines += ["", "## Plots", ""] + [f"![{name}]({file})" for name, file in report.plots.items()]
    for warning in report.warnings:
        lines += ["", f"> warning: {warning}"]
    return lines
