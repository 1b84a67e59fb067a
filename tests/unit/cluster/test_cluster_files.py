"""The shipped real-cluster configs parse, have what Ray/KubeRay need, and run a valid search command."""

from __future__ import annotations

import shlex
from importlib.metadata import version
from typing import Any

import pytest
import yaml
from cli_runs import REPO_ROOT

from fracture_tune.cli import build_parser
from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import load_config

LAUNCHER = REPO_ROOT / "cluster" / "ray-cluster.yaml"
KUBERAY = REPO_ROOT / "cluster" / "kuberay-rayjob.yaml"


def _kuberay_docs() -> dict[str, dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(KUBERAY.read_text()) if doc]
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in docs}


def _rayjob() -> dict[str, Any]:
    return _kuberay_docs()["RayJob/fracture-tune-search"]


def _ray_pods(rayjob: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(group name, rayStartParams, pod spec) for the head and every worker group."""
    cluster = rayjob["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    groups = [("head", head["rayStartParams"], head["template"]["spec"])]
    for group in cluster["workerGroupSpecs"]:
        groups.append((group["groupName"], group["rayStartParams"], group["template"]["spec"]))
    return groups


def test_launcher_has_head_cpu_and_gpu_worker_types() -> None:
    config = yaml.safe_load(LAUNCHER.read_text())
    for key in ("cluster_name", "max_workers", "provider", "auth", "available_node_types", "head_node_type"):
        assert key in config, key
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu_types = [name for name, spec in types.items() if spec["resources"].get("GPU", 0) > 0]
    cpu_types = [
        name
        for name, spec in types.items()
        if name != config["head_node_type"] and not spec["resources"].get("GPU")
    ]
    assert gpu_types and cpu_types
    assert types[config["head_node_type"]]["resources"].get("CPU") == 0  # trials never run on the head
    for name in gpu_types + cpu_types:
        assert 0 <= types[name]["min_workers"] <= types[name]["max_workers"] <= config["max_workers"]
        assert {"InstanceType", "ImageId"} <= set(types[name]["node_config"])


def test_launcher_installs_the_project_and_starts_ray_with_auth_and_mlflow() -> None:
    config = yaml.safe_load(LAUNCHER.read_text())
    setup = "\n".join(config["setup_commands"])
    assert "pip install" in setup and "fracture-tune" in setup
    assert any("auth_token" in target for target in config["file_mounts"])
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = "\n".join(config[key])
        assert "RAY_AUTH_MODE=token" in start and "MLFLOW_TRACKING_URI=http" in start and "ray start" in start
    assert "--head" in "\n".join(config["head_start_ray_commands"])
    assert any(".venv" in item for item in config["rsync_exclude"])


def test_rayjob_entrypoint_is_a_valid_search_command() -> None:
    spec = _rayjob()["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "fracture-tune"
    args = build_parser().parse_args(argv[1:])  # the real CLI parser: unknown flags fail here
    assert args.command == "search" and args.action is None
    assert args.config == "fracatlas"  # the shipped config: the image holds the package, not a checkout
    assert args.tracking_uri == "http://mlflow:5000"
    config = load_config(args.config, args.overrides)  # every --set names a real key
    assert config.dataset.path.startswith("/shared/") and config.dataset.cache_root.startswith("/shared/")
    assert args.storage.startswith("/shared/")


def test_rayjob_has_head_cpu_and_gpu_groups_sharing_storage_and_auth() -> None:
    rayjob = _rayjob()
    assert rayjob["apiVersion"] == "ray.io/v1"
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == version("ray")
    pods = _ray_pods(rayjob)
    assert pods[0][1]["num-cpus"] == "0"
    gpu_groups = [name for name, params, _ in pods if float(params.get("num-gpus", 0)) > 0]
    cpu_groups = [name for name, params, _ in pods[1:] if float(params.get("num-gpus", 0)) == 0]
    assert gpu_groups and cpu_groups
    for name, params, pod in pods:
        container = pod["containers"][0]
        env = {item["name"]: item for item in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token", name
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "ray-auth", name
        assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000", name
        assert {"name": "shared", "mountPath": "/shared"} in container["volumeMounts"], name
        gpus = container["resources"]["limits"].get("nvidia.com/gpu")
        assert (gpus is not None) == (name in gpu_groups), name
        if gpus is not None:
            assert gpus == params["num-gpus"]  # Ray advertises exactly the GPUs Kubernetes granted


def test_mlflow_runs_on_postgres_with_s3_artifacts_behind_the_service_the_job_uses() -> None:
    docs = _kuberay_docs()
    for needed in (
        "Service/mlflow",
        "Deployment/mlflow",
        "Service/postgres",
        "StatefulSet/postgres",
        "Service/minio",
    ):
        assert needed in docs, needed
    assert docs["Service/mlflow"]["spec"]["ports"][0]["port"] == 5000
    container = docs["Deployment/mlflow"]["spec"]["template"]["spec"]["containers"][0]
    command = " ".join(container["args"])
    assert "--backend-store-uri postgresql://" in command and "@postgres:5432/" in command
    assert "--serve-artifacts" in command and "--artifacts-destination s3://" in command
    env = {item["name"]: item for item in container["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio:9000"
    assert container["image"].endswith(version("mlflow"))


def test_trial_resources_accept_fractional_gpus() -> None:
    config = load_config(REPO_ROOT / "configs" / "gpu.yaml")
    assert config.resources.gpus_per_trial == 0.25  # four trials share a GPU
    assert (
        load_config(
            REPO_ROOT / "configs" / "gpu.yaml", ["resources.gpus_per_trial=0.5"]
        ).resources.gpus_per_trial
        == 0.5
    )


def test_gpus_over_one_must_be_whole() -> None:
    with pytest.raises(FractureTuneError, match="gpus_per_trial"):
        load_config(REPO_ROOT / "configs" / "gpu.yaml", ["resources.gpus_per_trial=1.5"])
