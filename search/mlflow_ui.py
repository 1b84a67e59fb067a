"""Links into the MLflow UI for a search: the page that lists its parent run and its trials.

MLflow 3.17's UI opens an experiment on its GenAI overview; the training runs table is the ``/runs`` tab of
the experiment page. Its query string holds the table's search facets (``searchFilter``, ``orderByKey``…,
read by the UI's ``useExperimentPageSearchFacets``) and the view (``compareRunsMode``). Filtering on the
children's ``mlflow.parentRunId`` tag lists one search: the UI fetches the parent of every child it shows,
so the page holds the parent run with its trials nested under it (one click on the parent's expander shows
them; ``tools/mlflow_ui_check.py`` checks this page in a real browser).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

PARENT_RUN_TAG = "mlflow.parentRunId"


def runs_page_url(tracking_server_url: str, experiment_id: str, parent_run_id: str) -> str:
    """The MLflow UI page listing one search's runs: its parent run and the trials nested under it.

    ``tracking_server_url`` is where the UI is served (``http://127.0.0.1:5000``, a server behind a path
    prefix such as ``https://host/mlflow`` works too); user-info and query values are dropped, so a URL
    holding a token can be passed and the link printed. A ``sqlite:``/file store has no UI of its own: pass
    the address ``mlflow ui --backend-store-uri <store>`` serves it at.
    """
    parts = urlsplit(tracking_server_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"runs_page_url needs the http(s) address of an MLflow server, but got {tracking_server_url!r}; "
            "for a sqlite or file store, start `mlflow ui --backend-store-uri <store>` and pass its address "
            "(http://127.0.0.1:5000 by default)"
        )
    if not experiment_id or not parent_run_id:
        raise ValueError(
            f"runs_page_url needs an experiment id and a parent run id, but got {experiment_id=!r}, "
            f"{parent_run_id=!r}"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # an IPv6 literal
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    search_filter = quote(f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'", safe="")
    return (
        f"{base}/#/experiments/{quote(str(experiment_id), safe='')}/runs"
        f"?searchFilter={search_filter}&compareRunsMode=TABLE"
    )
