"""What a retrain keeps of a search: its finalists, re-ranked, and an ensemble's members.

Validation AUROC on a couple of hundred images spreads about ±0.02 between runs, as much as the differences
a search ranks on, so the search's single best trial is partly a lucky draw. Two remedies, both in
``retrain --search``:

- **Re-ranking** (``evaluation.rerank_top_k`` / ``--rerank K``): the K best distinct configurations by the
  search's own rule are trained again for the full schedule with fresh seeds (``rerank_seeds`` each); the
  winner is the one with the best MEAN validation score, each training scored by the search's own rule
  (``trainables/score.py``; the retrained model keeps that epoch's weights). Ties keep the search's order.
- **Ensembles** (``--ensemble K``): the K best distinct configurations (after re-ranking, when it ran) are
  served as one model that averages their probabilities (``trainables/ensemble.py``).

The test split plays no part in either choice.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.records import BestTrial

# Keys that do not make a configuration different: the seed (re-ranking draws fresh ones) and where it ran.
NOT_PART_OF_A_CONFIGURATION = frozenset({"seed", "device", "num_threads"})
# Fresh seeds start here above the trial's own, far from the seeds a retrain's --seeds uses.
FRESH_SEED_OFFSET = 1000


def ranked_finalists(run_dir: Path, count: int) -> list[BestTrial]:
    """The search's ``count`` best DISTINCT configurations, best first, by its own best-trial rule."""
    from fracture_tune.search.config import load_config
    from fracture_tune.search.records import RESOLVED_CONFIG_FILE, RESULTS_PARQUET_FILE
    from fracture_tune.search.results import best_trial_record, rank_trials, read_results, rows_from_frame

    if not (Path(run_dir) / RESULTS_PARQUET_FILE).is_file():
        raise FractureTuneError(
            f"{run_dir} has no {RESULTS_PARQUET_FILE}: the search never finished writing its results",
            hint="finish it (`fracture-tune search --resume NAME`), or retrain without --rerank/--ensemble",
        )
    config = load_config(Path(run_dir) / RESOLVED_CONFIG_FILE)
    rule = config.score_rule
    rows = rows_from_frame(read_results(run_dir), rule)
    try:
        ranked = rank_trials(rows, rule)
    except ValueError:
        raise FractureTuneError(f"no trial of the search in {run_dir} reported {config.metric}") from None
    finalists: list[BestTrial] = []
    seen: set[str] = set()
    for selection in ranked:
        key = configuration_key(selection.row["config"])
        if key in seen:
            continue
        seen.add(key)
        finalists.append(best_trial_record(selection, config.metric, config.metric_mode))
        if len(finalists) == count:
            break
    return finalists


def configuration_key(config: dict[str, Any]) -> str:
    return json.dumps(
        {key: value for key, value in config.items() if key not in NOT_PART_OF_A_CONFIGURATION},
        sort_keys=True,
        default=str,
    )


def fresh_seeds(config: dict[str, Any], count: int) -> list[int]:
    """``count`` seeds none of the search's trials used (they all train with the config's own seed)."""
    first = int(config.get("seed", 0)) + FRESH_SEED_OFFSET
    return list(range(first, first + count))


@dataclass(frozen=True)
class RerankEntry:
    """One finalist's re-ranking: its place in the search and its validation scores over fresh seeds."""

    trial_id: str
    search_rank: int  # 1 = the search's own best trial
    search_score: float
    seeds: list[int]
    scores: list[float]  # each fresh-seed training's validation score by the search's rule

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": self.mean}


def rerank_order(entries: list[RerankEntry], mode: str) -> list[RerankEntry]:
    """Best mean first (``mode`` max or min); equal means keep the search's order."""
    sign = -1.0 if mode == "max" else 1.0
    return sorted(entries, key=lambda entry: (sign * entry.mean, entry.search_rank))
