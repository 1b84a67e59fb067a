"""The MLflow UI, checked in a real browser: a finished search's parent run and its trials are listed.

    make ui-check                                  # a 4-trial quickstart search into .build/ui-check, checked
    python tools/mlflow_ui_check.py --search NAME --tracking-uri sqlite:///mlflow.db [--screenshot PNG]

It serves the store with ``mlflow server`` on 127.0.0.1 and a free port (an ``http(s)://`` tracking URI is
used as it is), opens the search's runs page (``fracture_tune.search.mlflow_ui.runs_page_url``) in headless
Chromium, expands the parent run's row as a user would, and reads the rendered DOM: the parent must be listed
under the search's name and every trial run (``tunable_cnn lr=… #0001``; deleted ones included, which the
page's "State: Active" hides) under its MLflow name. The page is saved as a PNG.

Exit status: 0 the page lists them all; 1 it does not (the runs missing are named); 2 nothing could be
checked (no Chromium, no such search, the server or the search failed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from headless_chromium import INSTALL_HINT, BrowserError, HeadlessChromium, find_chromium
from runs_page import SearchNotFound, SearchRuns, find_search_runs, missing_from_page, read_runs_page

from fracture_tune.search.mlflow_ui import runs_page_url

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCRATCH = REPO_ROOT / ".build" / "ui-check"
SCRATCH_MARKER = ".ui-check-scratch"  # only a folder holding it is wiped before a new search
QUICK_OVERRIDES = ("budget.num_trials=4", "training.epochs=2", "scheduler.max_t=2", "dataset.synthetic_n=300")
SERVER_START_TIMEOUT_S = 180


class CannotCheck(RuntimeError):
    """Something the check needs is missing or failed before the page could be read (exit status 2)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search", help="a finished search's name (default: run a quick quickstart search)")
    parser.add_argument("--tracking-uri", help="its MLflow store or server (default: the scratch store)")
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="folder for the quick search")
    parser.add_argument("--screenshot", type=Path, help="PNG of the page (default: SCRATCH/mlflow-runs.png)")
    args = parser.parse_args(argv)
    if args.search and not args.tracking_uri:
        parser.error("--search needs --tracking-uri (the store the search logged to)")
    args.screenshot = args.screenshot or args.scratch / "mlflow-runs.png"
    return args


def clean_env() -> dict[str, str]:
    """This environment minus anything that would attach the search or server to someone else's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RAY_", "MLFLOW_"))}
    env["PYTHONDONTWRITEBYTECODE"] = ""  # Ray workers import torch: bytecode saves seconds per worker
    return env


def run_quick_search(scratch: Path) -> tuple[str, str]:
    """A 4-trial quickstart search into ``scratch``; returns its name and tracking URI."""
    if scratch.exists() and (scratch / SCRATCH_MARKER).exists():
        shutil.rmtree(scratch)
    elif scratch.exists() and any(scratch.iterdir()):
        raise CannotCheck(f"{scratch} holds files this check did not write; pass an empty --scratch folder")
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / SCRATCH_MARKER).touch()
    name, tracking_uri = "ui-check", f"sqlite:///{scratch.resolve() / 'mlflow.db'}"
    command = [
        sys.executable,
        "-m",
        "fracture_tune.cli",
        "search",
        "--config",
        "quickstart",
        "--name",
        name,
        "--storage",
        str(scratch / "runs"),
        "--tracking-uri",
        tracking_uri,
        "--num-cpus",
        "2",
    ]
    for override in QUICK_OVERRIDES:
        command += ["--set", override]
    log = scratch / "search.log"
    with log.open("w") as out:
        done = subprocess.run(command, cwd=scratch, env=clean_env(), stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise CannotCheck(f"the quick search failed (exit {done.returncode}); {log} ends:\n{tail}")
    return name, tracking_uri


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mlflow_ui(tracking_uri: str, scratch: Path) -> Iterator[str]:
    """The UI's address: an http(s) tracking URI as it is, else ``mlflow server`` on it for the block."""
    if tracking_uri.startswith(("http://", "https://")):
        yield tracking_uri
        return
    port, log = free_port(), scratch / "mlflow-server.log"
    scratch.mkdir(parents=True, exist_ok=True)
    mlflow = str(Path(sys.executable).parent / "mlflow")
    command = [
        mlflow,
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log.open("ab") as out:  # cwd=scratch: the server's default artifact root lands there, not here
        server = subprocess.Popen(
            command, cwd=scratch, env=clean_env(), stdout=out, stderr=out, start_new_session=True
        )
    try:
        wait_until_healthy(server, f"http://127.0.0.1:{port}", log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(server)


def wait_until_healthy(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll ``url``/health (MLflow 3.17 takes ~20-30 s to start on 2 cores)."""
    import urllib.request

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    state = "gave no /health" if server.poll() is None else f"exited ({server.returncode})"
    raise CannotCheck(f"mlflow server {state} within {SERVER_START_TIMEOUT_S} s; see {log}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(server.pid, signal.SIGTERM)  # the group this check started (server + its workers)
        server.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print(f"ui-check: Chromium not found; {INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        return check(args, chromium)
    except (CannotCheck, SearchNotFound, BrowserError) as error:
        print(f"ui-check: cannot check: {error}", file=sys.stderr)
        return 2


def check(args: argparse.Namespace, chromium: str) -> int:
    if args.search:
        name, tracking_uri = args.search, args.tracking_uri
    else:
        started = time.monotonic()
        name, tracking_uri = run_quick_search(args.scratch)
        print(f"ui-check: quick search {name} finished in {time.monotonic() - started:.0f} s")
    runs: SearchRuns = find_search_runs(tracking_uri, name)
    started = time.monotonic()
    with mlflow_ui(tracking_uri, args.scratch) as server_url:
        print(f"ui-check: MLflow UI at {server_url} ({time.monotonic() - started:.1f} s to answer /health)")
        url = runs_page_url(server_url, runs.experiment_id, runs.parent_id)
        profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=args.scratch))
        try:
            with HeadlessChromium(chromium, profile) as browser:
                page = read_runs_page(browser, url, runs, args.screenshot)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
    print(f"ui-check: {url}\nui-check: page read in {page.seconds:.1f} s; screenshot {args.screenshot}")
    problems = missing_from_page(runs, page.listed)
    if problems:
        print(f"ui-check: FAILED: the runs page of search {name!r} does not list:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"ui-check: OK: parent run {runs.parent_name!r} and its {len(runs.trials)} trial runs are listed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
