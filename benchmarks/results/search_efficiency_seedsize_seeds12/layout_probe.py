"""Engine time for 2 epochs of the search-efficiency slice: channels_last vs contiguous tensors, Adam's
single-tensor loop vs foreach, three widths of the tunable CNN (medians of 3, alternating).

Usage, from the repository root:
    .venv/bin/python benchmarks/results/search_efficiency_seedsize_seeds12/layout_probe.py THREADS
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from fracture_tune.data.prepare import prepare_dataset  # noqa: E402
from fracture_tune.trainables.engine import fit  # noqa: E402

WIDTHS = [{"c1": 16, "c2": 16, "c3": 64}, {"c1": 32, "c2": 64, "c3": 128}, {"c1": 8, "c2": 32, "c3": 32}]
LAYOUTS = {"channels_last": {}, "contiguous": {"channels_last": False}}


def main() -> None:
    arrays = prepare_dataset(ROOT.parent / "shared" / "data" / "fracatlas", image_size=64).dataset.arrays
    base = {"model": "tunable_cnn", "input_size": 64, "aug_strength": 1.0, "aug_factor": 10,
            "optimizer": "adam", "schedule": "constant", "device": "cpu", "seed": 0, "epochs": 2,
            "train_limit": 100,
            "val_limit": 200, "num_threads": int(sys.argv[1]), "lr": 0.0026, "dropout": 0.7, "batch_size": 32}
    single_tensor_adam = torch.optim.Adam

    def foreach_adam(*args: Any, **kwargs: Any) -> torch.optim.Optimizer:
        kwargs.pop("fused", None)
        return single_tensor_adam(*args, foreach=True, **kwargs)

    seconds: dict[tuple[str, str, str], list[float]] = {}
    for widths in WIDTHS:
        for _ in range(3):
            for layout, extra in LAYOUTS.items():
                for adam_name, adam in (("single-tensor", single_tensor_adam), ("foreach", foreach_adam)):
                    torch.optim.Adam = adam  # type: ignore[misc]
                    started = time.perf_counter()
                    fit({**base, **widths, **extra}, arrays)
                    key = ("/".join(str(v) for v in widths.values()), layout, adam_name)
                    seconds.setdefault(key, []).append(time.perf_counter() - started)
    torch.optim.Adam = single_tensor_adam  # type: ignore[misc]
    for key, values in seconds.items():
        print(*key, f"{statistics.median(values):.3f} s")


if __name__ == "__main__":
    main()
