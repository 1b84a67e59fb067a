"""The re-ranking rule and the search's finalists."""

from __future__ import annotations

from pathlib import Path

import pytest
from retrain_fixtures import write_trials

from fracture_tune.search.retrain.selection import (
    RerankEntry,
    configuration_key,
    fresh_seeds,
    ranked_finalists,
    rerank_order,
)


def _entry(trial_id: str, rank: int, scores: list[float]) -> RerankEntry:
    return RerankEntry(trial_id, rank, 0.9 - rank / 100, [1000 + i for i in range(len(scores))], scores)


def test_the_rerank_rule_picks_the_best_mean_not_the_best_single_draw() -> None:
    entries = [
        _entry("search-best", 1, [0.86, 0.78, 0.79]),  # mean 0.81, one lucky draw
        _entry("steady", 2, [0.83, 0.82, 0.84]),  # mean 0.83
        _entry("weak", 3, [0.80, 0.80, 0.79]),
    ]
    assert [entry.trial_id for entry in rerank_order(entries, "max")] == ["steady", "search-best", "weak"]
    # A metric where lower is better (val_loss) ranks the other way.
    assert [entry.trial_id for entry in rerank_order(entries, "min")][0] == "weak"


def test_equal_means_keep_the_searchs_order() -> None:
    # Means exactly 0.8125 each (binary fractions: no rounding to tell them apart).
    entries = [
        _entry("third", 3, [0.75, 0.875]),
        _entry("first", 1, [0.875, 0.75]),
        _entry("second", 2, [0.8125]),
    ]
    assert [entry.trial_id for entry in rerank_order(entries, "max")] == ["first", "second", "third"]


def test_fresh_seeds_differ_from_the_trials_own() -> None:
    assert fresh_seeds({"seed": 3}, 2) == [1003, 1004]
    assert 3 not in fresh_seeds({"seed": 3}, 5)
    same = configuration_key({"lr": 0.1, "seed": 1, "device": "cpu"})
    assert same == configuration_key({"lr": 0.1, "seed": 2})
    assert same != configuration_key({"lr": 0.2, "seed": 1})


def test_finalists_are_distinct_configurations_in_the_searchs_order(tmp_path: Path) -> None:
    base = {"model": "tiny_cnn", "seed": 0}
    write_trials(
        tmp_path,
        [
            (
                "short",
                {**base, "lr": 0.1},
                [0.95],
            ),  # best score but below min_epochs: after the eligible ones
            ("a", {**base, "lr": 0.01}, [0.7, 0.8]),
            ("a-again", {**base, "lr": 0.01, "seed": 4}, [0.7, 0.79]),  # the same configuration as "a"
            ("b", {**base, "lr": 0.02}, [0.82, 0.6]),  # its epoch-1 spike is before min_epochs: scored 0.6
            ("c", {**base, "lr": 0.03}, [0.5, 0.6]),  # ties b: same epochs, the earlier trial (b) first
        ],
        **{"best_trial.min_epochs": 2},
    )
    finalists = ranked_finalists(tmp_path, 4)
    assert [trial.trial_id for trial in finalists] == ["a", "b", "c", "short"]
    assert finalists[0].metric_value == pytest.approx(0.8) and finalists[0].best_epoch == 2
    assert finalists[1].metric_value == pytest.approx(0.6) and finalists[1].best_epoch == 2
    assert [trial.trial_id for trial in ranked_finalists(tmp_path, 2)] == ["a", "b"]


def test_a_search_without_results_is_named_with_what_to_do(tmp_path: Path) -> None:
    from fracture_tune.errors import FractureTuneError

    with pytest.raises(FractureTuneError, match="has no results.parquet") as caught:
        ranked_finalists(tmp_path, 3)
    assert "--resume" in (caught.value.hint or "")
