"""Load: 50 short trials, 4 at a time on 2 CPUs (0.5 CPU each: oversubscribed on purpose).

Every trial must be accounted for in both the results table and MLflow (one child run each, every epoch
logged once), and the Tune trial folders must match.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from cli_runs import Observe, bytes_under, fracture_tune
from search_fixtures import child_runs, metric_steps, write_search_config

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

NUM_TRIALS = 50


def test_fifty_trials_four_concurrent_on_two_cpus(tmp_path: Path, observe: Observe) -> None:
    config = write_search_config(
        tmp_path,
        training={"epochs": 2, "train_limit": 48, "val_limit": 32},
        scheduler={"max_t": 2, "grace_period": 1, "reduction_factor": 2},
        resources={"cpus_per_trial": 0.5, "max_concurrent_trials": 4},
        searcher={"seed": 0, "n_startup_trials": 8, "points_to_evaluate": []},
        budget={"num_trials": NUM_TRIALS, "time_budget_s": 900},
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = time.monotonic()
    done = fracture_tune(
        "search",
        "--config",
        str(config),
        "--name",
        "load",
        "--tracking-uri",
        uri,
        "--num-cpus",
        "2",
        cwd=tmp_path,
        timeout=840,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    run_dir = tmp_path / ".fracture-tune" / "runs" / "load"
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == NUM_TRIALS and frame["trial_id"].is_unique
    assert set(frame["status"]) <= {"finished", "stopped_by_asha"}, frame["status"].value_counts()
    assert len(list(run_dir.glob("trial_*"))) == NUM_TRIALS

    parent, children = child_runs(uri)
    by_trial = {run.data.tags["fracture_tune.trial_id"]: run for run in children}
    assert len(children) == NUM_TRIALS and set(by_trial) == set(frame["trial_id"])
    assert set(frame["mlflow_run_id"]) == {run.info.run_id for run in children}
    for trial_id, epochs in zip(frame["trial_id"], frame["epochs"], strict=True):
        run = by_trial[trial_id]
        assert metric_steps(uri, run.info.run_id) == list(range(1, int(epochs) + 1)), trial_id
        assert run.info.status in ("FINISHED", "KILLED")
        assert run.data.tags["stop_reason"] == frame.loc[frame["trial_id"] == trial_id, "status"].item()
    assert parent.info.status == "FINISHED"
    stopped = int((frame["status"] == "stopped_by_asha").sum())
    observe(
        fault=f"load: {NUM_TRIALS} trials, 4 concurrent at 0.5 CPU each on 2 CPUs",
        observed=(
            f"search exit 0 in {elapsed:.0f} s; {len(frame)}/{NUM_TRIALS} trials in results.parquet "
            f"({NUM_TRIALS - stopped} finished, {stopped} stopped by ASHA), "
            f"{len(children)} MLflow child runs, "
            f"every epoch logged once; {bytes_under(run_dir) / 1e6:.1f} MB run folder"
        ),
        search_s=round(elapsed, 1),
        trials=len(frame),
        child_runs=len(children),
        run_dir_bytes=bytes_under(run_dir),
    )
