"""Kill the search driver with SIGKILL mid-search, resume it, and check nothing ran or logged twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from cli_runs import wait_for
from search_fixtures import child_runs, config_of, metric_steps, search_command, write_search_config

from fracture_tune.search.optuna_study import study_state_for

pytestmark = pytest.mark.integration


def _completed_trials(uri: str, run_dir: Path) -> dict[str, int]:
    """trial id → epochs, for child runs MLflow already shows as ended."""
    if not (run_dir / "search_record.json").exists():
        return {}  # the driver is still creating the MLflow database: don't race it
    try:
        _, children = child_runs(uri)
    except Exception:  # noqa: BLE001 - the database may not exist yet
        return {}
    return {
        run.data.tags["fracture_tune.trial_id"]: int(run.data.tags["epochs_completed"])
        for run in children
        if run.info.status in ("FINISHED", "KILLED")
    }


def _terminated_in_tune_snapshot(run_dir: Path) -> set[str]:
    """Trials Tune's newest experiment snapshot records as TERMINATED: what a resume will not rerun.

    Tune snapshots the experiment every >= 10 s ("auto" period), so a trial that finished just before
    the driver died may still be RUNNING in the snapshot and resumes from its last checkpoint.
    """
    snapshots = sorted(run_dir.glob("experiment_state-*.json"))
    if not snapshots:
        return set()
    try:
        state = json.loads(snapshots[-1].read_text())
    except (OSError, json.JSONDecodeError):
        return set()  # being replaced right now
    trials = [json.loads(entry[0] if isinstance(entry, list) else entry) for entry in state["trial_data"]]
    return {trial["trial_id"] for trial in trials if trial["status"] == "TERMINATED"}


def _progress_lines(run_dir: Path, trial_ids: list[str]) -> dict[str, int]:
    counts = {}
    for trial_id in trial_ids:
        progress = run_dir / f"trial_{trial_id}" / "progress.csv"
        counts[trial_id] = len(progress.read_text().splitlines()) if progress.exists() else -1
    return counts


def test_resume_after_sigkill_finishes_without_duplicates(tmp_path: Path) -> None:
    # Slower epochs (more images, more epochs) leave time to kill the driver mid-search.
    config = write_search_config(
        tmp_path,
        budget={"num_trials": 8, "time_budget_s": 900},
        training={"epochs": 6},
        scheduler={"max_t": 6},
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / ".fracture-tune" / "runs" / "rs"
    driver = subprocess.Popen(
        search_command("--config", str(config), "--name", "rs", "--tracking-uri", uri, "--num-cpus", "2"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "driver.log").open("w"),
        start_new_session=True,
    )

    def two_trials_done() -> bool:
        """Two trials finished both in MLflow and in Tune's own snapshot, with the driver still running."""
        log = (tmp_path / "driver.log").read_text()[-3000:]
        assert driver.poll() is None, f"the search ended before it could be interrupted:\n{log}"
        return len(set(_completed_trials(uri, run_dir)) & _terminated_in_tune_snapshot(run_dir)) >= 2

    try:
        wait_for(two_trials_done, 300, "two trials to complete in MLflow and in Tune's snapshot")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait(timeout=60)
    terminated = _terminated_in_tune_snapshot(run_dir)
    completed = _completed_trials(uri, run_dir)
    before = {trial: epochs for trial, epochs in completed.items() if trial in terminated}
    assert 2 <= len(before) < 8
    lines_before = _progress_lines(run_dir, list(before))
    assert json.loads((run_dir / "search_record.json").read_text())["status"] == "running"

    resumed = subprocess.run(
        search_command("--resume", "rs", "--tracking-uri", uri, "--num-cpus", "2"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]

    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == 8 and set(frame["status"]) <= {"finished", "stopped_by_asha"}
    assert _progress_lines(run_dir, list(before)) == lines_before, "a finished trial was run again"
    for trial_id, epochs in before.items():
        assert int(frame.loc[frame["trial_id"] == trial_id, "epochs"].iloc[0]) == epochs

    parent, children = child_runs(uri)
    trial_ids = [run.data.tags["fracture_tune.trial_id"] for run in children]
    assert len(children) == 8 and len(set(trial_ids)) == 8, "a trial appears twice in MLflow"
    assert sorted(trial_ids) == sorted(frame["trial_id"])
    status = dict(zip(frame["trial_id"], frame["status"], strict=True))
    recorded = {run.data.tags["fracture_tune.trial_id"]: run.data.tags["stop_reason"] for run in children}
    assert recorded == status, "MLflow and results.csv disagree on why trials ended"
    for run in children:
        steps = metric_steps(uri, run.info.run_id)
        assert steps == list(range(1, len(steps) + 1)), f"duplicate or missing epochs in {run.info.run_name}"
        assert run.info.status in ("FINISHED", "KILLED")
    record = json.loads((run_dir / "search_record.json").read_text())
    assert record["status"] == "finished" and record["parent_run_id"] == parent.info.run_id
    # The Optuna study (in the search's storage, what optuna-dashboard opens) continued across the kill:
    # all 8 trials, each once, none left RUNNING, each in the state of why it ended.
    import optuna

    study = optuna.load_study(study_name="rs", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    lost = [trial for trial in study.trials if trial.user_attrs.get("stop_reason") == "lost_with_its_driver"]
    # (the kill may land between Optuna's ask and Tune's snapshot: such a trial never ran in the search)
    assert all(trial.state.name == "FAIL" and not trial.intermediate_values for trial in lost)
    tune_ids = [trial.user_attrs["tune_trial_id"] for trial in study.trials if trial not in lost]
    assert len(tune_ids) == 8 and sorted(tune_ids) == sorted(frame["trial_id"]), "a trial twice in the study"
    kept = [trial for trial in study.trials if trial not in lost]
    by_id = {trial.user_attrs["tune_trial_id"]: trial.state.name for trial in kept}
    rule = config_of(run_dir).score_rule
    epochs = dict(zip(frame["trial_id"], frame["epochs"], strict=True))
    expected = {trial: study_state_for(reason, epochs[trial], rule) for trial, reason in status.items()}
    assert by_id == expected
    # Every record of every trial agrees, across the kill: what `search check` compares.
    assert "records agree: 8 trials" in resumed.stdout
    check = subprocess.run(
        search_command("check", "rs", "--tracking-uri", uri), cwd=tmp_path, capture_output=True, text=True
    )
    assert check.returncode == 0 and "records agree: 8 trials" in check.stdout, check.stdout + check.stderr
