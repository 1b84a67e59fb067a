"""What the retrain job's modules share: its options (each defined once, here) and a trained model.

Imports nothing of ``search.retrain``: every sibling may import this module. Each field of
``RetrainOptions`` carries its ``Option`` spec; from the fields come the ``retrain`` command's flags
(``search/retrain/cli.py``), the table in ``docs/model.md`` and the check that ``fracture_tune.retrain``'s
keyword arguments match them (``tests/unit/search/retrain/test_types.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.search.progress_output import Progress

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

TRAIN_ON_CHOICES = ("train", "train+val")
PROMOTE_CHOICES = ("if-better", "always", "never")
DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Option:
    """How one retrain option is offered outside Python.

    ``flag``: the command line's spelling (default ``--`` and the field name with dashes; a boolean that
    defaults to True is offered as ``--no-NAME``). ``source``: one of the mutually exclusive "what to
    retrain" options, of which the command needs exactly one. ``config_key``: the search's YAML key that
    supplies the value when the option is left unset (None). ``command_value``: the value the command always
    passes (not None: the option is Python's only, offered as no flag).
    """

    help: str
    flag: str | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    source: bool = False
    config_key: str | None = None
    command_value: Any = None


def _option(default: Any, help: str, **spec: Any) -> Any:
    return field(default=default, metadata={"option": Option(help=help, **spec)})


@dataclass
class RetrainOptions:
    """Everything a retrain takes: ``fracture_tune.retrain``'s keyword arguments and ``retrain``'s flags."""

    search: str | None = _option(None, "search name: retrain its best trial (best_trial.json)", source=True)
    run_id: str | None = _option(
        None, "MLflow run id of a trial of a search: retrain that trial", source=True
    )
    config: dict[str, Any] | Path | None = _option(
        None,
        "a flat engine config (a dict, or a JSON file); needs the dataset",
        flag="--config-json",
        source=True,
    )
    dataset: Path | None = _option(None, "prepared dataset folder (default: the search's)")
    storage: Path | None = _option(None, "runs root (default ./.fracture-tune/runs)")
    out_dir: Path | None = _option(None, "report folder (default <run dir>/retrain)", flag="--out")
    epochs: int = _option(30, "epochs (the seed recipe's 30)")
    train_on: str = _option(
        "train", "train on the train split, or on train and validation", choices=TRAIN_ON_CHOICES
    )
    seeds: int = _option(1, "train this many seeds and report the spread")
    tracking_uri: str | None = _option(None, "MLflow tracking URI (default: the search's)")
    register_name: str = _option("fracture-classifier", "registered model name")
    register: bool = _option(True, "register the logged model (off: log it only)")
    promote: str = _option(
        "if-better",
        "when to move the 'champion' alias to this version (if-better: when its test AUROC beats the "
        "champion's on the same split)",
        choices=PROMOTE_CHOICES,
    )
    target_sensitivity: float = _option(0.9, "operating threshold chosen on validation for this sensitivity")
    baseline: bool = _option(True, "train the seed recipe's base CNN as the comparison row")
    resamples: int = _option(1000, "bootstrap resamples for the confidence intervals")
    device: str | None = _option(None, "where to train (default: auto)", choices=DEVICE_CHOICES)
    ensemble: int = _option(
        1,
        "with a search: register the K best distinct configurations as one model averaging their "
        "probabilities (after re-ranking, when it runs); the report adds the single best model beside it",
        metavar="K",
    )
    rerank_top_k: int | None = _option(
        None,
        "with a search: train the K best distinct configurations with fresh seeds and keep the best "
        "mean validation score (0 = off)",
        flag="--rerank",
        metavar="K",
        config_key="evaluation.rerank_top_k",
    )
    rerank_seeds: int | None = _option(
        None, "fresh seeds per finalist when re-ranking", config_key="evaluation.rerank_seeds"
    )
    progress: Progress = _option(
        False,
        "a line per epoch while training: True prints it, a callable receives it",
        command_value=True,
    )


def option_spec(name: str) -> Option:
    """The ``Option`` of ``RetrainOptions``' field ``name``."""
    spec = RetrainOptions.__dataclass_fields__[name].metadata["option"]
    assert isinstance(spec, Option)
    return spec


@dataclass
class TrainedModel:
    """One trained model with its validation and test probabilities (the test split scored once)."""

    label: str
    config: dict[str, Any]
    model: nn.Module
    history: list[dict[str, float]]
    val_probabilities: np.ndarray
    test_probabilities: np.ndarray
    train_seconds: float
    weights_epoch: int = 0  # the epoch whose weights the model holds (its score epoch, or the last)
    score: float = math.nan  # its validation score by the search's rule (NaN without one)
