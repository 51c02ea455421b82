"""The trial record: how one run is stored in an Optuna trial, read back, and counted.

This is the one home of every rule about which trials count:

- a tuning study's budget counts complete, pruned, diverged and still-running trials
  (:func:`counted_tuning_trials`); crashed and interrupted ones were retried and do not count;
- an evaluation key (baseline, arm, seed) counts once: its complete attempt, else its latest failed
  one (:func:`final_attempts`), and is "failed" for good after :data:`MAX_ATTEMPTS` crashes
  (:func:`eval_states`);
- the worker that ended the last evaluation run writes the report (:func:`last_ended_run`);
- the tuned β is the best complete, finite tuning trial, ties to the earliest (:func:`best_trial`).

The engine schedules with these rules, :func:`load_results` reads results with them, and the report
receives runs already reduced by them.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import StorageError
from ..util import json_safe
from . import storage as st
from .results import CORE_ARMS, Run, StudyResults
from .spec import StudySpec

MAX_ATTEMPTS = 3  # a run that crashes this many times is recorded as failed
# Attributes the engine queries get a key each; the rest of a run's record goes in one attribute
# (each attribute is a commit, and commits are what several workers on one storage queue for).
QUERIED_ATTRS = ("key", "status", "beta", "lr", "reason")
EVAL_ARM_ORDER = {arm: i for i, arm in enumerate(CORE_ARMS)}  # then extra arms, by name


# --- the codec ---------------------------------------------------------------------------------
def pack(attrs: dict[str, Any]) -> dict[str, Any]:
    """A run's attributes as trial user attributes: queried ones one per key, the rest in "record"."""
    out = {k: v for k, v in attrs.items() if k in QUERIED_ATTRS}
    out["record"] = {k: v for k, v in attrs.items() if k not in QUERIED_ATTRS}
    return out


def unpack(t: FrozenTrial) -> dict[str, Any]:
    """The attributes :func:`pack` stored, as one flat dict."""
    return {**t.user_attrs.get("record", {}), **{k: v for k, v in t.user_attrs.items() if k != "record"}}


def run_from_trial(t: FrozenTrial, study_name: str, position: int) -> Run:
    a = unpack(t)
    if t.state == TrialState.PRUNED:
        status = "pruned"
    elif t.state == TrialState.FAIL:
        status = "failed"
    elif t.state == TrialState.COMPLETE:
        status = a.get("status", "complete")
    else:
        status = t.state.name.lower()
    value = a.get("value")
    if status == "pruned" and value is None and t.intermediate_values:
        value = t.intermediate_values[max(t.intermediate_values)]
    return Run(
        study=study_name, baseline=a.get("baseline", ""), arm=a.get("arm", ""),
        seed=int(a.get("seed", -1)), beta=a.get("beta"), lr=a.get("lr", float("nan")),
        metric=a.get("metric", ""),
        value=json_safe(value) if status not in ("diverged", "failed") else None,
        status=status, steps=int(a.get("steps", 0)), wall_s=float(a.get("wall_s", 0.0)),
        val_value=json_safe(a.get("val_value")), trial_number=position,
        curve=a.get("curve") or {}, val_curve=a.get("val_curve") or {},
        beta_trace=a.get("beta_trace"), reason=a.get("reason"), device=a.get("device"),
        worker=a.get("worker"),
    )


# --- counting rules ----------------------------------------------------------------------------
def _is_attempt(t: FrozenTrial) -> bool:
    """An evaluation trial that was an attempt at a planned run (not a skipped duplicate)."""
    return "key" in t.user_attrs and not t.user_attrs.get("skipped")


def counted_tuning_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count towards the tuning budget, in tuning order (complete, pruned,
    diverged and still-running ones; crashed and interrupted ones were retried and do not count)."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sorted((t for t in trials if t.state in live), key=lambda t: t.number)


def tuning_counts(trials: list[FrozenTrial]) -> tuple[int, int, int]:
    """(counted, running, crashed) among a tuning study's trials."""
    counted = counted_tuning_trials(trials)
    running = sum(t.state == TrialState.RUNNING for t in counted)
    crashed = sum(t.state == TrialState.FAIL and t.user_attrs.get("reason") != "interrupted"
                  and not t.user_attrs.get("skipped") for t in trials)
    return len(counted), running, crashed


def best_trial(trials: list[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The best complete, non-diverged tuning trial (ties: the earliest), or None."""
    done = [t for t in trials if t.state == TrialState.COMPLETE
            and t.user_attrs.get("status") == "complete" and t.value is not None
            and math.isfinite(t.value)]
    if not done:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    return min(done, key=lambda t: (sign * t.value, t.number))


def final_attempts(trials: list[FrozenTrial]) -> dict[str, FrozenTrial]:
    """Per evaluation key, the attempt that counts: the complete one, else the latest failed one."""
    best: dict[str, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if not _is_attempt(t):
            continue
        key = t.user_attrs["key"]
        cur = best.get(key)
        if cur is None or cur.state != TrialState.COMPLETE:
            if t.state in (TrialState.COMPLETE, TrialState.FAIL):
                best[key] = t
    return best


def eval_states(trials: list[FrozenTrial], keys: list[str]) -> dict[str, str]:
    """key → complete | live (running or waiting somewhere) | failed (crashed MAX_ATTEMPTS
    times) | todo."""
    by_key: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        if _is_attempt(t):
            by_key.setdefault(t.user_attrs["key"], []).append(t)
    states: dict[str, str] = {}
    for key in keys:
        attempts = by_key.get(key, [])
        if any(t.state == TrialState.COMPLETE for t in attempts):
            states[key] = "complete"
        elif any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in attempts):
            states[key] = "live"
        elif sum(t.user_attrs.get("reason") not in (None, "interrupted") for t in attempts) >= MAX_ATTEMPTS:
            states[key] = "failed"
        else:
            states[key] = "todo"
    return states


def is_duplicate(trials: list[FrozenTrial], number: int, key: str) -> bool:
    """Another attempt at ``key`` already completed, or started earlier and is still running:
    trial ``number`` (two workers picked the same key at once) must not run too."""
    for t in trials:
        if t.number != number and t.user_attrs.get("key") == key and not t.user_attrs.get("skipped"):
            if t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING and t.number < number):
                return True
    return False


def last_ended_run(trials: list[FrozenTrial]) -> int | None:
    """The number of the evaluation run that ended last (ties go to the higher number)."""
    ended = [t for t in trials if _is_attempt(t)
             and t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.datetime_complete]
    if not ended:
        return None
    return max(ended, key=lambda t: (t.datetime_complete, t.number)).number


# --- reading a study back ----------------------------------------------------------------------
def load_results(storage: optuna.storages.BaseStorage | str, name: str) -> StudyResults:
    """Rebuild a study's results from its storage alone."""
    import json

    if isinstance(storage, str):
        storage = st.open_storage(storage, heartbeat_interval=None)
    if not st.study_exists(storage, st.meta_name(name)):
        raise StorageError(f"the storage holds no admtune study named {name!r}")
    meta = optuna.load_study(study_name=st.meta_name(name), storage=storage).user_attrs
    spec = StudySpec.from_data(json.loads(meta["spec"]))
    runs: list[Run] = []
    for baseline in spec.baselines:
        for adm in (False, True):
            sname = st.tune_name(name, baseline, adm)
            if not st.study_exists(storage, sname):
                continue
            trials = optuna.load_study(study_name=sname, storage=storage).get_trials(deepcopy=False)
            for pos, t in enumerate(counted_tuning_trials(trials)):
                if t.state != TrialState.RUNNING:
                    runs.append(run_from_trial(t, name, pos))
    if st.study_exists(storage, st.eval_name(name)):
        trials = optuna.load_study(study_name=st.eval_name(name), storage=storage).get_trials(deepcopy=False)
        evals = [run_from_trial(t, name, t.number) for t in final_attempts(trials).values()]
        # A stable order (workers run evaluation keys in any order): baseline, arm, seed.
        order = {b: i for i, b in enumerate(spec.baselines)}
        runs.extend(sorted(evals, key=lambda r: (order.get(r.baseline, 99),
                                                 EVAL_ARM_ORDER.get(r.arm, 3), r.arm, r.seed)))
    return StudyResults(
        name=name, spec=spec, fingerprint=meta.get("fingerprint", ""),
        version=meta.get("version", ""), versions=meta.get("versions", {}),
        device=meta.get("device", ""), wall_s=float(sum(r.wall_s for r in runs)),
        command=meta.get("command", ""), runs=runs,
    )


__all__ = ["MAX_ATTEMPTS", "best_trial", "counted_tuning_trials", "eval_states", "final_attempts",
           "is_duplicate", "last_ended_run", "load_results", "pack", "run_from_trial", "tuning_counts",
           "unpack"]
