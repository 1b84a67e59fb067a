"""A real search on tiny images with a local Ray (2 CPUs): Tune, ASHA, MLflow and the results agree."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from search_fixtures import (
    check_records,
    child_runs,
    config_of,
    metric_steps,
    run_local_search,
    search_command,
    write_search_config,
)

from fracture_tune.search.optuna_study import study_state_for
from fracture_tune.search.results import counts_for_best, rank_trials, rows_from_frame, select_best_trial

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp_path = tmp_path_factory.mktemp("search")
    config = write_search_config(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_RUN_ID": "should-not-leak"}
    done = subprocess.run(
        search_command("--config", str(config), "--name", "it", "--tracking-uri", uri, "--num-cpus", "2"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return {
        "tmp": tmp_path,
        "uri": uri,
        "stdout": done.stdout,
        "stderr": done.stderr,
        "run_dir": tmp_path / ".fracture-tune" / "runs" / "it",
    }


def test_every_trial_is_one_child_run_with_per_epoch_metrics(finished_search: dict) -> None:
    parent, children = child_runs(finished_search["uri"])
    assert len(children) == 8
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    assert len({run.data.tags["fracture_tune.trial_id"] for run in children}) == 8
    statuses = []
    for run in children:
        epochs = int(run.data.tags["epochs_completed"])
        assert metric_steps(finished_search["uri"], run.info.run_id) == list(range(1, epochs + 1))
        if run.info.status == "KILLED":  # the budget (600 s) never runs out here: only ASHA stops trials
            assert run.data.tags["stop_reason"] == "stopped_by_asha" and epochs < 4
            assert run.data.tags["stop_detail"] == f"stopped by ASHA after epoch {epochs} of 4"
        else:
            assert run.info.status == "FINISHED" and epochs == 4
            assert run.data.tags["stop_reason"] == "finished"
        statuses.append(run.info.status)
    assert "KILLED" in statuses, "ASHA stopped no trial"
    assert parent.info.status == "FINISHED" and parent.data.tags["best_trial_id"]
    # The prepared dataset is the parent run's MLflow dataset input (the UI's Dataset column).
    (dataset_input,) = parent.inputs.dataset_inputs
    assert dataset_input.dataset.digest == parent.data.tags["dataset_key"]
    assert json.loads(dataset_input.dataset.profile)["split_hash"] == parent.data.tags["split_hash"]
    assert dataset_input.dataset.name == "images"  # the source folder write_search_config made
    assert "version.ray" in parent.data.tags and parent.data.params["search.budget.num_trials"] == "8"


def test_results_table_matches_mlflow(finished_search: dict) -> None:
    frame = pd.read_parquet(finished_search["run_dir"] / "results.parquet")
    _, children = child_runs(finished_search["uri"])
    by_trial = {run.data.tags["fracture_tune.trial_id"]: run for run in children}
    assert sorted(frame["trial_id"]) == sorted(by_trial)
    for row in frame.itertuples():
        run = by_trial[row.trial_id]
        assert row.mlflow_run_id == run.info.run_id
        assert row.epochs == int(run.data.tags["epochs_completed"])
        assert row.status == run.data.tags["stop_reason"] and row.stop_detail == run.data.tags["stop_detail"]
        assert {"finished": "FINISHED", "stopped_by_asha": "KILLED"}[row.status] == run.info.status
        assert run.data.metrics["val_auroc"] == pytest.approx(row.last_metric)
    assert (finished_search["run_dir"] / "results.csv").exists()


def test_best_trial_record_points_at_its_checkpoint(finished_search: dict) -> None:
    run_dir = finished_search["run_dir"]
    best = json.loads((run_dir / "best_trial.json").read_text())
    frame = pd.read_parquet(run_dir / "results.parquet")
    ranked = select_best_trial(rows_from_frame(frame), config_of(run_dir).score_rule)
    assert best["trial_id"] == ranked.row["trial_id"] and best["metric_value"] == pytest.approx(ranked.score)
    checkpoint = Path(best["checkpoint_path"])
    assert checkpoint.is_dir() and (checkpoint / "epoch.txt").read_text() == str(best["best_epoch"])
    record = json.loads((run_dir / "search_record.json").read_text())
    assert record["status"] == "finished" and record["parent_run_id"]
    assert (run_dir / "resolved_config.yaml").exists()


def test_only_the_best_trials_keep_a_checkpoint(finished_search: dict) -> None:
    """checkpoint.keep_best_trials (5): an ended trial keeps its score epoch's checkpoint while among the 5
    best that count (ended with >= min_epochs), none once it is not or if it never could; a running trial's
    latest is never kept past its end."""
    run_dir = finished_search["run_dir"]
    frame = pd.read_parquet(run_dir / "results.parquet")
    rule = config_of(run_dir).score_rule
    ranked = [
        selection.row["trial_id"]
        for selection in rank_trials(rows_from_frame(frame), rule)
        if counts_for_best(selection.row, rule)
    ]
    folders = run_dir.glob("trial_*/checkpoint_*")
    kept = {folder.parent.name.removeprefix("trial_"): folder for folder in folders}
    assert set(kept) == set(ranked[:5]), (sorted(kept), ranked)
    for trial_id, folder in kept.items():
        assert len(list((run_dir / f"trial_{trial_id}").glob("checkpoint_*"))) == 1
        row = frame.set_index("trial_id").loc[trial_id]
        assert (folder / "epoch.txt").read_text() == str(int(row["score_epoch"]))


def test_optuna_study_holds_every_trial_with_its_score(finished_search: dict) -> None:
    """optuna.load_study opens the search's study (what optuna-dashboard shows): each trial once, in the
    state the search's rule gives it, its value the trial's score and its intermediate values the score after
    each epoch; its best trial is the search's."""
    import optuna

    run_dir = finished_search["run_dir"]
    study = optuna.load_study(study_name="it", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    frame = pd.read_parquet(run_dir / "results.parquet")
    rule = config_of(run_dir).score_rule
    by_trial = {trial.user_attrs["tune_trial_id"]: trial for trial in study.trials}
    assert len(study.trials) == 8 and sorted(by_trial) == sorted(frame["trial_id"])
    for row in frame.itertuples():
        trial = by_trial[row.trial_id]
        history = json.loads(row.metric_history)
        assert trial.state.name == study_state_for(row.status, row.epochs, rule)
        assert trial.user_attrs["stop_reason"] == row.status
        assert trial.value == pytest.approx(row.score)
        assert trial.intermediate_values == pytest.approx(dict(enumerate(rule.running(history), start=1)))
    best = json.loads((run_dir / "best_trial.json").read_text())
    best_in_study = study.best_trial.user_attrs["tune_trial_id"]
    assert best_in_study == best["trial_id"] or study.best_value == pytest.approx(best["metric_value"])
    assert "optuna-dashboard sqlite:///" in finished_search["stdout"]


def test_warm_start_point_ran_first(finished_search: dict) -> None:
    frame = pd.read_parquet(finished_search["run_dir"] / "results.parquet")
    first = frame.sort_values("trial_index").iloc[0]
    assert first["config/lr"] == pytest.approx(0.002) and first["config/c1"] == 8


def test_output_is_plain_progress_lines_without_rays_table(finished_search: dict) -> None:
    stdout, stderr = finished_search["stdout"], finished_search["stderr"]
    assert "stopped by ASHA" in stdout and "best val_auroc=" in stdout
    assert "\x1b[" not in stdout and "Trial status" not in stdout
    assert "snapshotting has been triggered multiple times" not in stderr
    assert "top 5 by score (val_auroc, max; score: best epoch at or after epoch 2" in stdout
    assert "records agree: 8 trials" in stdout and "parameter importances (PED-ANOVA, 8 trials" in stdout
    parent, _ = child_runs(finished_search["uri"])
    page = next(line for line in stdout.splitlines() if line.startswith("MLflow runs of it: "))
    serve = f"`mlflow ui --backend-store-uri {finished_search['uri']}`"
    assert page.startswith(f"MLflow runs of it: {serve}, then open http://127.0.0.1:5000/#/experiments/")
    assert f"/{parent.info.experiment_id}/runs?searchFilter=" in page and parent.info.run_id in page


def test_show_prints_the_summary_again(finished_search: dict) -> None:
    shown = subprocess.run(
        search_command("show", "it"), cwd=finished_search["tmp"], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert "8 trials:" in shown.stdout and "best trial" in shown.stdout
    run_dir = finished_search["run_dir"]
    assert f"Optuna study it: optuna-dashboard sqlite:///{run_dir.resolve()}/optuna.db" in shown.stdout
    # What mattered and whether the records agree, as the search's end wrote them (report/ beside them).
    assert "parameter importances (PED-ANOVA, 8 trials" in shown.stdout and "records agree" in shown.stdout
    report = run_dir / "report"
    for name in ("search_report.md", "importance.png", "history.png", "importance.csv"):
        assert (report / name).is_file(), name
    parent, _ = child_runs(finished_search["uri"])
    from mlflow.tracking import MlflowClient

    artifacts = MlflowClient(finished_search["uri"]).list_artifacts(parent.info.run_id, "report")
    logged = {item.path for item in artifacts}
    assert {"report/importance.png", "report/history.png", "report/search_report.md"} <= logged
    assert parent.data.tags["records_agree"] == "true"


def test_sync_mlflow_backfill_is_idempotent(finished_search: dict) -> None:
    _, before = child_runs(finished_search["uri"])
    synced = subprocess.run(
        search_command("sync-mlflow", "it", "--tracking-uri", finished_search["uri"]),
        cwd=finished_search["tmp"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert synced.returncode == 0, synced.stderr[-3000:]
    parent, after = child_runs(finished_search["uri"])
    assert parent.info.status == "FINISHED"
    status = {run.info.run_id: run.info.status for run in before}
    assert {run.info.run_id: run.info.status for run in after} == status
    for run in after:
        steps = metric_steps(finished_search["uri"], run.info.run_id)
        assert steps == list(range(1, int(run.data.tags["epochs_completed"]) + 1))


def test_time_budget_cut_offs_are_told_apart_from_asha_stops(tmp_path: Path) -> None:
    """A search whose time budget runs out: ASHA's stops and the budget's cut-offs are recorded apart, in
    MLflow (status and tags), in results.csv and in the progress line."""
    config = write_search_config(
        tmp_path,
        # 400-epoch trials that ASHA promotes are mid-training whenever the 30-s budget runs out (an epoch
        # of these tiny trials takes ~0.1 s: 30-epoch ones could all end before it).
        training={"epochs": 400},
        scheduler={"grace_period": 1, "max_t": 400, "reduction_factor": 2},
        budget={"num_trials": 40, "time_budget_s": 30},
    )
    done, uri = run_local_search(tmp_path, config, "budget")
    frame = pd.read_csv(tmp_path / ".fracture-tune" / "runs" / "budget" / "results.csv")
    counts = frame["status"].value_counts().to_dict()
    assert counts.get("stopped_by_asha", 0) >= 1 and counts.get("time_budget", 0) >= 1, counts
    assert set(counts) <= {"finished", "stopped_by_asha", "time_budget"}, counts
    _, children = child_runs(uri)
    by_trial = {run.data.tags["fracture_tune.trial_id"]: run for run in children}
    mlflow_status = {"finished": "FINISHED", "stopped_by_asha": "KILLED", "time_budget": "KILLED"}
    for row in frame.itertuples():
        if row.trial_id not in by_trial:  # cut off before it started: no MLflow run
            assert row.status == "time_budget" and row.epochs == 0
            continue
        run = by_trial[row.trial_id]
        assert run.data.tags["stop_reason"] == row.status and run.info.status == mlflow_status[row.status]
        assert int(run.data.tags["epochs_completed"]) == row.epochs
        assert run.data.tags["stop_detail"] == row.stop_detail
    assert any(run.data.tags["stop_reason"] == "time_budget" for run in children), "no running trial was cut"
    import optuna  # the study says the same: budget cut-offs PRUNED (not left RUNNING), none twice

    storage = f"sqlite:///{tmp_path}/.fracture-tune/runs/budget/optuna.db"
    study = optuna.load_study(study_name="budget", storage=storage)
    reasons = {t.user_attrs["tune_trial_id"]: t.user_attrs.get("stop_reason") for t in study.trials}
    assert reasons == dict(zip(frame["trial_id"], frame["status"], strict=True))
    assert all(trial.state != optuna.trial.TrialState.RUNNING for trial in study.trials)
    final = [line for line in done.stdout.splitlines() if " done (" in line][-1]
    assert f"{counts['stopped_by_asha']} stopped by ASHA" in final
    assert f"{counts['time_budget']} cut off by the time budget" in final
    assert "records agree: " in check_records(tmp_path, "budget", uri)


def test_a_cross_validated_search_ranks_trials_on_the_fold_mean(tmp_path: Path) -> None:
    """evaluation.folds: 3 on a real local Ray: every trial reports the mean over its three fold models each
    epoch (MLflow holds the mean, its spread and the fold count), and the results table and the Optuna study
    rank on that mean."""
    config = write_search_config(
        tmp_path,
        training={"epochs": 2},
        scheduler={"grace_period": 1, "max_t": 2, "reduction_factor": 2},
        budget={"num_trials": 3},
        evaluation={"folds": 3},
        searcher={"points_to_evaluate": []},
    )
    done, uri = run_local_search(tmp_path, config, "cv")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    _, children = child_runs(uri)
    frame = pd.read_csv(tmp_path / ".fracture-tune" / "runs" / "cv" / "results.csv")
    assert len(children) == len(frame) == 3
    for run in children:
        history = [
            m.value
            for m in sorted(client.get_metric_history(run.info.run_id, "val_auroc"), key=lambda m: m.step)
        ]
        assert run.data.metrics["folds"] == 3.0
        assert "val_auroc_fold_sd" in run.data.metrics and "val_loss_fold_sd" in run.data.metrics
        row = frame[frame["trial_id"] == run.data.tags["fracture_tune.trial_id"]].iloc[0]
        assert json.loads(row["metric_history"]) == pytest.approx(history)
    import optuna

    study = optuna.load_study(
        study_name="cv", storage=f"sqlite:///{tmp_path}/.fracture-tune/runs/cv/optuna.db"
    )
    by_trial = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    for row in frame.itertuples():
        trial = by_trial[row.trial_id]  # its value is its score on the fold means (PRUNED ones included)
        assert trial.value == pytest.approx(row.score)
        assert trial.intermediate_values[max(trial.intermediate_values)] == pytest.approx(row.score)
