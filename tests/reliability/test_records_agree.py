"""Many trials at once with reused workers, failed worker hand-overs, and a resume after an error: no trial
is lost or recorded as what it was not, and every record of every trial agrees (``search check``).

The shipped default ``reuse_actors: true`` is on in all of them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from cli_runs import Observe, cli_env, fracture_tune
from search_fixtures import check_records, child_runs, config_of, write_search_config

from fracture_tune.search.optuna_study import study_state_for

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]


def _search(tmp_path: Path, name: str, num_cpus: int, env: dict[str, str] | None = None) -> tuple[Any, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = fracture_tune(
        "search",
        "--config",
        str(tmp_path / "search.yaml"),
        "--name",
        name,
        "--tracking-uri",
        uri,
        "--num-cpus",
        str(num_cpus),
        cwd=tmp_path,
        timeout=840,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done, uri


def _assert_every_record_agrees(tmp_path: Path, name: str, uri: str, trials: int) -> pd.DataFrame:
    run_dir = tmp_path / ".fracture-tune" / "runs" / name
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == trials and frame["trial_id"].is_unique
    assert (frame["status"] == "error").sum() == 0, frame.loc[
        frame["status"] == "error", ["trial_id", "error"]
    ]
    assert set(frame["status"]) <= {"finished", "stopped_by_asha"}, frame["status"].value_counts()
    assert f"records agree: {trials} trials" in check_records(tmp_path, name, uri)
    # Optuna's stored value is the product's score, trial by trial (what TPE and optuna-dashboard rank on).
    rule = config_of(run_dir).score_rule
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    by_id = {trial.user_attrs["tune_trial_id"]: trial for trial in study.trials}
    for row in frame.itertuples():
        trial = by_id[row.trial_id]
        assert trial.state.name == study_state_for(row.status, row.epochs, rule)
        assert math.isclose(trial.value, row.score), (row.trial_id, trial.value, row.score)
    best = pd.read_json(run_dir / "best_trial.json", typ="series")
    assert by_id[best["trial_id"]].number == study.best_trial.number or math.isclose(
        study.best_value, best["metric_value"]
    ), "optuna-dashboard's best trial is not search show's"
    return frame


def test_sixteen_trials_at_once_with_reused_workers_lose_none(tmp_path: Path, observe: Observe) -> None:
    """16 one-CPU trials on 2 cores (--num-cpus 16): the load that made Ray fail trials at the hand-over."""
    write_search_config(
        tmp_path,
        training={"model": "tiny_cnn", "width": 4, "epochs": 3, "train_limit": 48, "val_limit": 32},
        space={"params": {"lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-2, "log": True}}},
        searcher={"seed": 0, "n_startup_trials": 16, "points_to_evaluate": []},
        scheduler={"max_t": 3, "grace_period": 1, "reduction_factor": 2},
        resources={"cpus_per_trial": 1, "max_concurrent_trials": 16, "reuse_actors": True},
        budget={"num_trials": 64, "time_budget_s": 840},
    )
    done, uri = _search(tmp_path, "many", num_cpus=16)
    frame = _assert_every_record_agrees(tmp_path, "many", uri, 64)
    _, children = child_runs(uri)
    assert len(children) == 64
    handovers_failed = done.stderr.count("could not be reused")
    observe(
        fault="64 trials, 16 at once on 2 cores, reused workers (the shipped reuse_actors: true)",
        observed=(
            f"0 of 64 trials errored ({frame['status'].value_counts().to_dict()}); {handovers_failed} worker "
            "hand-over(s) failed and went to a fresh worker; `search check`: records agree"
        ),
        handovers_failed=handovers_failed,
    )


def test_a_failed_worker_hand_over_starts_the_trial_on_a_fresh_worker(
    tmp_path: Path, observe: Observe
) -> None:
    """Ray's own wait for the previous trial's thread set to 0 s: every hand-over fails, and every trial must
    still run, on a fresh worker, and be recorded as what it was."""
    write_search_config(
        tmp_path,
        training={"model": "tiny_cnn", "width": 4, "epochs": 2, "train_limit": 48, "val_limit": 32},
        space={"params": {"lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-2, "log": True}}},
        searcher={"seed": 0, "n_startup_trials": 4, "points_to_evaluate": []},
        scheduler={"max_t": 2, "grace_period": 1, "reduction_factor": 2},
        resources={"cpus_per_trial": 1, "max_concurrent_trials": 2, "reuse_actors": True},
        budget={"num_trials": 8, "time_budget_s": 600},
    )
    done, uri = _search(tmp_path, "handover", num_cpus=2, env=cli_env(TUNE_FUNCTION_THREAD_TIMEOUT_S="0"))
    # Ours when the trial went to a fresh worker; Ray's own when it failed the trial instead.
    handovers_failed = done.stderr.count("could not be reused") + done.stderr.count("Could not re-use actor")
    assert handovers_failed >= 1, "no hand-over failed: the test did not test the replacement"
    _assert_every_record_agrees(tmp_path, "handover", uri, 8)
    observe(
        fault="every worker hand-over fails (TUNE_FUNCTION_THREAD_TIMEOUT_S=0), reuse_actors: true",
        observed=(
            f"{handovers_failed} hand-over(s) failed; each trial started on a fresh worker; 8/8 trials ran, "
            "0 errored; `search check`: records agree"
        ),
        handovers_failed=handovers_failed,
    )


def test_a_trial_that_errored_finishes_on_resume_and_every_record_follows(
    tmp_path: Path, observe: Observe
) -> None:
    """A trial fails after epoch 2 (max_failures 0: for good); `search --resume` reruns it from its epoch-2
    checkpoint to its end. Every record must then call it finished — the Optuna study included, which had
    been told FAIL."""
    from search_fixtures import metric_steps

    from fracture_tune.search.config import load_config
    from fracture_tune.search.run import make_options, resume_search_with, run_search_with

    marker, target_lr = tmp_path / "fail-while-this-exists", 0.002
    marker.write_text("")

    def fit_failing_once(flat: dict, data: Any, *, callbacks: Any = (), resume_state: Any = None) -> Any:
        from fracture_tune.trainables.engine import fit

        def fail_after_epoch_2(metrics: dict, snapshot: Any) -> None:
            if marker.exists() and math.isclose(flat["lr"], target_lr) and metrics["epoch"] >= 2:
                raise RuntimeError("planted failure after epoch 2")

        return fit(flat, data, callbacks=[*callbacks, fail_after_epoch_2], resume_state=resume_state)

    config_path = write_search_config(
        tmp_path,
        training={"epochs": 4},
        scheduler={"max_t": 4, "grace_period": 4},  # nothing stopped by ASHA: every trial runs 4 epochs
        resources={"cpus_per_trial": 1, "max_concurrent_trials": 2, "reuse_actors": True},
        budget={"num_trials": 4, "time_budget_s": 600},
        max_failures=0,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = make_options("rerr", storage=tmp_path / ".fracture-tune" / "runs", tracking_uri=uri, num_cpus=2)
    options.fit_function = fit_failing_once
    first = run_search_with(load_config(config_path), options)
    failed = first.results.loc[first.results["status"] == "error"]
    assert len(failed) == 1 and int(failed["epochs"].iloc[0]) == 2, first.results[["trial_id", "status"]]
    trial_id = str(failed["trial_id"].iloc[0])
    study_url = f"sqlite:///{options.run_dir / 'optuna.db'}"
    states = {
        t.user_attrs["tune_trial_id"]: t.state.name
        for t in optuna.load_study(study_name="rerr", storage=study_url).trials
    }
    assert states[trial_id] == "FAIL"

    marker.unlink()  # the cause is gone: the user resumes
    resumed = resume_search_with(options)
    row = resumed.results.set_index("trial_id").loc[trial_id]
    assert row["status"] == "finished" and int(row["epochs"]) == 4
    frame = _assert_every_record_agrees(tmp_path, "rerr", uri, 4)
    _, children = child_runs(uri)
    run = next(run for run in children if run.data.tags["fracture_tune.trial_id"] == trial_id)
    assert run.info.status == "FINISHED" and metric_steps(uri, run.info.run_id) == [1, 2, 3, 4]
    assert frame["status"].tolist().count("finished") == 4
    observe(
        fault="a trial errors after epoch 2 (max_failures 0), then `search --resume` after the cause is gone",
        observed=(
            "resumed from its epoch-2 checkpoint and finished epochs 3-4; results, stop records, MLflow "
            "(FINISHED, epochs 1-4 once) and the Optuna study (FAIL reopened, then COMPLETE) agree"
        ),
    )
