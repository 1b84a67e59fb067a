"""The search's Optuna study, in an Optuna storage that optuna-dashboard and ``optuna.load_study`` open.

Every search keeps its study in an Optuna RDB storage — by default ``sqlite:///<run folder>/optuna.db``;
``searcher.storage`` takes any Optuna RDB URL (PostgreSQL, MySQL…) — under the search's name, and a resumed
search continues the same study (Tune restores the searcher; nothing is asked twice).

The study holds what the rest of the search holds (``study_state_for``): a trial's value is its score
(``trainables/score.py``: the searcher's metric is ``score``) and its intermediate values are its score after
each epoch. A trial that ended for good with ``min_epochs`` epochs is COMPLETE — so TPE and optuna-dashboard
rank exactly the trials the best-trial rule ranks; one that ended before is PRUNED (its value, as Optuna
gives every pruned trial, is its last score); an errored trial is FAIL; an interrupted one stays RUNNING for
``search --resume``. Ray 2.60's OptunaSearch would instead tell COMPLETE with the last result for trials ASHA
stopped and write every epoch in a transaction of its own; ``RecordingOptunaSearch`` keeps a trial's scores in
memory and writes its end in one transaction (``optuna_writes``). Trials Tune stops without telling the
searcher (the time budget ran out) are ended by ``settle_study`` at the end of the search. Each study trial
carries the Tune trial id and why it ended as user attributes.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.stops import (
    ERROR,
    FINISHED,
    STOPPED_BY_ASHA,
    TIME_BUDGET,
    StopLedger,
)
from fracture_tune.trainables.score import SCORE_KEY, ScoreRule

logger = logging.getLogger(__name__)

STUDY_FILE = "optuna.db"
TUNE_TRIAL_ID_ATTR = "tune_trial_id"
STOP_REASON_ATTR = "stop_reason"
# Asked by a driver killed before Tune saved the trial: it never ran as part of the search.
LOST = "lost_with_its_driver"
ENDED_FOR_GOOD = (FINISHED, STOPPED_BY_ASHA, TIME_BUDGET)


def study_state_for(status: str, epochs: int, rule: ScoreRule) -> str:
    """The Optuna state a trial that ended as ``status`` after ``epochs`` epochs has in the study."""
    if status == ERROR:
        return "FAIL"
    if status not in ENDED_FOR_GOOD:
        return "RUNNING"
    return "COMPLETE" if rule.eligible(epochs) else "PRUNED"


def storage_url(configured: str | None, run_dir: Path) -> str:
    """``searcher.storage`` when set, else a SQLite file in the run folder."""
    return configured or f"sqlite:///{Path(run_dir).resolve() / STUDY_FILE}"


def open_storage(url: str) -> Any:
    """The Optuna RDB storage at ``url``; a SQLite file switched to write-ahead logging (``sqlite_wal``)."""
    import optuna

    try:
        storage = optuna.storages.RDBStorage(url)
        if url.startswith("sqlite:"):
            sqlite_wal(storage.engine)
        return storage
    except Exception as error:  # noqa: BLE001 - sqlalchemy/driver errors vary; say which storage and why
        from fracture_tune.search.tracking import error_summary, redact_secrets

        raise FractureTuneError(
            f"cannot open the Optuna storage {redact_secrets(url)}: {error_summary(error)}",
            hint="searcher.storage takes an Optuna RDB URL (sqlite:///path.db, postgresql://…) whose driver "
            "is installed and whose database exists",
        ) from error


def sqlite_wal(engine: Any) -> None:
    """Write-ahead logging for a SQLite study (kept in the file) and NORMAL syncs on this engine's
    connections: a trial's end is one append to the log, not a rollback journal of its pages plus the pages,
    and no fsync per transaction (a crash of the search loses nothing; a power cut can lose the last ones).
    Any SQLite reader, optuna-dashboard included, reads a WAL database."""
    from sqlalchemy import event

    def on_connect(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener reconnect with it
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")


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
        """Ray's OptunaSearch, telling the study what the search's records say (see the module)."""

        def __init__(self, rule: ScoreRule, run_dir: Path, storage_url: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.rule = rule
            self.run_dir = Path(run_dir)
            self.storage_url = storage_url
            self.ledger = StopLedger(run_dir)
            self.scores: dict[str, dict[int, float]] = {}  # running trials' score per epoch, not yet written
            self.errored: dict[str, int] = {}  # Tune trial id -> study trial id of trials told FAIL

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            params = super().suggest(trial_id)
            trial = self._ot_trials.get(trial_id)
            if trial is not None:
                trial.set_user_attr(TUNE_TRIAL_ID_ATTR, trial_id)
            return params

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            self._remember(trial_id, result)  # written when the trial ends, in one transaction

        def _remember(self, trial_id: str, result: dict[str, Any] | None) -> None:
            if not result or SCORE_KEY not in result:
                return
            step = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
            if step > 0:
                self.scores.setdefault(trial_id, {})[step] = float(result[SCORE_KEY])

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            trial = self._ot_trials.get(trial_id)
            if trial is None or trial_id in self._completed_trials:
                return
            self._remember(trial_id, result)  # ASHA's STOP result never reached on_trial_result
            scores = self._scores_of(trial_id)
            epochs = max(scores, default=0)
            if error:
                status = ERROR
            else:
                stop = self.ledger.get(trial_id)  # ASHA writes its decision before Tune tells the searcher
                asha = stop is not None and stop.reason == STOPPED_BY_ASHA and stop.epoch == epochs
                status = STOPPED_BY_ASHA if asha else FINISHED
            state = study_state_for(status, epochs, self.rule)
            self._end(trial_id, trial._trial_id, state, scores, status)
            if status == ERROR:
                self.errored[trial_id] = trial._trial_id
            self._completed_trials.add(trial_id)
            self._ot_trials.pop(trial_id, None)

        def _scores_of(self, trial_id: str) -> dict[int, float]:
            """The trial's score per epoch: what this driver saw, completed from the trial's results on disk
            (epochs reported under an earlier driver, before a crash)."""
            scores = self.scores.pop(trial_id, {})
            if scores and len(scores) == max(scores):
                return scores
            return {**scores_on_disk(self.run_dir / f"trial_{trial_id}"), **scores}

        def _end(
            self, trial_id: str, study_trial_id: int, state: str, scores: dict[int, float], why: str
        ) -> None:
            import optuna

            from fracture_tune.search.optuna_writes import end_trial

            value = scores[max(scores)] if scores else None
            try:
                end_trial(
                    self._ot_study,
                    study_trial_id,
                    getattr(optuna.trial.TrialState, state),
                    value,
                    scores,
                    {STOP_REASON_ATTR: why},
                )
            except Exception as exc:  # noqa: BLE001 - as Ray does: a refused write must not stop the search
                logger.warning("Optuna refused to end trial %s as %s: %s", trial_id, state, exc)

        # What Tune saves with every experiment snapshot: no study or trial objects (the study's cache holds
        # every trial, which would make each snapshot grow with the search); they are reopened on restore.
        # Ray's own save/restore does the pickling (it reads only the searcher state Tune itself wrote).
        def save(self, checkpoint_path: str) -> None:
            trials = self._ot_trials
            live = {"_ot_trials": trials, "_ot_study": self._ot_study, "_storage": self._storage}
            ledger = self.__dict__.pop("ledger", None)
            self._ot_trials = {tune_id: trial._trial_id for tune_id, trial in trials.items()}
            self._ot_study = None
            self._storage = None
            try:
                super().save(checkpoint_path)
            finally:
                self.__dict__.update(live)
                if ledger is not None:
                    self.ledger = ledger

        def restore(self, checkpoint_path: str) -> None:
            import optuna

            super().restore(checkpoint_path)
            live = self.__dict__.pop("_ot_trials")
            self.ledger = StopLedger(self.run_dir)
            self._storage = open_storage(self.storage_url)
            study = optuna.load_study(
                study_name=self._study_name, storage=self._storage, sampler=self._sampler
            )
            # `search --resume` reruns errored trials: their study trials end again (``optuna_writes``).
            from fracture_tune.search.optuna_writes import reopen_trial

            for tune_id, study_trial_id in self.errored.items():
                reopen_trial(study._storage, study_trial_id)
                live[tune_id] = study_trial_id
                self._completed_trials.discard(tune_id)
            self.errored = {}
            self._ot_study = study  # type: ignore[assignment]  # Ray declares it None until set up
            self._ot_trials = {
                tune_id: optuna.trial.Trial(study, study_trial_id) for tune_id, study_trial_id in live.items()
            }

    return RecordingOptunaSearch


def scores_on_disk(trial_dir: Path) -> dict[int, float]:
    """A trial's score per epoch from Tune's ``result.json`` in its folder (an epoch's last line wins)."""
    scores: dict[int, float] = {}
    try:
        lines = (Path(trial_dir) / "result.json").read_text(encoding="utf-8").splitlines()
    except OSError:
        return scores
    for line in lines:
        try:
            result = json.loads(line)
        except ValueError:
            continue
        step = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
        if step > 0 and isinstance(result.get(SCORE_KEY), int | float):
            scores[step] = float(result[SCORE_KEY])
    return scores


def recording_searcher(rule: ScoreRule, run_dir: Path, url: str, **kwargs: Any) -> Any:
    """A ``RecordingOptunaSearch`` (Ray's OptunaSearch subclass, built on first use: Ray is imported late)."""
    return _searcher_class()(rule, run_dir, url, **kwargs)


def settle_study(url: str, study_name: str, rows: list[dict[str, Any]], rule: ScoreRule) -> int:
    """Give the study trials Ray left RUNNING their final state (``study_state_for``); returns how many.

    Cut off by the time budget: COMPLETE or PRUNED by the rule, with its scores. An interrupted trial stays
    RUNNING: ``search --resume`` continues it in the same study trial. A trial asked by a driver that was
    killed before Tune saved it (no row of the search) never ran as part of the search: FAIL, with
    ``stop_reason=lost_with_its_driver``.
    """
    import optuna

    from fracture_tune.search.optuna_writes import end_trial

    storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0
    by_id = {str(row["trial_id"]): row for row in rows}
    settled = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        row = by_id.get(str(trial.user_attrs.get(TUNE_TRIAL_ID_ATTR, "")))
        if row is None:
            state, why, scores = "FAIL", LOST, {}
        else:
            history = [float(value) for value in row.get("metric_history", [])]
            state = study_state_for(str(row["status"]), len(history), rule)
            why = str(row["status"])
            scores = {
                epoch: value
                for epoch, value in enumerate(rule.running(history), start=1)
                if math.isfinite(value)
            }
        if state == "RUNNING":
            continue
        value = scores[max(scores)] if scores else None
        end_trial(
            study,
            trial._trial_id,
            getattr(optuna.trial.TrialState, state),
            value,
            scores,
            {STOP_REASON_ATTR: why},
        )
        settled += 1
    return settled
