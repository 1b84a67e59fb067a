"""Reading a search's runs off the rendered MLflow runs page, and what the check reports missing."""

from __future__ import annotations

from runs_page import SearchRuns, listed_runs, missing_from_page, viewport_height

PARENT, T1, T2 = "a" * 32, "b" * 32, "c" * 32

# Trimmed from MLflow 3.17's rendered runs table: the name cell's link wraps the name in a span; other links
# (the experiment, the docs) are not runs.
PAGE = f"""
<a href="#/experiments/4">fracture-tune-quickstart</a>
<div role="gridcell" col-id="attributes.`Run Name`"><button data-component-id="x_runnamecellrenderer.tsx_46">
  </button><a tabindex="0" href="#/experiments/4/runs/{PARENT}"><span>ui-check</span></a></div>
<div role="gridcell"><a href="#/experiments/4/runs/{T1}"><span>tunable_cnn lr=1.0e-03
  bs=32 #0001</span></a></div>
<div role="gridcell"><a href="#/experiments/4/runs/{T1}"></a></div>
<a href="https://mlflow.org/docs/latest/">Docs</a>
"""


def _runs(**overrides: object) -> SearchRuns:
    fields: dict = {
        "experiment_id": "4",
        "parent_id": PARENT,
        "parent_name": "ui-check",
        "trials": {T1: "tunable_cnn lr=1.0e-03 bs=32 #0001"},
    }
    return SearchRuns(**{**fields, **overrides})


def test_listed_runs_are_the_run_links_and_their_text() -> None:
    assert listed_runs(PAGE) == {PARENT: "ui-check", T1: "tunable_cnn lr=1.0e-03 bs=32 #0001"}


def test_nothing_missing_when_the_page_lists_the_parent_and_every_trial() -> None:
    assert missing_from_page(_runs(), listed_runs(PAGE)) == []


def test_a_trial_the_page_lacks_is_named_with_its_id() -> None:
    runs = _runs(trials={T1: "tunable_cnn lr=1.0e-03 bs=32 #0001", T2: "tunable_cnn lr=2.0e-03 bs=64 #0002"})
    missing = [f"trial run 'tunable_cnn lr=2.0e-03 bs=64 #0002' ({T2})"]
    assert missing_from_page(runs, listed_runs(PAGE)) == missing


def test_a_deleted_trial_says_why_the_page_hides_it() -> None:
    runs = _runs(trials={T2: "t #0002"}, deleted={T2})
    assert missing_from_page(runs, listed_runs(PAGE)) == [
        f"trial run 't #0002' ({T2}) (deleted in MLflow: the page lists active runs)"
    ]


def test_a_run_listed_under_another_name_is_reported() -> None:
    assert missing_from_page(_runs(parent_name="qs1"), listed_runs(PAGE)) == [
        f"parent run {PARENT} listed as 'ui-check', but MLflow names it 'qs1'"
    ]


def test_an_empty_page_misses_the_parent_and_a_search_without_trials_fails() -> None:
    assert missing_from_page(_runs(trials={}), {}) == [
        f"parent run 'ui-check' ({PARENT})",
        f"any trial run: MLflow holds no child run of the parent run {PARENT}",
    ]


def test_the_viewport_grows_with_the_trials_so_every_row_is_rendered() -> None:
    assert viewport_height(4) == 1000
    assert viewport_height(100) == 400 + 40 * 101
    assert viewport_height(10_000) == 16000
