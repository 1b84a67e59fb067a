"""The search's Optuna study, in an Optuna storage that optuna-dashboard and ``optuna.load_study`` open.

Every search keeps its study in an Optuna RDB storage — by default ``sqlite:///<run folder>/optuna.db``;
``searcher.storage`` takes any Optuna RDB URL (PostgreSQL, MySQL…) — under the search's name, and a resumed
search continues the same study (Tune restores the searcher, which holds the study; nothing is asked twice).

Ray 2.60's ``OptunaSearch`` tells Optuna COMPLETE with the last result for trials ASHA stopped (PRUNED only
for an empty result), so TPE would read a 1-epoch score as a final one. ``RecordingOptunaSearch`` tells
Optuna what happened instead, from the search's ``StopLedger``: stopped by ASHA → PRUNED with its per-epoch
(intermediate) values; failed → FAIL; finished → COMPLETE. Trials Tune stops without telling the searcher (the
time budget ran out, the search was interrupted) are left RUNNING by Ray; ``settle_study`` marks them at the
end of the search (PRUNED, their epochs as intermediate values). Each Optuna trial carries the Tune trial id
and why it ended as user attributes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.stops import ERROR, FINISHED, INTERRUPTED, STOPPED_BY_ASHA, StopLedger, TrialStop

logger = logging.getLogger(__name__)

STUDY_FILE = "optuna.db"
TUNE_TRIAL_ID_ATTR = "tune_trial_id"
STOP_REASON_ATTR = "stop_reason"
# Asked by a driver killed before Tune saved the trial: it never ran as part of the search.
LOST = "lost_with_its_driver"


def storage_url(configured: str | None, run_dir: Path) -> str:
    """``searcher.storage`` when set, else a SQLite file in the run folder."""
    return configured or f"sqlite:///{Path(run_dir).resolve() / STUDY_FILE}"


def open_storage(url: str) -> Any:
    import optuna

    try:
        return optuna.storages.RDBStorage(url)
    except Exception as error:  # noqa: BLE001 - sqlalchemy/driver errors vary; say which storage and why
        from fracture_tune.search.tracking import error_summary, redact_secrets

        raise FractureTuneError(
            f"cannot open the Optuna storage {redact_secrets(url)}: {error_summary(error)}",
            hint="searcher.storage takes an Optuna RDB URL (sqlite:///path.db, postgresql://…) whose driver "
            "is installed and whose database exists",
        ) from error


def check_new_study(url: str, study_name: str) -> None:
    """A new search must not add its trials to another search's study of the same name."""
    import optuna

    from fracture_tune.search.tracking import redact_secrets

    if study_name in optuna.study.get_all_study_names(storage=open_storage(url)):
        raise FractureTuneError(
            f"the Optuna storage {redact_secrets(url)} already holds a study named {study_name!r}",
            hint="a search's study is named after the search: choose another --name, or continue that search "
            f"with --resume {study_name}",
        )


def dashboard_command(url: str) -> str:
    """The command that opens the study in optuna-dashboard (``pip install optuna-dashboard``)."""
    from fracture_tune.search.tracking import redact_secrets

    return f"optuna-dashboard {redact_secrets(url)}"


def _searcher_class() -> type:
    from ray.tune.search.optuna import OptunaSearch

    class RecordingOptunaSearch(OptunaSearch):
        """Ray's OptunaSearch, telling Optuna why each trial ended (see the module's docstring)."""

        def __init__(self, ledger: StopLedger, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.ledger = ledger

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            params = super().suggest(trial_id)
            trial = self._ot_trials.get(trial_id)
            if trial is not None:
                trial.set_user_attr(TUNE_TRIAL_ID_ATTR, trial_id)
            return params

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            stop = self.ledger.get(trial_id)
            trial = self._ot_trials.get(trial_id)
            if trial is None or trial_id in self._completed_trials:
                super().on_trial_complete(trial_id, result, error)
                return
            if error or (stop is not None and stop.reason == ERROR):
                trial.set_user_attr(STOP_REASON_ATTR, ERROR)
                self._tell(trial_id, trial, None, "FAIL")
            elif stop is not None and stop.reason == STOPPED_BY_ASHA:
                # (Tune tells the searcher before the callbacks record a finish: no record = finished.)
                # ASHA's STOP result never reached on_trial_result: report it as the last intermediate value.
                if result and self.metric in result and "training_iteration" in result:
                    _report(trial, result[self.metric], int(result["training_iteration"]))
                trial.set_user_attr(STOP_REASON_ATTR, stop.reason)
                self._tell(trial_id, trial, None, "PRUNED")
            else:
                trial.set_user_attr(STOP_REASON_ATTR, FINISHED)
                super().on_trial_complete(trial_id, result, error)

        def _tell(self, trial_id: str, trial: Any, value: float | None, state: str) -> None:
            import optuna

            study: Any = self._ot_study
            try:
                study.tell(trial, value, state=getattr(optuna.trial.TrialState, state))
            except Exception as exc:  # noqa: BLE001 - as Ray does: a refused tell must not stop the search
                logger.warning("Optuna refused to mark trial %s %s: %s", trial_id, state, exc)
            self._completed_trials.add(trial_id)

    return RecordingOptunaSearch


def _report(trial: Any, value: Any, step: int) -> None:
    import math
    import warnings

    if isinstance(value, int | float) and math.isfinite(float(value)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a value already reported at this step is kept, with a warning
            trial.report(float(value), step)


def recording_searcher(ledger: StopLedger, **kwargs: Any) -> Any:
    """A ``RecordingOptunaSearch`` (Ray's OptunaSearch subclass, built on first use: Ray is imported late)."""
    return _searcher_class()(ledger, **kwargs)


def settle_study(url: str, study_name: str, ledger: StopLedger, search_trials: set[str]) -> int:
    """Give the trials Ray left RUNNING their final state; returns how many were changed.

    Cut off by the time budget → PRUNED (their epochs are its intermediate values); an error → FAIL. An
    interrupted trial stays RUNNING: ``search --resume`` continues it in the same Optuna trial. A trial
    asked by a driver that was killed before Tune saved it (not one of ``search_trials``, the search's Tune
    trials) never ran as part of the search: FAIL, with ``stop_reason=lost_with_its_driver``.
    """
    import optuna

    storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0
    stops: dict[str, TrialStop] = ledger.all()
    settled = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        tune_id = str(trial.user_attrs.get(TUNE_TRIAL_ID_ATTR, ""))
        stop = stops.get(tune_id)
        if tune_id not in search_trials:
            reason, state = LOST, optuna.trial.TrialState.FAIL
        elif stop is None or stop.reason == INTERRUPTED:
            continue
        else:
            reason = stop.reason
            state = optuna.trial.TrialState.FAIL if stop.reason == ERROR else optuna.trial.TrialState.PRUNED
        storage.set_trial_user_attr(trial._trial_id, STOP_REASON_ATTR, reason)
        study.tell(trial.number, state=state)
        settled += 1
    return settled
