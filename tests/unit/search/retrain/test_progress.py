"""What a retrain shows while it trains: a line per epoch, timed from the retrain's start, never flooding."""

from __future__ import annotations

from fracture_tune.search.retrain.progress import RetrainProgress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _train(progress: RetrainProgress, clock: FakeClock, label: str, epochs: int, seconds: float) -> None:
    """A stand-in for fit: each epoch takes ``seconds`` of the fake clock, then the engine calls back."""
    report = progress.for_model(label, epochs, "val_auroc")
    for epoch in range(1, epochs + 1):
        clock.now += seconds
        report({"epoch": float(epoch), "val_auroc": 0.5 + epoch / 100, "train_loss": 0.7}, None)


def test_each_epoch_is_a_line_with_the_model_its_metric_and_the_time_since_the_start() -> None:
    clock, lines = FakeClock(), []
    progress = RetrainProgress(lines.append, clock=clock)
    clock.now += 30.0  # loading the dataset
    _train(progress, clock, "seed 0", 3, 12.0)
    assert lines == [
        "[0m42s] seed 0: epoch 1/3 val_auroc=0.5100 (12.0 s/epoch)",
        "[0m54s] seed 0: epoch 2/3 val_auroc=0.5200 (12.0 s/epoch)",
        "[1m06s] seed 0: epoch 3/3 val_auroc=0.5300 (12.0 s/epoch)",
    ]
    progress.say("testing once on the test split")
    assert lines[-1] == "[1m06s] testing once on the test split"


def test_fast_epochs_show_the_first_and_last_and_one_line_every_few_seconds() -> None:
    clock, lines = FakeClock(), []
    _train(RetrainProgress(lines.append, clock=clock, min_gap_s=5.0), clock, "seed base CNN", 100, 1.0)
    assert lines[0].endswith("epoch 1/100 val_auroc=0.5100 (1.0 s/epoch)")
    assert lines[-1].endswith("epoch 100/100 val_auroc=1.5000 (1.0 s/epoch)")
    epochs = [int(line.split("epoch ")[1].split("/")[0]) for line in lines]
    assert epochs == [1, *range(6, 100, 5), 100]


def test_without_progress_nothing_is_shown(capsys: object) -> None:
    clock = FakeClock()
    progress = RetrainProgress(False, clock=clock)
    _train(progress, clock, "seed 0", 3, 12.0)
    progress.say("testing")
    assert capsys.readouterr().out == ""  # type: ignore[attr-defined]


def test_true_prints_to_stdout(capsys: object) -> None:
    clock = FakeClock()
    _train(RetrainProgress(True, clock=clock), clock, "seed 0", 1, 2.0)
    assert capsys.readouterr().out == "[0m02s] seed 0: epoch 1/1 val_auroc=0.5100 (2.0 s/epoch)\n"  # type: ignore[attr-defined]
