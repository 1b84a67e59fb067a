"""The champion alias moves only for a better test AUROC on the same split."""

from __future__ import annotations

import pytest

from fracture_tune.classifier.registry import ChampionState, decide_champion
from fracture_tune.errors import FractureTuneError

CHAMPION = ChampionState(version="3", test_auroc=0.85, split_hash="abc123")


def test_first_model_becomes_champion() -> None:
    assert decide_champion(0.6, "abc123", None).promote


def test_better_auroc_on_same_split_promotes_and_names_both_numbers() -> None:
    decision = decide_champion(0.9, "abc123", CHAMPION)
    assert decision.promote
    assert "0.9000" in decision.reason and "0.8500" in decision.reason and "v3" in decision.reason


@pytest.mark.parametrize("auroc", [0.85, 0.7, float("nan")])
def test_equal_worse_or_undefined_auroc_keeps_champion(auroc: float) -> None:
    assert not decide_champion(auroc, "abc123", CHAMPION).promote


def test_other_split_is_not_comparable() -> None:
    decision = decide_champion(0.99, "zzz999", CHAMPION)
    assert not decision.promote
    assert "not comparable" in decision.reason


def test_policies() -> None:
    assert decide_champion(0.1, "zzz999", CHAMPION, "always").promote
    assert not decide_champion(0.99, "abc123", None, "never").promote
    with pytest.raises(FractureTuneError, match="promotion policy"):
        decide_champion(0.9, "abc123", None, "sometimes")
