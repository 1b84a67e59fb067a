"""``import fracture_tune as ft``: the public names, and an import that stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_runs import REPO_ROOT

import fracture_tune as ft


def test_every_public_name_resolves_to_the_object_it_documents() -> None:
    from fracture_tune.classifier.predict import Classifier, load_classifier
    from fracture_tune.search.config import load_config
    from fracture_tune.search.retrain.retrain import retrain
    from fracture_tune.search.run import SearchResult, resume_search, run_search

    assert (ft.run_search, ft.resume_search, ft.SearchResult) == (run_search, resume_search, SearchResult)
    assert (ft.load_config, ft.retrain, ft.load_classifier, ft.Classifier) == (
        load_config,
        retrain,
        load_classifier,
        Classifier,
    )
    for name in ft.__all__:
        assert getattr(ft, name) is not None, name
    assert set(ft.__all__) == set(dir(ft))
    with pytest.raises(AttributeError, match="no attribute 'run_serch'"):
        ft.run_serch  # noqa: B018


def test_importing_the_package_imports_no_heavy_library() -> None:
    script = (
        "import sys, fracture_tune as ft; ft.__version__; "
        "heavy = {'torch', 'ray', 'mlflow', 'optuna', 'pandas'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
