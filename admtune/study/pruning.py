"""Pruning for tuning trials: Optuna's own pruners, fed a history that is cheap to read."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState


class HistoryPruner(optuna.pruners.BasePruner):
    """An Optuna pruner that reads the study's completed trials at most every ``max_age_s`` seconds.

    Optuna's pruners read every trial of the study at each report; on a small workload that read
    cost as much as the training. With one worker the history cannot change during a run, so the
    decisions are Optuna's own; with several, a trial completed elsewhere counts from the next
    read on (for runs whose reports are seconds apart, that is the next report).
    """

    def __init__(self, inner: optuna.pruners.BasePruner, max_age_s: float = 0.5) -> None:
        self.inner = inner
        self.max_age_s = max_age_s
        self._history: list[optuna.trial.FrozenTrial] = []
        self._read_at = -math.inf

    def seen(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Trials just read by the caller (before a run): the history until it is too old."""
        self._history = [t for t in trials if t.state == TrialState.COMPLETE]
        self._read_at = time.monotonic()

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if time.monotonic() - self._read_at > self.max_age_s:
            self.seen(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return self.inner.prune(_History(study.direction, self._history), trial)  # type: ignore[arg-type]


@dataclass
class _History:
    """The part of a Study that pruners read."""

    direction: optuna.study.StudyDirection
    trials: list[optuna.trial.FrozenTrial]

    def get_trials(self, deepcopy: bool = True, states: tuple[TrialState, ...] | None = None) -> list:
        return [t for t in self.trials if states is None or t.state in states]


__all__ = ["HistoryPruner"]
