"""fracture-tune: distributed hyperparameter search for X-ray fracture classifiers.

The Python API (``import fracture_tune as ft``); the ``fracture-tune`` command line is a thin layer over it::

    config = ft.load_config("quickstart", {"budget.num_trials": 4})
    search = ft.run_search(config, name="qs1")          # -> SearchResult: .results (DataFrame), .best_trial
    ft.check_search("qs1").agree                         # do results, MLflow and the Optuna study agree?
    report = ft.retrain(search="qs1")                    # -> RetrainResult: .test_metrics, .registered_uri
    classifier = ft.load_classifier("models:/fracture-classifier@champion")
    classifier.predict(["scan.png", pil_image, uint8_array])   # -> DataFrame, one row per image

Calls raise ``FractureTuneError`` (with ``.message`` and ``.hint``) instead of returning exit codes, print
nothing unless given ``progress=True``, and leave the process environment as they found it. Names load on
first use, so ``import fracture_tune`` is cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it.
_API = {
    "load_config": "fracture_tune.search.config",
    "ExperimentConfig": "fracture_tune.search.config",
    "run_search": "fracture_tune.search.run",
    "resume_search": "fracture_tune.search.run",
    "load_search": "fracture_tune.search.run",
    "sync_mlflow": "fracture_tune.search.run",
    "check_search": "fracture_tune.search.run",
    "SearchResult": "fracture_tune.search.run",
    "SearchFailed": "fracture_tune.search.run",
    "BestTrial": "fracture_tune.search.records",
    "retrain": "fracture_tune.search.retrain.retrain",
    "RetrainResult": "fracture_tune.search.retrain.retrain",
    "load_classifier": "fracture_tune.classifier.predict",
    "Classifier": "fracture_tune.classifier.predict",
    "prepare_dataset": "fracture_tune.data.prepare",
    "FractureTuneError": "fracture_tune.errors",
}
_VERSION = "fracture_tune.version"  # ``__version__``: package_version() there

__all__ = [
    "BestTrial",
    "Classifier",
    "ExperimentConfig",
    "FractureTuneError",
    "RetrainResult",
    "SearchFailed",
    "SearchResult",
    "__version__",
    "check_search",
    "load_classifier",
    "load_config",
    "load_search",
    "prepare_dataset",
    "resume_search",
    "retrain",
    "run_search",
    "sync_mlflow",
]

if TYPE_CHECKING:
    __version__: str
    from fracture_tune.classifier.predict import Classifier, load_classifier
    from fracture_tune.data.prepare import prepare_dataset
    from fracture_tune.errors import FractureTuneError
    from fracture_tune.search.config import ExperimentConfig, load_config
    from fracture_tune.search.records import BestTrial
    from fracture_tune.search.retrain.retrain import RetrainResult, retrain
    from fracture_tune.search.run import (
        SearchFailed,
        SearchResult,
        check_search,
        load_search,
        resume_search,
        run_search,
        sync_mlflow,
    )


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = import_module(_VERSION).package_version()
        globals()[name] = value
        return value
    if name not in _API:
        raise AttributeError(f"module 'fracture_tune' has no attribute {name!r}")
    value = getattr(import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
