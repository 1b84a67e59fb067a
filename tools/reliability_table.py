"""Run the fault-injection tests and regenerate ``docs/reliability.md`` from what they observed.

    .venv/bin/python tools/reliability_table.py                 # run everything (~15 min on 2 cores)
    .venv/bin/python tools/reliability_table.py --no-cluster    # without the multi-node cluster tests
    .venv/bin/python tools/reliability_table.py --from DIR      # re-tabulate a kept raw folder

Each test in ``tests/reliability`` records the fault it injected and the figures it saw (see
``tests/reliability/conftest.py``); the driver-kill test lives in ``tests/integration`` and is run too.
The raw results stay in a dated folder, ``benchmarks/results/reliability_<machine>_<date>/`` (pytest's JUnit
XML, each observation as JSON, pytest's output), which the table cites. Every test function is a row: its
observations, else what its pass demonstrates; a row's outcome comes from the JUnit XML, so a test that
failed or errored — even before it recorded anything — shows FAILED with pytest's message.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/reliability", "tests/integration/test_search_resume.py"]
OUTPUT = REPO_ROOT / "docs" / "reliability.md"
RESULTS_ROOT = REPO_ROOT / "benchmarks" / "results"
# Rows by file: trial, driver, node, MLflow, input, model files, security, load; other files after these.
FILE_ORDER = [
    "test_trial_faults.py",
    "test_records_agree.py",
    "test_search_resume.py",
    "test_node_loss.py",
    "test_mlflow_outage.py",
    "test_mlflow_queue.py",
    "test_bad_input.py",
    "test_model_integrity.py",
    "test_security.py",
    "test_load.py",
]
TMP_PATH = re.compile(r"/tmp/pytest-of-[^/\s]+/pytest-\d+/[^/\s]+/")

# Tests that record no figures of their own: what a pass of each demonstrates (their assertions). Any other
# test without observations is described by the first sentence of its docstring.
WITHOUT_OBSERVATIONS = {
    "test_resume_after_sigkill_finishes_without_duplicates": (
        "search driver SIGKILLed mid-search (with its local Ray), then `search --resume NAME`",
        "resume exit 0; 8/8 trials in results.parquet; finished trials not run again; one MLflow run per "
        "trial, each epoch once, its stop reason as in results.csv; Optuna study restored with all 8 trials; "
        "`search check`: records agree",
    ),
    "test_config_typos_and_out_of_range_values": (
        "search config typos and out-of-range values (`grace_perod`, `optimiser`, num_trials=0, "
        "val_fraction=1.5, cpus_per_trial=-1, metric=val_aurc)",
        "exit 2 before Ray starts, `error:` naming the key (and `did you mean` for typos); no run folder",
    ),
    "test_redact_uri_hides_passwords_and_keeps_paths": (
        "tracking URIs with a password, a token as user-info, `password=`/`access_token=` queries; "
        "`sqlite:////abs/path` (an absolute path: four slashes)",
        "`scheme://***@host`, `password=***`, `access_token=***`; sqlite:////abs paths returned unchanged",
    ),
}


@dataclass(frozen=True)
class Outcome:
    outcome: str  # passed | skipped | failed
    seconds: float
    message: str  # pytest's failure/skip message (first line), "" when passed
    file: str  # tests/…/test_x.py


def run_tests(raw: Path, include_cluster: bool) -> int:
    observations = raw / "observations"
    env = {**os.environ, "RELIABILITY_OBSERVATIONS": str(observations), "PYTHONDONTWRITEBYTECODE": ""}
    command = [
        sys.executable,
        "-m",
        "pytest",
        *TESTS,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={raw / 'junit.xml'}",
    ]
    if not include_cluster:
        command += ["-m", "not cluster"]
    print("running:", " ".join(command[2:]), flush=True)
    with open(raw / "pytest.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            log.write(line)
        return process.wait()


def outcomes(junit: Path) -> dict[str, Outcome]:
    """test function name (parameters dropped) → worst outcome over its cases, total seconds."""
    results: dict[str, Outcome] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "").split("[", 1)[0]
        file = case.get("file") or "tests/" + case.get("classname", "").replace(".", "/") + ".py"
        outcome, message = "passed", ""
        for tag, kind in (("failure", "failed"), ("error", "failed"), ("skipped", "skipped")):
            found = case.find(tag)
            if found is not None:
                outcome = kind
                message = (found.get("message") or found.text or tag).strip().splitlines()[0][:300]
                break
        previous = results.get(name, Outcome("passed", 0.0, "", file))
        worst = max((previous.outcome, previous.message), (outcome, message), key=lambda o: rank[o[0]])
        results[name] = Outcome(worst[0], previous.seconds + float(case.get("time", 0)), worst[1], file)
    return results


def docstring_summary(file: Path, function: str) -> str:
    """The first sentence of a test function's docstring ("" if none)."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            text = " ".join((ast.get_docstring(node) or "").split())
            return text.split(". ")[0].rstrip(".")
    return ""


def _test_file(results: dict[str, Outcome], name: str) -> str:
    """``tests/reliability/test_x.py`` of a test function, as JUnit named it."""
    file = results[name].file
    if file.startswith("tests/") and (REPO_ROOT / file).exists():
        return file
    for candidate in REPO_ROOT.glob("tests/**/test_*.py"):
        if f"def {name}(" in candidate.read_text(encoding="utf-8"):
            return str(candidate.relative_to(REPO_ROOT))
    return file


def table_rows(observations: Path, results: dict[str, Outcome]) -> list[dict[str, str]]:
    rows: list[dict[str, Any]] = []
    observed: set[str] = set()
    for path in sorted(observations.glob("*.json")):
        row = json.loads(path.read_text(encoding="utf-8"))
        name = row["test"].split("::", 1)[1].split("[", 1)[0]
        observed.add(name)
        rows.append({**row, "name": name})
    for name in results:
        if name in observed:
            continue
        file = _test_file(results, name)
        fault, what = WITHOUT_OBSERVATIONS.get(name, (docstring_summary(REPO_ROOT / file, name), ""))
        rows.append(
            {
                "fault": fault or name.removeprefix("test_").replace("_", " "),
                "observed": what or "its assertions held (it records no figures)",
                "test": f"{file}::{name}",
                "name": name,
            }
        )
    for row in rows:
        result = results.get(row["name"], Outcome("not run", 0.0, "", ""))
        row["outcome"], row["seconds"] = result.outcome, f"{result.seconds:.0f}"
        row["observed"] = TMP_PATH.sub("…/", str(row["observed"]))
        if result.outcome != "passed":  # never let a recorded or expected observation pass for a result
            said = TMP_PATH.sub("…/", result.message) or "no message"
            row["observed"] = f"**{result.outcome.upper()}**: {said}"
    order = {name: index for index, name in enumerate(FILE_ORDER)}
    return sorted(rows, key=lambda row: order.get(Path(row["test"].split("::")[0]).name, len(order)))


def render(rows: list[dict[str, Any]], results: dict[str, Outcome], raw: Path, meta: dict[str, Any]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for result in results.values():
        counts[result.outcome] += 1
    folder = raw.relative_to(REPO_ROOT) if raw.is_relative_to(REPO_ROOT) else raw
    tally = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    lines = [
        "# Reliability",
        "",
        "Faults injected into real searches (local Ray, MLflow, real files), regenerated by",
        "`make reliability` (`.venv/bin/python tools/reliability_table.py`); `make test` runs every",
        f"one of these tests. Raw results (JUnit XML, each observation, pytest's output): `{folder}/`.",
        f"Last run: {meta['finished']} on {meta['machine']} ({meta['cpus']} CPUs), code "
        f"`{meta.get('commit', 'not recorded')}`, "
        f"{meta['wall_s'] / 60:.1f} min wall time; test functions: {tally}.",
        "",
        "| Fault injected | Test | Result | Observed |",
        "|---|---|---|---|",
    ]
    for row in rows:
        test = row["test"].replace("tests/", "", 1)
        observed = str(row["observed"]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {row['fault']} | `{test}` | {row['outcome']} ({row['seconds']} s) | {observed} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-cluster", action="store_true", help="skip the multi-node cluster tests")
    parser.add_argument(
        "--machine",
        default=f"{os.cpu_count()}core-{platform.machine()}",
        help="machine name for the raw folder (default: <cpus>core-<arch>)",
    )
    parser.add_argument("--from", dest="existing", type=Path, help="re-tabulate this raw folder; run nothing")
    parser.add_argument("--out", type=Path, default=OUTPUT, help=f"markdown file (default {OUTPUT})")
    args = parser.parse_args()
    returncode = 0
    if args.existing:
        raw = args.existing.resolve()
        meta = json.loads((raw / "run.json").read_text(encoding="utf-8"))
    else:
        raw = RESULTS_ROOT / f"reliability_{args.machine}_{time.strftime('%Y-%m-%d')}"
        raw.mkdir(parents=True, exist_ok=True)
        for stale in [raw / "junit.xml", *(raw / "observations").glob("*.json")]:
            stale.unlink(missing_ok=True)
        started = time.monotonic()
        returncode = run_tests(raw, include_cluster=not args.no_cluster)
        from fracture_tune.search.records import code_version

        meta = {
            "finished": time.strftime("%Y-%m-%d %H:%M %Z"),
            "machine": args.machine,
            "cpus": os.cpu_count(),
            "commit": code_version(),
            "wall_s": time.monotonic() - started,
            "tests": TESTS,
            "cluster_tests": not args.no_cluster,
            "pytest_exit": returncode,
        }
        (raw / "run.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    if not (raw / "junit.xml").exists():
        print(f"pytest wrote no results in {raw}; nothing to tabulate", file=sys.stderr)
        return returncode or 1
    results = outcomes(raw / "junit.xml")
    text = render(table_rows(raw / "observations", results), results, raw, meta)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {args.out}; raw results in {raw}")
    return returncode


if __name__ == "__main__":
    raise SystemExit(main())
