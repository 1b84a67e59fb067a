"""A search's runs as MLflow holds them, and as its runs page in the MLflow UI lists them.

``find_search_runs`` reads the store; ``read_runs_page`` drives the browser through the page the way a user
does (open it, expand the parent run's row); ``listed_runs`` and ``missing_from_page`` are plain functions
of the rendered HTML and the store's runs, unit-tested without a browser.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from headless_chromium import HeadlessChromium

from fracture_tune.search.tracking import PARENT_TAG, SEARCH_NAME_TAG, redact_secrets

PAGE_TIMEOUT_S = 90  # MLflow's UI bundle is ~20 MB of JavaScript; a loaded 2-core machine takes its time
EXPAND_TIMEOUT_S = 30
RUN_LINK = re.compile(r"#/experiments/(?P<experiment>[^/?#]+)/runs/(?P<run>[^/?#]+)$")
RUN_NAME_COLUMN = "attributes.`Run Name`"


class SearchNotFound(LookupError):
    """No parent run of that search in the store."""


@dataclass
class SearchRuns:
    experiment_id: str
    parent_id: str
    parent_name: str
    trials: dict[str, str]  # run id -> run name
    deleted: set[str] = field(default_factory=set)  # run ids in MLflow's "deleted" lifecycle stage


@dataclass
class RunsPage:
    listed: dict[str, str]  # run id -> the text of its link on the page
    seconds: float  # from opening the URL to every expected run link being on the page (or giving up)


def find_search_runs(tracking_uri: str, search_name: str) -> SearchRuns:
    """The search's parent run (the latest if there are several) and all its trial runs, deleted ones too."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    quoted = search_name.replace("'", "\\'")
    candidates = (
        client.search_runs(
            experiment_ids,
            filter_string=f"tags.`{SEARCH_NAME_TAG}` = '{quoted}' and attributes.run_name = '{quoted}'",
            run_view_type=ViewType.ALL,
            order_by=["attributes.start_time DESC"],
        )
        if experiment_ids
        else []
    )
    parents = [run for run in candidates if PARENT_TAG not in run.data.tags]
    if not parents:
        raise SearchNotFound(
            f"no parent run of search {search_name!r} in {redact_secrets(tracking_uri)} (a run so named, "
            f"tagged {SEARCH_NAME_TAG}); pass the --tracking-uri the search logged to"
        )
    parent = parents[0].info
    children = client.search_runs(
        [parent.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}'",
        run_view_type=ViewType.ALL,
        max_results=5000,
    )
    return SearchRuns(
        experiment_id=str(parent.experiment_id),
        parent_id=parent.run_id,
        parent_name=parent.run_name,
        trials={run.info.run_id: run.info.run_name for run in children},
        deleted={run.info.run_id for run in children if run.info.lifecycle_stage == "deleted"},
    )


def read_runs_page(browser: HeadlessChromium, url: str, runs: SearchRuns, screenshot: Path) -> RunsPage:
    """Open the page, expand the parent's row, save a screenshot; the runs the rendered DOM then lists."""
    started = time.monotonic()
    browser.set_viewport(1600, viewport_height(len(runs.trials)))
    browser.open(url)
    if browser.wait_for(_links_present([runs.parent_id]), PAGE_TIMEOUT_S):
        _close_assistant_panel(browser)
        if runs.trials and not browser.evaluate(_links_present(list(runs.trials)[:1])):
            browser.evaluate(_EXPAND_PARENT % json.dumps(runs.parent_id))
        browser.wait_for(_links_present(sorted(set(runs.trials) - runs.deleted)), EXPAND_TIMEOUT_S)
        _widen_run_names(browser)
    seconds = time.monotonic() - started
    browser.screenshot(screenshot)
    return RunsPage(listed_runs(browser.rendered_html()), seconds)


def viewport_height(trials: int) -> int:
    """Tall enough that the table renders every row: ag-grid leaves rows out of the DOM below the fold."""
    return min(16000, max(1000, 400 + 40 * (trials + 1)))


def _links_present(run_ids: list[str]) -> str:
    return f'{json.dumps(run_ids)}.every(id => document.querySelector(`a[href$="/runs/${{id}}"]`))'


# The expander is the button in the parent's Run Name cell (MLflow's RunNameCellRenderer).
_EXPAND_PARENT = """(() => {
  const link = document.querySelector(`a[href$="/runs/${%s}"]`);
  const cell = link && link.closest('[role="gridcell"]');
  const button = cell && cell.querySelector('button[data-component-id*="runnamecellrenderer"]');
  if (!button) return false;
  button.click();
  return true;
})()"""


def _close_assistant_panel(browser: HeadlessChromium) -> None:
    """MLflow 3.17 opens an assistant panel beside the table; a user closes it to see the table."""
    browser.evaluate("document.querySelector('button[aria-label=\"Close\"]')?.click()")


def _widen_run_names(browser: HeadlessChromium) -> None:
    """Double-click the Run Name column's edge (ag-grid autosizes it): the screenshot shows whole names."""
    browser.evaluate(
        f"""document.querySelector('[role="columnheader"][col-id="{RUN_NAME_COLUMN}"] .ag-header-cell-resize')
          ?.dispatchEvent(new MouseEvent('dblclick', {{bubbles: true}}))"""
    )


class _RunLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: dict[str, str] = {}
        self._open: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        match = RUN_LINK.search(dict(attrs).get("href") or "") if tag == "a" else None
        if match:
            self._open, self._text = match["run"], []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            text = " ".join("".join(self._text).split())
            if text and not self.links.get(self._open):
                self.links[self._open] = text
            self._open = None


def listed_runs(html: str) -> dict[str, str]:
    """Run id -> link text of every link to a run page (``#/experiments/E/runs/ID``) in the HTML."""
    parser = _RunLinks()
    parser.feed(html)
    parser.close()
    return parser.links


def missing_from_page(runs: SearchRuns, listed: dict[str, str]) -> list[str]:
    """What the page should list but does not (or lists under another name); empty when all is there."""
    problems = []
    expected = {runs.parent_id: runs.parent_name, **runs.trials}
    for run_id, name in expected.items():
        role = "parent run" if run_id == runs.parent_id else "trial run"
        where = " (deleted in MLflow: the page lists active runs)" if run_id in runs.deleted else ""
        if run_id not in listed:
            problems.append(f"{role} {name!r} ({run_id}){where}")
        elif listed[run_id] != name:
            problems.append(f"{role} {run_id} listed as {listed[run_id]!r}, but MLflow names it {name!r}")
    if not runs.trials:
        problems.append(f"any trial run: MLflow holds no child run of the parent run {runs.parent_id}")
    return problems
