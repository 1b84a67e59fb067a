"""A trial whose reused worker cannot be handed over starts on a fresh worker instead of failing.

With ``reuse_actors`` Ray hands a finished trial's worker to the next trial: it calls the worker's
``reset_config``, which waits for the previous trial's training thread to end. When that wait fails, Ray 2.60
(``TuneController._on_trial_reset``) marks the NEXT trial as errored — before it ran an epoch, telling neither
the searcher nor any callback — so the search loses a trial it never ran and its records disagree.

``trainables/tune_adapter.ReusableTrialWorker`` makes the wait long enough for a loaded machine; this module
covers what is left (a thread that still does not end): the worker is stopped and the trial goes back to
Ray's queue as a pending trial, so Ray starts it on another cached worker or a new one, as it would any trial.
The replacement is Ray's own controller method with one branch changed, installed in the driver for the
duration of a search; Ray is pinned to 2.60.x (pyproject.toml), and
``tests/reliability/test_worker_handover.py`` forces every hand-over to fail to check it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)


def _on_trial_reset(controller: Any, trial: Any, success: bool) -> None:
    """``TuneController._on_trial_reset`` with a failed reset sending the trial back to the queue."""
    if success:
        _ORIGINAL["method"](controller, trial, success)
        return
    controller._resetting_trials.remove(trial)
    logger.warning(
        "trial %s: the worker it was handed could not be reused (the previous trial's training thread had "
        "not ended); starting it on a fresh worker",
        trial.trial_id,
    )
    tracked_actor = controller._trial_to_actor.pop(trial)
    controller._actor_to_trial.pop(tracked_actor, None)
    trial.set_ray_actor(None)
    # Not staged any more: the controller's next step stages it again like any pending trial.
    controller._unstage_trial_with_resources(trial)
    controller._remove_actor(tracked_actor=tracked_actor)


_ORIGINAL: dict[str, Any] = {}


@contextlib.contextmanager
def fresh_worker_on_failed_handover() -> Iterator[None]:
    """Within the block, a failed hand-over restarts the trial on a fresh worker (see the module)."""
    from ray.tune.execution.tune_controller import TuneController

    if _ORIGINAL:  # already installed (a nested search in the same process)
        yield
        return
    _ORIGINAL["method"] = TuneController._on_trial_reset
    TuneController._on_trial_reset = _on_trial_reset  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        TuneController._on_trial_reset = _ORIGINAL.pop("method")  # type: ignore[method-assign]
