"""``runs_page_url``: the MLflow UI link a search prints for its runs page."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from fracture_tune.search.mlflow_ui import runs_page_url

PARENT = "fae520ca68454d0a9cdadb1a296c0149"


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(url.split("#", 1)[1].split("?", 1)[1])


def test_the_runs_tab_filtered_to_the_parents_children_in_table_view() -> None:
    url = runs_page_url("http://127.0.0.1:5000", "3", PARENT)
    assert url.startswith("http://127.0.0.1:5000/#/experiments/3/runs?")
    assert _query(url) == {
        "searchFilter": [f"tags.`mlflow.parentRunId` = '{PARENT}'"],
        "compareRunsMode": ["TABLE"],
    }


@pytest.mark.parametrize(
    ("server", "base"),
    [
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000/#"),
        ("https://TOKEN@mlflow.example.org/tracking/?token=abc", "https://mlflow.example.org/tracking/#"),
        ("http://user:secret@[::1]:8080", "http://[::1]:8080/#"),
        ("  http://host:5000  ", "http://host:5000/#"),
    ],
)
def test_the_server_address_keeps_its_path_and_loses_its_credentials(server: str, base: str) -> None:
    url = runs_page_url(server, "1", PARENT)
    assert url.startswith(base + "/experiments/1/runs?")
    assert "TOKEN" not in url and "secret" not in url and "abc" not in url


@pytest.mark.parametrize("server", ["sqlite:///mlflow.db", "file:///tmp/mlruns", "127.0.0.1:5000", "http://"])
def test_a_store_without_a_ui_is_refused_with_the_command_that_serves_it(server: str) -> None:
    with pytest.raises(ValueError, match="mlflow ui --backend-store-uri"):
        runs_page_url(server, "1", PARENT)


@pytest.mark.parametrize(("experiment_id", "parent_run_id"), [("", PARENT), ("1", "")])
def test_ids_are_required(experiment_id: str, parent_run_id: str) -> None:
    with pytest.raises(ValueError, match="needs an experiment id and a parent run id"):
        runs_page_url("http://127.0.0.1:5000", experiment_id, parent_run_id)
