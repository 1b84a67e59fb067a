"""Do a search's records agree? Every trial compared across everything that records it.

A search leaves each trial in six places: Tune's trial folder (``result.json``: every epoch it reported —
the record the others are checked against), ``results.csv``/``.parquet``, ``stop_reasons.jsonl`` (why it
ended), its MLflow child run (status, stop tags, epochs, latest metric and score), the Optuna study (state,
value, the score after each epoch) and, for the winner, ``best_trial.json``. ``reconcile`` compares them trial
by trial and names every difference; it runs at the end of every search (the summary says "records agree" or
lists what does not) and for any past search as ``fracture-tune search check NAME``. It reads each record
once: a file per trial, MLflow's runs page by page, the study's trials in one query.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fracture_tune.search.optuna_study import (
    LOST,
    STOP_REASON_ATTR,
    TUNE_TRIAL_ID_ATTR,
    study_state_for,
)
from fracture_tune.search.stops import ERROR, MLFLOW_STATUS, RUNNING, StopLedger
from fracture_tune.trainables.score import SCORE_KEY, ScoreRule

RECONCILIATION_FILE = "reconciliation.json"
# Two floats written through JSON, Parquet, SQLite and MLflow may differ in the last bits.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Difference:
    trial_id: str  # "" for the search as a whole
    record: str  # results | stop records | MLflow | Optuna | best_trial.json
    what: str

    def __str__(self) -> str:
        who = f"trial {self.trial_id}" if self.trial_id else "search"
        return f"{who}: {self.record}: {self.what}"


@dataclass
class Reconciliation:
    trials: int
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)  # the records that were read

    @property
    def agree(self) -> bool:
        return not self.differences

    def summary(self, limit: int = 20) -> str:
        records = ", ".join(self.compared)
        if self.agree:
            lines = [f"records agree: {self.trials} trials in {records}"]
        else:
            by_record = Counter(difference.record for difference in self.differences)
            counts = ", ".join(f"{count} in {record}" for record, count in sorted(by_record.items()))
            lines = [
                f"records disagree ({len(self.differences)} difference(s): {counts}); compared {records}:"
            ]
            lines += [f"  - {difference}" for difference in self.differences[:limit]]
            if len(self.differences) > limit:
                lines.append(f"  ... and {len(self.differences) - limit} more ({RECONCILIATION_FILE})")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "trials": self.trials,
            "compared": self.compared,
            "differences": [asdict(difference) for difference in self.differences],
            "notes": self.notes,
        }


def reconcile(
    run_dir: Path,
    rows: list[dict[str, Any]],
    rule: ScoreRule,
    *,
    mlflow_runs: list[Any] | None,
    study_trials: list[Any] | None,
    best_trial_id: str | None,
) -> Reconciliation:
    """Compare the search's records (``rows``: the results table; ``mlflow_runs``: its MLflow child runs, None
    when MLflow was not read; ``study_trials``: the Optuna study's frozen trials, None when not read)."""
    report = Reconciliation(trials=len(rows), compared=["trial folders", "results"])
    by_id = {str(row["trial_id"]): row for row in rows}
    _compare_folders(run_dir, by_id, rule, report)
    report.compared.append("stop records")
    _compare_stops(StopLedger(run_dir).all(), by_id, report)
    if mlflow_runs is not None:
        report.compared.append("MLflow")
        _compare_mlflow(mlflow_runs, by_id, rule, report)
    if study_trials is not None:
        report.compared.append("Optuna")
        _compare_study(study_trials, by_id, rule, report)
    report.compared.append("best_trial.json")
    _compare_best(best_trial_id, by_id, rule, study_trials, report)
    return report


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


def folder_history(trial_dir: Path, metric: str) -> list[float] | None:
    """The metric per epoch as the trial's folder recorded it (an epoch's last line wins); None: no folder."""
    path = Path(trial_dir) / "result.json"
    if not Path(trial_dir).is_dir():
        return None
    by_epoch: dict[int, float] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            result = json.loads(line)
        except ValueError:
            continue
        epoch = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
        if epoch > 0 and metric in result:
            by_epoch[epoch] = float(result[metric])
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _compare_folders(run_dir: Path, by_id: dict[str, Any], rule: ScoreRule, report: Reconciliation) -> None:
    folders = {path.name.removeprefix("trial_") for path in Path(run_dir).glob("trial_*") if path.is_dir()}
    for trial_id in sorted(folders - set(by_id)):
        report.differences.append(Difference(trial_id, "results", "has a trial folder but no row"))
    for trial_id, row in by_id.items():
        history = folder_history(Path(run_dir) / f"trial_{trial_id}", rule.metric)
        ours = [float(value) for value in row.get("metric_history", [])]
        if history is None:
            report.differences.append(Difference(trial_id, "results", "has a row but no trial folder"))
        elif len(history) != len(ours) or not all(map(_close, history, ours)):
            report.differences.append(
                Difference(
                    trial_id, "results", f"{len(ours)} epochs recorded, the trial reported {len(history)}"
                )
            )
        score = float(row.get("score", math.nan))
        if not _close(score, rule.score(ours)[0]):
            report.differences.append(Difference(trial_id, "results", f"score {score} is not its curve's"))


def _compare_stops(stops: dict[str, Any], by_id: dict[str, Any], report: Reconciliation) -> None:
    for trial_id, row in by_id.items():
        stop, status = stops.get(trial_id), str(row["status"])
        epochs = len(row.get("metric_history", []))
        if status == RUNNING:
            continue
        if stop is None:
            report.differences.append(
                Difference(trial_id, "stop records", f"no record; results say {status}")
            )
        elif stop.reason != status:
            report.differences.append(
                Difference(trial_id, "stop records", f"say {stop.reason}; results say {status}")
            )
        elif stop.epoch != epochs and status != ERROR:
            report.differences.append(
                Difference(trial_id, "stop records", f"ended after epoch {stop.epoch}; results have {epochs}")
            )


def _compare_mlflow(runs: list[Any], by_id: dict[str, Any], rule: ScoreRule, report: Reconciliation) -> None:
    from fracture_tune.search.tracking import STOP_REASON_TAG, TRIAL_ID_TAG

    found: dict[str, list[Any]] = {}
    for run in runs:
        found.setdefault(str(run.data.tags.get(TRIAL_ID_TAG, "")), []).append(run)
    for trial_id in sorted(set(found) - set(by_id)):
        report.differences.append(
            Difference(trial_id, "MLflow", "has a run for a trial the search does not have")
        )
    for trial_id, row in by_id.items():
        status, history = str(row["status"]), [float(v) for v in row.get("metric_history", [])]
        trial_runs = found.get(trial_id, [])
        if len(trial_runs) > 1:
            report.differences.append(Difference(trial_id, "MLflow", f"{len(trial_runs)} runs for one trial"))
        if not trial_runs:
            if history or status == ERROR:
                report.differences.append(
                    Difference(trial_id, "MLflow", f"no run ({status}, {len(history)} epochs)")
                )
            continue
        run = trial_runs[0]
        _compare_run(trial_id, run, status, history, rule, report, STOP_REASON_TAG)


def _compare_run(
    trial_id: str,
    run: Any,
    status: str,
    history: list[float],
    rule: ScoreRule,
    report: Reconciliation,
    tag: str,
) -> None:
    expected = MLFLOW_STATUS.get(status, "RUNNING")
    said: list[str] = []
    if run.info.status != expected:
        said.append(f"status {run.info.status}, expected {expected}")
    tags = run.data.tags
    if status != RUNNING and tags.get(tag) != status:
        said.append(f"stop_reason {tags.get(tag)!r}, expected {status!r}")
    if status != RUNNING and tags.get("epochs_completed") != str(len(history)) and status != ERROR:
        said.append(f"epochs_completed {tags.get('epochs_completed')!r}, expected {len(history)}")
    metrics = run.data.metrics
    if history and not _close(float(metrics.get(rule.metric, math.nan)), history[-1]):
        said.append(f"last {rule.metric} {metrics.get(rule.metric)}, expected {history[-1]}")
    if history and not _close(float(metrics.get(SCORE_KEY, math.nan)), rule.score(history)[0]):
        said.append(f"score {metrics.get(SCORE_KEY)}, expected {rule.score(history)[0]}")
    if said:
        report.differences.append(Difference(trial_id, "MLflow", "; ".join(said)))


def _compare_study(trials: list[Any], by_id: dict[str, Any], rule: ScoreRule, report: Reconciliation) -> None:
    found: dict[str, list[Any]] = {}
    for trial in trials:
        tune_id = str(trial.user_attrs.get(TUNE_TRIAL_ID_ATTR, ""))
        if tune_id not in by_id:
            if trial.state.name != "FAIL" or trial.user_attrs.get(STOP_REASON_ATTR) != LOST:
                report.differences.append(
                    Difference(
                        tune_id,
                        "Optuna",
                        f"trial #{trial.number} ({trial.state.name}) is no trial of the search",
                    )
                )
            continue
        found.setdefault(tune_id, []).append(trial)
    for trial_id, row in by_id.items():
        study_trials = found.get(trial_id, [])
        if len(study_trials) != 1:
            report.differences.append(
                Difference(trial_id, "Optuna", f"{len(study_trials)} study trials, expected 1")
            )
            continue
        _compare_study_trial(trial_id, study_trials[0], row, rule, report)


def _compare_study_trial(
    trial_id: str, trial: Any, row: dict[str, Any], rule: ScoreRule, report: Reconciliation
) -> None:
    history = [float(v) for v in row.get("metric_history", [])]
    status = str(row["status"])
    expected = study_state_for(status, len(history), rule)
    said: list[str] = []
    if trial.state.name != expected:
        said.append(f"{trial.state.name}, expected {expected}")
    running = {
        epoch: value for epoch, value in enumerate(rule.running(history), start=1) if math.isfinite(value)
    }
    if expected in ("COMPLETE", "PRUNED"):
        score = rule.score(history)[0]
        value = math.nan if trial.value is None else float(trial.value)
        if not _close(value, score):
            said.append(f"value {trial.value}, the trial's score is {score}")
        stored = dict(trial.intermediate_values)
        if set(stored) != set(running) or not all(_close(stored[step], running[step]) for step in running):
            said.append(f"intermediate values for epochs {sorted(stored)}, expected {sorted(running)}")
        if trial.user_attrs.get(STOP_REASON_ATTR) != status:
            said.append(f"stop_reason {trial.user_attrs.get(STOP_REASON_ATTR)!r}, expected {status!r}")
    if said:
        report.differences.append(Difference(trial_id, "Optuna", "; ".join(said)))


def _compare_best(
    best_trial_id: str | None,
    by_id: dict[str, Any],
    rule: ScoreRule,
    study_trials: list[Any] | None,
    report: Reconciliation,
) -> None:
    from fracture_tune.search.results import rank_trials

    try:
        ranked = rank_trials(list(by_id.values()), rule)
    except ValueError:
        ranked = []
    expected = str(ranked[0].row["trial_id"]) if ranked else None
    if best_trial_id != expected:
        report.differences.append(
            Difference("", "best_trial.json", f"names {best_trial_id}, the rule chooses {expected}")
        )
    if study_trials is None or expected is None:
        return
    complete = [t for t in study_trials if t.state.name == "COMPLETE" and t.value is not None]
    if not complete:
        report.notes.append("the Optuna study has no COMPLETE trial: no trial ended for good with min_epochs")
        return
    pick = max if rule.mode == "max" else min
    value = pick(float(t.value) for t in complete)
    tied = sorted(str(t.user_attrs.get(TUNE_TRIAL_ID_ATTR)) for t in complete if float(t.value) == value)
    if expected not in tied:
        report.differences.append(
            Difference("", "Optuna", f"best value {value} is trial(s) {tied}, not {expected}")
        )
    elif len(tied) > 1:
        report.notes.append(
            f"{len(tied)} trials share the best score {value}; the rule picks {expected} (more epochs, then "
            "the earlier trial); optuna-dashboard shows one of them"
        )


def write_reconciliation(run_dir: Path, report: Reconciliation) -> Path:
    from fracture_tune.search.records import write_json_atomic

    path = Path(run_dir) / RECONCILIATION_FILE
    write_json_atomic(path, report.to_dict())
    return path
