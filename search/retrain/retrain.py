"""Retrain: the chosen configuration, trained for the full schedule, tested once, logged and registered.

1. What to train (``source.py``): the search's best trial (``best_trial.json``, the search's own rule), a
   trial picked by its MLflow run id, or a flat config.
2. The prepared dataset is the one the search used; its key and split hash must equal the search
   record's (a re-prepared dataset with another split would leak test images into the comparison).
3. Train N seeds; the first seed (the trial's own) is the model that is reported and registered.
4. Threshold chosen on VALIDATION for the target sensitivity; the TEST split is scored once per model.
5. Report (JSON + Markdown + plots), an MLflow run nested under the search's parent run, the registry.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fracture_tune.classifier.call_environment import call_environment
from fracture_tune.classifier.evaluation import MetricInterval
from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.errors import FractureTuneError
from fracture_tune.search.progress_output import Progress
from fracture_tune.search.records import score_rule_of
from fracture_tune.search.retrain.progress import RetrainProgress
from fracture_tune.search.retrain.report import (
    DatasetSummary,
    RetrainReport,
    baseline_result,
    optimized_result,
    reproduction_check,
    seed_spread,
    trial_summary,
)
from fracture_tune.search.retrain.report_files import write_plots, write_report, write_test_predictions
from fracture_tune.search.retrain.selection import RerankEntry, fresh_seeds, ranked_finalists, rerank_order
from fracture_tune.search.retrain.source import RetrainSource, resolve_source
from fracture_tune.search.retrain.types import TRAIN_ON_CHOICES, RetrainOptions, TrainedModel
from fracture_tune.trainables.score import ScoreRule

if TYPE_CHECKING:
    from fracture_tune.search.records import BestTrial

log = logging.getLogger(__name__)

# Keys a retrain overrides: the full data and all this machine's threads, whatever the trial used.
FULL_RUN_OVERRIDES: dict[str, Any] = {"train_limit": 0, "val_limit": 0, "num_threads": 0}


@dataclass
class RetrainResult:
    """What a retrain produced: the typed report (also ``report.json``/``report.md`` in ``out_dir``)."""

    report: RetrainReport
    out_dir: Path

    @property
    def test_metrics(self) -> dict[str, MetricInterval]:
        """Test metrics at threshold 0.5 with 95 % bootstrap CIs (``auroc``, ``sensitivity``, …)."""
        return self.report.optimized.test

    @property
    def model_uri(self) -> str:
        """The logged model (``runs:/…`` or ``models:/m-…``), loadable with ``load_classifier``."""
        return self.report.model.uri if self.report.model else ""

    @property
    def registered_uri(self) -> str | None:
        """``models:/NAME/VERSION`` when the model was registered."""
        return self.report.registry.uri if self.report.registry else None


def retrain(
    search: str | None = None,
    *,
    run_id: str | None = None,
    config: dict[str, Any] | str | os.PathLike[str] | None = None,
    dataset: str | os.PathLike[str] | None = None,
    storage: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    epochs: int = 30,
    train_on: str = "train",
    seeds: int = 1,
    tracking_uri: str | None = None,
    register_name: str = "fracture-classifier",
    register: bool = True,
    promote: str = "if-better",
    target_sensitivity: float = 0.9,
    baseline: bool = True,
    resamples: int = 1000,
    device: str | None = None,
    ensemble: int = 1,
    rerank_top_k: int | None = None,
    rerank_seeds: int | None = None,
    progress: Progress = False,
) -> RetrainResult:
    """Retrain a search's best trial (``search``), a trial by MLflow ``run_id``, or a flat ``config`` (a dict
    or a JSON file; needs ``dataset``, a prepared cache folder) for ``epochs``; test it once, log it to MLflow
    under the search's run and register it as ``register_name`` (the ``champion`` alias per ``promote``).

    With ``rerank_top_k`` (default: the search's ``evaluation.rerank_top_k``) the search's k best distinct
    configurations are trained ``rerank_seeds`` times with fresh seeds and the best mean validation score
    wins; with ``ensemble`` K >= 2 the K best distinct configurations are registered as one model that
    averages their probabilities (``selection.py``). Both need ``search``.

    ``progress``: True prints a line per epoch of each model it trains (model, epoch, validation metric,
    time since the start), a callable receives each line; False (the default) prints nothing.

    Raises ``FractureTuneError`` for bad input.
    """
    as_path = lambda value: Path(value) if value is not None else None  # noqa: E731
    options = RetrainOptions(
        search=search,
        run_id=run_id,
        config=config if isinstance(config, dict) or config is None else Path(config),
        dataset=as_path(dataset),
        storage=as_path(storage),
        out_dir=as_path(out_dir),
        epochs=epochs,
        train_on=train_on,
        seeds=seeds,
        tracking_uri=tracking_uri,
        register_name=register_name,
        register=register,
        promote=promote,
        target_sensitivity=target_sensitivity,
        baseline=baseline,
        resamples=resamples,
        device=device,
        ensemble=ensemble,
        rerank_top_k=rerank_top_k,
        rerank_seeds=rerank_seeds,
        progress=progress,
    )
    return run_retrain(options)


def run_retrain(options: RetrainOptions) -> RetrainResult:
    """Everything a retrain does; the report is also written as report.json/.md in the output folder."""
    _validate(options)
    progress = RetrainProgress(options.progress)
    with call_environment():
        from fracture_tune.data.prepare import load_prepared
        from fracture_tune.search.retrain.baseline import base_recipe_config
        from fracture_tune.search.retrain.mlflow_run import record_retrain

        source = resolve_source(options)
        dataset = load_prepared(source.dataset_dir)
        if source.record is not None:
            check_dataset_matches(
                source.record.dataset_key, source.record.split_hash, dataset.arrays, source.dataset_dir
            )
        data = dataset.arrays
        out_dir = _output_dir(options, source)
        plan = selection_plan(options, source)
        # A search's retrain scores every curve by the search's own rule; a config's keeps its last epoch.
        rule = score_rule_of(source.record) if source.record is not None else None
        trained: dict[str, list[TrainedModel]] = {}
        finalists: list[BestTrial] = []
        rerank: list[RerankEntry] = []
        if plan.finalists > 1:
            assert source.run_dir is not None
            finalists = ranked_finalists(source.run_dir, plan.finalists)
            if len(finalists) < plan.ensemble:
                raise FractureTuneError(
                    f"--ensemble {plan.ensemble}: search {source.search_name!r} has {len(finalists)} "
                    "distinct configuration(s) with a score",
                    hint="use a smaller --ensemble, or run a longer search",
                )
        if plan.rerank_top_k > 1 and len(finalists) > 1:
            top = finalists[: plan.rerank_top_k]
            rerank, trained = rerank_finalists(top, plan.rerank_seeds, data, options, rule, progress)
            by_id = {trial.trial_id: trial for trial in finalists}
            finalists = [by_id[entry.trial_id] for entry in rerank] + finalists[len(rerank) :]
            source = replace(
                source,
                config=dict(finalists[0].config),
                trial=finalists[0],
                description=f"search {source.search_name!r}, trial {finalists[0].trial_id} "
                f"(re-ranked first of {len(rerank)})",
            )
        first_seed = int(source.config.get("seed", 0))
        models = list(trained.get(source.trial.trial_id, [])) if source.trial is not None else []
        seeds = [int(model.config["seed"]) for model in models]
        next_seed = first_seed
        while len(models) < options.seeds:
            while next_seed in seeds:
                next_seed += 1
            models.append(
                train_and_score(
                    f"seed {next_seed}",
                    trained_config(
                        source.config, epochs=options.epochs, seed=next_seed, device=options.device
                    ),
                    data,
                    options.train_on,
                    rule,
                    progress,
                )
            )
            seeds.append(next_seed)
        primary = models[0]
        registered, members = primary, None
        ensemble_summary = None
        if plan.ensemble > 1:
            member_models = [primary] + [
                _member_model(trial, trained, data, options, rule, progress)
                for trial in finalists[1 : plan.ensemble]
            ]
            registered, members = ensemble_of(member_models, finalists[: plan.ensemble], data)
            ensemble_summary = ensemble_report(
                registered, member_models, finalists[: plan.ensemble], primary, data, options
            )
        base = None
        if options.baseline:
            base_config = base_recipe_config(primary.config, options.epochs)
            base = train_and_score("seed base CNN", base_config, data, options.train_on, rule, progress)
        progress.say("testing once on the test split, logging to MLflow, registering")
        report = _build_report(options, source, data, models, base, registered)
        report.rerank = _rerank_summary(rerank, finalists) if rerank else None
        report.ensemble = ensemble_summary
        extra_columns = {"single_best": primary.test_probabilities} if registered is not primary else {}
        if ensemble_summary is not None:
            extra_columns.update(
                {f"member_{index + 1}": model.test_probabilities for index, model in enumerate(member_models)}
            )
        write_test_predictions(out_dir, dataset.source_paths, data, registered, extra_columns)
        report.plots = write_plots(out_dir, data, registered, report.optimized, base)
        record_retrain(options, source, data, registered, report, out_dir, members=members)
        write_report(out_dir, report)
    return RetrainResult(report, out_dir)


@dataclass(frozen=True)
class SelectionPlan:
    rerank_top_k: int
    rerank_seeds: int
    ensemble: int

    @property
    def finalists(self) -> int:
        return max(self.rerank_top_k, self.ensemble, 1)


def selection_plan(options: RetrainOptions, source: RetrainSource) -> SelectionPlan:
    """Re-ranking and ensemble sizes: the options', else the search's ``evaluation`` section."""
    evaluation = None
    if source.run_dir is not None and options.search:
        from fracture_tune.search.config import load_config
        from fracture_tune.search.records import RESOLVED_CONFIG_FILE

        saved = source.run_dir / RESOLVED_CONFIG_FILE
        evaluation = load_config(saved).evaluation if saved.is_file() else None
    top_k = (
        options.rerank_top_k
        if options.rerank_top_k is not None
        else (evaluation.rerank_top_k if evaluation else 0)
    )
    seeds = (
        options.rerank_seeds
        if options.rerank_seeds is not None
        else (evaluation.rerank_seeds if evaluation else 1)
    )
    if (top_k > 1 or options.ensemble > 1) and not options.search:
        flag = "--ensemble" if options.ensemble > 1 else "--rerank"
        raise FractureTuneError(
            f"{flag} needs --search NAME: it picks among a search's trials",
            hint="e.g. fracture-tune retrain --search NAME --ensemble 3",
        )
    if top_k > 1 and options.train_on == "train+val":
        raise FractureTuneError(
            "re-ranking scores finalists on the validation split, which --train-on train+val trains on",
            hint="use --train-on train, or --rerank 0",
        )
    return SelectionPlan(rerank_top_k=top_k, rerank_seeds=seeds, ensemble=options.ensemble)


def rerank_finalists(
    finalists: list[BestTrial],
    seeds: int,
    data: DatasetArrays,
    options: RetrainOptions,
    rule: ScoreRule | None = None,
    progress: RetrainProgress | None = None,
) -> tuple[list[RerankEntry], dict[str, list[TrainedModel]]]:
    """Train each finalist ``seeds`` times with fresh seeds; entries best mean first, and the models. Each
    training is scored by the search's ``rule`` (its last epoch without one)."""
    entries, trained = [], {}
    for rank, trial in enumerate(finalists, start=1):
        models = [
            train_and_score(
                f"trial {trial.trial_id} seed {seed}",
                trained_config(trial.config, epochs=options.epochs, seed=seed, device=options.device),
                data,
                options.train_on,
                rule,
                progress,
            )
            for seed in fresh_seeds(trial.config, seeds)
        ]
        trained[trial.trial_id] = models
        last = [float(model.history[-1][trial.metric]) for model in models]
        scores = [model.score for model in models] if rule is not None else last
        entries.append(
            RerankEntry(
                trial.trial_id,
                rank,
                trial.metric_value,
                [int(model.config["seed"]) for model in models],
                scores,
            )
        )
        log.info(
            "re-ranking: trial %s (search rank %d) %s %s",
            trial.trial_id,
            rank,
            trial.metric,
            ", ".join(f"{score:.4f}" for score in scores),
        )
    return rerank_order(entries, finalists[0].mode), trained


def _member_model(
    trial: BestTrial,
    trained: dict[str, list[TrainedModel]],
    data: DatasetArrays,
    options: RetrainOptions,
    rule: ScoreRule | None = None,
    progress: RetrainProgress | None = None,
) -> TrainedModel:
    """A member's model: its first re-ranking model, else one trained with the trial's own seed."""
    if trained.get(trial.trial_id):
        return trained[trial.trial_id][0]
    seed = int(trial.config.get("seed", 0))
    config = trained_config(trial.config, epochs=options.epochs, seed=seed, device=options.device)
    label = f"trial {trial.trial_id} seed {seed}"
    return train_and_score(label, config, data, options.train_on, rule, progress)


def ensemble_of(
    members: list[TrainedModel], trials: list[BestTrial], data: DatasetArrays
) -> tuple[TrainedModel, list[dict[str, Any]]]:
    """The members as one model, scored through its own forward pass (validation, then test once)."""
    from fracture_tune.classifier.package import (
        build_ensemble,
        ensemble_members_metadata,
        ensemble_probabilities,
    )

    configs = [model.config for model in members]
    ensemble = build_ensemble([model.model for model in members], configs, data.image_size)
    labels = [f"trial {trial.trial_id}" for trial in trials]
    metadata = ensemble_members_metadata(configs, labels, image_size=data.image_size)
    scored = TrainedModel(
        f"ensemble of {len(members)}",
        members[0].config,
        ensemble,
        members[0].history,
        ensemble_probabilities(ensemble, data.images[data.indices("val")], data.image_size),
        ensemble_probabilities(ensemble, data.images[data.indices("test")], data.image_size),
        sum(model.train_seconds for model in members),
        members[0].weights_epoch,
    )
    return scored, metadata


def ensemble_report(
    ensemble: TrainedModel,
    members: list[TrainedModel],
    trials: list[BestTrial],
    single_best: TrainedModel,
    data: DatasetArrays,
    options: RetrainOptions,
) -> dict[str, Any]:
    """The ensemble beside the single best model: each member's test AUROC, the single best model's full
    evaluation and the paired bootstrap CI of AUROC(ensemble) − AUROC(single best) on the same images."""
    from fracture_tune.classifier.evaluation import bootstrap_metrics, paired_auroc_difference

    labels = np.asarray(data.labels[data.indices("test")])
    single = optimized_result(
        single_best, data, target_sensitivity=options.target_sensitivity, resamples=options.resamples
    )
    difference = paired_auroc_difference(
        labels, ensemble.test_probabilities, single_best.test_probabilities, n_resamples=options.resamples
    )
    return {
        "members": [
            {
                "trial_id": trial.trial_id,
                "seed": int(model.config["seed"]),
                "input_size": int(model.config.get("input_size") or data.image_size),
                "search_score": trial.metric_value,
                "test_auroc": bootstrap_metrics(
                    labels, model.test_probabilities, n_resamples=options.resamples
                )["auroc"].as_dict(),
            }
            for trial, model in zip(trials, members, strict=True)
        ],
        "single_best": asdict(single),
        "auroc_minus_single_best": difference.as_dict(),
    }


def _rerank_summary(entries: list[RerankEntry], finalists: list[BestTrial]) -> dict[str, Any]:
    return {
        "rule": "best mean over fresh seeds of each training's validation score by the search's rule (the "
        "epoch whose weights it keeps); ties keep the search's order",
        "metric": finalists[0].metric,
        "winner": entries[0].trial_id,
        "search_winner": next(entry.trial_id for entry in entries if entry.search_rank == 1),
        "entries": [entry.to_dict() for entry in entries],
    }


def check_dataset_matches(
    record_key: str, record_split_hash: str, arrays: DatasetArrays, cache_dir: Path
) -> None:
    """Refuse a cache whose key or split differs from what the search recorded."""
    problems = []
    if record_key and arrays.dataset_key != record_key:
        problems.append(f"dataset key: search recorded {record_key}, cache has {arrays.dataset_key}")
    if record_split_hash and arrays.split_hash != record_split_hash:
        problems.append(f"split hash: search recorded {record_split_hash}, cache has {arrays.split_hash}")
    if problems:
        raise FractureTuneError(
            f"the prepared dataset at {str(cache_dir)!r} is not the one the search used ("
            + "; ".join(problems)
            + ")",
            hint="retrain with the search's own cache (it is recorded in search_record.json), re-run "
            "`fracture-tune data prepare` with the same source and parameters (same seed and fractions), "
            "or start a new search on this dataset",
        )


def trained_config(base: dict[str, Any], *, epochs: int, seed: int, device: str | None) -> dict[str, Any]:
    config = {**base, **FULL_RUN_OVERRIDES, "epochs": int(epochs), "seed": int(seed)}
    if device:
        config["device"] = device
    return config


def train_and_score(
    label: str,
    config: dict[str, Any],
    data: DatasetArrays,
    train_on: str,
    rule: ScoreRule | None = None,
    progress: RetrainProgress | None = None,
) -> TrainedModel:
    """Fit ``config``; score validation and the untouched test split (once).

    With ``rule`` (the search's, ``trainables/score.py``) and a held-out validation split, the model keeps
    the weights of its score epoch — the epoch the search's rule would score this curve by, the same number
    re-ranking compares — instead of its last; the test split plays no part in it. ``progress`` reports its
    epochs.
    """
    from fracture_tune.trainables.engine import fit, predict_proba

    splits = ("train", "val") if train_on == "train+val" else ("train",)
    keeper = ScoreEpochWeights(rule if train_on == "train" else None)
    callbacks: list[Any] = [keeper]
    if progress is not None:
        callbacks.append(
            progress.for_model(label, int(config["epochs"]), rule.metric if rule else "val_auroc")
        )
    started = time.perf_counter()
    result = fit(config, data, train_splits=splits, eval_split="val", callbacks=callbacks)
    seconds = time.perf_counter() - started
    weights_epoch = keeper.restore(result.model)
    val_probabilities = predict_proba(result.model, data.images[data.indices("val")], result.config)
    test_probabilities = predict_proba(result.model, data.images[data.indices("test")], result.config)
    log.info(
        "%s: trained %d epochs in %.1f s; weights of epoch %d",
        label,
        result.config.epochs,
        seconds,
        weights_epoch,
    )
    return TrainedModel(
        label,
        result.config.to_flat(),
        result.model.cpu().eval(),
        result.history,
        val_probabilities,
        test_probabilities,
        seconds,
        weights_epoch,
        keeper.score,
    )


class ScoreEpochWeights:
    """An engine callback keeping the weights of the epoch ``rule`` scores the curve by (None: the last)."""

    def __init__(self, rule: ScoreRule | None) -> None:
        self.rule = rule
        self.values: list[float] = []
        self.state: dict[str, Any] | None = None
        self.epoch = 0
        self.score = math.nan

    def __call__(self, metrics: dict[str, float], snapshot: Any) -> None:
        if self.rule is None:
            self.epoch = len(self.values) + 1
            self.values.append(math.nan)
            return
        self.values.append(float(metrics.get(self.rule.metric, math.nan)))
        self.score, epoch = self.rule.score(self.values)
        if epoch == len(self.values):  # a new score epoch: keep its weights (a CPU copy)
            self.state, self.epoch = snapshot()["model"], epoch

    def restore(self, model: Any) -> int:
        """Load the kept weights into ``model`` (trained to its last epoch); returns their epoch."""
        if self.state is not None and self.epoch != len(self.values):
            model.load_state_dict(self.state)
        return self.epoch or len(self.values)


def _validate(options: RetrainOptions) -> None:
    if options.epochs < 1 or options.seeds < 1 or options.resamples < 1:
        raise FractureTuneError(
            f"--epochs, --seeds and --resamples must be >= 1 (got {options.epochs}, {options.seeds}, "
            f"{options.resamples})"
        )
    if options.train_on not in TRAIN_ON_CHOICES:
        raise FractureTuneError(f"--train-on {options.train_on!r}: use one of {', '.join(TRAIN_ON_CHOICES)}")
    if options.ensemble < 1 or (options.rerank_top_k or 0) < 0 or (options.rerank_seeds or 1) < 1:
        raise FractureTuneError(
            f"--ensemble must be >= 1, --rerank >= 0 and --rerank-seeds >= 1 (got {options.ensemble}, "
            f"{options.rerank_top_k}, {options.rerank_seeds})"
        )


def _output_dir(options: RetrainOptions, source: RetrainSource) -> Path:
    if options.out_dir:
        folder = Path(options.out_dir)
    elif source.run_dir is not None:
        folder = source.run_dir / "retrain"
    else:
        folder = Path(".fracture-tune") / "retrain" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def _build_report(
    options: RetrainOptions,
    source: RetrainSource,
    data: DatasetArrays,
    models: list[TrainedModel],
    baseline: TrainedModel | None,
    registered: TrainedModel | None = None,
) -> RetrainReport:
    primary = models[0]
    registered = registered or primary
    test_labels = np.asarray(data.labels[data.indices("test")])
    target, resamples = options.target_sensitivity, options.resamples
    history = {"optimized": primary.history}
    if baseline is not None:
        history["baseline"] = baseline.history
    warnings = []
    if options.train_on == "train+val":
        warnings.append("trained on train+val: the threshold was chosen on images the model trained on")
    return RetrainReport(
        source=source.description,
        search=source.search_name,
        trial=trial_summary(source.trial),
        dataset=DatasetSummary(
            cache_dir=str(source.dataset_dir),
            key=data.dataset_key,
            split_hash=data.split_hash,
            class_names=list(data.class_names),
            train_size=int(data.indices("train").size),
            val_size=int(data.indices("val").size),
            test_size=int(data.indices("test").size),
        ),
        train_on=options.train_on,
        epochs=options.epochs,
        config=primary.config,
        optimized=optimized_result(registered, data, target_sensitivity=target, resamples=resamples),
        seeds=seed_spread(models, test_labels),
        reproduction=reproduction_check(source.trial, primary.history, options.train_on),
        baseline=(
            baseline_result(baseline, data, target_sensitivity=target, resamples=resamples)
            if baseline is not None
            else None
        ),
        history=history,
        warnings=warnings,
    )
