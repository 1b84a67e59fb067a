"""Weights files named by ``pretrained_path`` are checked before Ray starts, wherever a config puts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.config import ExperimentConfig, load_config
from fracture_tune.search.driver import SearchOptions, check_pretrained_files

REPO = Path(__file__).resolve().parents[2]


def _conditional(weights: str) -> ExperimentConfig:
    """configs/fracatlas.yaml with resnet18 trials starting from ``weights`` (README: Pretrained start)."""
    spec = "{type: categorical, choices: [" + weights + "], when: {model: [resnet18]}}"
    return load_config(REPO / "configs" / "fracatlas.yaml", [f"space.params.pretrained_path={spec}"])


def test_a_missing_file_in_a_conditional_space_choice_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "resnet18.pth"
    with pytest.raises(FractureTuneError, match=r"space\.params\.pretrained_path=.*no such file"):
        check_pretrained_files(_conditional(str(missing)), SearchOptions(name="s", storage=tmp_path))
    missing.write_bytes(b"weights")
    check_pretrained_files(_conditional(str(missing)), SearchOptions(name="s", storage=tmp_path))


def test_a_cluster_search_checks_the_path_form_but_not_the_local_disk(tmp_path: Path) -> None:
    """With --address the file lives on the cluster's nodes, maybe not here; it must still be absolute."""
    remote = SearchOptions(name="s", storage=tmp_path, address="127.0.0.1:6379")
    check_pretrained_files(_conditional("/data/weights/resnet18.pth"), remote)
    with pytest.raises(FractureTuneError, match="is a relative path"):
        check_pretrained_files(_conditional("weights/resnet18.pth"), remote)
