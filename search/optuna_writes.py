"""How a trial's end reaches the Optuna study: one transaction, not one per epoch.

Optuna's public API writes each intermediate value, each user attribute and the final state in a transaction
of its own (``trial.report``, ``set_user_attr``, ``study.tell``): a 10-epoch trial is a dozen commits, in the
search's event loop. ``end_trial`` writes them together: it does what ``study.tell`` does (the sampler's
``after_trial``; a pruned trial's value is its last intermediate value) through ``RDBStorage``'s own helpers
inside one session. Those helpers are private to Optuna (pinned below 6 in pyproject.toml); when one is
missing, the public API writes the same values one by one. ``reopen_trial`` puts a failed trial back to
RUNNING, which no public API allows: ``search --resume`` reruns errored trials, and their study trial must be
able to end again (``optuna_study``).
"""

from __future__ import annotations

import datetime
import logging
import math
from typing import Any

logger = logging.getLogger(__name__)


def rdb_backend(storage: Any) -> Any:
    """The ``RDBStorage`` behind a study's storage (Optuna wraps it in a cache)."""
    return getattr(storage, "_backend", storage)


def end_trial(
    study: Any,
    trial_id: int,
    state: Any,
    value: float | None,
    intermediate: dict[int, float],
    user_attrs: dict[str, Any],
) -> None:
    """End study trial ``trial_id`` (Optuna's internal id) as ``state`` with ``value``, its intermediate
    values and user attributes, in one transaction. PRUNED: the value is the last finite intermediate
    value (as ``study.tell`` does); FAIL: no value."""
    from optuna.trial import TrialState

    finite = {int(step): float(v) for step, v in intermediate.items() if math.isfinite(float(v))}
    if state == TrialState.FAIL or (value is not None and not math.isfinite(value)):
        value = None
    if state == TrialState.PRUNED:
        value = finite[max(finite)] if finite else None
    frozen = study._storage.get_trial(trial_id)
    values = None if value is None else [float(value)]
    study.sampler.after_trial(study, frozen, state, values)
    try:
        _write_in_one_session(rdb_backend(study._storage), trial_id, state, value, finite, user_attrs)
    except AttributeError as error:  # an Optuna without these helpers: the public API, one write at a time
        logger.debug(
            "Optuna's storage helpers are missing (%s); writing the trial's end value by value", error
        )
        _write_one_by_one(study._storage, trial_id, state, values, finite, user_attrs)


def _write_in_one_session(
    backend: Any,
    trial_id: int,
    state: Any,
    value: float | None,
    finite: dict[int, float],
    attrs: dict[str, Any],
) -> None:
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session) as session:
        for step, intermediate_value in sorted(finite.items()):
            backend._set_trial_intermediate_value_without_commit(session, trial_id, step, intermediate_value)
        for key, attr in attrs.items():
            backend._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, key, attr
            )
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        backend.check_trial_is_updatable(trial_id, trial.state)
        if value is not None:
            backend._set_trial_value_without_commit(session, trial, 0, value)
        trial.state = state
        trial.datetime_complete = datetime.datetime.now()


def _write_one_by_one(
    storage: Any,
    trial_id: int,
    state: Any,
    values: list[float] | None,
    finite: dict[int, float],
    attrs: dict[str, Any],
) -> None:
    for step, intermediate_value in sorted(finite.items()):
        storage.set_trial_intermediate_value(trial_id, step, intermediate_value)
    for key, attr in attrs.items():
        storage.set_trial_user_attr(trial_id, key, attr)
    storage.set_trial_state_values(trial_id, state, values)


def reopen_trial(storage: Any, trial_id: int) -> None:
    """Put a FAIL trial back to RUNNING (its intermediate values stay; a FAIL trial has no value)."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState

    backend = rdb_backend(storage)
    with _create_scoped_session(backend.scoped_session) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        if trial.state != TrialState.FAIL:
            return
        trial.state = TrialState.RUNNING
        trial.datetime_complete = None
