"""Probe (session 5): would an EMA of the weights or horizontal-flip test-time averaging raise test AUROC?

One fixed recipe (tunable CNN 32/64/128, 64 px, cosine, 15 epochs), FracAtlas split seeds 0-2, training
seeds 0-1. The EMA (decay 0.99 per step, buffers included) is attached by wrapping the trainer's step, so
the engine itself is unchanged; validation AUROC is printed per epoch for the plain and the EMA weights.

Usage, from the repository root:
    .venv/bin/python benchmarks/results/quality_probe_s5/ema_tta_probe.py [SIZE] [EPOCHS]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn  # noqa: E402

from fracture_tune.data.prepare import prepare_dataset  # noqa: E402
from fracture_tune.trainables import trainer as trainer_module  # noqa: E402
from fracture_tune.trainables.engine import as_train_config, fit, predict_proba  # noqa: E402
from fracture_tune.trainables.metrics import binary_metrics  # noqa: E402

DECAY = 0.99
RECIPE: dict[str, Any] = {
    "model": "tunable_cnn", "c1": 32, "c2": 64, "c3": 128, "dropout": 0.5, "optimizer": "adam", "lr": 2e-3,
    "batch_size": 32, "schedule": "cosine", "warmup_epochs": 1, "aug_strength": 1.0, "aug_factor": 4,
    "class_weighting": "balanced", "device": "cpu", "num_threads": 2,
}
averaged: dict[str, AveragedModel] = {}
_plain_step = trainer_module.EpochTrainer._train_step


def _step_with_ema(self: Any, images: torch.Tensor, labels: torch.Tensor) -> Any:
    out = _plain_step(self, images, labels)
    if "ema" not in averaged:
        averaged["ema"] = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(DECAY),
                                        use_buffers=True)
    averaged["ema"].update_parameters(self.model)
    return out


def probabilities(model: torch.nn.Module, images: np.ndarray, config: Any, flip: bool = False) -> np.ndarray:
    plain = predict_proba(model, images, config)
    if not flip:
        return plain
    return (plain + predict_proba(model, np.ascontiguousarray(images[:, :, ::-1]), config)) / 2


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    trainer_module.EpochTrainer._train_step = _step_with_ema  # type: ignore[method-assign]
    rows = []
    for split_seed in (0, 1, 2):
        arrays = prepare_dataset(ROOT.parent / "shared" / "data" / "fracatlas", image_size=size,
                                 seed=split_seed).dataset.arrays
        test, val = arrays.indices("test"), arrays.indices("val")
        for train_seed in (0, 1):
            averaged.clear()
            config = {**RECIPE, "epochs": epochs, "seed": train_seed}
            ema_val: list[float] = []

            def on_epoch(metrics: dict[str, float], snapshot: Any, config: dict[str, Any] = config,
                         ema_val: list[float] = ema_val, arrays: Any = arrays, val: Any = val) -> None:
                scores = probabilities(averaged["ema"].module, arrays.images[val], as_train_config(config))
                ema_val.append(binary_metrics(arrays.labels[val], scores)["auroc"])

            started = time.perf_counter()
            result = fit(config, arrays, callbacks=[on_epoch])
            ema_model = averaged["ema"].module.eval()
            labels, images = arrays.labels[test], arrays.images[test]

            def auroc(model: torch.nn.Module, flip: bool, labels: Any = labels, images: Any = images,
                      config: Any = result.config) -> float:
                return binary_metrics(labels, probabilities(model, images, config, flip))["auroc"]

            row = {"split_seed": split_seed, "train_seed": train_seed,
                   "seconds": time.perf_counter() - started,
                   "plain": auroc(result.model, False), "plain_tta": auroc(result.model, True),
                   "ema": auroc(ema_model, False), "ema_tta": auroc(ema_model, True),
                   "val_plain": [row["val_auroc"] for row in result.history], "val_ema": ema_val}
            rows.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()
                              if not k.startswith("val_")}), flush=True)
            print("  val plain", np.round(row["val_plain"], 3).tolist(), "\n  val ema  ",
                  np.round(ema_val, 3).tolist(), flush=True)
    for key in ("plain", "plain_tta", "ema", "ema_tta"):
        print(key, "mean test AUROC", round(float(np.mean([row[key] for row in rows])), 4))
    Path(f"probe_{size}_{epochs}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
