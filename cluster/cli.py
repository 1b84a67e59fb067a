"""`fracture-tune cluster up|down|status`, `submit`, `jobs status|logs|stop`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fracture_tune.cluster.state import DEFAULT_CLUSTER_DIR


def _add_cluster_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster-dir",
        type=Path,
        default=DEFAULT_CLUSTER_DIR,
        help=f"where the state file, logs, token and MLflow data live (default {DEFAULT_CLUSTER_DIR})",
    )


def _register_cluster(subparsers: argparse._SubParsersAction[Any]) -> None:
    cluster = subparsers.add_parser(
        "cluster", help="start/stop a local multi-node Ray cluster + MLflow server"
    )
    actions = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up", help="start a Ray head, N worker nodes and an MLflow server on this machine"
    )
    up.add_argument("--workers", type=int, default=1, help="worker nodes besides the head (default 1)")
    up.add_argument("--cpus-per-node", type=int, default=1, help="CPUs each node offers (default 1)")
    up.add_argument("--object-store-mb", type=int, default=200, help="object store per node (default 200)")
    up.add_argument(
        "--mlflow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start an MLflow tracking server (default on)",
    )
    up.add_argument(
        "--backend-store-uri",
        default=None,
        metavar="URI",
        help="MLflow's database: postgresql://USER@HOST:5432/DATABASE (needs fracture-tune[postgres]; the "
        "password from PGPASSWORD or ~/.pgpass, not the URI: command lines show in `ps`). "
        "Default: sqlite in --cluster-dir",
    )
    up.add_argument("--port", type=int, default=None, help="Ray GCS port (default 6379, or a free one)")
    up.add_argument("--dashboard-port", type=int, default=None, help="Jobs API/dashboard (default 8265)")
    up.add_argument("--client-port", type=int, default=None, help="Ray Client server (default 10001)")
    up.add_argument("--mlflow-port", type=int, default=None, help="MLflow server (default 5000)")
    up.add_argument(
        "--gpus-per-worker",
        type=int,
        default=0,
        help="GPUs each worker node advertises (head: 0). Ray trusts the number: on a CPU-only machine "
        "it rehearses GPU placement (trials asking for a GPU land only on these workers)",
    )
    up.add_argument(
        "--worker-resources",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="custom resources on every worker node, e.g. '{\"accelerator_node\": 1}'",
    )
    up.add_argument(
        "--no-auth",
        action="store_true",
        help="disable Ray token authentication (anyone who can reach the ports can run code)",
    )
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each service")
    _add_cluster_dir(up)
    up.set_defaults(handler=_cluster_up)
    down = actions.add_parser("down", help="stop exactly what `cluster up` started (safe to repeat)")
    _add_cluster_dir(down)
    down.set_defaults(handler=_cluster_down)
    status = actions.add_parser("status", help="nodes (alive/dead), resources, the MLflow URL")
    _add_cluster_dir(status)
    status.set_defaults(handler=_cluster_status)


def _cluster_up(args: argparse.Namespace) -> int:
    from fracture_tune.cluster.local import LocalClusterSpec, start_local_cluster
    from fracture_tune.cluster.report import print_up

    spec = LocalClusterSpec(
        workers=args.workers,
        cpus_per_node=args.cpus_per_node,
        object_store_mb=args.object_store_mb,
        with_mlflow=args.mlflow,
        gpus_per_worker=args.gpus_per_worker,
        auth=not args.no_auth,
        worker_resources=args.worker_resources,
        ports={
            "gcs": args.port,
            "dashboard": args.dashboard_port,
            "client": args.client_port,
            "mlflow": args.mlflow_port,
        },
        timeout_s=args.timeout,
        backend_store_uri=args.backend_store_uri,
    )
    print_up(start_local_cluster(spec, args.cluster_dir), args.cluster_dir)
    return 0


def _cluster_down(args: argparse.Namespace) -> int:
    from fracture_tune.cluster.local import stop_local_cluster
    from fracture_tune.cluster.report import print_down

    print_down(stop_local_cluster(args.cluster_dir), args.cluster_dir)
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    from fracture_tune.cluster.local import cluster_status
    from fracture_tune.cluster.report import print_status

    return print_status(cluster_status(args.cluster_dir), args.cluster_dir)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `cluster`, `submit` and `jobs`."""
    from fracture_tune.cluster.auth import apply_local_cluster_auth
    from fracture_tune.cluster.jobs_cli import register_jobs
    from fracture_tune.search.search_cli import ADDRESS_HOOKS

    _register_cluster(subparsers)
    register_jobs(subparsers, _add_cluster_dir)
    # `search --address` naming the cluster that `cluster up` started: use its token without an export line.
    ADDRESS_HOOKS["local cluster token"] = lambda address: apply_local_cluster_auth(
        address, Path(DEFAULT_CLUSTER_DIR)
    )
