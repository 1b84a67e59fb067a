"""The champion alias moves only for a better test AUROC on the same split, or away from a synthetic model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fracture_tune.classifier.registry import (
    SYNTHETIC_DATA,
    TRAINING_DATA_TAG,
    ChampionState,
    current_champion,
    decide_champion,
    register_version,
)
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


DEMO_CHAMPION = ChampionState(version="1", test_auroc=0.99, split_hash="demo00", synthetic=True)


def test_a_synthetic_champion_gives_way_to_the_first_model_of_real_images() -> None:
    """The demo's model scored 0.99 on generated images of another split: a real model takes the alias."""
    decision = decide_champion(0.71, "xrays1", DEMO_CHAMPION)
    assert decision.promote and "v1 was trained on synthetic images" in decision.reason
    assert not decide_champion(0.71, "xrays1", DEMO_CHAMPION, "never").promote
    # another synthetic model is compared as before: another split is not comparable
    assert not decide_champion(0.999, "demo01", DEMO_CHAMPION, new_synthetic=True).promote


class _Registry:
    """An MlflowClient stand-in: one registered model whose champion is ``champion_tags``' version 1."""

    def __init__(self, champion_tags: dict[str, str]) -> None:
        self.tags = {"1": dict(champion_tags)}
        self.alias = "1"

    def get_model_version_by_alias(self, name: str, alias: str) -> SimpleNamespace:
        return SimpleNamespace(version=self.alias, tags=self.tags[self.alias])

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags.setdefault(version, {})[key] = value

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.alias = version


def test_a_retrain_on_real_images_becomes_the_champion_over_the_demos_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``@champion`` then names the model of real images; each version says what it was trained on."""
    import mlflow

    monkeypatch.setattr(mlflow, "register_model", lambda *args, **kwargs: SimpleNamespace(version=2))
    demo = {"test_auroc": "0.99", "split_hash": "demo00", TRAINING_DATA_TAG: SYNTHETIC_DATA}
    client = _Registry(demo)
    registration = register_version(
        client,  # type: ignore[arg-type]
        model_uri="runs:/r2/model",
        name="fracture-classifier",
        run_id="r2",
        test_auroc=0.71,
        split_hash="xrays1",
        version_tags={},
    )
    assert registration.decision.promote and client.alias == "2"
    assert (
        client.tags["2"][TRAINING_DATA_TAG] == "images"
        and client.tags["2"]["previous_champion_version"] == "1"
    )
    assert not current_champion(client, "fracture-classifier").synthetic  # type: ignore[arg-type]
