"""The training engine on tiny synthetic arrays (CPU, seconds)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.checkpoint import load_checkpoint, save_checkpoint
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.engine import TrainingDiverged, fit, predict_proba, select_indices
from fracture_tune.trainables.metrics import binary_metrics
from fracture_tune.trainables.optim import build_loss, build_scheduler, lr_multiplier
from fracture_tune.trainables.trainer import batch_bounds

METRIC_KEYS = {
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_balanced_accuracy",
    "val_auroc",
    "val_sensitivity",
    "val_specificity",
    "val_f1",
    "lr",
    "images_per_second",
    "epoch_seconds",
}
TIMING_KEYS = {"images_per_second", "epoch_seconds"}


@pytest.fixture(scope="module")
def arrays() -> DatasetArrays:
    """96 train / 32 val / 16 test images of 24 px; fractured ones carry a bright bar (learnable)."""
    rng = np.random.default_rng(0)
    count = 144
    labels = rng.integers(0, 2, count).astype(np.int64)
    images = rng.integers(0, 100, (count, 24, 24)).astype(np.uint8)
    images[labels == 1, 8:16, 10:14] = 240
    split = np.array([0] * 96 + [1] * 32 + [2] * 16, dtype=np.int8)
    images.setflags(write=False)  # as from Ray's object store
    return DatasetArrays(images=images, labels=labels, split=split)


TUNED = {
    "model": "tunable_cnn",
    "c1": 4,
    "c2": 4,
    "c3": 8,
    "dropout": 0.5,
    "batch_size": 16,
    "lr": 3e-3,
    "aug_strength": 1.0,
    "aug_factor": 2,
    "epochs": 3,
    "seed": 3,
    "num_threads": 1,
}


def _without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_fit_reports_contract_metrics_each_epoch(arrays: DatasetArrays) -> None:
    seen: list[dict[str, float]] = []
    result = fit(
        {"model": "tiny_cnn", "epochs": 2, "batch_size": 16, "lr": 0.01},
        arrays,
        callbacks=[lambda metrics, snapshot: seen.append(metrics)],
    )
    assert [row["epoch"] for row in seen] == [1.0, 2.0]
    for row in seen:
        assert set(row) == METRIC_KEYS
        assert all(type(v) is float and math.isfinite(v) for v in row.values())  # plain floats for Tune
    assert result.history == seen
    assert not result.model.training


def test_learns_the_synthetic_signal(arrays: DatasetArrays) -> None:
    result = fit({"model": "base_cnn", "epochs": 4, "batch_size": 16, "lr": 2e-3, "num_threads": 1}, arrays)
    assert result.history[-1]["val_auroc"] > 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_same_seed_same_metrics_other_seed_differs(arrays: DatasetArrays) -> None:
    first = fit(TUNED, arrays).history
    again = fit(TUNED, arrays).history
    other = fit({**TUNED, "seed": 4}, arrays).history
    assert _without_timing(first) == _without_timing(again)
    assert _without_timing(first) != _without_timing(other)


def test_resume_from_checkpoint_matches_uninterrupted_run(arrays: DatasetArrays, tmp_path: Path) -> None:
    config = {**TUNED, "schedule": "cosine", "warmup_epochs": 1, "optimizer": "adamw", "weight_decay": 0.01}
    saved: dict[int, Path] = {}

    def save(metrics: dict[str, float], snapshot: Any) -> None:
        epoch = int(metrics["epoch"])
        saved[epoch] = save_checkpoint(tmp_path / f"epoch{epoch}.pt", snapshot())

    uninterrupted = fit(config, arrays, callbacks=[save]).history
    state = load_checkpoint(saved[1])
    assert state["epoch"] == 1
    resumed_epochs: list[dict[str, float]] = []
    resumed = fit(
        config,
        arrays,
        resume_state=state,
        callbacks=[lambda metrics, snapshot: resumed_epochs.append(metrics)],
    ).history
    assert [row["epoch"] for row in resumed_epochs] == [2.0, 3.0]
    for expected, actual in zip(_without_timing(uninterrupted), _without_timing(resumed), strict=True):
        assert actual == pytest.approx(expected, abs=1e-6)


def test_checkpoint_is_weights_only_and_atomic(arrays: DatasetArrays, tmp_path: Path) -> None:
    result = fit({"model": "tiny_cnn", "epochs": 1, "batch_size": 32}, arrays)
    path = save_checkpoint(tmp_path, result.snapshot())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training_state.pt"]  # no temp files left
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and state["config"]["model"] == "tiny_cnn"
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FractureTuneError, match="cannot read training checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_divergence_raises_with_epoch_step_and_hint(arrays: DatasetArrays) -> None:
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d+") as caught:
        fit(
            {
                "model": "base_cnn",
                "input_size": 16,
                "epochs": 2,
                "batch_size": 8,
                "lr": 1e15,
                "optimizer": "sgd",
            },
            arrays,
        )
    assert caught.value.hint and "grad_clip" in caught.value.hint


def test_predict_proba_matches_the_training_evaluation(arrays: DatasetArrays) -> None:
    config = {"model": "tiny_cnn", "epochs": 1, "batch_size": 16, "input_size": 16, "val_limit": 20}
    result = fit(config, arrays)
    val_rows = select_indices(arrays, ["val"], 20)
    probabilities = predict_proba(result.model, arrays.images[val_rows], config, batch_size=7)
    assert probabilities.shape == (20,) and np.all((probabilities >= 0) & (probabilities <= 1))
    recomputed = binary_metrics(arrays.labels[val_rows], probabilities)
    assert recomputed["loss"] == pytest.approx(result.history[-1]["val_loss"], abs=1e-6)


def test_limits_take_a_fixed_slice_of_the_split(arrays: DatasetArrays) -> None:
    rows = select_indices(arrays, ["train"], 40)
    assert rows.size == 40 and set(rows) <= set(arrays.indices("train"))
    assert np.array_equal(rows, select_indices(arrays, ["train"], 40))
    assert select_indices(arrays, ["train", "val"], 0).size == 128


def test_batches_and_schedules() -> None:
    assert batch_bounds(33, 16) == [(0, 16), (16, 32)]  # a trailing batch of one is dropped
    assert batch_bounds(34, 16)[-1] == (32, 34)
    warm = [lr_multiplier(s, total_steps=100, warmup_steps=10, schedule="constant") for s in range(12)]
    assert warm[0] == pytest.approx(0.1) and warm[9] == 1.0 and warm[11] == 1.0
    cosine = [lr_multiplier(s, total_steps=100, warmup_steps=0, schedule="cosine") for s in (0, 50, 100)]
    assert cosine == pytest.approx([1.0, 0.5, 0.0])
    steps = [lr_multiplier(s, total_steps=100, warmup_steps=0, schedule="step") for s in (10, 60, 90)]
    assert steps == pytest.approx([1.0, 0.1, 0.01])


def test_onecycle_follows_torch_onecycle_lr() -> None:
    """The onecycle schedule, stepped alongside torch's OneCycleLR (div_factor=25, final_div_factor=1000).

    The conventions differ (trainables/optim.py): over N steps (0 … N-1) ours peaks at step 0.3·N and ends at
    step N, the lr left after the last step; torch's peaks at 0.3·N - 1 and ends at N - 1. So from the peak
    on ours is torch's one step later. Torch's rise is a cosine where ours is linear: the rise agrees with it
    at both ends only, and its linearity is checked on its own.
    """
    peak, steps_per_epoch, epochs = 0.2, 25, 4
    total = steps_per_epoch * epochs
    peak_step = 30  # 30 % of 100
    ours_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    ours_schedule = build_scheduler(
        ours_optimizer,
        TrainConfig.from_flat({"optimizer": "sgd", "lr": peak, "schedule": "onecycle", "epochs": epochs}),
        steps_per_epoch,
    )
    torch_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    torch_schedule = torch.optim.lr_scheduler.OneCycleLR(
        torch_optimizer,
        max_lr=peak,
        total_steps=total,
        pct_start=0.3,
        anneal_strategy="cos",
        div_factor=25,
        final_div_factor=1000,
        cycle_momentum=False,
    )
    # [s]: the lr optimiser step s uses; ours[total] is the lr after the last step.
    ours, torchs = [ours_optimizer.param_groups[0]["lr"]], [torch_optimizer.param_groups[0]["lr"]]
    for step in range(total):
        ours_optimizer.step()
        ours_schedule.step()
        ours.append(ours_optimizer.param_groups[0]["lr"])
        if step < total - 1:  # torch refuses to step past its last step
            torch_optimizer.step()
            torch_schedule.step()
            torchs.append(torch_optimizer.param_groups[0]["lr"])

    assert ours[0] == pytest.approx(peak / 25, rel=1e-12) and torchs[0] == pytest.approx(peak / 25, rel=1e-12)
    assert int(np.argmax(ours)) == peak_step and ours[peak_step] == pytest.approx(peak, rel=1e-12)
    assert torchs[peak_step - 1] == pytest.approx(peak, rel=1e-12)
    assert ours[peak_step:] == pytest.approx(torchs[peak_step - 1 :], rel=1e-9, abs=0)
    assert ours[-1] == pytest.approx(peak / 25_000, rel=1e-9) and torchs[-1] == pytest.approx(peak / 25_000)
    rise = np.diff(ours[: peak_step + 1])
    assert np.all(rise > 0) and rise == pytest.approx(np.full(peak_step, (peak - peak / 25) / peak_step))


@contextmanager
def _optimizer_steps() -> Iterator[list[dict[str, float]]]:
    """Records, just before every optimiser step, its lr, its momentum and the gradients' total norm."""
    seen: list[dict[str, float]] = []

    def record(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        group = optimizer.param_groups[0]
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        seen.append(
            {
                "lr": float(group["lr"]),
                "momentum": float(group.get("momentum", math.nan)),
                "grad_norm": float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))),
            }
        )

    handle = register_optimizer_step_pre_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


SMALL = {"model": "tiny_cnn", "epochs": 1, "batch_size": 16, "lr": 0.05, "optimizer": "sgd", "num_threads": 1}


def test_sgd_momentum_reaches_the_optimiser(arrays: DatasetArrays) -> None:
    with _optimizer_steps() as steps:
        result = fit({**SMALL, "momentum": 0.5}, arrays)  # not the key's default (0.9)
    assert steps and {step["momentum"] for step in steps} == {0.5}
    state = result.snapshot()["optimizer"]
    assert state["param_groups"][0]["momentum"] == 0.5
    assert all(entry.get("momentum_buffer") is not None for entry in state["state"].values())
    without = fit({**SMALL, "momentum": 0.0}, arrays).history
    assert without[0]["train_loss"] != pytest.approx(result.history[0]["train_loss"], rel=1e-6)


def test_label_smoothing_and_class_weights_reach_the_loss(
    arrays: DatasetArrays, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fracture_tune.trainables import trainer

    built: list[torch.nn.CrossEntropyLoss] = []

    def spy(*args: Any) -> torch.nn.CrossEntropyLoss:  # the loss the trainer builds and trains with
        built.append(build_loss(*args))
        return built[-1]

    monkeypatch.setattr(trainer, "build_loss", spy)
    config = {**SMALL, "label_smoothing": 0.2, "class_weighting": "balanced", "train_limit": 40}
    shaped = fit(config, arrays).history
    (loss,) = built
    assert loss.label_smoothing == 0.2
    # balanced: each class carries half the total weight, so the mean weight per image is 1
    labels = arrays.labels[select_indices(arrays, ["train"], 40)]
    counts = np.bincount(labels, minlength=2)
    assert counts[0] != counts[1]  # weights of 1 would pass for a balanced slice
    assert loss.weight is not None
    assert (loss.weight.numpy() * counts).tolist() == pytest.approx([len(labels) / 2] * 2)
    # ... and the loss the epoch reports is the one they define
    plain = fit({**SMALL, "train_limit": 40}, arrays).history
    smoothed_only = fit({**config, "class_weighting": "none"}, arrays).history
    assert len({round(run[0]["train_loss"], 9) for run in (shaped, plain, smoothed_only)}) == 3


def test_grad_clip_bounds_the_gradient_norm_of_every_step(arrays: DatasetArrays) -> None:
    with _optimizer_steps() as unclipped:
        fit(SMALL, arrays)
    with _optimizer_steps() as clipped:
        fit({**SMALL, "grad_clip": 0.05}, arrays)
    assert max(step["grad_norm"] for step in unclipped) > 0.1  # the clip has work to do
    assert len(clipped) == len(unclipped)
    assert all(step["grad_norm"] <= 0.05 * (1 + 1e-5) for step in clipped)


def test_schedule_and_warmup_set_the_lr_of_every_step(arrays: DatasetArrays) -> None:
    # 96 images / batch 16 = 6 steps an epoch; 1 warm-up epoch, then "step" over the 4 remaining epochs
    with _optimizer_steps() as steps:
        history = fit(
            {**SMALL, "epochs": 5, "lr": 0.01, "schedule": "step", "warmup_epochs": 1}, arrays
        ).history
    lrs = [step["lr"] for step in steps]
    assert len(lrs) == 30
    assert lrs[:6] == pytest.approx([0.01 * (s + 1) / 6 for s in range(6)])  # linear warm-up
    assert lrs[6:] == pytest.approx([0.01] * 12 + [0.001] * 6 + [0.0001] * 6)  # ×0.1 at 50 % and 75 %
    assert [row["lr"] for row in history] == pytest.approx([0.01, 0.01, 0.001, 0.0001, 0.0001])  # after each
    with _optimizer_steps() as constant:
        fit({**SMALL, "epochs": 2, "lr": 0.01}, arrays)
    assert {step["lr"] for step in constant} == {0.01}


def test_train_and_eval_splits_are_the_ones_named(arrays: DatasetArrays) -> None:
    config = {"model": "tiny_cnn", "epochs": 1, "batch_size": 16, "num_threads": 1}
    with _optimizer_steps() as steps:
        result = fit(config, arrays, train_splits=("train", "val"), eval_split="test")
    assert len(steps) == (96 + 32) // 16
    test_rows = select_indices(arrays, ["test"], 0)
    probabilities = predict_proba(result.model, arrays.images[test_rows], config)
    on_test = binary_metrics(arrays.labels[test_rows], probabilities)
    assert result.history[0]["val_loss"] == pytest.approx(on_test["loss"], abs=1e-6)
    no_eval = fit(config, arrays, eval_split=None).history
    assert "val_loss" not in no_eval[0] and "train_loss" in no_eval[0]


def test_compiled_model_trains_like_the_eager_one(arrays: DatasetArrays) -> None:
    # batch 40 on 96 images ends each epoch in a short batch of 16: compile's static shapes give it its own
    # graph; reduce-overhead (CUDA graphs on a GPU) must not change what is learned.
    config = {"model": "tiny_cnn", "epochs": 2, "batch_size": 40, "lr": 0.01, "seed": 1, "num_threads": 1}
    eager = fit(config, arrays).history
    compiled = fit({**config, "compile": True, "compile_mode": "reduce-overhead"}, arrays).history
    for eager_row, compiled_row in zip(_without_timing(eager), _without_timing(compiled), strict=True):
        assert compiled_row == pytest.approx(eager_row, rel=1e-3, abs=1e-4)


def test_compile_settings_reach_torch_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    from fracture_tune.trainables.config import TrainConfig
    from fracture_tune.trainables.models import build_model
    from fracture_tune.trainables.trainer import compile_model

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: calls.append(kwargs) or model)
    model = build_model("tiny_cnn")
    assert compile_model(model, TrainConfig.from_flat({"compile_mode": "reduce-overhead"})) is model
    assert calls == []  # compile_mode alone does not compile
    compile_model(model, TrainConfig.from_flat({"compile": True}))
    compile_model(model, TrainConfig.from_flat({"compile": True, "compile_mode": "reduce-overhead"}))
    assert calls == [{"mode": None, "dynamic": False}, {"mode": "reduce-overhead", "dynamic": False}]


def test_aug_factor_repeats_every_image_per_epoch() -> None:
    from fracture_tune.data.augment import SEED_AUGMENTATION
    from fracture_tune.trainables.config import TrainConfig
    from fracture_tune.trainables.models import build_model
    from fracture_tune.trainables.trainer import EpochTrainer

    config = TrainConfig.from_flat({"model": "tiny_cnn", "aug_factor": 3, "batch_size": 10})
    trainer = EpochTrainer(
        model=build_model("tiny_cnn"),
        config=config,
        device=torch.device("cpu"),
        images=torch.zeros(20, 1, 8, 8, dtype=torch.uint8),
        labels=np.zeros(20),
        augmentation=SEED_AUGMENTATION,
    )
    order = trainer._epoch_order()
    assert sorted(order.tolist()) == sorted(list(range(20)) * 3)
    assert order[:20].tolist() != sorted(order[:20].tolist())  # shuffled across the repeats
    assert len(trainer.bounds) == 6


def _folds_of(arrays: DatasetArrays) -> np.ndarray:
    """Three folds over the 128 train+val rows; the 16 test rows in none."""
    folds = np.full(arrays.labels.shape, -1, dtype=np.int8)
    pooled = np.flatnonzero(arrays.split != 2)
    folds[pooled] = np.arange(pooled.size) % 3
    return folds


def test_fit_folds_reports_the_mean_and_spread_over_folds_and_never_reads_the_test_split(
    arrays: DatasetArrays, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fracture_tune.trainables import engine

    folds = _folds_of(arrays)
    per_fold: list[list[dict[str, float]]] = []
    views: list[DatasetArrays] = []
    real_start = engine._start_run

    def spying_start(cfg: Any, data: DatasetArrays, *args: Any) -> Any:
        views.append(data)
        run = real_start(cfg, data, *args)
        history: list[dict[str, float]] = []
        per_fold.append(history)
        real_epoch = run.epoch
        run.epoch = lambda epoch: history.append(real_epoch(epoch)) or history[-1]  # type: ignore[method-assign]
        return run

    monkeypatch.setattr(engine, "_start_run", spying_start)
    reported: list[dict[str, float]] = []
    history = engine.fit_folds(
        {**TUNED, "epochs": 2}, arrays, folds, callbacks=[lambda metrics, snapshot: reported.append(metrics)]
    )
    assert len(views) == 3 and reported == history and [row["epoch"] for row in history] == [1.0, 2.0]
    test_rows = set(arrays.indices("test").tolist())
    for fold, view in enumerate(views):
        assert not test_rows & (set(view.indices("train").tolist()) | set(view.indices("val").tolist()))
        assert view.indices("val").tolist() == np.flatnonzero(folds == fold).tolist()
    for epoch, row in enumerate(history):
        for name in ("val_auroc", "val_loss", "train_loss"):
            values = [fold_history[epoch][name] for fold_history in per_fold]
            assert row[name] == pytest.approx(np.mean(values))
        losses = [fold_history[epoch]["val_loss"] for fold_history in per_fold]
        assert np.std(losses) > 0  # the folds differ, so a wrong summary would show
        assert row["val_loss_fold_sd"] == pytest.approx(np.std(losses, ddof=1))
        assert "val_auroc_fold_sd" in row and row["folds"] == 3.0
        assert all(type(value) is float and math.isfinite(value) for value in row.values())


def test_fit_folds_resumes_every_fold_from_its_checkpoint(arrays: DatasetArrays, tmp_path: Path) -> None:
    from fracture_tune.trainables.engine import fit_folds

    folds = _folds_of(arrays)
    saved: dict[int, Path] = {}

    def save(metrics: dict[str, float], snapshot: Any) -> None:
        epoch = int(metrics["epoch"])
        saved[epoch] = save_checkpoint(tmp_path / f"epoch{epoch}.pt", snapshot())

    uninterrupted = fit_folds(TUNED, arrays, folds, callbacks=[save])
    state = load_checkpoint(saved[1])
    assert len(state["folds"]) == 3 and state["epoch"] == 1
    resumed = fit_folds(TUNED, arrays, folds, resume_state=state)
    for expected, actual in zip(_without_timing(uninterrupted), _without_timing(resumed), strict=True):
        assert actual == pytest.approx(expected, abs=1e-6)
    two_folds = np.where(folds == 2, 1, folds).astype(np.int8)
    with pytest.raises(FractureTuneError, match="holds 3 fold"):
        fit_folds(TUNED, arrays, two_folds, resume_state=state)
