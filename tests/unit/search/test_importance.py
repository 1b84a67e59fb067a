"""Which hyperparameters mattered, from every trial with a score: trials ASHA stopped count too."""

from __future__ import annotations

import csv
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import matplotlib.colors
import matplotlib.figure
import matplotlib.image
import numpy as np
import pytest

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.importance import (
    optuna_distributions,
    parameter_importances,
    write_history_plot,
    write_importance_plot,
    write_importance_report,
)
from fracture_tune.search.space import ParamSpec

SPACE = {
    "model": ParamSpec(type="categorical", choices=["tunable_cnn", "resnet18"]),
    "lr": ParamSpec(type="float", low=1e-5, high=1e-1, log=True),
    "batch_size": ParamSpec(type="categorical", choices=[32, 64, 128]),
    "c1": ParamSpec(type="categorical", choices=[16, 32, 64], when={"model": ["tunable_cnn"]}),
    "epochs": ParamSpec(type="int", low=2, high=8),
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STATUSES = ["finished", "stopped_by_asha", "stopped_by_asha", "stopped_by_asha", "time_budget"]


def _rows(n: int = 40, seed: int = 0, score: Any = None) -> list[dict[str, Any]]:
    """``n`` trials whose score peaks at lr=1e-3 and ignores batch_size; most stopped by ASHA."""
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        config = {
            "model": rng.choice(["tunable_cnn", "resnet18"]),
            "lr": 10 ** rng.uniform(-5, -1),
            "batch_size": rng.choice([32, 64, 128]),
            "epochs": 4,  # searched, but every trial got the same value
            "optimizer": "adam",  # a fixed value, not searched
        }
        if config["model"] == "tunable_cnn":
            config["c1"] = rng.choice([16, 32, 64])
        value = (
            score(config) if score else 0.95 - 0.1 * abs(math.log10(config["lr"]) + 3) + rng.gauss(0, 0.003)
        )
        rows.append(
            {
                "trial_id": f"t{index:03d}",
                "trial_index": index,
                "status": STATUSES[index % len(STATUSES)],
                "epochs": 8 if index % len(STATUSES) == 0 else 2,
                "score": value,
                "config": config,
            }
        )
    return rows


def _errored(index: int) -> dict[str, Any]:
    config = {"model": "resnet18", "lr": 1e-3, "batch_size": 32, "epochs": 4}
    return {
        "trial_id": f"e{index}",
        "trial_index": index,
        "status": "error",
        "epochs": 0,
        "score": math.nan,
        "config": config,
    }


def test_the_parameter_that_drives_the_score_comes_first() -> None:
    table = parameter_importances(_rows(), SPACE, "max")

    names = [name for name, _ in table.importances]
    shares = dict(table.importances)
    assert table.evaluator == "PED-ANOVA" and table.note == ""
    assert names[0] == "lr" and shares["lr"] > 0.8 and shares["lr"] > 10 * shares["batch_size"]
    assert sum(shares.values()) == pytest.approx(1.0)


def test_trials_stopped_by_asha_count_and_errored_ones_without_a_score_do_not() -> None:
    rows = [*_rows(), _errored(40), {**_errored(41), "score": None}, {**_errored(42), "score": math.inf}]

    table = parameter_importances(rows, SPACE, "max")

    assert table.trials_used == 40
    assert table.trials_stopped_early == 32  # 4 in 5 of the 40 did not finish
    assert table.importances[0][0] == "lr"


def test_importances_come_even_when_no_trial_finished() -> None:
    rows = [{**row, "status": "stopped_by_asha"} for row in _rows()]

    table = parameter_importances(rows, SPACE, "max")

    assert table.trials_stopped_early == 40 and table.importances[0][0] == "lr"


def test_conditional_constant_and_out_of_space_parameters_are_left_out_with_the_reason() -> None:
    rows = _rows()
    rows[0]["config"]["batch_size"] = 256  # not a choice: the space changed since this trial
    with_c1 = sum("c1" in row["config"] for row in rows)

    table = parameter_importances(rows, SPACE, "max")

    reasons = dict(table.left_out)
    assert reasons["c1"] == f"conditional: only in {with_c1} of 40 trials"
    assert reasons["epochs"] == "one value (4) in every trial"
    assert reasons["batch_size"].startswith("outside the search space in 1 trial")
    assert [name for name, _ in table.importances] == ["lr", "model"]


def test_values_from_a_flattened_table_numpy_scalars_and_nan_for_absent() -> None:
    rows = _rows()
    for row in rows:
        config = row["config"]
        config.update(
            lr=np.float64(config["lr"]), batch_size=np.int64(config["batch_size"]), epochs=np.int64(4)
        )
        config.setdefault("c1", math.nan)  # a conditional parameter's empty cell

    table = parameter_importances(rows, SPACE, "max")

    reasons = dict(table.left_out)
    assert table.importances[0][0] == "lr" and "batch_size" in dict(table.importances)
    assert (
        reasons["c1"].startswith("conditional: only in")
        and reasons["epochs"] == "one value (4) in every trial"
    )


def test_mode_min_ranks_by_the_lowest_scores() -> None:
    # In-band lr gives the lowest scores; outside it the score grows with batch_size. So the best trials
    # share their lr when lower is better, and their batch_size when higher is better.
    def score(config: dict[str, Any]) -> float:
        in_band = abs(math.log10(config["lr"]) + 3) < 0.6
        return 0.0 if in_band else 1.0 + config["batch_size"] / 128

    rows = _rows(score=score)

    assert parameter_importances(rows, SPACE, "min").importances[0][0] == "lr"
    assert parameter_importances(rows, SPACE, "max").importances[0][0] == "batch_size"


@pytest.mark.parametrize(("mode", "best", "rest"), [("max", 1.0, 0.5), ("min", 0.0, 0.5)])
def test_scores_tied_with_the_worst_still_give_importances(mode: str, best: float, rest: float) -> None:
    # Only 3 of 20 trials beat the rest, who all tie: PED-ANOVA's top set must not swallow the ties.
    rows = _rows(n=20, score=lambda config: rest)
    for index, row in enumerate(rows[:3]):
        row["config"]["lr"], row["score"] = 1e-3 * (1 + index / 10), best

    table = parameter_importances(rows, SPACE, mode)

    assert table.note == "" and table.importances[0][0] == "lr" and dict(table.importances)["lr"] > 0.5


def _rows_driven_by_batch_size(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    lrs = [10 ** (-5 + 4 * index / (n - 1)) for index in range(n)]
    rng.shuffle(lrs)
    rows = _rows(n=n, seed=seed)
    for index, row in enumerate(rows):
        row["config"].update(lr=lrs[index], batch_size=[32, 64, 128][index % 3])
        row["score"] = row["config"]["batch_size"] / 128 + rng.uniform(0, 0.05)
    return rows


def test_with_few_trials_a_categorical_driver_is_not_drowned_by_a_continuous_parameter() -> None:
    # PED-ANOVA's default top 10% is a single trial below 10 trials; one point on lr's 50-step grid then
    # outweighs any categorical parameter, whatever drove the score (lr got 0.99 on average here).
    tables = [parameter_importances(_rows_driven_by_batch_size(9, seed), SPACE, "max") for seed in range(10)]

    mean = {
        name: sum(dict(table.importances)[name] for table in tables) / 10 for name in ("batch_size", "lr")
    }
    assert mean["batch_size"] > 0.5 > mean["lr"]


def test_too_few_scored_trials_give_a_note_not_an_error() -> None:
    rows = [*_rows(n=3), _errored(3)]

    table = parameter_importances(rows, SPACE, "max")

    assert table.importances == () and table.trials_used == 3
    assert "3 trial(s) reported a score" in table.note and "at least 4" in table.note
    assert table.note in table.to_text()


def test_equal_scores_give_a_note() -> None:
    table = parameter_importances(_rows(score=lambda config: 0.5), SPACE, "max")

    assert table.importances == () and "scored the same" in table.note


def test_fanova_explains_the_whole_score_so_mode_does_not_change_it() -> None:
    # fANOVA splits the score's variance (direction-free, seeded forest); PED-ANOVA asks what the best trials
    # share, which depends on the mode (see test_mode_min_ranks_by_the_lowest_scores).
    pytest.importorskip("sklearn")
    rows = _rows()

    as_max = parameter_importances(rows, SPACE, "max", evaluator="fanova")
    as_min = parameter_importances(rows, SPACE, "min", evaluator="fanova")

    assert as_max.evaluator == "fANOVA" and as_max.importances[0][0] == "lr"
    assert as_min.importances == as_max.importances


def test_fanova_without_scikit_learn_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail

    with pytest.raises(FractureTuneError, match="scikit-learn") as error:
        parameter_importances(_rows(), SPACE, "max", evaluator="fanova")
    assert "pip install scikit-learn" in str(error.value)


@pytest.mark.parametrize(
    ("mode", "evaluator", "named"), [("maximize", "ped_anova", "mode"), ("max", "shap", "ped_anova")]
)
def test_bad_mode_or_evaluator_is_refused(mode: str, evaluator: str, named: str) -> None:
    with pytest.raises(FractureTuneError, match=named):
        parameter_importances(_rows(), SPACE, mode, evaluator=evaluator)


def test_text_names_the_evaluator_and_lists_parameters_most_important_first() -> None:
    text = parameter_importances(_rows(), SPACE, "max").to_text()
    lines = text.splitlines()

    assert lines[0] == "parameter importances (PED-ANOVA, 40 trials, 32 stopped early):"
    order = [line.split()[0] for line in lines[1:]]
    assert order[0] == "lr" and set(order[1:3]) == {"model", "batch_size"}
    assert lines[1].count("#") > 30 and lines[2].count("#") < 5
    assert any(line.split()[0] == "c1" and "left out: conditional" in line for line in lines)


def test_csv_and_dict_hold_importances_and_reasons(tmp_path: Path) -> None:
    table = parameter_importances(_rows(), SPACE, "max")

    with open(table.to_csv(tmp_path / "importance.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    as_dict = json.loads(json.dumps(table.to_dict()))

    assert rows[0]["parameter"] == "lr" and float(rows[0]["importance"]) > 0.8
    assert {row["parameter"]: row["left_out"] for row in rows if not row["importance"]}.keys() == {
        "c1",
        "epochs",
    }
    assert as_dict["evaluator"] == "PED-ANOVA" and as_dict["trials_used"] == 40
    assert list(as_dict["importances"])[0] == "lr" and "c1" in as_dict["left_out"]


def test_report_writes_a_table_and_two_readable_pngs(tmp_path: Path) -> None:
    rows = [*_rows(), _errored(40), {**_rows(n=1)[0], "trial_index": 41, "status": "interrupted"}]

    report = write_importance_report(rows, SPACE, "max", tmp_path / "importance")

    assert report.table.importances[0][0] == "lr"
    assert report.csv_path.read_text().startswith("parameter,importance,left_out")
    for plot in (report.importance_plot, report.history_plot):
        assert plot.read_bytes()[:8] == PNG_SIGNATURE
        assert matplotlib.image.imread(plot).shape[:2] == (400, 600)  # 6x4 inches at 100 dpi
    assert sorted(path.name for path in report.csv_path.parent.iterdir()) == [
        "history.png",
        "importance.csv",
        "importance.png",
    ]  # no partial files left behind


def _pixels_near(image: np.ndarray, colour: str) -> np.ndarray:
    """Which pixels of an RGBA image are (nearly) the named matplotlib colour."""
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    return np.abs(image[..., :3] - rgb).max(axis=-1) < 0.05


def test_importance_plot_puts_the_largest_bar_on_top(tmp_path: Path) -> None:
    report = write_importance_report(_rows(), SPACE, "max", tmp_path)

    bar_widths = _pixels_near(matplotlib.image.imread(report.importance_plot), "tab:blue").sum(axis=1)
    assert bar_widths.argmax() < len(bar_widths) / 3  # lr's long bar is in the top third of the figure


def test_history_plot_marks_how_each_trial_ended(tmp_path: Path) -> None:
    rows = _rows()
    mixed = matplotlib.image.imread(write_history_plot(rows, "max", tmp_path / "mixed.png"))
    finished_only = [{**row, "status": "finished"} for row in rows]
    finished = matplotlib.image.imread(write_history_plot(finished_only, "max", tmp_path / "finished.png"))

    for colour in ("tab:green", "tab:orange", "tab:purple"):  # finished, stopped by ASHA, time budget
        assert _pixels_near(mixed, colour).sum() > 50
    assert _pixels_near(finished, "tab:orange").sum() == 0 and _pixels_near(finished, "tab:green").sum() > 50


def test_plots_are_written_when_nothing_could_be_computed(tmp_path: Path) -> None:
    report = write_importance_report(_rows(n=2), SPACE, "min", tmp_path)

    assert report.table.note and report.importance_plot.read_bytes()[:8] == PNG_SIGNATURE
    assert write_history_plot([], "min", tmp_path / "empty.png").read_bytes()[:8] == PNG_SIGNATURE


def test_a_failed_write_keeps_the_previous_plot_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = write_importance_report(_rows(), SPACE, "max", tmp_path).table
    previous = (tmp_path / "importance.png").read_bytes()

    def disk_full(self: Any, path: Path, **kwargs: Any) -> None:
        Path(path).write_bytes(b"half a png")
        raise OSError("No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_importance_plot(table, tmp_path / "importance.png")

    assert (tmp_path / "importance.png").read_bytes() == previous
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "history.png",
        "importance.csv",
        "importance.png",
    ]


def test_plots_leave_no_open_pyplot_figures(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    for index in range(3):
        write_importance_report(_rows(), SPACE, "max", tmp_path / str(index))

    assert plt.get_fignums() == before


def test_distributions_match_the_space() -> None:
    space = {
        **SPACE,
        "width": ParamSpec(type="int", low=16, high=64, step=16),
        "dropout": ParamSpec(type="float", low=0.1, high=0.5, step=0.1),
    }

    distributions = optuna_distributions(space)

    assert distributions["lr"].log and distributions["c1"].choices == (16, 32, 64)
    assert distributions["width"].step == 16 and distributions["dropout"].step == pytest.approx(0.1)
