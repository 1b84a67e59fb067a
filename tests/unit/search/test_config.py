"""Bad experiment configs fail before Ray starts, naming the key and suggesting the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_runs import REPO_ROOT

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import config_from_dict, load_config

REPO = REPO_ROOT


def _error(raw: dict) -> FractureTuneError:
    with pytest.raises(FractureTuneError) as caught:
        config_from_dict(raw)
    return caught.value


def test_shipped_configs_validate() -> None:
    shipped = sorted(path.stem for path in (REPO / "configs").glob("*.yaml"))
    assert {"quickstart", "fracatlas", "fracatlas-laptop", "gpu", "fracatlas-h100"} <= set(shipped)
    for name in shipped:
        config = load_config(REPO / "configs" / f"{name}.yaml")
        assert config.budget.num_trials >= 1
        assert config.space.resolved_params(), name


def test_defaults_pick_mode_from_metric() -> None:
    assert config_from_dict({}).metric_mode == "max"
    assert config_from_dict({"metric": "val_loss"}).metric_mode == "min"


def test_unknown_section_key_suggests_the_right_one() -> None:
    error = _error({"scheduler": {"grace_perod": 1}})
    assert "scheduler.grace_perod" in error.message
    assert error.hint == "did you mean 'grace_period'?"


def test_unknown_top_level_key_is_named() -> None:
    error = _error({"schedular": {}})
    assert "'schedular'" in error.message and "scheduler" in (error.hint or "")


def test_wrong_type_names_the_key() -> None:
    error = _error({"budget": {"num_trials": "many"}})
    assert "budget.num_trials" in error.message and "'many'" in error.message


def test_grace_period_beyond_max_t_is_rejected() -> None:
    error = _error({"scheduler": {"grace_period": 5, "max_t": 3}})
    assert "scheduler" in error.message and "grace_period (5) must be <= max_t (3)" in error.message


def test_metric_the_trainable_never_reports() -> None:
    error = _error({"metric": "val_auc"})
    assert "metric" in error.message and "never reports 'val_auc'" in error.message


def test_nonpositive_lr_range_is_rejected() -> None:
    error = _error({"space": {"params": {"lr": {"type": "float", "low": 0, "high": 0.1, "log": True}}}})
    assert "space.params.lr" in error.message and "low > 0" in error.message


def test_negative_fixed_lr_is_rejected() -> None:
    error = _error({"training": {"lr": -0.1}})
    assert "training.lr" in error.message


def test_space_key_the_engine_does_not_know() -> None:
    error = _error({"space": {"params": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}}}})
    assert "space.params.learning_rate" in error.message and error.hint is not None


def test_fixed_key_typo_gets_a_suggestion() -> None:
    error = _error({"training": {"batchsize": 32}})
    assert "training.batchsize" in error.message and error.hint == "did you mean 'batch_size'?"


def test_fractional_gpus_above_one_are_rejected() -> None:
    error = _error({"resources": {"gpus_per_trial": 1.5}})
    assert "resources.gpus_per_trial" in error.message


def test_points_to_evaluate_outside_the_space() -> None:
    raw = {
        "training": {"model": "tunable_cnn"},
        "space": {"preset": "seed"},
        "searcher": {"points_to_evaluate": [{"c1": 17}]},
    }
    error = _error(raw)
    assert "searcher.points_to_evaluate[0].c1" in error.message


def test_set_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({"budget": {"num_trials": 3}}))
    config = load_config(path, ["budget.num_trials=5", "training.lr=3e-3", "dataset.synthetic_n=200"])
    assert config.budget.num_trials == 5 and config.training["lr"] == 3e-3
    with pytest.raises(FractureTuneError, match="scheduler.max_t"):
        load_config(path, ["scheduler.max_t=0"])
    with pytest.raises(FractureTuneError, match="key=value"):
        load_config(path, ["budget.num_trials"])


def test_model_param_for_a_model_that_lacks_it_is_rejected() -> None:
    raw = {
        "space": {
            "params": {
                "model": {"type": "categorical", "choices": ["tunable_cnn", "resnet18"]},
                "c1": {"type": "categorical", "choices": [16, 32]},
            }
        }
    }
    error = _error(raw)
    assert "space.params.c1" in error.message and "resnet18" in error.message
    assert error.hint is not None and "when" in error.hint


def test_unknown_model_choice_lists_registered_models() -> None:
    error = _error({"training": {"model": "vgg99"}})
    assert "training.model" in error.message and "tunable_cnn" in (error.hint or "")


def test_seed_preset_needs_a_model_with_widths() -> None:
    error = _error({"training": {"model": "base_cnn"}, "space": {"preset": "seed"}})
    assert "model 'base_cnn' takes no parameter" in error.message


def test_evaluation_folds_and_rerank_accept_zero_or_at_least_two() -> None:
    config = config_from_dict({"evaluation": {"folds": 5, "rerank_top_k": 3, "rerank_seeds": 2}})
    evaluation = config.evaluation
    assert (evaluation.folds, evaluation.rerank_top_k, evaluation.rerank_seeds) == (5, 3, 2)
    assert config_from_dict({}).evaluation.folds == 0
    assert "evaluation.folds" in str(_error({"evaluation": {"folds": 1}}))
    assert "evaluation.rerank_top_k" in str(_error({"evaluation": {"rerank_top_k": 1}}))
    assert "evaluation.fold" in str(_error({"evaluation": {"fold": 3}}))  # a typo is named


def test_a_searched_input_size_above_the_prepared_size_is_named_with_the_size_to_prepare() -> None:
    from fracture_tune.search.config import upsampling_note

    space = {"params": {"input_size": {"type": "categorical", "choices": [64, 96, 128]}}}
    config = config_from_dict({"dataset": {"image_size": 96}, "space": space})
    assert config.space.params["input_size"].choices == [64, 96, 128]  # allowed: upsampling is a choice
    note = upsampling_note(config) or ""
    assert "space.params.input_size: input size 128 is larger than dataset.image_size 96" in note
    assert "set dataset.image_size: 128" in note
    assert upsampling_note(config_from_dict({"dataset": {"image_size": 128}, "space": space})) is None
    ranged = {"params": {"input_size": {"type": "int", "low": 32, "high": 160, "step": 32}}}
    note = upsampling_note(config_from_dict({"dataset": {"image_size": 128}, "space": ranged})) or ""
    assert note.startswith("space.params.input_size.high: input size 160")


def test_docs_name_every_key_of_the_search_config() -> None:
    """docs/configuration.md's "Sections" table has a row per top-level key naming each of its keys; a key
    added to ExperimentConfig without a word in the docs fails here."""
    import re

    from cli_runs import REPO_ROOT

    from fracture_tune.search.config import ExperimentConfig

    docs = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = docs.split("## Sections", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = line.split(" | ")
        if line.startswith("| `") and len(cells) >= 2:
            for name in re.findall(r"`(\w+)`", cells[0]):
                rows[name] = cells[1]
    missing = []
    for name, field in ExperimentConfig.model_fields.items():
        if name not in rows:
            missing.append(name)
            continue
        for key in getattr(field.annotation, "model_fields", {}):
            if f"`{key}" not in rows[name]:
                missing.append(f"{name}.{key}")
    assert not missing, f"docs/configuration.md's Sections table does not name: {', '.join(missing)}"
