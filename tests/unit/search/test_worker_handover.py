"""A trial whose reused worker cannot be handed over goes back to Ray's queue instead of erroring.

A user would notice a search losing trials that never ran an epoch (errored, unknown to the searcher and to
the records) whenever a previous trial's thread was slow to end, or Ray's controller left patched after a
search (a later search in the same process behaving differently). Checked on a stand-in controller, without
starting Ray; ``tests/reliability/test_worker_handover.py`` forces real hand-overs to fail.
"""

from __future__ import annotations

from typing import Any

from ray.tune.execution.tune_controller import TuneController

from fracture_tune.search.worker_handover import fresh_worker_on_failed_handover


class _Trial:
    trial_id = "t1"

    def __init__(self) -> None:
        self.actor: Any = "actor"

    def set_ray_actor(self, actor: Any) -> None:
        self.actor = actor


class _Controller:
    """The controller state ``_on_trial_reset`` touches, recording what it was asked to do."""

    def __init__(self, trial: _Trial) -> None:
        self._resetting_trials = {trial}
        self._trial_to_actor = {trial: "tracked"}
        self._actor_to_trial = {"tracked": trial}
        self.unstaged: list[Any] = []
        self.removed: list[Any] = []

    def _unstage_trial_with_resources(self, trial: Any) -> None:
        self.unstaged.append(trial)

    def _remove_actor(self, tracked_actor: Any) -> None:
        self.removed.append(tracked_actor)


def test_a_failed_handover_sends_the_trial_back_to_the_queue_without_its_worker() -> None:
    trial = _Trial()
    controller = _Controller(trial)

    with fresh_worker_on_failed_handover():
        TuneController._on_trial_reset(controller, trial, False)  # type: ignore[arg-type]

    assert controller._resetting_trials == set()
    assert controller._trial_to_actor == {} and controller._actor_to_trial == {}
    assert trial.actor is None
    assert controller.unstaged == [trial]  # pending again: the controller stages it like any other
    assert controller.removed == ["tracked"]  # the stuck worker is stopped


def test_a_successful_handover_is_left_to_ray(monkeypatch: Any) -> None:
    calls: list[tuple[Any, Any, bool]] = []
    monkeypatch.setattr(
        TuneController, "_on_trial_reset", lambda self, trial, success: calls.append((self, trial, success))
    )
    trial = _Trial()
    controller = _Controller(trial)

    with fresh_worker_on_failed_handover():
        TuneController._on_trial_reset(controller, trial, True)  # type: ignore[arg-type]

    assert calls == [(controller, trial, True)]
    assert controller._resetting_trials == {trial} and trial.actor == "actor"


def test_rays_controller_is_restored_after_the_search_even_a_nested_or_failed_one() -> None:
    original = TuneController._on_trial_reset

    with fresh_worker_on_failed_handover():
        installed = TuneController._on_trial_reset
        assert installed is not original
        with fresh_worker_on_failed_handover():  # a nested search keeps the one installed
            assert TuneController._on_trial_reset is installed
        assert TuneController._on_trial_reset is installed
    assert TuneController._on_trial_reset is original

    try:
        with fresh_worker_on_failed_handover():
            raise RuntimeError("the search failed")
    except RuntimeError:
        pass
    assert TuneController._on_trial_reset is original
