"""Run a search, resume it, read it back, backfill its MLflow runs: the library calls behind ``fracture-tune
search`` (and ``fracture_tune.run_search`` & co.).

One search: pre-flight checks → the prepared dataset → the MLflow parent run → the run folder's records →
Ray → the Tuner → the results table, ``best_trial.json`` and the parent run's summary. Calls raise
``FractureTuneError`` (``SearchFailed`` when no trial reported the metric), print nothing unless given a
``progress`` output, and leave the process environment as they found it; Ray is shut down again when the
call started it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.classifier.call_environment import call_environment
from fracture_tune.classifier.tracking_uri import resolve_tracking_uri
from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import ExperimentConfig, config_to_yaml, load_config, upsampling_note
from fracture_tune.search.optuna_study import (
    check_new_study,
    dashboard_command,
    open_storage,
    settle_study,
    storage_url,
)
from fracture_tune.search.preflight import check_before_ray, check_cluster_resources, check_dataset_path
from fracture_tune.search.progress_output import Progress, progress_printer, set_progress_output
from fracture_tune.search.records import (
    DEFAULT_RUNS_ROOT,
    MLFLOW_BACKLOG_FILE,
    RESOLVED_CONFIG_FILE,
    RESULTS_PARQUET_FILE,
    BestTrial,
    SearchRecord,
    add_to_mlflow_backlog,
    code_version,
    library_versions,
    mlflow_updates_missing,
    read_best_trial,
    read_search_record,
    score_rule_of,
    write_search_record,
)
from fracture_tune.search.results import choose_best, format_summary, read_results, trial_rows, write_results
from fracture_tune.search.space import space_summary
from fracture_tune.search.stops import ERROR, INTERRUPTED, StopLedger, TrialStop
from fracture_tune.search.tracking import (
    BOUNDED_HTTP_RETRIES,
    ParentRun,
    TrackingUnreachable,
    attach_mlflow_ids,
    error_summary,
    redact_secrets,
)
from fracture_tune.trainables.score import SCORE_KEY, ScoreRule

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fracture_tune.data.dataset import PreparedDataset
    from fracture_tune.data.prepare import PrepareResult
    from fracture_tune.search.reconcile import Reconciliation

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class SearchOptions:
    """Where and how a search runs, besides its config."""

    name: str
    storage: Path = DEFAULT_RUNS_ROOT  # the runs root; the run folder is storage / name
    address: str | None = None  # a Ray cluster; None starts a local Ray
    tracking_uri: str | None = None
    num_cpus: int | None = None  # local Ray only
    progress: Callable[[str], None] | None = None  # where progress lines go; None: nowhere
    dashboard: bool = False  # local Ray only: start Ray's dashboard on 127.0.0.1 (token auth on)
    # Replaces the training engine (``engine.fit``'s signature): the scale benchmark times the search's
    # bookkeeping with a fixed-time step. None: the engine.
    fit_function: Callable[..., Any] | None = None

    @property
    def run_dir(self) -> Path:
        return (Path(self.storage).expanduser() / self.name).resolve()

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)


@dataclass
class SearchResult:
    """A search as it stands on disk: its results table, best trial and where its records are."""

    name: str
    status: str  # running | finished | failed | interrupted
    run_dir: Path
    results: pd.DataFrame  # one row per trial (results.parquet); empty before the search has finished
    best_trial: BestTrial | None
    metric: str
    mode: str
    dataset_key: str
    split_hash: str
    tracking_uri: str  # redacted
    experiment_id: str
    parent_run_id: str
    mlflow_updates_missing: int = 0  # updates MLflow does not have (server down at the end, or refused)
    optuna_storage: str = ""  # the Optuna RDB URL of the search's study (named after the search)
    score_rule: ScoreRule = field(default_factory=ScoreRule)  # how its trials were scored and ranked

    def mlflow_runs_page(self) -> str:
        """Where the MLflow UI lists this search's runs: the page's URL, and for a sqlite/file store the
        ``mlflow ui`` command that serves it first."""
        from fracture_tune.search.mlflow_ui import runs_page_url

        uri = self.tracking_uri
        if uri.startswith(("http://", "https://")):
            return runs_page_url(uri, self.experiment_id, self.parent_run_id)
        page = runs_page_url("http://127.0.0.1:5000", self.experiment_id, self.parent_run_id)
        return f"`mlflow ui --backend-store-uri {uri}`, then open {page}"

    def summary(self, top: int = 5) -> str:
        """Status counts and the top trials, as ``fracture-tune search show`` prints them."""
        text = format_summary(self.results, self.score_rule, top)
        if self.mlflow_updates_missing:
            text += (
                f"\nMLflow is missing {self.mlflow_updates_missing} update(s) of this search; the results on "
                f"disk are complete: fracture-tune search sync-mlflow {self.name}"
            )
        return text


class SearchFailed(FractureTuneError):
    """The search ran but no trial reported its metric (every trial failed); ``result`` is what is on disk."""

    def __init__(self, message: str, result: SearchResult, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.result = result


def make_options(
    name: str,
    *,
    storage: str | os.PathLike[str] = DEFAULT_RUNS_ROOT,
    address: str | None = None,
    tracking_uri: str | None = None,
    num_cpus: int | None = None,
    progress: Progress = False,
    dashboard: bool = False,
) -> SearchOptions:
    if not _NAME.fullmatch(name or ""):
        raise FractureTuneError(
            f"search name {name!r} is not usable as a folder name",
            hint="letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. fa-2026-11-30",
        )
    if dashboard and address:
        raise FractureTuneError(
            "--dashboard starts the dashboard of a local Ray; a cluster serves its own",
            hint="open the cluster's dashboard (`fracture-tune cluster status` prints it) or drop --address",
        )
    printer = progress_printer(progress)
    return SearchOptions(name, Path(storage), address, tracking_uri, num_cpus, printer, dashboard)


def run_search(
    config: ExperimentConfig | str | os.PathLike[str],
    *,
    name: str | None = None,
    storage: str | os.PathLike[str] = DEFAULT_RUNS_ROOT,
    tracking_uri: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    progress: Progress = False,
    dashboard: bool = False,
) -> SearchResult:
    """Run a search and return its results.

    ``config``: an ``ExperimentConfig`` (``load_config``), a YAML path or a shipped config's name
    (``"quickstart"``). ``name`` names the run folder (``storage/name``) and the MLflow parent run (default
    ``search-<timestamp>``). ``address``: a Ray cluster (``auto``, ``host:6379``, ``ray://host:10001``);
    without it a local Ray is started for the call. ``tracking_uri``: MLflow (default
    ``$MLFLOW_TRACKING_URI``, else the config's, else ``sqlite:///./mlflow.db``). ``progress``: True prints
    progress lines, a callable receives them. ``dashboard``: start Ray's dashboard with the local Ray (off
    by default: it costs start-up time and memory, and serves a control API).
    """
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    name = name or time.strftime("search-%Y%m%d-%H%M%S")
    options = make_options(
        name,
        storage=storage,
        address=address,
        tracking_uri=tracking_uri,
        num_cpus=num_cpus,
        progress=progress,
        dashboard=dashboard,
    )
    with _search_call(options):
        return _run(config, options)


def run_search_with(config: ExperimentConfig, options: SearchOptions) -> SearchResult:
    """``run_search`` with its options built (``make_options``): benchmarks set ``options.fit_function``."""
    with _search_call(options):
        return _run(config, options)


def resume_search_with(options: SearchOptions) -> SearchResult:
    """``resume_search`` with its options built (``make_options``): benchmarks and tests set
    ``options.fit_function``, as they did for the search itself."""
    with _search_call(options):
        return _resume(options)


def resume_search(
    name: str,
    *,
    storage: str | os.PathLike[str] = DEFAULT_RUNS_ROOT,
    tracking_uri: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    progress: Progress = False,
    dashboard: bool = False,
) -> SearchResult:
    """Continue an interrupted search with its saved config: finished trials are not rerun, running ones
    continue from their checkpoints, the Optuna sampler keeps its history, MLflow runs are reused."""
    options = make_options(
        name,
        storage=storage,
        address=address,
        tracking_uri=tracking_uri,
        num_cpus=num_cpus,
        progress=progress,
        dashboard=dashboard,
    )
    with _search_call(options):
        return _resume(options)


def load_search(name: str, *, storage: str | os.PathLike[str] = DEFAULT_RUNS_ROOT) -> SearchResult:
    """A search's records as they stand on disk (finished, failed, interrupted or still running)."""
    import pandas as pd

    run_dir = make_options(name, storage=storage).run_dir
    record = read_search_record(run_dir)
    results = read_results(run_dir) if (run_dir / RESULTS_PARQUET_FILE).exists() else pd.DataFrame()
    best = read_best_trial(run_dir) if (run_dir / "best_trial.json").exists() else None
    return _result(record, results, best)


def sync_mlflow(
    name: str,
    *,
    storage: str | os.PathLike[str] = DEFAULT_RUNS_ROOT,
    tracking_uri: str | None = None,
    progress: Progress = False,
) -> int:
    """Backfill MLflow from Tune's results on disk (e.g. after the driver lost its tracking server).

    Returns the number of trials synced; epochs already in MLflow are not logged twice.
    """
    options = make_options(name, storage=storage, tracking_uri=tracking_uri, progress=progress)
    with call_environment(BOUNDED_HTTP_RETRIES):
        return _sync(options)


def check_search(
    name: str, *, storage: str | os.PathLike[str] = DEFAULT_RUNS_ROOT, tracking_uri: str | None = None
) -> Reconciliation:
    """Compare a finished search's records (``search/reconcile.py``) and write ``reconciliation.json``; what
    ``fracture-tune search check NAME`` prints."""
    from fracture_tune.search.reconcile import write_reconciliation
    from fracture_tune.search.results import rows_from_frame

    options = make_options(name, storage=storage, tracking_uri=tracking_uri)
    config, record = _saved_search(options)
    if not (options.run_dir / RESULTS_PARQUET_FILE).exists():
        raise FractureTuneError(
            f"search {name!r} has no results table yet: it is running, or stopped before its end",
            hint=f"finish it first: fracture-tune search --resume {name}",
        )
    rule = score_rule_of(record)
    rows = rows_from_frame(read_results(options.run_dir), rule)
    best = read_best_trial(options.run_dir) if (options.run_dir / "best_trial.json").exists() else None
    uri = resolve_tracking_uri(tracking_uri, record.tracking_uri, config.tracking.tracking_uri)
    with call_environment(BOUNDED_HTTP_RETRIES):
        parent: ParentRun | None = None
        try:
            parent = ParentRun.start(uri, record.experiment_id, name, record.parent_run_id, reopen=False)
        except Exception as error:  # noqa: BLE001 - compared without MLflow, and said so
            logger.warning("MLflow at %s not reachable: %s", redact_secrets(uri), error_summary(error))
        url = str(record.extra.get("optuna_storage") or storage_url(config.searcher.storage, options.run_dir))
        report = check_records(options.run_dir, name, rows, rule, parent, url, best)
    if parent is None:
        report.notes.insert(0, f"MLflow not compared: {redact_secrets(uri)} did not answer")
    write_reconciliation(options.run_dir, report)
    return report


def search_environment(local: bool) -> dict[str, str]:
    """The environment variables a search runs with, where the user has not set them."""
    defaults = {
        **BOUNDED_HTTP_RETRIES,
        # Ray 2.60's new output still prints a config box and per-trial lines at verbose=0; the legacy
        # reporter is silent at verbose=0, and ProgressCallback prints our own plain lines.
        "RAY_AIR_NEW_OUTPUT": "0",
        # Tune adds a TensorBoard logger by default; its ``import tensorboardX`` imports torch, 1.5 s of every
        # search's start in a driver that otherwise never needs torch, for event files nothing here reads.
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    }
    if local:
        # Ray starts one idle worker per CPU for the first driver; Tune's trials run in actors, which get
        # workers of their own, so on a laptop those idle workers only compete with the first trials for
        # the CPUs while they start (BENCHMARKS.md "Start-up").
        defaults["RAY_prestart_worker_first_driver"] = "0"
    return defaults


def experiment_state_settings(config: ExperimentConfig) -> dict[str, str]:
    """How often Tune rewrites its experiment state (every trial's state, ~20 KB each, in one file): at least
    every 10 s, and for a search of N trials every N/20 s up to 10 minutes, so a snapshot's size and their
    number do not both grow with N (a 10,000-trial search rewrites its 200 MB state every 8 minutes, not every
    10 s). What a driver crash can cost is the work since the last snapshot: trials that ended since then are
    resumed from their last checkpoint. The checkpoints Tune lists in it carry only the score they are ranked
    by, not every metric again."""
    period = max(10.0, min(600.0, config.budget.num_trials / 20))
    return {
        "TUNE_GLOBAL_CHECKPOINT_S": f"{period:g}",
        "TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE": "1",
    }


@contextlib.contextmanager
def _search_call(options: SearchOptions) -> Iterator[None]:
    """The environment a search runs in, its progress output, and a Ray of its own unless one is running."""
    with call_environment(search_environment(local=not options.address)):
        ray_was_running = _ray_is_running()
        set_progress_output(options.name, options.progress)
        try:
            yield
        finally:
            set_progress_output(options.name, None)
            if not ray_was_running and _ray_is_running():  # this call started it: leave none behind
                import ray

                ray.shutdown()


def _ray_is_running() -> bool:
    import sys

    ray = sys.modules.get("ray")  # not imported: not running in this process
    return bool(ray is not None and ray.is_initialized())


def _start_ray(options: SearchOptions) -> None:
    """Connect to ``options.address``, or start a local Ray for this call (unless one is running)."""
    import ray

    if ray.is_initialized():
        return
    # Workers log "Checkpoint successfully created" every epoch at INFO; keep their warnings only.
    settings: dict[str, Any] = {
        "logging_config": ray.LoggingConfig(log_level="WARNING"),
        "log_to_driver": options.progress is not None,
    }
    if options.address:
        ray.init(address=options.address, **settings)
    elif options.dashboard:
        context = ray.init(
            num_cpus=options.num_cpus, include_dashboard=True, dashboard_host="127.0.0.1", **settings
        )
        options.say(
            f"Ray dashboard: http://{context.dashboard_url} (127.0.0.1 only; Ray's token authentication asks "
            "for the token in ~/.ray/auth_token)"
        )
    else:
        # No dashboard by default: it adds start-up time and memory to every local search and serves Ray's
        # Jobs API; --dashboard turns it on.
        ray.init(num_cpus=options.num_cpus, include_dashboard=False, **settings)


def search_folds(config: ExperimentConfig, dataset: PreparedDataset) -> np.ndarray | None:
    """Each train/validation row's fold for ``evaluation.folds``; None: trials score on the val split."""
    folds = config.evaluation.folds
    if not folds:
        return None
    from fracture_tune.data.folds import assign_folds

    arrays = dataset.arrays
    return assign_folds(arrays.labels, dataset.groups, arrays.split, folds, seed=config.evaluation.fold_seed)


def prepare_search_dataset(config: ExperimentConfig) -> PrepareResult:
    """Prepare (or reuse) the dataset cache; the synthetic set is generated into image files first."""
    from fracture_tune.data.prepare import prepare_dataset
    from fracture_tune.data.sources import expand_source_path
    from fracture_tune.data.synth import generate_synthetic_dataset

    dataset = config.dataset
    source = Path("synthetic") if dataset.is_synthetic else expand_source_path(dataset.path)
    if dataset.is_synthetic:
        size = max(32, dataset.image_size)  # generated at the training size: prepare has nothing to shrink
        folder = (
            Path(dataset.cache_root).parent
            / "synthetic"
            / f"n{dataset.synthetic_n}-seed{dataset.synthetic_seed}-size{size}"
        )
        source = generate_synthetic_dataset(
            folder, n=dataset.synthetic_n, seed=dataset.synthetic_seed, size=size
        )
    else:
        check_dataset_path(config)  # a resumed search's folder may have gone since it started
    return prepare_dataset(
        source,
        cache_root=dataset.cache_root,
        image_size=dataset.image_size,
        val_fraction=dataset.val_fraction,
        test_fraction=dataset.test_fraction,
        seed=dataset.split_seed,
    )


def open_parent_run(
    config: ExperimentConfig, options: SearchOptions, prepared: PrepareResult, existing_run_id: str = ""
) -> ParentRun:
    """The search's MLflow parent run with its setup logged: params, provenance tags, config and space."""
    tracking_uri = resolve_tracking_uri(options.tracking_uri, configured=config.tracking.tracking_uri)
    try:
        parent = ParentRun.open(tracking_uri, config.tracking.experiment_name, options.name, existing_run_id)
    except TrackingUnreachable as error:  # before anything is written: fail with a clear line
        raise FractureTuneError(
            str(error),
            hint="start the tracking server (or `fracture-tune cluster up`), or pass another --tracking-uri, "
            "e.g. sqlite:///./mlflow.db",
        ) from error
    shown = redacted_config(config)  # MLflow params and artifacts never carry a tracking password
    params = {f"search.{key}": value for key, value in flat_config(shown).items()}
    tags = {
        "dataset_key": prepared.dataset.key,
        "split_hash": prepared.dataset.split_hash,
        "code_version": code_version(),
        "metric": config.metric,
        "mode": config.metric_mode,
        **{f"version.{name}": value for name, value in library_versions().items()},
    }
    artifacts = {
        RESOLVED_CONFIG_FILE: config_to_yaml(shown),
        "search_space.txt": "\n".join(
            f"{k}: {v}" for k, v in space_summary(config.space.resolved_params()).items()
        ),
    }
    parent.log_setup(params, tags, artifacts)
    return parent


def _log_dataset_input(parent: ParentRun, prepared: PrepareResult) -> None:
    """The prepared dataset as the parent run's MLflow dataset input (the UI's Dataset column)."""
    from fracture_tune.search.dataset_lineage import dataset_lineage, log_dataset_input

    lineage = dataset_lineage(prepared.dataset.arrays, prepared.dataset.root)
    with parent.lock:
        log_dataset_input(parent.client, parent.run_id, lineage, context="training")


def redacted_config(config: ExperimentConfig) -> ExperimentConfig:
    """The config with ``tracking.tracking_uri``'s secrets (user-info, ``password=``…) replaced by ``***``.
    (``searcher.storage`` cannot hold credentials: the config refuses them.)"""
    uri = config.tracking.tracking_uri
    if not uri or redact_secrets(uri) == uri:
        return config
    tracking = config.tracking.model_copy(update={"tracking_uri": redact_secrets(uri)})
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


def _run(config: ExperimentConfig, options: SearchOptions) -> SearchResult:
    run_dir = options.run_dir
    if (run_dir / RESOLVED_CONFIG_FILE).exists():
        raise FractureTuneError(
            f"a search named {options.name!r} already exists in {run_dir}",
            hint=f"continue it with --resume {options.name}, or choose another --name",
        )
    check_before_ray(config, options.address)
    if config.searcher.storage:  # a shared Optuna storage: the search's study name must be free there
        check_new_study(config.searcher.storage, options.name)
    prepared = prepare_search_dataset(config)
    parent = open_parent_run(config, options, prepared)
    _log_dataset_input(parent, prepared)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Secrets never reach disk: a tracking URI with user-info is saved redacted (resume asks for it again).
    (run_dir / RESOLVED_CONFIG_FILE).write_text(config_to_yaml(redacted_config(config)), encoding="utf-8")
    record = _new_record(config, options, prepared, parent)
    write_search_record(run_dir, record)
    note = upsampling_note(config)
    if note:
        logger.warning(note)
    if config.checkpoint.num_to_keep is not None:
        logger.warning(
            "checkpoint.num_to_keep is retired and changes nothing: a running trial keeps its latest and "
            "its score epoch's checkpoint, an ended one its score epoch's while among "
            "checkpoint.keep_best_trials (%d)",
            config.checkpoint.keep_best_trials,
        )
    options.say(
        f"search {options.name}: {config.budget.num_trials} trials, metric {config.metric} "
        f"({config.metric_mode}); run folder {run_dir}; MLflow {record.tracking_uri} run {parent.run_id}"
    )
    _start_ray(options)
    check_cluster_resources(config)
    from fracture_tune.search.tuner import build_tuner

    tuner = build_tuner(
        config,
        prepared.dataset.arrays,
        options.name,
        Path(options.storage).expanduser().resolve(),
        search_callbacks(config, options, parent),
        search_folds(config, prepared.dataset),
        options.fit_function,
    )
    return _fit_and_finish(tuner, config, options, parent, record)


def _resume(options: SearchOptions) -> SearchResult:
    config, record = _saved_search(options)
    uri = resolve_tracking_uri(options.tracking_uri, record.tracking_uri, config.tracking.tracking_uri)
    options = replace(options, tracking_uri=uri)
    prepared = prepare_search_dataset(config)
    if prepared.dataset.split_hash != record.split_hash:
        raise FractureTuneError(
            f"the dataset changed since search {options.name!r} started (split hash "
            f"{prepared.dataset.split_hash} != {record.split_hash})",
            hint="resume needs the same data; start a new search instead",
        )
    check_before_ray(config, options.address)  # e.g. the weights file may have moved since the search started
    parent = open_parent_run(config, options, prepared, existing_run_id=record.parent_run_id)
    write_search_record(options.run_dir, replace(record, status="running"))
    options.say(f"resuming search {options.name} from {options.run_dir}")
    _start_ray(options)
    from fracture_tune.search.tuner import restore_tuner

    folds = search_folds(config, prepared.dataset)
    tuner = restore_tuner(config, prepared.dataset.arrays, options.run_dir, folds, options.fit_function)
    return _fit_and_finish(tuner, config, options, parent, record)


def search_callbacks(
    config: ExperimentConfig, options: SearchOptions, parent: ParentRun, new_search: bool = True
) -> list[Any]:
    """The Tune callbacks of a search: why trials end (first: the others read it), MLflow, progress, which
    checkpoints stay, and, last, trimming what Tune keeps of an ended trial."""
    from fracture_tune.search.callbacks import MlflowTrialCallback, ProgressCallback
    from fracture_tune.search.checkpoint_keeper import CheckpointKeeper
    from fracture_tune.search.stop_recording import StopReasonCallback
    from fracture_tune.search.tracking import TrialRunLogger
    from fracture_tune.search.trial_metadata import TrimEndedTrialMetadata

    ledger = StopLedger(options.run_dir)
    trial_logger = TrialRunLogger(parent, options.name, config.metric, config.planned_epochs)
    trial_logger.fresh_search = new_search
    progress = ProgressCallback(
        options.name, config.score_rule, config.budget.num_trials, ledger, config.budget.time_budget_s
    )
    stops = StopReasonCallback(ledger, config.planned_epochs)
    keeper = CheckpointKeeper(config.score_rule, config.checkpoint.keep_best_trials)
    trim = TrimEndedTrialMetadata(keep=SCORE_KEY)
    return [stops, MlflowTrialCallback(trial_logger, ledger), progress, keeper, trim]


def _fit_and_finish(
    tuner: Any, config: ExperimentConfig, options: SearchOptions, parent: ParentRun, record: SearchRecord
) -> SearchResult:
    from fracture_tune.search.worker_handover import fresh_worker_on_failed_handover

    try:
        with fresh_worker_on_failed_handover(), call_environment(experiment_state_settings(config)):
            result_grid = tuner.fit()
    except KeyboardInterrupt:
        write_search_record(options.run_dir, replace(record, status="interrupted"))
        options.say(f"interrupted; continue with: fracture-tune search --resume {options.name}")
        raise
    rows, best = finish_search(result_grid, config, options.run_dir, parent)
    _settle_optuna_study(config, options, rows)
    records = _check_and_report(config, options, parent, rows, best)
    frame = read_results(options.run_dir)
    record = replace(
        record,
        status="finished" if best is not None else "failed",
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    write_search_record(options.run_dir, record)
    result = _result(record, frame, best)
    options.say(result.summary())
    options.say(records.summary())
    if best is None:
        raise SearchFailed(
            f"search {options.name}: no trial reported {config.metric}; every trial failed",
            result,
            hint=f"read the trials' errors: fracture-tune search show {options.name}, or the MLflow runs",
        )
    options.say(
        f"best trial {best.trial_id}: {config.metric}={best.metric_value:.4f} at epoch {best.best_epoch} "
        f"-> {options.run_dir / 'best_trial.json'}"
    )
    options.say(f"MLflow runs of {options.name}: {result.mlflow_runs_page()}")
    if result.optuna_storage:
        options.say(f"Optuna study {options.name}: {dashboard_command(result.optuna_storage)}")
    return result


def _settle_optuna_study(
    config: ExperimentConfig, options: SearchOptions, rows: list[dict[str, Any]]
) -> None:
    """Tell Optuna about the trials Tune stopped without telling the searcher (budget cut-offs)."""
    url = storage_url(config.searcher.storage, options.run_dir)
    try:
        settle_study(url, options.name, rows, config.score_rule)
    except Exception as error:  # noqa: BLE001 - the results on disk matter more than the study's states
        logger.warning("could not update the Optuna study's trial states: %s", error_summary(error))


def _check_and_report(
    config: ExperimentConfig,
    options: SearchOptions,
    parent: ParentRun,
    rows: list[dict[str, Any]],
    best: BestTrial | None,
) -> Reconciliation:
    """Compare the search's records (``reconcile``), write its report and log both to the parent run."""
    from fracture_tune.search.reconcile import write_reconciliation
    from fracture_tune.search.search_report import write_search_report

    url = storage_url(config.searcher.storage, options.run_dir)
    records = check_records(options.run_dir, options.name, rows, config.score_rule, parent, url, best)
    write_reconciliation(options.run_dir, records)
    report = write_search_report(options.run_dir, options.name, rows, config, best, records)
    options.say(report.importance.table.to_text())
    tags = {"records_agree": str(records.agree).lower()}
    _mlflow_best_effort(options.run_dir, parent.log_report, str(report.folder), tags)
    return records


def check_records(
    run_dir: Path,
    name: str,
    rows: list[dict[str, Any]],
    rule: ScoreRule,
    parent: ParentRun | None,
    study_url: str,
    best: BestTrial | None,
) -> Reconciliation:
    """Read MLflow's trial runs and the Optuna study (each best effort: an unreachable one is named, not
    compared) and reconcile them with the run folder's records."""
    import optuna

    from fracture_tune.search.reconcile import reconcile
    from fracture_tune.search.tracking import trial_runs

    notes: list[str] = []
    mlflow_runs = None
    if parent is not None:
        try:
            mlflow_runs = list(trial_runs(parent))
        except Exception as error:  # noqa: BLE001 - a record that cannot be read is named, not compared
            notes.append(f"MLflow not compared: {error_summary(error)}")
    study_trials = None
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(study_url))
        study_trials = study.get_trials(deepcopy=False)
    except Exception as error:  # noqa: BLE001
        notes.append(f"the Optuna study not compared: {error_summary(error)}")
    report = reconcile(
        run_dir,
        rows,
        rule,
        mlflow_runs=mlflow_runs,
        study_trials=study_trials,
        best_trial_id=best.trial_id if best is not None else None,
    )
    report.notes = notes + report.notes
    return report


def finish_search(
    result_grid: Any, config: ExperimentConfig, run_dir: Path, parent: ParentRun
) -> tuple[list[dict[str, Any]], BestTrial | None]:
    """The results table, ``best_trial.json`` and the parent run's summary (MLflow best effort)."""
    rows = trial_rows(result_grid, config, run_dir)
    # MLflow may be unreachable now: the results table and best_trial.json are written regardless.
    _mlflow_best_effort(run_dir, attach_mlflow_ids, rows, parent)
    write_results(run_dir, rows)
    best = choose_best(rows, config, run_dir)
    tags = {"num_trials": str(len(rows))}
    metrics: dict[str, float] = {}
    if best is not None:
        tags.update(
            {
                "best_trial_id": best.trial_id,
                "best_mlflow_run_id": best.mlflow_run_id,
                "best_config": str(best.config),
                "best_epoch": str(best.best_epoch),
            }
        )
        metrics[f"best_{config.metric}"] = best.metric_value
    _mlflow_best_effort(run_dir, parent.finish, "FINISHED" if best is not None else "FAILED", tags, metrics)
    _mlflow_best_effort(run_dir, parent.log_artifact, str(run_dir / "results.csv"))
    return rows, best


def _mlflow_best_effort(run_dir: Path, function: Any, *args: Any) -> None:
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 - results on disk matter more than their MLflow copy
        reason = error_summary(error)
        add_to_mlflow_backlog(run_dir, run_dir.name, f"{getattr(function, '__name__', 'update')}: {reason}")
        logger.warning(
            "MLflow unreachable at the end of the search (%s); results on disk are complete: "
            "backfill with `fracture-tune search sync-mlflow %s`",
            reason,
            run_dir.name,
        )


def _new_record(
    config: ExperimentConfig, options: SearchOptions, prepared: PrepareResult, parent: ParentRun
) -> SearchRecord:
    return SearchRecord(
        name=options.name,
        run_dir=str(options.run_dir),
        dataset_cache_dir=str(Path(prepared.dataset.root).resolve()),
        dataset_key=prepared.dataset.key,
        split_hash=prepared.dataset.split_hash,
        metric=config.metric,
        mode=config.metric_mode,
        best_trial_rule={"scope": config.best_trial.scope, "min_epochs": config.min_epochs},
        tracking_uri=redact_secrets(parent.tracking_uri),
        experiment_name=config.tracking.experiment_name,
        experiment_id=parent.experiment_id,
        parent_run_id=parent.run_id,
        code_version=code_version(),
        library_versions=library_versions(),
        status="running",
        num_trials_planned=config.budget.num_trials,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        extra={"optuna_storage": storage_url(config.searcher.storage, options.run_dir)},
    )


def _result(record: SearchRecord, results: pd.DataFrame, best: BestTrial | None) -> SearchResult:
    return SearchResult(
        name=record.name,
        status=record.status,
        run_dir=Path(record.run_dir),
        results=results,
        best_trial=best,
        metric=record.metric,
        mode=record.mode,
        dataset_key=record.dataset_key,
        split_hash=record.split_hash,
        tracking_uri=record.tracking_uri,
        experiment_id=record.experiment_id,
        parent_run_id=record.parent_run_id,
        mlflow_updates_missing=mlflow_updates_missing(Path(record.run_dir)),
        optuna_storage=str(record.extra.get("optuna_storage", "")),
        score_rule=score_rule_of(record),
    )


def _saved_search(options: SearchOptions) -> tuple[ExperimentConfig, SearchRecord]:
    run_dir = options.run_dir
    if not (run_dir / RESOLVED_CONFIG_FILE).exists():
        raise FractureTuneError(
            f"no search named {options.name!r} under {Path(options.storage).expanduser().resolve()}",
            hint="list runs with `ls .fracture-tune/runs`, or pass --storage",
        )
    return load_config(run_dir / RESOLVED_CONFIG_FILE), read_search_record(run_dir)


def _sync(options: SearchOptions) -> int:
    from ray.tune import ExperimentAnalysis

    from fracture_tune.search.tracking import TrialRunLogger

    config, record = _saved_search(options)
    uri = resolve_tracking_uri(options.tracking_uri, record.tracking_uri, config.tracking.tracking_uri)
    parent = ParentRun.start(uri, record.experiment_id, options.name, record.parent_run_id)
    trial_logger = TrialRunLogger(parent, options.name, config.metric, config.planned_epochs)
    analysis = ExperimentAnalysis(str(options.run_dir))
    stops = StopLedger(options.run_dir).all()
    synced = 0
    for trial in analysis.trials:
        frame = analysis.trial_dataframes.get(trial.trial_id)
        if trial.status != "ERROR" and (frame is None or not len(frame)):
            continue  # never started (e.g. the time budget ran out first): no run to write
        config_values = dict(trial.config)
        for _, row in frame.iterrows() if frame is not None else []:
            trial_logger.log_result(trial.trial_id, config_values, row.to_dict())
        epochs = (
            int(frame["epoch"].max()) if frame is not None and "epoch" in frame.columns and len(frame) else 0
        )
        stop = stops.get(trial.trial_id)
        if trial.status == "ERROR" and (stop is None or stop.reason != ERROR):
            stop = TrialStop(ERROR, epochs, "trial failed (synced from disk; see its trial folder)")
        elif trial.status == "TERMINATED" and stop is None:
            stop = TrialStop(INTERRUPTED, epochs)  # ended with no record: its driver was stopped first
        if stop is not None:
            trial_logger.finish(trial.trial_id, config_values, stop)
        synced += 1
    (options.run_dir / MLFLOW_BACKLOG_FILE).unlink(missing_ok=True)
    # Reopening the parent set it RUNNING; put back what the search itself ended with.
    ended = {"finished": "FINISHED", "failed": "FAILED"}.get(record.status, "KILLED")
    parent.finish(ended, {}, {})
    options.say(f"synced {synced} trials of {options.name} into MLflow run {parent.run_id}")
    return synced
