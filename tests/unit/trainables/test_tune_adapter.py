"""A reused trial worker freezes its long-lived objects once, and must still free every trial's model."""

from __future__ import annotations

import gc
import weakref

import pytest

from fracture_tune.trainables import tune_adapter
from fracture_tune.trainables.models import build_model


def _trial_leaving_a_model_in_a_cycle() -> weakref.ref:
    """What an ASHA-stopped trial can leave behind: its model reachable only through a reference cycle."""
    model = build_model("tiny_cnn")
    cycle: dict[str, object] = {"model": model}
    cycle["self"] = cycle
    return weakref.ref(model)


def test_freezing_a_reused_worker_never_pins_a_trials_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tune_adapter, "_trials_started", 0)
    gc.disable()  # only the collections the worker makes
    try:
        tune_adapter.freeze_long_lived_objects()  # trial 1 starts: nothing frozen yet
        assert gc.get_freeze_count() == 0
        first = _trial_leaving_a_model_in_a_cycle()
        tune_adapter.freeze_long_lived_objects()  # trial 2 starts: collect, then freeze the survivors
        assert gc.get_freeze_count() > 0
        assert first() is None, "trial 1's model was frozen instead of freed"
        second = _trial_leaving_a_model_in_a_cycle()
        gc.collect()  # what train_trial does when a trial ends
        assert second() is None, "a later trial's model survived the end-of-trial collection"
        frozen = gc.get_freeze_count()
        tune_adapter.freeze_long_lived_objects()  # trial 3: no second freeze
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        gc.enable()
