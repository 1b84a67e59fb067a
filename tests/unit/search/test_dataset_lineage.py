"""Dataset lineage: counts per split and class from the arrays, the source from the cache's meta.json, and
what a run's ``inputs.dataset_inputs`` holds after logging it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fracture_tune.data.dataset import SPLIT_CODES, DatasetArrays
from fracture_tune.search.dataset_lineage import dataset_lineage, log_dataset_input


def _arrays() -> DatasetArrays:
    # train: 3 negative + 2 positive; val: 1 + 1; test: 0 + 2
    labels = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1])
    split = np.array([SPLIT_CODES[name] for name in ["train"] * 5 + ["val"] * 2 + ["test"] * 2], np.int8)
    return DatasetArrays(
        images=np.zeros((9, 12, 12), np.uint8),
        labels=labels,
        split=split,
        class_names=("non_fractured", "fractured"),
        dataset_key="0123456789abcdef",
        split_hash="f" * 64,
    )


def test_lineage_counts_every_split_and_class_and_names_the_source(tmp_path: Path) -> None:
    cache = tmp_path / "datasets" / "0123456789abcdef"
    cache.mkdir(parents=True)
    (cache / "meta.json").write_text(json.dumps({"source": "/data/xrays/fracatlas", "key": "x"}))
    lineage = dataset_lineage(_arrays(), cache)
    assert (lineage.name, lineage.digest, lineage.source) == (
        "fracatlas",
        "0123456789abcdef",
        "/data/xrays/fracatlas",
    )
    assert lineage.counts == {
        "train": {"non_fractured": 3, "fractured": 2},
        "val": {"non_fractured": 1, "fractured": 1},
        "test": {"non_fractured": 0, "fractured": 2},
    }
    profile = lineage.profile()
    assert profile["num_rows"] == 9 and profile["split_hash"] == "f" * 64 and profile["image_size"] == 12
    assert profile["cache_dir"] == str(cache)
    # A cache without a readable meta.json: the cache folder is the source.
    assert dataset_lineage(_arrays(), tmp_path / "elsewhere").source == str(tmp_path / "elsewhere")


def test_logged_input_is_on_the_run_with_digest_source_schema_and_profile(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run("0").info.run_id
    lineage = dataset_lineage(_arrays(), tmp_path / "cache")
    log_dataset_input(client, run_id, lineage, context="training")
    log_dataset_input(client, run_id, lineage, context="training")  # again: still one input
    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert (dataset.name, dataset.digest, dataset.source_type) == ("cache", "0123456789abcdef", "local")
    assert json.loads(dataset.source) == {"uri": str(tmp_path / "cache")}
    assert json.loads(dataset.profile)["counts"]["test"] == {"non_fractured": 0, "fractured": 2}
    features = json.loads(json.loads(dataset.schema)["mlflow_tensorspec"]["features"])
    assert features == [
        {"type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, 12, 12]}, "name": "pixels"}
    ]
    assert {tag.key: tag.value for tag in inputs[0].tags} == {"mlflow.data.context": "training"}
