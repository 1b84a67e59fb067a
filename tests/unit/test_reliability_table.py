"""tools/reliability_table.py: every test function is a row, and a failure is never shown as a pass."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
 <testcase classname="tests.reliability.test_trial_faults" name="test_recorded_then_passed" time="3.0"/>
 <testcase classname="tests.reliability.test_trial_faults" name="test_recorded_then_failed" time="5.0">
  <failure message="AssertionError: 3 MLflow runs, expected 4">trace</failure></testcase>
 <testcase classname="tests.reliability.test_trial_faults" name="test_failed_before_recording" time="1.0">
  <error message="RuntimeError: cluster did not start&#10;more">trace</error></testcase>
 <testcase classname="tests.reliability.test_bad_input" name="test_config_typos_and_out_of_range_values"
  time="2.0"/>
</testsuite></testsuites>
"""


def _script() -> ModuleType:
    import sys

    path = REPO_ROOT / "tools" / "reliability_table.py"
    spec = importlib.util.spec_from_file_location("reliability_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reliability_table"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_every_test_is_a_row_and_failures_show_failed(tmp_path: Path) -> None:
    table = _script()
    (tmp_path / "junit.xml").write_text(JUNIT)
    observations = tmp_path / "observations"
    observations.mkdir()
    for name in ("test_recorded_then_passed", "test_recorded_then_failed"):
        row = {
            "fault": f"fault of {name}",
            "observed": "4/4 trials finished",
            "test": f"tests/reliability/test_trial_faults.py::{name}",
        }
        (observations / f"{name}-0.json").write_text(json.dumps(row))
    results = table.outcomes(tmp_path / "junit.xml")
    rows = {row["name"]: row for row in table.table_rows(observations, results)}

    assert set(rows) == {
        "test_recorded_then_passed",
        "test_recorded_then_failed",
        "test_failed_before_recording",
        "test_config_typos_and_out_of_range_values",
    }
    assert rows["test_recorded_then_passed"]["outcome"] == "passed"
    assert rows["test_recorded_then_passed"]["observed"] == "4/4 trials finished"
    failed, unrecorded = rows["test_recorded_then_failed"], rows["test_failed_before_recording"]
    assert failed["outcome"] == "failed"
    assert failed["observed"] == "**FAILED**: AssertionError: 3 MLflow runs, expected 4"
    assert unrecorded["observed"] == "**FAILED**: RuntimeError: cluster did not start"
    assert rows["test_config_typos_and_out_of_range_values"]["observed"].startswith("exit 2 before Ray")
    meta = {"finished": "2026-11-30 12:00 UTC", "machine": "2core-x86_64", "cpus": 2, "wall_s": 60.0}
    text = table.render(list(rows.values()), results, tmp_path, meta)
    assert "test functions: 2 failed, 2 passed." in text and text.count("**FAILED**") == 2
