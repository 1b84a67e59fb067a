"""`fracture-tune submit -- COMMAND…` and `fracture-tune jobs list|status|logs|stop`."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.errors import FractureTuneError

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

logger = logging.getLogger(__name__)


def register_jobs(
    subparsers: argparse._SubParsersAction[Any], add_cluster_dir: Callable[[argparse.ArgumentParser], None]
) -> None:
    submit = subparsers.add_parser(
        "submit",
        help="run a fracture-tune command on a Ray cluster as a Ray job",
        description="Example: fracture-tune submit -- search --config configs/quickstart.yaml",
    )
    submit.add_argument(
        "--address",
        default=None,
        help="Jobs API, e.g. http://127.0.0.1:8265 (default: the `cluster up` cluster)",
    )
    submit.add_argument(
        "--working-dir", type=Path, default=Path("."), help="project folder to upload (default .)"
    )
    submit.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow server the job logs to (default: the `cluster up` server)",
    )
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    submit.add_argument(
        "--data-on-head",
        action="store_true",
        help="dataset.path already exists at that path on the head: don't check or upload it",
    )
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- then the fracture-tune command to run")
    add_cluster_dir(submit)
    submit.set_defaults(handler=_submit)

    jobs = subparsers.add_parser("jobs", help="list, inspect, follow or stop submitted jobs")
    actions = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    for name, handler, help_text in (
        ("list", _jobs_list, "jobs on the cluster, newest last"),
        ("status", _jobs_status, "a job's status, entrypoint and driver node"),
        ("logs", _jobs_logs, "a job's driver log (--follow to stream it)"),
        ("stop", _jobs_stop, "stop a running job"),
    ):
        action = actions.add_parser(name, help=help_text)
        if name != "list":
            action.add_argument("job_id", metavar="ID")
        if name == "logs":
            action.add_argument("--follow", action="store_true", help="stream until the job ends")
        action.add_argument("--address", default=None, help="Jobs API (default: the `cluster up` cluster)")
        add_cluster_dir(action)
        action.set_defaults(handler=handler)


def _client(args: argparse.Namespace) -> JobSubmissionClient:
    from fracture_tune.cluster.jobs import connect, default_address

    address = args.address or default_address(args.cluster_dir)
    from fracture_tune.cluster.auth import apply_local_cluster_auth

    apply_local_cluster_auth(address, args.cluster_dir)  # before `import ray`: Ray reads it at import
    from ray.exceptions import AuthenticationError

    try:
        return connect(address, args.cluster_dir)
    except AuthenticationError as error:
        raise FractureTuneError(
            f"the Ray cluster at {address} refused us: {error.message}",
            hint="run from the project whose `cluster up` started it (or pass --cluster-dir), or export "
            "RAY_AUTH_MODE=token with RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH for a remote cluster",
        ) from error
    except ConnectionError as error:
        raise FractureTuneError(
            f"cannot reach the Ray Jobs API at {address}: {error}",
            hint="start a local cluster (`fracture-tune cluster up`) or pass --address http://HEAD:8265; "
            "for a remote cluster with token auth set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN",
        ) from error


def _tracking_uri(args: argparse.Namespace) -> str | None:
    from fracture_tune.cluster.jobs import default_address, local_cluster_for

    state = local_cluster_for(args.address or default_address(args.cluster_dir), args.cluster_dir)
    return (
        args.tracking_uri or (state.tracking_uri if state else None) or os.environ.get("MLFLOW_TRACKING_URI")
    )


def _share_project_folders(command: list[str], cwd: Path) -> None:
    """On a cluster on this machine, the job uses the project's dataset cache and runs folder.

    Without this both would land in the job's temporary working dir copy: the cache rebuilt per job, the
    results gone when the cluster stops.
    """
    from fracture_tune.cluster.job_data import option_values

    if not any(item.startswith("dataset.cache_root=") for item in option_values(command, "--set")):
        command += ["--set", f"dataset.cache_root={cwd / '.fracture-tune' / 'datasets'}"]
    if not option_values(command, "--storage"):
        command += ["--storage", str(cwd / ".fracture-tune" / "runs")]


def _job_command(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The command the job runs (paths and tracking filled in), and notes for the user."""
    from fracture_tune.cluster.job_data import option_values, plan_search_job
    from fracture_tune.cluster.jobs import address_is_this_machine, default_address, local_cluster_for

    command = (
        [arg for arg in args.command if arg != "--"] if args.command[:1] == ["--"] else list(args.command)
    )
    if command[:1] == ["fracture-tune"]:
        command = command[1:]
    if not command:
        raise FractureTuneError(
            "no command to run", hint="fracture-tune submit -- search --config configs/quickstart.yaml"
        )
    if command[0] != "search":
        return command, []
    address = args.address or default_address(args.cluster_dir)
    state = local_cluster_for(address, args.cluster_dir)
    working_dir, cwd = args.working_dir.resolve(), Path.cwd().resolve()
    on_this_machine = state is not None or address_is_this_machine(address)
    plan = plan_search_job(command, working_dir, cwd, on_this_machine, args.data_on_head)
    tracking_uri = _tracking_uri(args)
    if not option_values(plan.command, "--tracking-uri"):
        if tracking_uri:
            plan.command += ["--tracking-uri", tracking_uri]
        else:
            plan.notes.append(
                "no --tracking-uri: MLflow writes inside the job's temporary working dir on the head"
            )
    if state is not None:
        _share_project_folders(plan.command, cwd)
    return plan.command, plan.notes


def _submit(args: argparse.Namespace) -> int:
    from fracture_tune.cluster.jobs import (
        build_entrypoint,
        build_runtime_env,
        exit_code,
        final_status,
        follow_logs,
        stage_package,
        submit,
    )

    command, notes = _job_command(args)
    for note in notes:
        print(f"note: {note}")
    client = _client(args)
    tracking_uri = _tracking_uri(args)
    tracking_env = {"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}
    entrypoint = build_entrypoint(command, set(args.subcommands))
    with tempfile.TemporaryDirectory(prefix="fracture-tune-job-") as scratch:  # uploaded by submit_job
        package = stage_package(Path(scratch))
        runtime_env = build_runtime_env(args.working_dir.resolve(), tracking_env, package)
        job_id = submit(client, entrypoint, runtime_env)
    print(f"submitted job {job_id}: {entrypoint}")
    if args.no_wait:
        print(f"follow it: fracture-tune jobs logs {job_id} --follow")
        print(f"stop it:   fracture-tune jobs stop {job_id}")
        return 0
    try:
        follow_logs(client, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following; the job keeps running. Stop it: fracture-tune jobs stop {job_id}")
        return 130
    status = final_status(client, job_id)
    print(f"job {job_id} {status}")
    return exit_code(status)


def _jobs_list(args: argparse.Namespace) -> int:
    for job in sorted(_client(args).list_jobs(), key=lambda info: info.start_time or 0):
        print(f"{job.submission_id or job.job_id}  {job.status.value:<9} {job.entrypoint}")
    return 0


def _jobs_status(args: argparse.Namespace) -> int:
    from fracture_tune.cluster.jobs import exit_code

    info = _client(args).get_job_info(args.job_id)
    print(f"job {args.job_id}: {info.status.value}")
    print(f"  entrypoint : {info.entrypoint}")
    print(f"  driver node: {info.driver_node_id or '-'}")
    if info.message:
        print(f"  message    : {info.message}")
    return 0 if info.status.value in ("PENDING", "RUNNING") else exit_code(info.status.value)


def _jobs_logs(args: argparse.Namespace) -> int:
    from fracture_tune.cluster.jobs import exit_code, final_status, follow_logs

    client = _client(args)
    if args.follow:
        follow_logs(client, args.job_id)
        return exit_code(final_status(client, args.job_id))
    print(client.get_job_logs(args.job_id), end="")
    return 0


def _jobs_stop(args: argparse.Namespace) -> int:
    from fracture_tune.cluster.jobs import final_status

    client = _client(args)
    if not client.stop_job(args.job_id):
        print(f"job {args.job_id} was not running ({final_status(client, args.job_id)})")
        return 0
    deadline = time.monotonic() + 30
    while final_status(client, args.job_id) in ("PENDING", "RUNNING") and time.monotonic() < deadline:
        time.sleep(0.5)
    print(f"job {args.job_id} {final_status(client, args.job_id)}")
    return 0
