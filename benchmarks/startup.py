"""How long a search takes to start: command start → first trial result, side by side for checkouts.

    python benchmarks/startup.py --repeats 3                       # the installed code
    python benchmarks/startup.py --checkout /tmp/old --checkout .  # before/after, runs alternating

Each run is ``fracture-tune search`` (quickstart config, 2 trials of 1 epoch, cached data) as a subprocess
with a fresh run folder and a fresh MLflow SQLite store, its output read line by line as it comes:

- ``announced``: the ``search NAME: …`` line (config, data, MLflow parent run and Ray are ready);
- ``first_result``: the first progress line with a best value (a trial reported its first epoch);
- ``results``: the ``best trial`` line; ``wall``: the process exited (Ray's shutdown included);
- ``cpu_to_first_result``: CPU seconds the whole machine spent from the start to the first result (all
  cores, every process: the search, Ray's daemons and workers; from /proc/stat, so run it on an otherwise
  idle machine). Steadier than wall time on a small VM, and what start-up work costs when cores are few;
- ``phase_*``: how long each start-up step of ``search/run.py`` took (imports; argument parsing and
  config validation; the data cache; the MLflow parent run;
  ``ray.init``; building the Tuner), stamped inside the search process.

Every checkout runs with this repository's virtual environment; a checkout of the package layout imports its
own code through a ``fracture_tune`` link on PYTHONPATH (``package_view``). A checkout from before the
package was named ``fracture_tune`` (top-level ``search/execute.py``) runs as ``python -m search.cli`` from
its own folder, without phase stamps. The dataset cache is warmed once first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import write_report

REPO = Path(__file__).resolve().parents[1]
MARKS = {
    "announced": lambda line: line.startswith("search ") and " trials, metric " in line,
    "first_result": lambda line: line.startswith("[") and "best val_auroc=0" in line,
    "results": lambda line: line.startswith("best trial "),
}
# Run inside the search process: stamps when each start-up step of search/run.py ends, on stdout.
PHASE_WRAPPER = """
import sys, time
started = time.perf_counter()
import fracture_tune.search.run as run
import fracture_tune.search.tuner as tuner
def stamped(module, name):
    function = getattr(module, name)
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        print(f"@phase {name} {time.perf_counter() - started:.3f}", flush=True)
        return result
    setattr(module, name, wrapper)
for name in ("check_before_ray", "prepare_search_dataset", "open_parent_run", "_start_ray"):
    stamped(run, name)
stamped(tuner, "build_tuner")
print(f"@phase imports {time.perf_counter() - started:.3f}", flush=True)
import fracture_tune, pathlib
if (pathlib.Path(fracture_tune.__path__[0]) / "cli.py").exists():
    from fracture_tune.cli import main
else:  # the code before the command line moved to the package root
    from fracture_tune.search.cli import main
sys.argv[0] = "fracture-tune"
sys.exit(main())
"""
# (stamp, what the time since the previous stamp was spent on)
PHASES = (
    ("imports", "imports"),
    ("check_before_ray", "cli_and_config"),
    ("prepare_search_dataset", "data"),
    ("open_parent_run", "mlflow"),
    ("_start_ray", "ray_init"),
    ("build_tuner", "tuner"),
)
SEARCH_ARGS = [
    "--set",
    "budget.num_trials=2",
    "--set",
    "training.epochs=1",
    "--set",
    "scheduler.max_t=1",
    "--set",
    "best_trial.min_epochs=1",
]


def busy_cpu_seconds() -> float:
    """CPU seconds every core of this machine has spent busy since boot (/proc/stat's first line)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def package_view(checkout: Path, workdir: Path) -> Path:
    """A folder holding ``fracture_tune`` → ``checkout``: on PYTHONPATH it comes before the venv's editable
    install (Python's path finder precedes setuptools' editable finder), so the search and its Ray workers
    import the checkout's own code."""
    view = workdir / "views" / str(abs(hash(str(checkout))))
    link = view / "fracture_tune"
    if not link.exists():
        view.mkdir(parents=True, exist_ok=True)
        link.symlink_to(checkout, target_is_directory=True)
    return view


def one_run(checkout: Path, workdir: Path, name: str) -> dict[str, float]:
    """Seconds from the command's start to each mark, and to exit."""
    legacy = (checkout / "search" / "execute.py").exists()  # the layout before the fracture_tune package
    launcher = ["-m", "search.cli"] if legacy else ["-c", PHASE_WRAPPER]
    command = [
        sys.executable,
        *launcher,
        "search",
        "--config",
        str(checkout / "configs" / "quickstart.yaml"),
        "--name",
        name,
        "--storage",
        str(workdir / "runs"),
        "--tracking-uri",
        f"sqlite:///{workdir / name / 'mlflow.db'}",
        *SEARCH_ARGS,
    ]
    (workdir / name).mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(checkout if legacy else package_view(checkout, workdir))}
    started, cpu_started = time.perf_counter(), busy_cpu_seconds()
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen: dict[str, float] = {}
    assert process.stdout is not None
    phases: dict[str, float] = {}
    for line in process.stdout:
        if line.startswith("@phase "):
            _, name, seconds = line.split()
            phases[name] = float(seconds)  # seconds since the interpreter ran the wrapper's first line
            continue
        for mark, matches in MARKS.items():
            if mark not in seen and matches(line):
                seen[mark] = time.perf_counter() - started
                if mark == "first_result":
                    seen["cpu_to_first_result"] = busy_cpu_seconds() - cpu_started
    if process.wait() != 0 or not set(MARKS) <= set(seen):
        raise RuntimeError(f"{checkout}: search exited {process.returncode}, saw only {sorted(seen)}")
    # Each phase's own duration: time since the previous phase ended (the first from the wrapper's start).
    durations = {}
    previous = 0.0
    for stamp, label in PHASES:
        if stamp in phases:
            durations[f"phase_{label}"] = phases[stamp] - previous
            previous = phases[stamp]
    return {**durations, **seen, "wall": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkout", type=Path, action="append", help="repository root (repeatable)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    checkouts = [path.resolve() for path in (args.checkout or [REPO])]
    samples: dict[str, list[dict[str, float]]] = {str(path): [] for path in checkouts}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        workdir = Path(scratch)
        one_run(checkouts[0], workdir, "warm-up")  # synthetic images and the dataset cache, once
        for repeat in range(args.repeats):
            order = checkouts if repeat % 2 == 0 else checkouts[::-1]
            for index, checkout in enumerate(order):
                result = one_run(checkout, workdir, f"r{repeat}-{index}")
                samples[str(checkout)].append(result)
                shown = "  ".join(f"{k.removeprefix('phase_')} {v:4.1f}" for k, v in result.items())
                print(f"{checkout}: {shown} (s)", flush=True)
    rows = []
    for checkout, found in samples.items():
        medians = {key: statistics.median(sample[key] for sample in found) for key in found[0]}
        rows.append({"checkout": checkout, "runs": found, "median": medians})
        shown = "  ".join(f"{k.removeprefix('phase_')} {v:4.1f}" for k, v in medians.items())
        print(f"median {checkout}: {shown} (s)")
    write_report(args.out, rows=rows)


if __name__ == "__main__":
    main()
