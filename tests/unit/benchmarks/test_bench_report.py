"""benchmarks/bench_report.py: every raw file names its command, commit, date and machine; tables come out as
BENCHMARKS.md holds them; and the harness imports nothing the GPU machine lacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_report import markdown_table, table_row, write_report
from cli_runs import REPO_ROOT


def test_a_row_is_one_line_of_cells_and_a_pipe_stays_inside_its_cell() -> None:
    assert table_row(["a", 1, 0.5, ""]) == "| a | 1 | 0.5 |  |"
    assert table_row(["p | q"]) == r"| p \| q |"


def test_a_table_is_the_header_a_rule_and_one_line_a_row() -> None:
    table = markdown_table(["search", "trials"], [["s0", 12], ["s1", 11]])
    assert table.splitlines() == ["| search | trials |", "| --- | --- |", "| s0 | 12 |", "| s1 | 11 |"]


def test_a_row_with_too_few_cells_is_refused() -> None:
    with pytest.raises(ValueError, match="a row of 1 cells under a header of 2"):
        markdown_table(["search", "trials"], [["s0"]])


def test_the_raw_file_holds_the_figures_with_command_commit_date_and_machine(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "result.json"
    returned = write_report(
        out, rows=[{"auroc": np.float64(0.8), "images": np.int64(12)}], curve=np.arange(3)
    )
    written = json.loads(out.read_text(encoding="utf-8"))
    assert list(written)[:4] == ["command", "commit", "date", "machine"]
    assert written["commit"]  # a commit hash in a checkout, else the installed version
    assert written["machine"]["cpus"] >= 1
    assert written["rows"] == [{"auroc": 0.8, "images": 12}]
    assert written["curve"] == [0, 1, 2]
    assert returned["commit"] == written["commit"]


def test_a_figure_named_like_a_field_replaces_it_and_no_out_writes_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = write_report(None, machine={"gpu": "H100"})
    assert report["machine"] == {"gpu": "H100"}
    assert capsys.readouterr().out == ""  # no "wrote ..." line: nothing was written


def test_the_harness_imports_nothing_the_gpu_machine_lacks() -> None:
    # tools/gpu_check.sh runs throughput.py and step_profile.py where only torch, torchvision, numpy and
    # pillow are installed.
    script = (
        "import sys; from bench_report import write_report; write_report(None); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'optuna', 'mlflow', 'yaml', 'pandas', "
        "'scipy', 'sklearn', 'torch', 'numpy'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT / "benchmarks",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
