"""Faults inside trials: a trial's Ray worker SIGKILLed mid-search, and a trial too large for memory.

The killed trial comes back from its last checkpoint (``max_failures``) and MLflow shows it as one run
with every epoch once, and every record of the search agrees. The same search measures what a trial leaves
on disk once it has ended (``checkpoint.keep_best_trials``).
A trial whose model cannot be allocated fails alone, with the allocator's message, and the search goes on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_runs import Observe, bytes_under, cli_env, fracture_tune, stop_process_group, wait_for
from search_fixtures import check_records, child_runs, metric_steps, search_command, write_search_config

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

# 20 epochs: Tune copies its result files to the run folder at each experiment snapshot (every 10 s in a small
# search), so a trial must run well over 10 s for the test to see it mid-training.
EPOCHS = 20


def _results(trial_dir: Path) -> list[dict[str, Any]]:
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _victim(run_dir: Path) -> tuple[Path, int, int] | None:
    """(trial dir, worker pid, epochs done) of a running trial that has reported 3 epochs."""
    for trial_dir in sorted(run_dir.glob("trial_*")):
        results = _results(trial_dir)
        if len(results) >= 3 and not results[-1].get("done"):
            pid = int(results[-1]["pid"])
            if Path(f"/proc/{pid}").exists():
                return trial_dir, pid, len(results)
    return None


def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path: Path, observe: Observe) -> None:
    config = write_search_config(
        tmp_path,
        budget={"num_trials": 4, "time_budget_s": 900},
        # aug_factor 40: epochs of ~0.8 s instead of 0.04 s, so the trial picked after 3 reported epochs is
        # still running when it is killed (at 0.04 s it had sometimes finished, and nothing restarted).
        training={"epochs": EPOCHS, "aug_factor": 40},
        scheduler={"max_t": EPOCHS, "grace_period": EPOCHS},  # every trial runs all epochs
        max_failures=2,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / ".fracture-tune" / "runs" / "wk"
    log = tmp_path / "driver.log"
    driver = subprocess.Popen(
        search_command("--config", str(config), "--name", "wk", "--tracking-uri", uri, "--num-cpus", "2"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=(tmp_path / "driver.out").open("w"),
        stderr=log.open("w"),
        start_new_session=True,
    )
    try:
        found = wait_for(lambda: _victim(run_dir) or driver.poll() is not None, 300, "a trial at epoch 3")
        assert driver.poll() is None, log.read_text()[-3000:]
        trial_dir, pid, _ = found
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert "ray::" in command or "default_worker" in command, command  # a Ray worker, not the driver
        os.kill(pid, signal.SIGKILL)
        returncode = driver.wait(timeout=600)
    finally:
        stop_process_group(driver, 9) if driver.poll() is None else None
    assert returncode == 0, log.read_text()[-5000:]

    trial_id = trial_dir.name.removeprefix("trial_")
    results = _results(trial_dir)
    epochs = [int(row["epoch"]) for row in results]
    pids = list(dict.fromkeys(row["pid"] for row in results))
    assert len(pids) == 2, "the trial was not restarted in a new worker"
    before = [int(row["epoch"]) for row in results if row["pid"] == pids[0]]
    after = [int(row["epoch"]) for row in results if row["pid"] == pids[1]]
    assert before == list(range(1, len(before) + 1)) and after == list(range(after[0], EPOCHS + 1)), epochs
    # Resumed from the checkpoint, not from scratch: at most the epoch in flight when it died is redone
    # (Tune may restore the checkpoint before the last reported one).
    redone = before[-1] + 1 - after[0]
    assert 0 <= redone <= 1, f"the restart did not continue from the last checkpoint: {epochs}"
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == 4 and set(frame["status"]) == {"finished"}, frame[["trial_id", "status"]]
    _, children = child_runs(uri)
    runs = [run for run in children if run.data.tags["fracture_tune.trial_id"] == trial_id]
    assert len(runs) == 1, f"{len(runs)} MLflow runs for the restarted trial"
    assert metric_steps(uri, runs[0].info.run_id) == list(range(1, EPOCHS + 1))
    assert runs[0].info.status == "FINISHED"
    assert "records agree: 4 trials" in check_records(tmp_path, "wk", uri)

    disk = _disk_per_trial(run_dir)
    observe(
        fault=f"SIGKILL of a trial's Ray worker after epoch {before[-1]} of {EPOCHS} (max_failures=2)",
        observed=(
            f"trial {trial_id} restarted in a new worker at epoch {after[0]} "
            f"({redone} reported epoch redone); "
            f"4/4 trials finished; 1 MLflow run for it with steps 1..{EPOCHS}, none twice"
        ),
        killed_after_epochs=before[-1],
        epochs_redone=redone,
        child_runs=len(children),
    )
    observe(
        fault=f"disk use per ended trial ({EPOCHS} epochs, checkpoint.keep_best_trials=5)",
        observed=(
            f"{disk['bytes_per_trial'] / 1e6:.2f} MB per trial "
            f"({disk['checkpoint_bytes_per_trial'] / 1e6:.2f} MB checkpoints, "
            f"{disk['max_checkpoints']} of {EPOCHS} kept: the score epoch's); "
            f"{disk['run_dir_bytes'] / 1e6:.1f} MB for the whole run folder"
        ),
        **disk,
    )
    # Ended, and among the 5 best: each trial keeps one checkpoint, its score epoch's (retrain's reference);
    # the latest, kept while it ran for a restart, is gone.
    for row in frame.itertuples():
        kept = [folder / "epoch.txt" for folder in (run_dir / f"trial_{row.trial_id}").glob("checkpoint_*")]
        assert [int(marker.read_text()) for marker in kept] == [row.score_epoch], (row.trial_id, kept)


def _disk_per_trial(run_dir: Path) -> dict[str, int]:
    trial_dirs = sorted(run_dir.glob("trial_*"))
    checkpoints = [list(trial.glob("checkpoint_*")) for trial in trial_dirs]
    checkpoint_bytes = sum(bytes_under(folder) for found in checkpoints for folder in found)
    return {
        "trials": len(trial_dirs),
        "bytes_per_trial": sum(bytes_under(trial) for trial in trial_dirs) // len(trial_dirs),
        "checkpoint_bytes_per_trial": checkpoint_bytes // len(trial_dirs),
        "one_checkpoint_bytes": bytes_under(checkpoints[0][0]) if checkpoints[0] else 0,
        "max_checkpoints": max(len(found) for found in checkpoints),
        "run_dir_bytes": bytes_under(run_dir),
    }


# input_size 100000 makes tunable_cnn's first dense layer 8*(100000/8)^2 x 128 floats (~640 GB): the
# allocation fails at once (no swap, heuristic overcommit) instead of eating the machine's 24 GiB.
HUGE_INPUT = 100_000


def test_trial_too_large_for_memory_fails_alone(tmp_path: Path, observe: Observe) -> None:
    config = write_search_config(
        tmp_path,
        budget={"num_trials": 4, "time_budget_s": 600},
        training={"epochs": 2},
        scheduler={"max_t": 2, "grace_period": 2},
        checkpoint={"num_to_keep": 2},
        space={
            "params": {
                "lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
                "input_size": {"type": "categorical", "choices": [32, HUGE_INPUT]},
            }
        },
        searcher={
            "seed": 0,
            "n_startup_trials": 2,
            "points_to_evaluate": [{"lr": 0.002, "input_size": HUGE_INPUT}, {"lr": 0.002, "input_size": 32}],
        },
        max_failures=0,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = time.monotonic()
    done = fracture_tune(
        "search",
        "--config",
        str(config),
        "--name",
        "oom",
        "--tracking-uri",
        uri,
        "--num-cpus",
        "2",
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    frame = pd.read_parquet(tmp_path / ".fracture-tune" / "runs" / "oom" / "results.parquet")
    huge = frame["config/input_size"] == HUGE_INPUT
    assert huge.sum() >= 1 and (~huge).sum() >= 1, frame
    assert set(frame.loc[huge, "status"]) == {"error"} and set(frame.loc[~huge, "status"]) == {"finished"}
    _, children = child_runs(uri)
    failed = [run for run in children if run.info.status == "FAILED"]
    assert len(failed) == int(huge.sum())
    messages = {run.data.tags.get("error", "") for run in failed}
    assert all("can't allocate memory" in message for message in messages), messages
    reason = re.search(r"can't allocate memory: you tried to allocate \d+ bytes", sorted(messages)[0])
    best = json.loads((tmp_path / ".fracture-tune" / "runs" / "oom" / "best_trial.json").read_text())
    assert best["config"]["input_size"] == 32
    observe(
        fault=f"trial config too large for memory (input_size={HUGE_INPUT}: a ~640 GB dense layer)",
        observed=(
            f"{int(huge.sum())} trial(s) FAILED alone, MLflow error tag "
            f"`{reason.group(0) if reason else '?'}`; "
            f"{int((~huge).sum())} others finished; search exit 0 in {elapsed:.0f} s"
        ),
        failed_trials=int(huge.sum()),
        finished_trials=int((~huge).sum()),
    )


def test_search_where_every_trial_fails_leaves_no_best_trial(tmp_path: Path, observe: Observe) -> None:
    config = write_search_config(
        tmp_path,
        budget={"num_trials": 2, "time_budget_s": 600},
        training={"epochs": 1, "input_size": HUGE_INPUT},
        scheduler={"max_t": 1, "grace_period": 1},
        searcher={"seed": 0, "n_startup_trials": 2, "points_to_evaluate": []},
        max_failures=0,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = fracture_tune(
        "search",
        "--config",
        str(config),
        "--name",
        "dead",
        "--tracking-uri",
        uri,
        "--num-cpus",
        "2",
        cwd=tmp_path,
    )
    run_dir = tmp_path / ".fracture-tune" / "runs" / "dead"
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (run_dir / "best_trial.json").exists(), "a failed search left a best_trial.json"
    assert json.loads((run_dir / "search_record.json").read_text())["status"] == "failed"
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == 2 and set(frame["status"]) == {"error"}
    parent, children = child_runs(uri)
    assert parent.info.status == "FAILED" and {run.info.status for run in children} == {"FAILED"}
    retrain = fracture_tune("retrain", "--search", "dead", "--tracking-uri", uri, cwd=tmp_path)
    assert retrain.returncode == 2 and "best_trial.json" in retrain.stderr, retrain.stderr[-2000:]
    observe(
        fault="a search in which every trial fails (each too large for memory)",
        observed=(
            "search exit 1; search_record.json status=failed, no best_trial.json; "
            "results.parquet 2/2 `error`; "
            "MLflow parent and children FAILED; `retrain --search` then exits 2 naming best_trial.json"
        ),
    )
