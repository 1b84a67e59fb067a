"""Which hyperparameters mattered: importances from every trial that reported a score, and two plots.

Optuna's evaluators (and optuna-dashboard) read COMPLETE trials only, and after an ASHA search most trials
are PRUNED, so they show nothing. Here each results row with a finite ``score`` becomes one COMPLETE trial of
a throw-away in-memory study: a trial ASHA stopped counts with its last-rung score. Importances cover the
parameters present in every scored trial (all fANOVA can take; Optuna 5's PED-ANOVA would also split
conditional ones into per-value regimes, too thin to trust on a few dozen trials), so conditional (``when``)
parameters and parameters that never varied are listed as left out, with the reason, not silently missing.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.space import ParamSpec
from fracture_tune.search.stops import FINISHED, STOPPED_BY_ASHA, TIME_BUDGET

Row = dict[str, Any]
MIN_SCORED_TRIALS = 4
EVALUATORS = {"ped_anova": "PED-ANOVA", "fanova": "fANOVA"}
_BAR_WIDTH = 40


@dataclass(frozen=True)
class ImportanceTable:
    evaluator: str  # the label users read: "PED-ANOVA" or "fANOVA"
    trials_used: int
    trials_stopped_early: int  # of trials_used, those whose status is not ``finished``
    importances: tuple[tuple[str, float], ...] = ()  # largest first; fractions summing to 1 unless all 0
    left_out: tuple[tuple[str, str], ...] = ()  # (parameter, why it was not assessed)
    note: str = ""  # why no importance could be computed, else ""

    def to_text(self) -> str:
        head = f"parameter importances ({self.evaluator}, {self.trials_used} trials, "
        lines = [head + f"{self.trials_stopped_early} stopped early):"]
        if self.note:
            lines.append(f"  none: {self.note}")
        width = max([len(name) for name, _ in self.importances + self.left_out] + [9])
        for name, share in self.importances:
            lines.append(f"  {name:<{width}}  {share:5.3f}  {'#' * round(share * _BAR_WIDTH)}".rstrip())
        for name, reason in self.left_out:
            lines.append(f"  {name:<{width}}      -  left out: {reason}")
        return "\n".join(lines)

    def to_rows(self) -> list[Row]:
        assessed = [{"parameter": n, "importance": v, "left_out": ""} for n, v in self.importances]
        return assessed + [{"parameter": n, "importance": None, "left_out": r} for n, r in self.left_out]

    def to_csv(self, path: Path) -> Path:
        with _replacing(Path(path)) as partial, open(partial, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["parameter", "importance", "left_out"])
            writer.writeheader()
            writer.writerows(self.to_rows())
        return Path(path)

    def to_dict(self) -> Row:
        return {
            "evaluator": self.evaluator,
            "trials_used": self.trials_used,
            "trials_stopped_early": self.trials_stopped_early,
            "importances": dict(self.importances),
            "left_out": dict(self.left_out),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, raw: Row) -> ImportanceTable:
        """``to_dict``'s output back as a table (dict order is the importance order)."""
        return cls(
            evaluator=str(raw["evaluator"]),
            trials_used=int(raw["trials_used"]),
            trials_stopped_early=int(raw["trials_stopped_early"]),
            importances=tuple((str(name), float(share)) for name, share in raw["importances"].items()),
            left_out=tuple((str(name), str(reason)) for name, reason in raw["left_out"].items()),
            note=str(raw.get("note", "")),
        )


@dataclass(frozen=True)
class ImportanceReport:
    table: ImportanceTable
    csv_path: Path
    importance_plot: Path
    history_plot: Path


def optuna_distributions(space: dict[str, ParamSpec]) -> dict[str, BaseDistribution]:
    """The Optuna distribution each parameter is sampled from (the same arguments ``space.suggest`` uses)."""
    distributions: dict[str, BaseDistribution] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            distributions[name] = CategoricalDistribution(list(spec.choices or []))
        elif spec.type == "int":
            low, high, step = int(spec.low or 0), int(spec.high or 0), int(spec.step or 1)
            distributions[name] = IntDistribution(low, high, log=spec.log, step=step)
        else:
            low_f, high_f = float(spec.low or 0), float(spec.high or 0)
            distributions[name] = FloatDistribution(low_f, high_f, log=spec.log, step=spec.step)
    return distributions


def parameter_importances(
    rows: Sequence[Row], space: dict[str, ParamSpec], mode: str, *, evaluator: str = "ped_anova"
) -> ImportanceTable:
    """How much each searched parameter mattered to the score, over every trial with a finite score."""
    if mode not in ("max", "min"):
        raise FractureTuneError(f"mode must be 'max' or 'min', got {mode!r}")
    _check_evaluator(evaluator)
    scored = [row for row in rows if _score(row) is not None]
    scores = [float(row["score"]) for row in scored]
    early = sum(row.get("status") != FINISHED for row in scored)
    table = ImportanceTable(EVALUATORS[evaluator], len(scored), early)
    if len(scored) < MIN_SCORED_TRIALS:
        note = f"{len(scored)} trial(s) reported a score; importances need at least {MIN_SCORED_TRIALS}"
        return replace(table, note=note)
    values = [{name: _value(row, name) for name in space} for row in scored]
    left_out = {name: reason for name in space if (reason := _why_left_out(name, space[name], values))}
    kept = {name: dist for name, dist in optuna_distributions(space).items() if name not in left_out}
    table = replace(table, left_out=tuple(left_out.items()))
    if not kept:
        return replace(table, note="no parameter was both in every scored trial and varied")
    if len(set(scores)) == 1:
        return replace(table, note="every trial scored the same, so no parameter made a difference")
    raw = _evaluate(values, scores, kept, mode, evaluator)
    total = sum(raw.values())
    shares = {name: value / total if total > 0 else 0.0 for name, value in raw.items()}
    ranked = tuple(sorted(shares.items(), key=lambda item: -item[1]))
    note = "" if total > 0 else f"{table.evaluator} found no parameter that set the best trials apart"
    return replace(table, importances=ranked, note=note)


def _evaluate(
    values: list[Row],
    scores: list[float],
    distributions: dict[str, BaseDistribution],
    mode: str,
    evaluator: str,
) -> dict[str, float]:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for params, score in zip(values, scores, strict=True):
        chosen = {name: params[name] for name in distributions}
        study.add_trial(optuna.trial.create_trial(params=chosen, distributions=distributions, value=score))
    raw = _evaluator(evaluator, scores, mode).evaluate(study, params=list(distributions))
    return {name: float(value) if math.isfinite(value) else 0.0 for name, value in raw.items()}


def _check_evaluator(name: str) -> None:
    if name not in EVALUATORS:
        raise FractureTuneError(
            f"unknown importance evaluator {name!r}", hint=f"use one of {list(EVALUATORS)}"
        )
    if name == "fanova":
        try:
            import sklearn  # noqa: F401  (fANOVA fits scikit-learn's random forest)
        except ImportError as error:
            raise FractureTuneError(
                "the fANOVA importance evaluator needs scikit-learn, which is not installed",
                hint="pip install scikit-learn, or use the default evaluator (ped_anova)",
            ) from error


def _evaluator(name: str, scores: list[float], mode: str) -> optuna.importance.BaseImportanceEvaluator:
    if name == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=0)
    return optuna.importance.PedAnovaImportanceEvaluator(target_quantile=_top_quantile(scores, mode))


def _top_quantile(scores: list[float], mode: str) -> float:
    """PED-ANOVA's ``target_quantile``: which share of the trials counts as "the best".

    PED-ANOVA compares where the best trials sit with where all trials sit (``region_quantile=1.0``;
    ``evaluate_on_local=True``: against the trials actually run, which TPE did not sample uniformly). Its
    default 0.1 makes one trial "the best" below 10 trials, and Optuna advises at least 5; a top half no
    longer says what good trials share: so 5 trials, within 10% to 50%. Optuna keeps every trial tied with
    the cutoff, and a top set that is every trial gives all-zero importances, so a tie with the worst score
    shrinks the top set to the trials that beat the worst.
    """
    losses = sorted(-score if mode == "max" else score for score in scores)
    top = min(max(5, math.ceil(0.1 * len(losses))), len(losses) // 2)
    if losses[top - 1] == losses[-1]:
        top = sum(loss < losses[-1] for loss in losses)
    return (top - 0.5) / len(losses)  # Optuna keeps the ceil(q * n) best: exactly ``top`` (and ties)


def _why_left_out(name: str, spec: ParamSpec, values: list[Row]) -> str:
    present = [params[name] for params in values if params[name] is not None]
    if not present:
        return f"in none of the {len(values)} scored trials"
    if outside := sum(not spec.contains(value) for value in present):
        return f"outside the search space in {outside} trial(s); was the space changed?"
    if len(present) < len(values):
        return f"{'conditional: ' if spec.when else ''}only in {len(present)} of {len(values)} trials"
    if len({repr(value) for value in present}) == 1:
        return f"one value ({present[0]!r}) in every trial"
    return ""


def _score(row: Row) -> float | None:
    value = row.get("score")
    value = value.item() if isinstance(value, np.generic) else value
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _value(row: Row, name: str) -> Any:
    """The row's value of ``name``, as a plain Python value; None when absent (NaN from a flattened table)."""
    value = (row.get("config") or {}).get(name)
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


# How each way of ending looks in the history plot.
_HOW_IT_ENDED = {
    FINISHED: ("finished", "tab:green", "o"),
    STOPPED_BY_ASHA: ("stopped by ASHA", "tab:orange", "v"),
    TIME_BUDGET: ("cut by the time budget", "tab:purple", "s"),
}
_OTHER_ENDING = ("other (interrupted, error, running)", "tab:gray", "x")


def write_importance_plot(table: ImportanceTable, path: Path) -> Path:
    """A horizontal bar chart of the importances, largest on top (the note instead when there are none)."""
    fig, ax = _figure()
    if table.importances:
        names = [name for name, _ in reversed(table.importances)]
        ax.barh(names, [share for _, share in reversed(table.importances)], color="tab:blue")
        ax.set_xlabel("importance (fraction of the total)")
    else:
        ax.text(0.5, 0.5, table.note or "no importances", ha="center", va="center", wrap=True)
        ax.set_axis_off()
    ax.set_title(f"parameter importances ({table.evaluator}, {table.trials_used} trials)")
    return _save(fig, Path(path))


def write_history_plot(rows: Sequence[Row], mode: str, path: Path, metric_label: str = "score") -> Path:
    """Each scored trial's score by creation order, marked by how it ended, with the best score so far."""
    scored = sorted(
        (int(row.get("trial_index", 0)), score, str(row.get("status")))
        for row in rows
        if (score := _score(row)) is not None
    )
    fig, ax = _figure()
    groups: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for index, score, status in scored:
        groups.setdefault(_HOW_IT_ENDED.get(status, _OTHER_ENDING), []).append((index, score))
    for label, colour, marker in [*_HOW_IT_ENDED.values(), _OTHER_ENDING]:  # the legend in this order
        if points := groups.get((label, colour, marker)):
            ax.scatter(*zip(*points, strict=True), label=label, color=colour, marker=marker, s=24)
    if scored:
        best = (np.maximum if mode == "max" else np.minimum).accumulate([s for _, s, _ in scored])
        ax.step([i for i, _, _ in scored], best, where="post", color="black", label="best so far")
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no trial reported a score", ha="center", va="center")
    ax.set_xlabel("trial (creation order)")
    ax.set_ylabel(f"{metric_label} ({'higher' if mode == 'max' else 'lower'} is better)")
    ax.set_title(f"optimisation history ({len(scored)} scored trials)")
    return _save(fig, Path(path))


def write_importance_report(
    rows: Sequence[Row],
    space: dict[str, ParamSpec],
    mode: str,
    folder: Path,
    *,
    evaluator: str = "ped_anova",
    metric_label: str = "score",
) -> ImportanceReport:
    """``importance.csv``, ``importance.png`` and ``history.png`` in ``folder``, and the table behind them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = parameter_importances(rows, space, mode, evaluator=evaluator)
    return ImportanceReport(
        table=table,
        csv_path=table.to_csv(folder / "importance.csv"),
        importance_plot=write_importance_plot(table, folder / "importance.png"),
        history_plot=write_history_plot(rows, mode, folder / "history.png", metric_label),
    )


def _figure() -> tuple[Any, Any]:
    # A bare Figure, not pyplot: no GUI backend, nothing switched for a notebook that imported us, and nothing
    # kept in pyplot's registry, so many searches in one process do not pile up figures.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    return fig, fig.subplots()


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    with _replacing(path) as partial:
        fig.savefig(partial, format="png")  # PNG through the Agg renderer, whatever the session's backend
    return path


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A partial file next to ``path`` that replaces it once written, so readers never see half a file."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
