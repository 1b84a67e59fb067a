"""The MLflow server goes down mid-search and comes back on the same port.

The search must not crash or stall (MLflow's client would retry each call for minutes by default); Tune's
results on disk stay complete; MLflow catches up from the callback's queue, or the gap is reported and
``fracture-tune search sync-mlflow NAME`` backfills it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_runs import (
    Observe,
    cli_env,
    fracture_tune,
    free_port,
    start_mlflow_server,
    stop_process_group,
    wait_for,
)
from search_fixtures import child_runs, metric_steps, search_command, write_search_config

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

NUM_TRIALS = 6
EPOCHS = 8


def _epochs_on_disk(run_dir: Path) -> int:
    """Epochs all trials have reported so far (lines of every trial's progress.csv minus headers)."""
    return sum(
        max(0, len(path.read_text().splitlines()) - 1) for path in run_dir.glob("trial_*/progress.csv")
    )


def _missing_steps(uri: str, frame: pd.DataFrame) -> int:
    """Epochs in the results table that MLflow does not show (0 = MLflow is complete)."""
    _, children = child_runs(uri)
    by_trial = {run.data.tags["fracture_tune.trial_id"]: run for run in children}
    missing = 0
    for trial_id, epochs in zip(frame["trial_id"], frame["epochs"], strict=True):
        run = by_trial.get(trial_id)
        steps = metric_steps(uri, run.info.run_id) if run else []
        assert len(steps) == len(set(steps)), f"duplicate steps for trial {trial_id}"
        missing += int(epochs) - len(steps)
    return missing


def test_search_survives_mlflow_server_outage(tmp_path: Path, observe: Observe) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(tmp_path, port)
    config = write_search_config(
        tmp_path,
        budget={"num_trials": NUM_TRIALS, "time_budget_s": 900},
        training={"epochs": EPOCHS},
        scheduler={"max_t": EPOCHS, "grace_period": EPOCHS},  # no early stopping: a long, even search
    )
    run_dir = tmp_path / ".fracture-tune" / "runs" / "outage"
    log = tmp_path / "driver.log"
    started = time.monotonic()
    driver = subprocess.Popen(
        search_command("--config", str(config), "--name", "outage", "--tracking-uri", uri, "--num-cpus", "2"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=(tmp_path / "driver.out").open("w"),
        stderr=log.open("w"),
        start_new_session=True,
    )
    try:
        wait_for(lambda: _epochs_on_disk(run_dir) >= 2 or driver.poll() is not None, 300, "the first epochs")
        assert driver.poll() is None, log.read_text()[-3000:]
        stop_process_group(server)  # the tracking server goes away mid-search
        down_at, epochs_at_outage = time.monotonic(), _epochs_on_disk(run_dir)
        wait_for(lambda: "MLflow" in log.read_text() and "queued" in log.read_text(), 180, "a queued update")
        wait_for(
            lambda: _epochs_on_disk(run_dir) >= epochs_at_outage + 6 or driver.poll() is not None,
            300,
            "training to go on without MLflow",
        )
        epochs_during_outage = _epochs_on_disk(run_dir) - epochs_at_outage
        server = start_mlflow_server(tmp_path, port)  # same port, same database
        outage_s = time.monotonic() - down_at
        returncode = driver.wait(timeout=600)
    finally:
        stop_process_group(driver, 9) if driver.poll() is None else None
    search_s = time.monotonic() - started
    stderr = log.read_text()
    try:
        assert returncode == 0, stderr[-5000:]
        frame = pd.read_parquet(run_dir / "results.parquet")
        assert len(frame) == NUM_TRIALS and set(frame["status"]) == {"finished"}, frame
        assert (frame["epochs"] == EPOCHS).all(), "Tune's results on disk lost epochs"
        assert (run_dir / "best_trial.json").exists()
        caught_up = "MLflow reachable again" in stderr
        missing_before_sync = _missing_steps(uri, frame)
        # Either the queue caught up once the server was back, or the end of the search said what to run.
        assert missing_before_sync == 0 or "sync-mlflow outage" in stderr, (
            missing_before_sync,
            stderr[-3000:],
        )

        synced = fracture_tune("search", "sync-mlflow", "outage", "--tracking-uri", uri, cwd=tmp_path)
        assert synced.returncode == 0, synced.stderr[-3000:]
        assert _missing_steps(uri, frame) == 0
        parent, children = child_runs(uri)
        assert len(children) == NUM_TRIALS and parent.info.status == "FINISHED"
        assert sorted(run.data.tags["fracture_tune.trial_id"] for run in children) == sorted(
            frame["trial_id"]
        )
    finally:
        stop_process_group(server)
    observe(
        fault="MLflow server stopped mid-search, restarted on the same port",
        observed=(
            f"search exit 0 in {search_s:.0f} s; {epochs_during_outage} epochs trained during a "
            f"{outage_s:.0f} s outage; {NUM_TRIALS}/{NUM_TRIALS} trials on disk; MLflow "
            + ("caught up from the queue" if caught_up else "gap reported")
            + f" ({missing_before_sync} epochs missing before sync-mlflow, 0 after); "
            f"{len(children)} child runs, no duplicate steps"
        ),
        outage_s=round(outage_s, 1),
        search_s=round(search_s, 1),
        missing_before_sync=missing_before_sync,
        child_runs=len(children),
    )
