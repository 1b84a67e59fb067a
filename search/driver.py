"""One search from start to results: data → MLflow parent run → Tuner → results, records, best trial.

Also its resume (``--resume NAME``) and the offline MLflow backfill (``sync-mlflow``).
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.config import ExperimentConfig, config_to_yaml, load_config
from fracture_tune.search.records import (
    RESOLVED_CONFIG_FILE,
    SearchRecord,
    read_search_record,
)
from fracture_tune.search.space import space_summary
from fracture_tune.search.tracking import (
    ParentRun,
    code_version,
    ensure_experiment,
    library_versions,
    make_client,
    redact_uri,
    resolve_tracking_uri,
)

logger = logging.getLogger(__name__)


@dataclass
class SearchOptions:
    name: str
    storage: Path  # the runs root; the run folder is storage / name
    address: str | None = None
    tracking_uri: str | None = None
    num_cpus: int | None = None  # local Ray only

    @property
    def run_dir(self) -> Path:
        return (self.storage / self.name).resolve()


def prepare_search_dataset(config: ExperimentConfig) -> Any:
    """Prepare (or reuse) the dataset cache; the synthetic set is generated into files first."""
    from fracture_tune.data.prepare import prepare_dataset

    dataset = config.dataset
    source = Path(dataset.path)
    if dataset.is_synthetic:
        source = generate_synthetic_images(config)
    elif not source.exists():
        raise FractureTuneError(
            f"dataset.path: {source} does not exist",
            hint="point it at an image folder, e.g. --set dataset.path=/data/xrays",
        )
    return prepare_dataset(
        source,
        cache_root=dataset.cache_root,
        image_size=dataset.image_size,
        val_fraction=dataset.val_fraction,
        test_fraction=dataset.test_fraction,
        seed=dataset.split_seed,
    )


def generate_synthetic_images(config: ExperimentConfig) -> Path:
    from fracture_tune.data.synth import generate_synthetic_dataset

    dataset = config.dataset
    folder = (
        Path(dataset.cache_root).parent
        / "synthetic"
        / f"n{dataset.synthetic_n}-seed{dataset.synthetic_seed}-size{max(32, dataset.image_size)}"
    )
    size = max(32, dataset.image_size)  # generated at the training size: prepare then has nothing to shrink
    wanted = {"n": dataset.synthetic_n, "seed": dataset.synthetic_seed, "size": size, "image_size": size}
    accepted = inspect.signature(generate_synthetic_dataset).parameters
    kwargs = {key: value for key, value in wanted.items() if key in accepted}
    result = generate_synthetic_dataset(folder, **kwargs)
    return Path(result) if isinstance(result, str | os.PathLike) else folder


def start_ray(options: SearchOptions) -> None:
    import ray

    os.environ.pop("MLFLOW_RUN_ID", None)  # never leak a run id into workers (mlflow#15713)
    # Ray 2.60's new output still prints a config box and per-trial lines at verbose=0; the legacy
    # reporter is silent at verbose=0, and ProgressCallback prints our own plain lines.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return
    # Workers log "Checkpoint successfully created" every epoch at INFO; keep their warnings only.
    logging_config = ray.LoggingConfig(log_level="WARNING")
    if options.address:
        ray.init(address=options.address, logging_config=logging_config)
    else:
        # Ray starts one idle worker per CPU for the first driver; Tune's trials run in actors, which get
        # workers of their own, so on a laptop those idle workers only compete with the first trials for
        # the CPUs while they start (~0.9 s of CPU on 2 cores; BENCHMARKS.md "Start-up").
        os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
        ray.init(num_cpus=options.num_cpus, include_dashboard=False, logging_config=logging_config)


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail in seconds when nothing listens at ``--address`` (``ray.init`` retries for many minutes).

    ``host:port`` (a head's GCS) and ``ray://host:port`` (Ray Client) are checked with one TCP connect;
    ``auto`` and no address are left to Ray, which fails fast on its own.
    """
    if not address or address == "auto":
        return
    target = address.removeprefix("ray://").rstrip("/")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise FractureTuneError(
            f"--address {address!r} is not host:port or ray://host:port",
            hint="e.g. --address 127.0.0.1:6379 (the head's GCS) or ray://head:10001, or auto",
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise FractureTuneError(
            f"no Ray cluster answers at {address} ({error.strerror or error})",
            hint="start one with `fracture-tune cluster up` (it prints the address), or check host and port",
        ) from error


def check_local_gpus(config: ExperimentConfig, options: SearchOptions) -> None:
    """Before Ray starts: a local search asking for GPUs this machine lacks fails now, not after setup."""
    wanted = config.resources.gpus_per_trial
    if options.address or wanted == 0:
        return
    import torch

    available = torch.cuda.device_count()
    if wanted > available:
        raise FractureTuneError(
            f"resources.gpus_per_trial={wanted:g} but this machine has {available} GPU(s)",
            hint="--set resources.gpus_per_trial=0 for CPU, or --address a cluster with GPUs",
        )


def pretrained_weight_files(config: ExperimentConfig) -> list[tuple[str, str]]:
    """(dotted key, path) of every weights file a trial of this search may load (``pretrained_path``)."""
    found = []
    if config.training.get("pretrained_path"):
        found.append(("training.pretrained_path", str(config.training["pretrained_path"])))
    spec = config.space.resolved_params().get("pretrained_path")
    if spec is not None and spec.choices:
        found += [("space.params.pretrained_path", str(choice)) for choice in spec.choices if choice]
    return found


def check_pretrained_files(config: ExperimentConfig, options: SearchOptions) -> None:
    """Before Ray starts: a weights file must be an absolute path (Ray runs each trial in a folder of its own,
    perhaps on another node), and, for a local search, an existing file — not N failed trials later."""
    for key, value in pretrained_weight_files(config):
        path = Path(value)
        if not path.is_absolute():
            raise FractureTuneError(
                f"{key}={value!r} is a relative path; trials run in their own folders, where it does not "
                "resolve",
                hint=f"give the absolute path, e.g. {Path(value).expanduser().resolve()}",
            )
        if not options.address and not path.is_file():
            raise FractureTuneError(
                f"{key}={value!r}: no such file",
                hint="point it at a ResNet-18 state_dict saved with torch.save (README: Pretrained start)",
            )


def check_cluster_resources(config: ExperimentConfig) -> None:
    """A trial asking for more than any node has would wait forever; say so instead."""
    import ray

    total = ray.cluster_resources()
    wanted = {"CPU": config.resources.cpus_per_trial, "GPU": config.resources.gpus_per_trial}
    for resource, amount in wanted.items():
        if amount > total.get(resource, 0):
            raise FractureTuneError(
                f"resources.{resource.lower()}s_per_trial={amount} but the Ray cluster has "
                f"{total.get(resource, 0):g} {resource}",
                hint=f"lower it (--set resources.{resource.lower()}s_per_trial=...) or use a larger cluster",
            )


def open_parent_run(
    config: ExperimentConfig, options: SearchOptions, prepared: Any, existing_run_id: str = ""
) -> ParentRun:
    from mlflow.exceptions import MlflowException

    tracking_uri = resolve_tracking_uri(options.tracking_uri, config.tracking.tracking_uri)
    try:
        client = make_client(tracking_uri)
        experiment_id = ensure_experiment(client, config.tracking.experiment_name, tracking_uri)
        parent = ParentRun.start(tracking_uri, experiment_id, options.name, existing_run_id)
    except (MlflowException, OSError) as error:  # before anything is written: fail with a clear line
        raise FractureTuneError(
            f"cannot reach MLflow at {redact_uri(tracking_uri)}: "
            + re.sub(r"(//[^/:@\s]+):[^@/\s]+@", r"\1:***@", str(error).splitlines()[0][:300]),
            hint="start the tracking server (or `fracture-tune cluster up`), or pass another --tracking-uri, "
            "e.g. sqlite:///./mlflow.db",
        ) from error
    versions = library_versions()
    shown = redacted_config(config)  # MLflow params and artifacts never carry a tracking password
    params = {f"search.{key}": value for key, value in flat_config(shown).items()}
    tags = {
        "dataset_key": prepared.dataset.key,
        "split_hash": prepared.dataset.split_hash,
        "code_version": code_version(),
        "metric": config.metric,
        "mode": config.metric_mode,
        **{f"version.{name}": value for name, value in versions.items()},
    }
    artifacts = {
        RESOLVED_CONFIG_FILE: config_to_yaml(shown),
        "search_space.txt": "\n".join(
            f"{k}: {v}" for k, v in space_summary(config.space.resolved_params()).items()
        ),
    }
    parent.log_setup(params, tags, artifacts)
    return parent


def redacted_config(config: ExperimentConfig) -> ExperimentConfig:
    """The config with ``tracking.tracking_uri``'s password (if any) replaced by ``***``."""
    uri = config.tracking.tracking_uri
    if not uri or redact_uri(uri) == uri:
        return config
    tracking = config.tracking.model_copy(update={"tracking_uri": redact_uri(uri)})
    return config.model_copy(update={"tracking": tracking})


def flat_config(config: ExperimentConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            flat[prefix] = value

    walk("", config.model_dump(mode="json"))
    return flat


def new_record(
    config: ExperimentConfig, options: SearchOptions, prepared: Any, parent: ParentRun
) -> SearchRecord:
    return SearchRecord(
        name=options.name,
        run_dir=str(options.run_dir),
        dataset_cache_dir=str(Path(prepared.dataset.root).resolve()),
        dataset_key=prepared.dataset.key,
        split_hash=prepared.dataset.split_hash,
        metric=config.metric,
        mode=config.metric_mode,
        best_trial_rule=config.best_trial.model_dump(),
        tracking_uri=redact_uri(parent.tracking_uri),
        experiment_name=config.tracking.experiment_name,
        experiment_id=parent.experiment_id,
        parent_run_id=parent.run_id,
        code_version=code_version(),
        library_versions=library_versions(),
        status="running",
        num_trials_planned=config.budget.num_trials,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )


def load_resume_state(options: SearchOptions) -> tuple[ExperimentConfig, SearchRecord]:
    run_dir = options.run_dir
    if not (run_dir / RESOLVED_CONFIG_FILE).exists():
        raise FractureTuneError(
            f"no search named {options.name!r} under {options.storage}",
            hint="list runs with `ls .fracture-tune/runs`, or pass --storage",
        )
    return load_config(run_dir / RESOLVED_CONFIG_FILE), read_search_record(run_dir)
