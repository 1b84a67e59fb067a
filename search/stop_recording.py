"""The Tune pieces that record why trials end, into the search's ``StopLedger`` (see ``stops``).

``RecordingASHA`` is Ray's ASHA noting each STOP it decides; ``BudgetStopper`` is Tune's time-budget stopper
noting when the budget ran out; ``StopReasonCallback`` records finishes and errors and, at the end of the
search, names the trials Tune stopped without telling any callback (budget cut-offs and interruptions).
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.stopper import TimeoutStopper

from fracture_tune.search.stops import (
    ERROR,
    FINISHED,
    INTERRUPTED,
    STOPPED_BY_ASHA,
    TIME_BUDGET,
    StopLedger,
    describe,
)


def trial_error_text(trial: Any) -> tuple[str, str]:
    """(last line of the error, full traceback) from the trial's error file."""
    detail = ""
    try:
        path = trial.error_file
        if path:
            with open(path, encoding="utf-8", errors="replace") as stream:
                detail = stream.read()
    except OSError:
        pass
    lines = [line for line in detail.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "trial failed"), detail


class RecordingASHA(ASHAScheduler):
    """Ray's ASHA, writing down every STOP it decides before ``max_t`` (a STOP at ``max_t`` is a finish)."""

    def __init__(self, ledger: StopLedger, planned_epochs: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ledger
        self.planned_epochs = planned_epochs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        epoch = int(result.get(self._time_attr, 0))
        if decision == TrialScheduler.STOP and epoch < self._max_t:
            self.ledger.record(
                trial.trial_id, STOPPED_BY_ASHA, epoch, describe(STOPPED_BY_ASHA, epoch, self.planned_epochs)
            )
        return str(decision)


class BudgetStopper(TimeoutStopper):
    """Tune's ``time_budget_s`` stopper, noting in the ledger when the budget ran out."""

    def __init__(self, time_budget_s: float, ledger: StopLedger) -> None:
        super().__init__(time_budget_s)
        self.ledger = ledger

    def stop_all(self) -> bool:
        ran_out = bool(super().stop_all())
        if ran_out:
            self.ledger.note_time_budget_ran_out()
        return ran_out


def last_epoch(trial: Any) -> int:
    result = trial.last_result or {}
    return int(result.get("epoch", result.get("training_iteration", 0)) or 0)


class StopReasonCallback(Callback):
    """Records finishes and errors as Tune reports them, and names the trials Tune stopped silently.

    Listed before the MLflow and progress callbacks, so they read a trial's reason from the ledger.
    """

    def __init__(self, ledger: StopLedger, planned_epochs: int) -> None:
        self.ledger = ledger
        self.planned_epochs = planned_epochs

    def setup(
        self, stop: Any = None, num_samples: Any = None, total_num_samples: Any = None, **info: Any
    ) -> None:
        self.ledger.start_driver()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epoch = last_epoch(trial)
        recorded = self.ledger.get(trial.trial_id)
        if recorded is not None and recorded.reason == STOPPED_BY_ASHA and recorded.epoch == epoch:
            return
        # Tune ends a trial without a scheduler STOP only when its function returned: its planned epochs.
        self.ledger.record(trial.trial_id, FINISHED, epoch, describe(FINISHED, epoch, self.planned_epochs))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epoch = last_epoch(trial)
        message, _ = trial_error_text(trial)
        self.ledger.record(trial.trial_id, ERROR, epoch, message)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Name the trials Tune stopped without a callback: the time budget, or an interruption.

        The ledger is read once here, not once a trial: a search may end with hundreds of trials.
        """
        stops = self.ledger.all()
        reason = TIME_BUDGET if self.ledger.time_budget_ran_out() else INTERRUPTED
        for trial in trials:
            recorded = stops.get(trial.trial_id)
            if trial.status != "TERMINATED" or (recorded is not None and recorded.reason != INTERRUPTED):
                continue
            epoch = last_epoch(trial)
            self.ledger.record(trial.trial_id, reason, epoch, describe(reason, epoch, self.planned_epochs))
