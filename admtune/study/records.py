"""The trial record: how one run is stored in an Optuna trial, read back, and counted.

This is the one home of every rule about which trials count:

- a tuning study's budget counts complete, pruned, diverged and still-running trials
  (:func:`counted_tuning_trials`); crashed and interrupted ones were retried and do not count;
- an evaluation key (baseline, arm, seed) counts once: its complete attempt, else its latest failed
  one (:func:`final_attempts`), and is "failed" for good after :data:`MAX_ATTEMPTS` crashes
  (:func:`eval_states`);
- the worker that ended the last evaluation run writes the report (:func:`last_ended_run`);
- the finalists of a tuning study and the one its selection chose (:func:`finalists`,
  :func:`selected`); the best single trial (:func:`best_trial`) is only the pruner's incumbent.

The engine schedules with these rules, :func:`load_results` reads results with them, and the report
receives runs already reduced by them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import StorageError
from ..util import json_safe
from . import storage as st
from .results import CORE_ARMS, Run, StudyResults
from .spec import StudySpec

MAX_ATTEMPTS = 3  # a run that crashes this many times is recorded as failed
DEFAULT_BETA = 0.9               # the customary β: an evaluation arm, and always a finalist
TUNING_SEED_OFFSET = 10_000      # tuning seeds 10000, 10001, …
SELECTION_SEED_OFFSET = 20_000   # selection seeds 20000, 20001, …; evaluation seeds 0 … K−1
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


def first_crash(trials: list[FrozenTrial]) -> str:
    """The reason of the earliest crashed trial ("ExceptionType: message"), for an error message."""
    for t in sorted(trials, key=lambda t: t.number):
        reason = t.user_attrs.get("reason")
        crashed = t.state == TrialState.FAIL and reason not in (None, "interrupted")
        if crashed and not t.user_attrs.get("skipped"):
            return str(reason)
    return "no reason recorded"


def best_trial(trials: list[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The best complete, non-diverged tuning trial (ties: the earliest), or None."""
    done = [t for t in trials if _is_complete_trial(t)]
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


# --- selection: the finalists of tuning, re-run on their own seeds -----------------------------
@dataclass(frozen=True)
class Finalist:
    """A (β, lr) the selection stage scores on several seeds; β None for AdM's lr study."""

    beta: float | None
    lr: float
    origin: str  # "trial #N" (a tuning trial), "β = 0.9" (always), "candidate" (tune.candidates)

    def key(self, baseline: str, adm: bool, seed: int) -> str:
        arm = "adm_select" if adm else "select"
        # repr of a float is exact: the same finalist has the same key in every worker
        return f"{baseline}/{arm}/beta={self.beta!r}/lr={self.lr!r}/{seed}"


def finalists(trials: list[FrozenTrial], spec: StudySpec, baseline: str, adm: bool) -> list[Finalist]:
    """The selection stage's finalists, in order (ties of the selection go to the earlier one):
    the ``tune.finalists`` best distinct (β, lr) of the complete tuning trials, then the untuned
    default (β = 0.9 with the spec's lr; for AdM's lr study the spec's lr), then tune.candidates."""
    sign = 1.0 if spec.direction == "minimize" else -1.0
    done = sorted((t for t in trials if _is_complete_trial(t)), key=lambda t: (sign * t.value, t.number))
    out: list[Finalist] = []
    seen: set[tuple[float | None, float]] = set()

    def add(beta: float | None, lr: float, origin: str) -> None:
        if (beta, lr) not in seen:
            seen.add((beta, lr))
            out.append(Finalist(beta, lr, origin))

    for t in done:
        if len(out) >= spec.tune.finalists:
            break
        add(None if adm else t.user_attrs.get("beta"), float(t.user_attrs["lr"]), f"trial #{t.number}")
    lr0 = spec.train.lr[baseline]
    if adm:
        add(None, lr0, "spec lr")
    else:
        add(DEFAULT_BETA, lr0, "β = 0.9")
        for beta in spec.tune.candidates:
            add(float(beta), lr0, "candidate")
    return out


def selection_seeds(spec: StudySpec) -> range:
    return range(SELECTION_SEED_OFFSET, SELECTION_SEED_OFFSET + spec.tune.selection_seeds)


def selection_scores(trials: list[FrozenTrial], cands: list[Finalist], spec: StudySpec,
                     baseline: str, adm: bool) -> list[tuple[Finalist, list[float | None]]]:
    """Each finalist's selection values by seed (validation metric; None: not ended yet);
    a diverged or failed run scores the worst value."""
    worst = math.inf if spec.direction == "minimize" else -math.inf
    ended = final_attempts(trials)
    out = []
    for f in cands:
        values: list[float | None] = []
        for seed in selection_seeds(spec):
            t = ended.get(f.key(baseline, adm, seed))
            if t is None:
                values.append(None)
            elif t.state == TrialState.COMPLETE and _finite(t.value) and \
                    t.user_attrs.get("status") == "complete":
                values.append(float(t.value))
            else:
                values.append(worst)
        out.append((f, values))
    return out


def selected(scores: list[tuple[Finalist, list[float | None]]], direction: str) -> Finalist | None:
    """The finalist with the best mean selection value (ties: the earlier), once every selection
    run has ended; None before."""
    if not scores or any(v is None for _, values in scores for v in values):
        return None
    sign = 1.0 if direction == "minimize" else -1.0

    def mean(values: list[float | None]) -> float:
        return sum(values) / len(values)  # ±inf where a run diverged: never the best unless all did

    best = min(range(len(scores)), key=lambda i: (sign * mean(scores[i][1]), i))
    return scores[best][0]


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(x)


def _is_complete_trial(t: FrozenTrial) -> bool:
    return (t.state == TrialState.COMPLETE and t.user_attrs.get("status") == "complete"
            and _finite(t.value))


# --- the evaluation plan ----------------------------------------------------------------------
def planned_runs(spec: StudySpec) -> int:
    """How many evaluation runs a complete plan holds."""
    return spec.seeds * len(spec.baselines) * (len(CORE_ARMS) + len(spec.extra_arms))


def eval_key(baseline: str, arm: str, seed: int, beta: float | None = None, lr: float | None = None,
             chosen: bool = False) -> str:
    """An evaluation run's key. Arms whose β or lr the selection chose carry them in the key: if a
    grown study selects another β, its earlier runs are simply no longer planned."""
    key = f"{baseline}/{arm}/{seed}"
    return f"{key}/beta={beta!r}/lr={lr!r}" if chosen else key


def selection_plan(spec: StudySpec, tuning: dict[tuple[str, bool], list[FrozenTrial] | None]
                   ) -> tuple[list[dict[str, Any]], bool]:
    """The selection runs that can be planned now, and whether the plan is complete.
    ``tuning[(baseline, adm)]`` holds a tuning study's trials once its budget is done, else None."""
    runs: list[dict[str, Any]] = []
    complete = True
    for baseline, adm in tuning_studies(spec):
        trials = tuning.get((baseline, adm))
        if trials is None:
            complete = False
            continue
        for f in finalists(trials, spec, baseline, adm):
            for seed in selection_seeds(spec):
                runs.append({"key": f.key(baseline, adm, seed), "baseline": baseline,
                             "arm": "adm_select" if adm else "select", "seed": seed,
                             "beta": f.beta, "lr": f.lr, "finalist": f.origin})
    return runs, complete


def chosen(spec: StudySpec, tuning: dict[tuple[str, bool], list[FrozenTrial] | None],
           selection: list[FrozenTrial], baseline: str, adm: bool) -> Finalist | None:
    """The finalist the selection chose for a tuning study, or None while it is not decided."""
    trials = tuning.get((baseline, adm))
    if trials is None:
        return None
    scores = selection_scores(selection, finalists(trials, spec, baseline, adm), spec, baseline, adm)
    return selected(scores, spec.direction)


def evaluation_plan(spec: StudySpec, tuning: dict[tuple[str, bool], list[FrozenTrial] | None],
                    selection: list[FrozenTrial]) -> tuple[list[dict[str, Any]], bool]:
    """The evaluation runs that can be planned now (AdM, the selected β, β = 0.9 and the extra
    arms, on seeds 0 … K−1), and whether the plan is complete."""
    runs: list[dict[str, Any]] = []
    complete = True
    for baseline in spec.baselines:
        lr0 = spec.train.lr[baseline]
        adm = chosen(spec, tuning, selection, baseline, adm=True) if spec.tune.lr else None
        tuned = chosen(spec, tuning, selection, baseline, adm=False)
        if tuned is None or (spec.tune.lr and adm is None):
            complete = False
        arms: list[tuple[str, float | None, float | None, bool]] = []
        if not spec.tune.lr:
            arms.append(("adm", None, lr0, False))
        elif adm is not None:
            arms.append(("adm", None, adm.lr, True))
        if tuned is not None:
            arms.append(("tuned", tuned.beta, tuned.lr, True))
        arms.append(("default", DEFAULT_BETA, lr0, False))
        if tuned is not None:
            arms += [(extra, tuned.beta, tuned.lr, True) for extra in spec.extra_arms]
        for arm, beta, lr, was_chosen in arms:
            for seed in range(spec.seeds):
                runs.append({"key": eval_key(baseline, arm, seed, beta, lr, was_chosen),
                             "baseline": baseline, "arm": arm, "seed": seed, "beta": beta, "lr": lr})
    return runs, complete


# --- reading a study back ----------------------------------------------------------------------
def load_results(storage: optuna.storages.BaseStorage | str, name: str) -> StudyResults:
    """Rebuild a study's results from its storage alone."""
    import json

    if isinstance(storage, str):
        storage = st.open_storage(storage, heartbeat_interval=None)
    if not st.study_exists(storage, st.meta_name(name)):
        raise StorageError(f"the storage holds no admtune study named {name!r}")
    meta = optuna.load_study(study_name=st.meta_name(name), storage=storage).user_attrs
    # How it was resolved (older storages lack it: read as no overrides)
    spec = replace(StudySpec.from_data(json.loads(meta["spec"]), source=meta.get("source", "")),
                   overrides=tuple(meta.get("overrides", ())), notes=tuple(meta.get("notes", ())))
    runs: list[Run] = []
    for baseline in spec.baselines:
        for adm in (False, True):
            sname = st.tune_name(name, baseline, adm)
            if not st.study_exists(storage, sname):
                continue
            trials = optuna.load_study(study_name=sname, storage=storage).get_trials(deepcopy=False)
            counted = counted_tuning_trials(trials)
            for pos, t in enumerate(counted):
                if t.state != TrialState.RUNNING:
                    runs.append(run_from_trial(t, name, pos))
            # Crashed trials too, after the counted ones, so that their reasons reach runs.csv.
            # Left out: interrupted ones (the user stopped them; resuming replaced them) and a dead
            # worker's, which recorded nothing.
            crashed = [t for t in sorted(trials, key=lambda t: t.number)
                       if t.state == TrialState.FAIL and not t.user_attrs.get("skipped")
                       and t.user_attrs.get("reason") not in (None, "interrupted")]
            runs.extend(run_from_trial(t, name, len(counted) + k) for k, t in enumerate(crashed))
    all_tuning = _all_tuning_trials(storage, spec, name)
    tuning = finished_only(spec, all_tuning)
    selection: list[FrozenTrial] = []
    evaluation: list[FrozenTrial] = []
    if st.study_exists(storage, st.select_name(name)):
        selection = optuna.load_study(study_name=st.select_name(name),
                                      storage=storage).get_trials(deepcopy=False)
        plan = selection_plan(spec, tuning)[0]  # in finalist order, seeds within
        ended = final_attempts(selection)
        runs.extend(run_from_trial(ended[run["key"]], name, ended[run["key"]].number)
                    for run in plan if run["key"] in ended)
    if st.study_exists(storage, st.eval_name(name)):
        evaluation = optuna.load_study(study_name=st.eval_name(name),
                                       storage=storage).get_trials(deepcopy=False)
        planned = {run["key"] for run in evaluation_plan(spec, tuning, selection)[0]}
        evals = [run_from_trial(t, name, t.number) for key, t in final_attempts(evaluation).items()
                 if key in planned]
        # A stable order (workers run evaluation keys in any order): baseline, arm, seed.
        order = {b: i for i, b in enumerate(spec.baselines)}
        runs.extend(sorted(evals, key=lambda r: (order.get(r.baseline, 99),
                                                 EVAL_ARM_ORDER.get(r.arm, 3), r.arm, r.seed)))
    return StudyResults(
        name=name, spec=spec, fingerprint=meta.get("fingerprint", ""),
        version=meta.get("version", ""), versions=meta.get("versions", {}),
        device=meta.get("device", ""), wall_s=float(sum(r.wall_s for r in runs)),
        command=meta.get("command", ""), runs=runs, budget_changes=list(meta.get("budget_changes", [])),
        progress=progress(spec, all_tuning, tuning, selection, evaluation),
    )


def progress(spec: StudySpec, tuning: dict[tuple[str, bool], list[FrozenTrial]],
             finished: dict[tuple[str, bool], list[FrozenTrial] | None],
             selection: list[FrozenTrial], evaluation: list[FrozenTrial]) -> dict[str, Any]:
    """How far a study got: runs done of planned per stage, and whether every planned run ended.
    ``finished`` is ``finished_only(spec, tuning)``. A stage whose plan is not known yet counts
    what it will hold at least (its keys are unknown)."""
    tune_done = sum(min(spec.trials, sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                                         for t in trials)) for trials in tuning.values())
    out: dict[str, Any] = {"tune": {"done": tune_done, "planned": spec.trials * len(tuning)}}
    complete = tune_done == spec.trials * len(tuning)
    for stage, (plan, trials) in {
        "select": (selection_plan(spec, finished), selection),
        "evaluate": (evaluation_plan(spec, finished, selection), evaluation),
    }.items():
        runs, known = plan
        states = eval_states(trials, [r["key"] for r in runs])
        done = sum(v in ("complete", "failed") for v in states.values())
        at_least = planned_runs(spec) if stage == "evaluate" else len(tuning) * spec.tune.selection_seeds
        planned = len(runs) if known else max(len(runs), at_least)
        out[stage] = {"done": done, "planned": planned}
        complete = complete and known and done == planned
    out["complete"] = bool(complete)
    return out


def _all_tuning_trials(storage: optuna.storages.BaseStorage, spec: StudySpec, name: str
                       ) -> dict[tuple[str, bool], list[FrozenTrial]]:
    """Each tuning study's trials (an empty list for one not created yet)."""
    out: dict[tuple[str, bool], list[FrozenTrial]] = {}
    for baseline, adm in tuning_studies(spec):
        sname = st.tune_name(name, baseline, adm)
        out[(baseline, adm)] = (
            optuna.load_study(study_name=sname, storage=storage).get_trials(deepcopy=False)
            if st.study_exists(storage, sname) else [])
    return out


def tuning_studies(spec: StudySpec) -> list[tuple[str, bool]]:
    """(baseline, adm) of every tuning study: β per baseline, and AdM's lr when tune.lr = true."""
    return [(b, adm) for b in spec.baselines for adm in ((False, True) if spec.tune.lr else (False,))]


def finished_only(spec: StudySpec, tuning: dict[tuple[str, bool], list[FrozenTrial]]
                  ) -> dict[tuple[str, bool], list[FrozenTrial] | None]:
    """Each tuning study's trials once its budget is done, None while it is not: the input of
    the selection and evaluation plans."""
    return {k: (t if tuning_finished(t, spec.trials) else None) for k, t in tuning.items()}


def tuning_finished(trials: list[FrozenTrial], budget: int) -> bool:
    """The budget is counted and no trial of it is still running (here or elsewhere)."""
    counted, running, _ = tuning_counts(trials)
    return counted >= budget and not running


__all__ = [
    "DEFAULT_BETA", "MAX_ATTEMPTS", "SELECTION_SEED_OFFSET", "TUNING_SEED_OFFSET", "Finalist",
    "best_trial", "chosen", "counted_tuning_trials", "eval_key", "eval_states", "evaluation_plan",
    "final_attempts", "finalists", "is_duplicate", "last_ended_run", "load_results", "pack",
    "run_from_trial", "selected", "selection_plan", "selection_scores", "selection_seeds",
    "finished_only", "planned_runs", "tuning_counts", "tuning_finished", "tuning_studies", "unpack",
]
