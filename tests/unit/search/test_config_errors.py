"""A bad search config is answered with one line naming the dotted key, and a hint."""

from __future__ import annotations

import pytest

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import load_config


def test_a_mistyped_key_names_its_place_and_the_closest_valid_key() -> None:
    with pytest.raises(FractureTuneError) as raised:
        load_config("quickstart", {"budget.num_trails": 4})
    assert raised.value.message.endswith("budget.num_trails: unknown key 'budget.num_trails'")
    assert raised.value.hint == "did you mean 'num_trials'?"


def test_a_key_with_no_close_name_lists_the_valid_keys() -> None:
    with pytest.raises(FractureTuneError) as raised:
        load_config("quickstart", {"scheduler.zzz": 1})
    assert raised.value.hint == "valid keys here: grace_period, max_t, reduction_factor"


def test_a_bad_value_is_quoted() -> None:
    with pytest.raises(FractureTuneError) as raised:
        load_config("quickstart", {"budget.num_trials": 0})
    assert "budget.num_trials" in raised.value.message and "(got 0)" in raised.value.message
