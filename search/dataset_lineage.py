"""The prepared dataset as an MLflow dataset input of a run: its origin, key, split and counts.

What a run's ``inputs.dataset_inputs`` gets (the runs table's Dataset column shows ``name (digest)``):
- ``name``: the source folder's (or CSV file's) name, e.g. ``fracatlas``;
- ``digest``: the dataset key (the content address of the files and the preparation parameters,
  ``data/cache.py``), so two runs on the same prepared data show the same digest;
- ``source``: the source path ``data prepare`` read (type ``local``);
- ``schema``: the arrays trainables read: pixels uint8 [-1, S, S] → label int64 (MLflow's tensor spec);
- ``profile``: split hash, image size, class names, cache folder, images in all and per split and class;
- input tag ``mlflow.data.context``: what the run did with it (``training`` unless told).

``dataset_lineage`` reads plain data (the arrays and the cache's ``meta.json``); ``log_dataset_input`` logs
it with an ``MlflowClient`` and an explicit run id. No Ray; MLflow is imported only to log. Both the search's
parent run and the retrain's run call these.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fracture_tune.data.dataset import SPLIT_NAMES, DatasetArrays

if TYPE_CHECKING:
    from mlflow import MlflowClient

MLFLOW_CONTEXT_TAG = "mlflow.data.context"  # MLflow's own key (mlflow.utils.mlflow_tags)


@dataclass(frozen=True)
class DatasetLineage:
    """What identifies a prepared dataset and what it holds (see the module docstring)."""

    name: str
    digest: str
    split_hash: str
    source: str
    cache_dir: str
    image_size: int
    class_names: tuple[str, str]
    counts: dict[str, dict[str, int]]  # split -> class name -> images

    def profile(self) -> dict[str, Any]:
        """MLflow's ``profile``: ``num_rows`` (MLflow's own key) plus this dataset's split and counts."""
        return {
            "num_rows": sum(sum(per_class.values()) for per_class in self.counts.values()),
            "split_hash": self.split_hash,
            "image_size": self.image_size,
            "class_names": list(self.class_names),
            "cache_dir": self.cache_dir,
            "counts": self.counts,
        }


def dataset_lineage(arrays: DatasetArrays, cache_dir: str | os.PathLike[str]) -> DatasetLineage:
    """The lineage of the prepared dataset at ``cache_dir`` (``arrays``: its loaded arrays)."""
    folder = Path(cache_dir)
    source = _recorded_source(folder) or str(folder)
    labels = np.asarray(arrays.labels)
    counts = {
        split: {
            name: int(np.count_nonzero(labels[arrays.indices(split)] == label))
            for label, name in enumerate(arrays.class_names)
        }
        for split in SPLIT_NAMES
    }
    return DatasetLineage(
        name=Path(source).name or source,
        digest=arrays.dataset_key,
        split_hash=arrays.split_hash,
        source=source,
        cache_dir=str(folder),
        image_size=arrays.image_size,
        class_names=(str(arrays.class_names[0]), str(arrays.class_names[1])),
        counts=counts,
    )


def _recorded_source(cache_dir: Path) -> str | None:
    """The source path ``data prepare`` recorded in the cache's ``meta.json`` (None when unreadable)."""
    from fracture_tune.data.cache import META_FILE

    try:
        source = json.loads((cache_dir / META_FILE).read_text(encoding="utf-8"))["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(source) if source else None


def log_dataset_input(
    client: MlflowClient, run_id: str, lineage: DatasetLineage, *, context: str = "training"
) -> None:
    """Log ``lineage`` as a dataset input of run ``run_id`` (logged again to the same run: no change)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(
        name=lineage.name,
        digest=lineage.digest,
        source_type="local",
        source=json.dumps({"uri": lineage.source}),
        schema=json.dumps(_tensor_schema(lineage.image_size)),
        profile=json.dumps(lineage.profile()),
    )
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag(MLFLOW_CONTEXT_TAG, context)])])


def _tensor_schema(image_size: int) -> dict[str, Any]:
    from mlflow.data.schema import TensorDatasetSchema
    from mlflow.types import Schema, TensorSpec

    pixels = TensorSpec(np.dtype(np.uint8), (-1, image_size, image_size), "pixels")
    label = TensorSpec(np.dtype(np.int64), (-1,), "label")
    schema: dict[str, Any] = TensorDatasetSchema(features=Schema([pixels]), targets=Schema([label])).to_dict()
    return schema
