"""HistoryPruner: Optuna's median rule, with the study's history read at most every max_age_s."""

from __future__ import annotations

import optuna
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from admtune.study.pruning import HistoryPruner

optuna.logging.set_verbosity(optuna.logging.ERROR)

curves = st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=6)


def _study(direction: str, history: list[list[float]]) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    for curve in history:
        study.add_trial(optuna.trial.create_trial(
            value=curve[-1], intermediate_values=dict(enumerate(curve)), state=TrialState.COMPLETE))
    return study


def _running(study: optuna.Study, curve: list[float]) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    for step, v in enumerate(curve):
        trial.report(v, step)
    return study._storage.get_trial(trial._trial_id)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["minimize", "maximize"]), st.lists(curves, max_size=9), curves)
def test_decisions_are_optunas_median_rule(direction, history, current):
    study = _study(direction, history)
    trial = _running(study, current)
    median = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    ours = HistoryPruner(optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0))
    ours.seen(study.get_trials(deepcopy=False))
    assert ours.prune(study, trial) == median.prune(study, trial)


def test_history_is_reread_once_it_is_older_than_max_age():
    # Five completed trials at 1.0; the running one at 2.0 is worse than their median: pruned.
    study = _study("minimize", [[1.0, 1.0]] * 5)
    trial = _running(study, [2.0, 2.0])
    pruner = HistoryPruner(optuna.pruners.MedianPruner(n_startup_trials=5), max_age_s=3600.0)
    pruner.seen(study.get_trials(deepcopy=False))
    assert pruner.prune(study, trial)
    for _ in range(6):  # six worse trials complete elsewhere: the median moves to 3.0
        study.add_trial(optuna.trial.create_trial(value=3.0, intermediate_values={0: 3.0, 1: 3.0}))
    assert pruner.prune(study, trial)  # still judged against the history read before
    pruner.max_age_s = 0.0
    assert not pruner.prune(study, trial)  # re-read: 2.0 beats the new median
