"""A trial's score: one number from a validation curve, the same wherever it is read."""

from __future__ import annotations

import math

import pytest

from fracture_tune.trainables.score import ScoreRule


def test_score_is_the_best_epoch_at_or_after_min_epochs_and_provisional_before() -> None:
    rule = ScoreRule("val_auroc", "max", min_epochs=3)
    history = [0.95, 0.6, 0.7, 0.9, 0.8]
    assert rule.running(history) == [0.95, 0.6, 0.7, 0.9, 0.9]
    assert rule.score(history) == (0.9, 4)
    assert rule.score(history[:2]) == (0.6, 2), "before min_epochs: the latest value, not the best"


def test_last_epoch_scope_and_min_mode() -> None:
    assert ScoreRule(scope="last_epoch", min_epochs=1).score([0.9, 0.7]) == (0.7, 2)
    loss = ScoreRule("val_loss", "min", min_epochs=2)
    assert loss.score([0.1, 0.5, 0.3, 0.4]) == (0.3, 3)


def test_nan_epochs_are_skipped_and_an_all_nan_curve_has_no_score() -> None:
    rule = ScoreRule(min_epochs=1)
    assert rule.score([0.6, math.nan, 0.7, math.inf]) == (0.7, 3)
    score, epoch = rule.score([math.nan, math.nan])
    assert math.isnan(score) and epoch == 0
    assert math.isnan(rule.score([])[0])


def test_what_a_trial_reports_each_epoch() -> None:
    rule = ScoreRule(min_epochs=2)
    first = rule.report([0.9])
    assert first["score"] == 0.9 and first["score_epoch"] == 1.0 and math.isnan(first["epoch_score"])
    assert rule.report([0.9, 0.6, 0.7]) == {"score": 0.7, "score_epoch": 3.0, "epoch_score": 0.7}


def test_rank_key_orders_eligible_then_score_then_epochs_then_index() -> None:
    rule = ScoreRule(min_epochs=2)
    keys = {
        "short-high": rule.rank_key(0.99, 1, 0),
        "long": rule.rank_key(0.8, 4, 5),
        "short": rule.rank_key(0.8, 2, 1),
        "long-later": rule.rank_key(0.8, 4, 7),
        "worse": rule.rank_key(0.7, 10, 0),
        "none": rule.rank_key(math.nan, 3, 0),
    }
    assert sorted(keys, key=keys.__getitem__) == [
        "long",
        "long-later",
        "short",
        "worse",
        "none",
        "short-high",
    ]


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        ScoreRule(mode="up")
    with pytest.raises(ValueError, match="scope"):
        ScoreRule(scope="mean")
    with pytest.raises(ValueError, match="min_epochs"):
        ScoreRule(min_epochs=0)
