"""The error users see: what was wrong, and a hint for what to do."""

from __future__ import annotations

from fracture_tune.errors import FractureTuneError, did_you_mean


def test_the_message_and_the_hint_are_both_shown() -> None:
    error = FractureTuneError("dataset.path /x: no such folder", hint="run `fracture-tune data synth`")
    assert (error.message, error.hint) == (
        "dataset.path /x: no such folder",
        "run `fracture-tune data synth`",
    )
    assert str(error) == "dataset.path /x: no such folder\n  hint: run `fracture-tune data synth`"
    assert str(FractureTuneError("no hint")) == "no hint"


def test_did_you_mean_offers_the_closest_name_or_nothing() -> None:
    assert did_you_mean("learning_rte", ["lr", "learning_rate", "epochs"]) == "learning_rate"
    assert did_you_mean("zzz", ["lr", "learning_rate"]) is None
