"""The Python API as a notebook user runs it: a script in a fresh process, in a folder of their own.

The folder has its own ``data/`` package and ``search.py`` (common in ML projects): they must not shadow the
library. The script loads a config, runs a search, retrains the winner and predicts on arrays through
``import fracture_tune as ft``; it prints only what it prints itself, and the process environment is the same
before and after every call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runs import cli_env
from search_fixtures import write_search_config

pytestmark = pytest.mark.integration

SCRIPT = r"""
import json, os, sys
import numpy as np
import search                       # the user's own search.py
from data import loader             # the user's own data/ package
import fracture_tune as ft

assert search.MINE and loader.MINE
before = dict(os.environ)
config = ft.load_config(sys.argv[1], {"budget.num_trials": 3, "training.epochs": 2, "scheduler.max_t": 2,
                                      "best_trial.min_epochs": 1, "searcher.points_to_evaluate": []})
result = ft.run_search(config, name="nb1", tracking_uri=sys.argv[2])
after_search = dict(os.environ)
report = ft.retrain(search="nb1", epochs=2, baseline=False, resamples=50)
classifier = ft.load_classifier("models:/fracture-classifier@champion", tracking_uri=sys.argv[2])
rng = np.random.default_rng(0)
predictions = classifier.predict(rng.integers(0, 255, (3, 40, 40), dtype=np.uint8))
try:
    ft.load_config(sys.argv[1], {"training.optimizer": "adamm"})
    raised = ""
except ft.FractureTuneError as error:
    raised = error.message
print("RESULT " + json.dumps({
    "frame": type(result.results).__name__,
    "rows": len(result.results),
    "columns": list(result.results.columns),
    "best": result.best_trial.trial_id if result.best_trial else None,
    "status": result.status,
    "parent": result.parent_run_id,
    "run_dir": str(result.run_dir),
    "env_same_after_search": after_search == before,
    "env_same_at_end": dict(os.environ) == before,
    "test_auroc": report.test_metrics["auroc"].value,
    "registered": report.registered_uri,
    "predictions": predictions["status"].tolist(),
    "probabilities": predictions["probability"].tolist(),
    "error": raised,
    "module": ft.run_search.__module__,
    "file": ft.__file__,
}))
"""


def test_a_notebook_script_searches_retrains_and_predicts_through_the_api(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "__init__.py").write_text("")
    (project / "data" / "loader.py").write_text("MINE = True\n")
    (project / "search.py").write_text("MINE = True\n")
    config = write_search_config(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (project / "notebook.py").write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, "notebook.py", str(config), uri],
        cwd=project,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    printed = done.stdout.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("RESULT "), done.stdout[-3000:]  # nothing but its own
    result = json.loads(printed[0].removeprefix("RESULT "))
    assert result["frame"] == "DataFrame" and result["rows"] == 3 and result["status"] == "finished"
    columns = set(result["columns"])
    assert {"trial_id", "status", "score", "score_epoch", "config/lr", "mlflow_run_id"} <= columns
    assert result["best"] and result["parent"]
    assert Path(result["run_dir"]) == (project / ".fracture-tune" / "runs" / "nb1").resolve()
    assert result["env_same_after_search"] and result["env_same_at_end"]
    assert 0.0 <= result["test_auroc"] <= 1.0 and result["registered"] == "models:/fracture-classifier/1"
    assert result["predictions"] == ["ok"] * 3 and all(0 <= p <= 1 for p in result["probabilities"])
    assert "did you mean 'adam'" in result["error"]
    assert result["module"] == "fracture_tune.search.run"
    assert not Path(result["file"]).is_relative_to(project)
