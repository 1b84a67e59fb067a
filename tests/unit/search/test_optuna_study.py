"""The search's Optuna study: where it lives, what a config may say about it, and how trials end in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import load_config
from fracture_tune.search.optuna_study import (
    check_new_study,
    dashboard_command,
    open_storage,
    recording_searcher,
    settle_study,
    storage_url,
)
from fracture_tune.search.space import DefineByRunSpace, ParamSpec
from fracture_tune.search.stops import StopLedger
from fracture_tune.trainables.score import ScoreRule


def test_default_storage_is_a_sqlite_file_in_the_run_folder(tmp_path: Path) -> None:
    assert storage_url(None, tmp_path / "qs1") == f"sqlite:///{(tmp_path / 'qs1').resolve()}/optuna.db"
    assert storage_url("postgresql://db.example/optuna", tmp_path) == "postgresql://db.example/optuna"
    assert dashboard_command("sqlite:////r/qs1/optuna.db") == "optuna-dashboard sqlite:////r/qs1/optuna.db"


@pytest.mark.parametrize(
    ("storage", "words"),
    [
        ("postgresql://optuna:s3cret@db/optuna", "must not hold a user or password"),
        ("postgresql://optuna@db/optuna", "must not hold a user or password"),
        ("mysql://db/optuna?password=x", "must not hold a user or password"),
        ("redis://db:6379", "is not an Optuna RDB URL"),
    ],
)
def test_storage_with_credentials_or_of_another_kind_is_refused(storage: str, words: str) -> None:
    with pytest.raises(FractureTuneError, match="searcher.storage") as raised:
        load_config("quickstart", {"searcher.storage": storage})
    assert words in str(raised.value)


def test_a_new_search_never_joins_another_searchs_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(study_name="qs1", storage=url)
    check_new_study(url, "qs2")  # another name: fine
    with pytest.raises(FractureTuneError, match="already holds a study named 'qs1'"):
        check_new_study(url, "qs1")


def _row(trial_id: str, status: str, history: list[float]) -> dict:
    return {"trial_id": trial_id, "status": status, "metric_history": history}


def test_settle_gives_trials_ray_left_running_their_final_state(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    for tune_id in ("cut", "cut-early", "stopped", "lost"):
        study.ask().set_user_attr("tune_trial_id", tune_id)
    rows = [
        _row("cut", "time_budget", [0.6, 0.7, 0.65]),  # reached min_epochs: COMPLETE with its score
        _row("cut-early", "time_budget", [0.9]),  # cut before min_epochs: PRUNED, its last score
        _row("stopped", "interrupted", [0.6]),  # resume continues it: stays RUNNING
    ]
    assert settle_study(url, "s", rows, RULE) == 3
    trials = {t.user_attrs["tune_trial_id"]: t for t in optuna.load_study(study_name="s", storage=url).trials}
    states = {key: (t.state.name, t.value, t.user_attrs.get("stop_reason")) for key, t in trials.items()}
    assert states == {
        "cut": ("COMPLETE", 0.7, "time_budget"),
        "cut-early": ("PRUNED", 0.9, "time_budget"),
        "stopped": ("RUNNING", None, None),
        "lost": ("FAIL", None, "lost_with_its_driver"),
    }
    assert trials["cut"].intermediate_values == {1: 0.6, 2: 0.7, 3: 0.7}  # the score after each epoch


RULE = ScoreRule("val_auroc", "max", min_epochs=2)
SPACE = {"lr": ParamSpec(type="float", low=1e-4, high=1e-1, log=True)}


def _searcher(tmp_path: Path) -> Any:
    url = storage_url(None, tmp_path)
    searcher = recording_searcher(
        RULE,
        tmp_path,
        url,
        space=DefineByRunSpace(SPACE),
        metric="score",
        mode="max",
        study_name="s",
        storage=open_storage(url),
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
    )
    return searcher


def _commits(searcher: Any) -> list[int]:
    """A counter of the study storage's database transactions that wrote something (reads not counted)."""
    from sqlalchemy import event

    count, wrote = [0], [False]
    engine = searcher._ot_study._storage._backend.engine

    def statement(connection: Any, cursor: Any, sql: str, *args: Any) -> None:
        wrote[0] = wrote[0] or sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))

    def commit(connection: Any) -> None:
        count[0] += int(wrote[0])
        wrote[0] = False

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    return count


def test_a_trials_value_is_its_score_and_its_end_is_one_transaction(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _searcher(tmp_path)
    for trial_id in ("done", "asha", "broken"):
        searcher.suggest(trial_id)
    commits = _commits(searcher)
    history = [0.9, 0.6, 0.8, 0.7]  # an epoch-1 spike, then the curve
    for epoch, value in enumerate(RULE.running(history)[:3], start=1):
        searcher.on_trial_result("done", {"epoch": epoch, "score": value})
    assert commits[0] == 0, "an epoch's result was written on its own"
    searcher.on_trial_complete("done", {"epoch": 4, "score": RULE.score(history)[0]})
    assert commits[0] == 1, f"the trial's end took {commits[0]} transactions"
    StopLedger(tmp_path).record("asha", "stopped_by_asha", 1)
    searcher.on_trial_complete("asha", {"epoch": 1, "score": 0.55})
    searcher.on_trial_complete("broken", {"epoch": 2, "score": 0.7}, error=True)
    trials = {
        t.user_attrs["tune_trial_id"]: t
        for t in optuna.load_study(study_name="s", storage=storage_url(None, tmp_path)).trials
    }
    assert (trials["done"].state.name, trials["done"].value) == ("COMPLETE", 0.8)
    assert trials["done"].intermediate_values == {1: 0.9, 2: 0.6, 3: 0.8, 4: 0.8}
    assert trials["done"].user_attrs["stop_reason"] == "finished"
    assert (trials["asha"].state.name, trials["asha"].value) == ("PRUNED", 0.55)
    assert trials["asha"].user_attrs["stop_reason"] == "stopped_by_asha"
    assert (trials["broken"].state.name, trials["broken"].value) == ("FAIL", None)


def test_the_saved_searcher_does_not_grow_with_ended_trials_and_resume_reopens_errored_ones(
    tmp_path: Path,
) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _searcher(tmp_path)
    searcher.suggest("t0")
    searcher.save(str(tmp_path / "one.pkl"))
    for index in range(1, 40):
        searcher.suggest(f"t{index}")
        searcher.on_trial_complete(f"t{index}", {"epoch": 2, "score": 0.5 + index / 100})
    searcher.on_trial_complete("t0", {"epoch": 1, "score": 0.6}, error=True)
    searcher.save(str(tmp_path / "many.pkl"))
    one, many = ((tmp_path / name).stat().st_size for name in ("one.pkl", "many.pkl"))
    assert many < one + 40 * 40, f"the saved searcher grew from {one} to {many} bytes"

    resumed = _searcher(tmp_path)
    resumed.restore(str(tmp_path / "many.pkl"))
    study = optuna.load_study(study_name="s", storage=storage_url(None, tmp_path))
    state = {t.user_attrs["tune_trial_id"]: t.state.name for t in study.trials}["t0"]
    assert state == "RUNNING", "an errored trial that resume reruns must be able to end again"
    resumed.on_trial_complete("t0", {"epoch": 3, "score": 0.9})
    study = optuna.load_study(study_name="s", storage=storage_url(None, tmp_path))
    rerun = {t.user_attrs["tune_trial_id"]: t for t in study.trials}["t0"]
    assert (rerun.state.name, rerun.value) == ("COMPLETE", 0.9)
    assert study.best_trial.user_attrs["tune_trial_id"] == "t0"
