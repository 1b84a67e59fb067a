"""Run the fault-injection tests and regenerate ``docs/reliability.md`` from what they observed.

    .venv/bin/python benchmarks/reliability_table.py            # everything (~15 min on 2 cores)
    .venv/bin/python benchmarks/reliability_table.py --no-cluster   # without the 2-node cluster test

Each test in ``tests/reliability`` records the fault it injected and the figures it saw (see
``tests/reliability/conftest.py``); the driver-kill test lives in ``tests/integration`` and is run too.
A row's outcome comes from pytest's JUnit XML, so a failed test shows as FAILED, never as a stale pass.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/reliability", "tests/integration/test_search_resume.py"]
OUTPUT = REPO_ROOT / "docs" / "reliability.md"
README = REPO_ROOT / "README.md"
README_START, README_END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"
# Rows in the order of issue 7's list: trial, driver, node, MLflow, disk/memory, input, security, load.
FILE_ORDER = [
    "test_trial_faults.py", "test_search_resume.py", "test_node_loss.py", "test_mlflow_outage.py",
    "test_bad_input.py", "test_security.py", "test_load.py",
]  # fmt: skip
TMP_PATH = re.compile(r"/tmp/pytest-of-[^/\s]+/pytest-\d+/[^/\s]+/")

# Tests that record no figures of their own: what a pass of each demonstrates (their assertions).
WITHOUT_OBSERVATIONS = {
    "test_search_resume.py::test_resume_after_sigkill_finishes_without_duplicates": (
        "search driver SIGKILLed mid-search (with its local Ray), then `search --resume NAME`",
        "resume exit 0; 8/8 trials in results.parquet; finished trials not run again; one MLflow run per "
        "trial, each epoch once; Optuna study restored with all 8 trials",
    ),
    "test_bad_input.py::test_config_typos_and_out_of_range_values": (
        "search config typos and out-of-range values (`grace_perod`, `optimiser`, num_trials=0, "
        "val_fraction=1.5, cpus_per_trial=-1, metric=val_aurc)",
        "exit 2 before Ray starts, `error:` naming the key (and `did you mean` for typos); no run folder",
    ),
    "test_security.py::test_redact_uri_hides_passwords_and_keeps_paths": (
        "tracking URIs with passwords; `sqlite:////abs/path` (a reported bug dropped a slash)",
        "`user:***@host`, `password=***`; sqlite:////abs paths returned unchanged",
    ),
    "test_security.py::test_cluster_services_bind_loopback_and_auth_is_on_by_default": (
        "`cluster up` defaults (commands as built)",
        "dashboard, node IP and MLflow on 127.0.0.1; token auth on unless --no-auth; token file mode 0600",
    ),
}


def run_tests(observations: Path, junit: Path, include_cluster: bool) -> int:
    env = {**os.environ, "RELIABILITY_OBSERVATIONS": str(observations), "PYTHONDONTWRITEBYTECODE": ""}
    command = [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    if not include_cluster:
        command += ["-m", "not cluster"]
    print("running:", " ".join(command[2:]), flush=True)
    return subprocess.run(command, cwd=REPO_ROOT, env=env, check=False).returncode


def outcomes(junit: Path) -> dict[str, tuple[str, float]]:
    """test function name (parameters dropped) → (worst outcome, total seconds)."""
    results: dict[str, tuple[str, float]] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "").split("[", 1)[0]
        outcome = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        previous, seconds = results.get(name, ("passed", 0.0))
        worst = max(previous, outcome, key=rank.__getitem__)
        results[name] = (worst, seconds + float(case.get("time", 0)))
    return results


def table_rows(observations: Path, results: dict[str, tuple[str, float]]) -> list[dict[str, str]]:
    rows = []
    seen: set[str] = set()
    for path in sorted(observations.glob("*.json")):
        row = json.loads(path.read_text(encoding="utf-8"))
        name = row["test"].split("::", 1)[1].split("[", 1)[0]
        seen.add(name)
        rows.append({**row, "name": name})
    for test, (fault, observed) in WITHOUT_OBSERVATIONS.items():
        file, name = test.split("::")
        if name in results and name not in seen:
            folder = "integration" if "resume" in file else "reliability"
            rows.append(
                {"fault": fault, "observed": observed, "test": f"tests/{folder}/{test}", "name": name}
            )
    for row in rows:
        outcome, seconds = results.get(row["name"], ("not run", 0.0))
        row["outcome"], row["seconds"] = outcome, f"{seconds:.0f}"
        row["observed"] = TMP_PATH.sub("…/", str(row["observed"]))
        if outcome != "passed":  # never let a recorded or expected observation pass for a result
            row["observed"] = f"**{outcome.upper()}** (recorded before the failure: {row['observed']})"
    return sorted(rows, key=lambda row: FILE_ORDER.index(Path(row["test"].split("::")[0]).name))


def render(rows: list[dict[str, Any]], results: dict[str, tuple[str, float]], wall_s: float) -> str:
    counts: dict[str, int] = defaultdict(int)
    for outcome, _ in results.values():
        counts[outcome] += 1
    lines = [
        "# Reliability",
        "",
        "Faults injected into real searches (local Ray, MLflow, real files), regenerated by",
        "`make reliability` (`.venv/bin/python benchmarks/reliability_table.py`).",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()} with {os.cpu_count()} CPUs, "
        f"{wall_s / 60:.1f} min wall time; test functions: "
        + ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
        + ".",
        "",
        "| Fault injected | Test | Result | Observed |",
        "|---|---|---|---|",
    ]
    for row in rows:
        test = row["test"].replace("tests/", "", 1)
        observed = str(row["observed"]).replace("|", "\\|")
        lines.append(f"| {row['fault']} | `{test}` | {row['outcome']} ({row['seconds']} s) | {observed} |")
    return "\n".join(lines) + "\n"


def update_readme(table: str, readme: Path = README) -> bool:
    """Replace the README's reliability table (between the markers) with ``table``'s body."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        return False
    body = table.split("\n", 2)[2].strip()  # drop the "# Reliability" heading
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(f"{head}{README_START}\n{body}\n{README_END}{tail}", encoding="utf-8")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-cluster", action="store_true", help="skip the multi-node cluster test")
    parser.add_argument("--out", type=Path, default=OUTPUT, help=f"markdown file (default {OUTPUT})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fracture-tune-reliability-") as scratch:
        observations, junit = Path(scratch) / "observations", Path(scratch) / "junit.xml"
        started = time.monotonic()
        returncode = run_tests(observations, junit, include_cluster=not args.no_cluster)
        wall_s = time.monotonic() - started
        if not junit.exists():
            print("pytest wrote no results; nothing to tabulate", file=sys.stderr)
            return returncode or 1
        results = outcomes(junit)
        text = render(table_rows(observations, results), results, wall_s)
    args.out.write_text(text, encoding="utf-8")
    if args.out == OUTPUT and update_readme(text):
        print(f"updated the Reliability table in {README}")
    print(text)
    print(f"wrote {args.out} ({wall_s / 60:.1f} min)")
    return returncode


if __name__ == "__main__":
    raise SystemExit(main())
