"""A trial worker's training memory: measured against ``search/worker_memory.py``'s estimate.

    python benchmarks/worker_memory.py configs/quickstart.yaml configs/fracatlas-laptop.yaml \\
        configs/fracatlas.yaml --out <file>

For each config and each model it can sample, its largest trial (``largest_trials``: the largest batch,
input side and widths) trains two Adam steps on random images in a fresh process, one thread; the figure is
the growth of that process's peak RSS over its imports (torch and the package), beside the estimate
(``training_bytes``). The pre-flight check warns when trials at once x (``WORKER_BASE_BYTES`` + estimate)
exceeds a node's memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench_report import default_out, write_report

CHILD = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
from fracture_tune.trainables.models import build_model
model, kwargs, size, batch = json.loads(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
net = build_model(model, input_size=size, **kwargs)
optimizer = torch.optim.Adam(net.parameters())
images, labels = torch.randn(batch, 1, size, size), torch.randint(0, 2, (batch,))
for _ in range(2):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(net(images), labels).backward()
    optimizer.step()
print(json.dumps([before * 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]))
"""


def measure(config_path: Path) -> list[dict]:
    from fracture_tune.search.config import load_config
    from fracture_tune.search.worker_memory import largest_trials, training_bytes

    rows = []
    for trial in largest_trials(load_config(config_path, [])):
        kwargs = {**trial.model_kwargs, **({"pretrained_path": ""} if trial.model == "resnet18" else {})}
        spec = json.dumps([trial.model, kwargs, trial.input_size, trial.batch_size])
        done = subprocess.run([sys.executable, "-c", CHILD, spec], capture_output=True, text=True, check=True)
        before, after = json.loads(done.stdout)
        rows.append(
            {
                "config": config_path.name,
                "model": trial.model,
                "model_kwargs": trial.model_kwargs,
                "input_size": trial.input_size,
                "batch_size": trial.batch_size,
                "imports_peak_rss_gb": round(before / 1e9, 3),
                "training_measured_gb": round((after - before) / 1e9, 3),
                "training_estimate_gb": round(training_bytes(trial) / 1e9, 3),
            }
        )
        row = rows[-1]
        measured, estimate = row["training_measured_gb"], row["training_estimate_gb"]
        print(
            f"{row['config']} {row['model']} {row['input_size']} px, batch {row['batch_size']}: "
            f"+{measured:.2f} GB measured, +{estimate:.2f} GB estimated",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [row for path in args.configs for row in measure(path)]
    write_report(args.out or default_out("worker-memory"), rows=rows)


if __name__ == "__main__":
    main()
