"""Checks a search runs before Ray starts, so a mistake costs seconds and names its cause.

The config itself was validated when it was loaded (``config.py``, ``trial_values.py``); these checks need
the machine or the cluster: the dataset folder, GPUs, weights files, the Ray address, the cluster's resources.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import ExperimentConfig

logger = logging.getLogger(__name__)


def check_before_ray(config: ExperimentConfig, address: str | None) -> None:
    """Everything that can be checked before Ray starts (``check_cluster_resources`` needs Ray); the
    config's own demands first, then the data it names."""
    check_local_gpus(config, address)
    check_pretrained_files(config, address)
    check_ray_address(address)
    check_tensorboard(config)
    check_dataset_path(config)


def check_dataset_path(config: ExperimentConfig) -> None:
    """``dataset.path`` exists on this machine: the search's driver prepares it before Ray starts."""
    from fracture_tune.data.sources import expand_source_path, missing_source_hint

    if config.dataset.is_synthetic:
        return
    source = expand_source_path(config.dataset.path)
    if not source.exists():
        expanded = "" if str(source) == config.dataset.path else f" ({source})"
        raise FractureTuneError(
            f"dataset.path: {config.dataset.path!r}{expanded} does not exist",
            hint=missing_source_hint(source) + ", or `--set dataset.path=synthetic` generates them",
        )


def check_tensorboard(config: ExperimentConfig) -> None:
    """``tracking.tensorboard`` needs tensorboardX in the driver, where Tune's TBX logger writes."""
    import importlib.util

    if config.tracking.tensorboard and importlib.util.find_spec("tensorboardX") is None:
        raise FractureTuneError(
            "tracking.tensorboard: true needs the tensorboardX package, which is not installed",
            hint="pip install 'fracture-tune[tensorboard]', or set tracking.tensorboard: false",
        )


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


def check_local_gpus(config: ExperimentConfig, address: str | None) -> None:
    """Before Ray starts: a local search asking for GPUs this machine lacks fails now, not after setup."""
    wanted = config.resources.gpus_per_trial
    if address or wanted == 0:
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


def check_pretrained_files(config: ExperimentConfig, address: str | None) -> None:
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
        if not address and not path.is_file():
            raise FractureTuneError(
                f"{key}={value!r}: no such file",
                hint="point it at a ResNet-18 state_dict saved with torch.save "
                "(docs/configuration.md: A pretrained start)",
            )


def check_cluster_resources(config: ExperimentConfig) -> None:
    """A trial asking for more than any node has would wait forever: say so instead. Trials at once that
    would not fit a node's memory: warn (``search/worker_memory.py``)."""
    import ray

    from fracture_tune.search.worker_memory import memory_warnings

    total = ray.cluster_resources()
    wanted = {"CPU": config.resources.cpus_per_trial, "GPU": config.resources.gpus_per_trial}
    for resource, amount in wanted.items():
        if amount > total.get(resource, 0):
            raise FractureTuneError(
                f"resources.{resource.lower()}s_per_trial={amount} but the Ray cluster has "
                f"{total.get(resource, 0):g} {resource}",
                hint=f"lower it (--set resources.{resource.lower()}s_per_trial=...) or use a larger cluster",
            )
    try:
        warnings = memory_warnings(config, ray.nodes())
    except Exception as error:  # noqa: BLE001 - an estimate to warn by must never stop a search
        logger.debug("no memory check: %s", error)
        warnings = []
    for line in warnings:
        logger.warning(line)
