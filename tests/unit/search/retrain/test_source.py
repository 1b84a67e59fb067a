"""Which config ``retrain`` trains: the search's best trial, one trial by its MLflow run id, or a JSON file.

A user who passes the wrong combination of --search / --run-id / --config-json, a broken JSON file or a run id
that is not in the search's results gets a FractureTuneError naming the flag, not a traceback; a valid choice
retrains exactly the config and dataset it names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.records import BestTrial, SearchRecord, write_best_trial, write_search_record
from fracture_tune.search.results import summarise_history, write_results
from fracture_tune.search.retrain.source import resolve_source
from fracture_tune.search.retrain.types import RetrainOptions
from fracture_tune.search.tracking import SEARCH_NAME_TAG
from fracture_tune.trainables.score import ScoreRule


def _record(run_dir: Path, cache_dir: Path) -> SearchRecord:
    return SearchRecord(
        name=run_dir.name,
        run_dir=str(run_dir),
        dataset_cache_dir=str(cache_dir),
        dataset_key="k",
        split_hash="h",
        metric="val_auroc",
        mode="max",
        best_trial_rule={"scope": "best_epoch", "min_epochs": 1},
        tracking_uri="",
        experiment_name="e",
        experiment_id="0",
        parent_run_id="",
        code_version="test",
        library_versions={},
        status="finished",
    )


def _best(config: dict) -> BestTrial:
    return BestTrial(
        trial_id="t_best",
        trial_index=3,
        config=config,
        metric="val_auroc",
        mode="max",
        metric_value=0.9,
        best_epoch=2,
        epochs_run=2,
        metric_range=(0.7, 0.9),
        checkpoint_path="",
        mlflow_run_id="",
    )


@pytest.mark.parametrize(
    ("flags", "named"),
    [({}, "none"), ({"search": "a", "run_id": "r"}, "--search, --run-id")],
)
def test_exactly_one_source_flag_is_required(flags: dict, named: str) -> None:
    with pytest.raises(FractureTuneError, match=f"exactly one of .*got {named}"):
        resolve_source(RetrainOptions(**flags))


def test_a_config_json_file_is_trained_on_the_given_dataset(tmp_path: Path) -> None:
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"model": "tiny_cnn", "lr": 0.01}), encoding="utf-8")

    source = resolve_source(RetrainOptions(config=path, dataset=tmp_path / "cache"))

    assert source.config == {"model": "tiny_cnn", "lr": 0.01}
    assert source.dataset_dir == tmp_path / "cache"
    assert source.run_dir is None and source.trial is None
    with pytest.raises(FractureTuneError, match="needs --dataset"):
        resolve_source(RetrainOptions(config=path))
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(FractureTuneError, match="flat object"):
        resolve_source(RetrainOptions(config=path, dataset=tmp_path))
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(FractureTuneError, match="not valid JSON"):
        resolve_source(RetrainOptions(config=path, dataset=tmp_path))


def test_search_retrains_its_best_trial_on_the_searchs_dataset(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "quick"
    write_search_record(run_dir, _record(run_dir, tmp_path / "cache"))
    write_best_trial(run_dir, _best({"model": "tiny_cnn", "lr": 0.02}))

    source = resolve_source(RetrainOptions(search="quick", storage=tmp_path / "runs"))

    assert source.config == {"model": "tiny_cnn", "lr": 0.02}
    assert source.dataset_dir == tmp_path / "cache"
    assert source.trial is not None and source.trial.trial_id == "t_best"
    assert source.search_name == "quick"
    assert "trial t_best" in source.description


def _trial_row(trial_id: str, index: int, run_id: str, config: dict, history: list[float]) -> dict:
    row = {
        "trial_id": trial_id,
        "trial_index": index,
        "status": "finished",
        "stop_detail": "",
        "metric_history": history,
        "config": config,
        "node_id": "",
        "mlflow_run_id": run_id,
        "error": "",
        "best_checkpoint": "",
    }
    return summarise_history(row, ScoreRule(metric="val_auroc", mode="max", scope="best_epoch", min_epochs=1))


def test_run_id_retrains_that_trial_scored_by_the_searchs_rule(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(experiment, tags={SEARCH_NAME_TAG: "quick"}).info.run_id
    untagged = client.create_run(experiment).info.run_id
    run_dir = tmp_path / "runs" / "quick"
    write_search_record(run_dir, _record(run_dir, tmp_path / "cache"))
    write_best_trial(run_dir, _best({"model": "tiny_cnn", "lr": 0.02}))
    write_results(
        run_dir,
        [
            _trial_row("t_a", 0, "other", {"model": "tiny_cnn", "lr": 0.02}, [0.6, 0.9]),
            _trial_row("t_b", 1, run_id, {"model": "tiny_cnn", "lr": 0.005}, [0.5, 0.8, 0.7]),
        ],
    )
    options = {"storage": tmp_path / "runs", "tracking_uri": uri}

    source = resolve_source(RetrainOptions(run_id=run_id, **options))

    assert source.config["lr"] == 0.005 and source.config["model"] == "tiny_cnn"
    assert source.trial is not None
    assert (source.trial.trial_id, source.trial.metric_value, source.trial.best_epoch) == ("t_b", 0.8, 2)
    assert source.trial.metric_range == (0.5, 0.8)
    with pytest.raises(FractureTuneError, match="not a fracture-tune trial"):
        resolve_source(RetrainOptions(run_id=untagged, **options))
