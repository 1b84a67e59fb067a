"""Ray's own views, on request: the dashboard of a local search, TensorBoard event files, Tune's table.

All are off by default (docs/searching.md "Ray's own views"); each switch is checked on a real local Ray.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from search_fixtures import run_local_search, write_search_config

pytestmark = pytest.mark.integration

DASHBOARD_PROBE = """
import sys, urllib.request, urllib.error
from fracture_tune.search import run
lines = []
run._start_ray(run.SearchOptions(name="views", num_cpus=1, dashboard=True, progress=lines.append))
url = lines[-1].split("Ray dashboard: ", 1)[1].split(" ", 1)[0]
try:
    status = urllib.request.urlopen(url + "/api/version", timeout=30).status
except urllib.error.HTTPError as error:
    status = error.code
print(url, status)
"""


def test_dashboard_of_a_local_search_on_request_listens_on_loopback() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DASHBOARD_PROBE], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    url, status = done.stdout.split()[-2:]
    assert url.startswith("http://127.0.0.1:")
    assert int(status) in (200, 401), f"{url} answered {status}"  # 401: Ray's token authentication is on


def test_tensorboard_event_files_and_status_table_on_request(tmp_path: Path) -> None:
    config = write_search_config(
        tmp_path,
        budget={"num_trials": 2},
        training={"epochs": 2},
        scheduler={"max_t": 2},
        tracking={"experiment_name": "search-it", "tensorboard": True, "status_table": True},
    )
    done, _ = run_local_search(tmp_path, config, "tb")
    events = list((tmp_path / ".fracture-tune" / "runs" / "tb").glob("trial_*/events.out.tfevents.*"))
    assert len(events) == 2 and all(path.stat().st_size > 0 for path in events)
    assert "== Status ==" in done.stdout and "Number of trials: 2/2" in done.stdout  # Tune's own table...
    assert " done (" in done.stdout  # ...besides our progress lines
