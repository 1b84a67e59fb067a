"""The search's Optuna study: where it lives, what a config may say about it, and how trials end in it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.config import load_config
from fracture_tune.search.optuna_study import (
    check_new_study,
    dashboard_command,
    settle_study,
    storage_url,
)
from fracture_tune.search.stops import StopLedger


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


def test_settle_gives_trials_ray_left_running_their_final_state(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    ledger = StopLedger(tmp_path)
    for tune_id in ("cut", "stopped", "lost"):
        trial = study.ask()
        trial.set_user_attr("tune_trial_id", tune_id)
        trial.report(0.6, 1)
    ledger.record("cut", "time_budget", 1)
    ledger.record("stopped", "interrupted", 1)  # resume continues it: stays RUNNING

    assert settle_study(url, "s", ledger, search_trials={"cut", "stopped"}) == 2
    states = {
        t.user_attrs["tune_trial_id"]: (t.state.name, t.user_attrs.get("stop_reason")) for t in study.trials
    }
    assert states == {
        "cut": ("PRUNED", "time_budget"),
        "stopped": ("RUNNING", None),
        "lost": ("FAIL", "lost_with_its_driver"),
    }
