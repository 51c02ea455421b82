"""The study engine: tune β per baseline with Optuna, then run AdM, tuned β and β = 0.9 on fresh seeds.

Every run is an Optuna trial in the storage, so any number of workers (processes, GPUs, machines)
sharing one storage divide the work, and a killed study resumes where it stopped:

- Tuning: one study per baseline; a worker asks for a trial only while fewer than ``trials`` count
  (complete, pruned, diverged or running elsewhere). Crashed or interrupted trials do not count and are
  replaced; a trial of a dead worker is failed by Optuna's heartbeat check and replaced too.
- Evaluation: each planned run has a key (baseline, arm, seed); a worker enqueues one key that has
  no live attempt, then pops the oldest waiting trial atomically. A duplicate (two workers picked
  the same key at once) is noticed when popped and skipped, so each key completes once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import platform
import random
import shutil
import threading
import time
import traceback
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from .. import __version__, _gc
from ..devices import resolve_device
from ..errors import AdmtuneError, SpecError, StorageError
from ..workloads import Diverged, Pruned, TrainConfig, get_workload
from ..workloads.base import Workload
from . import storage as st
from .context import Arm, Interrupted, RunRecorder, seed_everything
from .pruning import HistoryPruner
from .results import StudyResults
from .spec import StudySpec, diff

DEFAULT_BETA = 0.9
TUNING_SEED_OFFSET = 10_000   # tuning seeds 10000, 10001, …; evaluation seeds 0 … K−1
MAX_ATTEMPTS = 3              # a run that crashes this many times is recorded as failed
# Attributes the engine queries get a key each; the rest of a run's record goes in one attribute
# (each attribute is a commit, and commits are what several workers on one storage queue for).
QUERIED_ATTRS = ("key", "status", "beta", "lr", "reason")
MIN_FREE_BYTES = 64 * 2**20   # refuse to start a study on a (nearly) full disk
MIN_REPORTS = 3               # evaluation points before the median pruner may stop a trial
WORKER_ID = f"{platform.node()}:{os.getpid()}"  # recorded with each run: who ran it
POLL_S = 0.5                  # how often an idle worker looks for work finished elsewhere

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _quiet(fn, *args, **kwargs):
    """Call an Optuna function without its warnings that heartbeats are experimental and meant for
    optimize(): ask/tell with our own heartbeat thread is what runs that outlive one call need."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return fn(*args, **kwargs)


@dataclass
class StopFlag:
    """Set by the CLI's Ctrl-C handler: first press stops after the run, second aborts it."""

    after_run: bool = False
    now: bool = False

    def request(self) -> None:
        if self.after_run:
            self.now = True
        self.after_run = True


class Events:
    """What the engine tells its caller (the CLI draws progress bars from it). No-ops by default."""

    def phase(self, name: str, total: int, done: int) -> None: ...
    def run_started(self, label: str) -> None: ...
    def run_finished(self, label: str, status: str, value: float | None, wall_s: float) -> None: ...
    def waiting(self, reason: str) -> None: ...


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    import numpy

    return {
        "admtune": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "optuna": optuna.__version__, "numpy": numpy.__version__, "platform": platform.platform(),
    }


# --- the engine -------------------------------------------------------------------------------
@dataclass
class Engine:
    spec: StudySpec
    storage_url: str
    device: torch.device
    workload: Workload
    command: str = ""
    events: Events = field(default_factory=Events)
    stop: StopFlag = field(default_factory=StopFlag)
    heartbeat_interval: int | None = st.HEARTBEAT_INTERVAL
    grace_period: int | None = st.GRACE_PERIOD

    def __post_init__(self) -> None:
        self.name = self.spec.name
        rdb = st.open_storage(
            self.storage_url, heartbeat_interval=self.heartbeat_interval, grace_period=self.grace_period
        )
        # One caching wrapper for the whole process (Optuna's own, as load_study(url) would make):
        # finished trials are read from the database once, not at every look at a study.
        self.storage = optuna.storages.get_storage(rdb)
        self._rdb = rdb
        self._studies: dict[str, optuna.Study] = {}
        self._plan: list[dict[str, Any]] | None = None
        self.runs_executed = 0
        self._eval_ran: set[int] = set()  # numbers of the evaluation trials this worker ran
        self._stale_checked: dict[str, float] = {}
        # True when this worker should write the report: it ended the study's last run, or it
        # found the study already complete without running anything (a resume of a finished study).
        self.writes_report = False

    # -- setup ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the studies (or check the stored fingerprint matches) before any training."""
        fp = self.spec.fingerprint(__version__)
        meta_name = st.meta_name(self.name)
        if st.study_exists(self.storage, meta_name):
            meta = self._meta_attrs(meta_name)
            if meta.get("fingerprint") != fp:
                old = json.loads(meta.get("spec", "{}"))
                changes = diff(old, self.spec.to_data())
                if meta.get("version") != __version__:
                    changes.append(f"admtune version: {meta.get('version')} → {__version__}")
                what = "; ".join(c.replace("workload_options.", "workload.") for c in changes[:4])
                raise AdmtuneError(
                    f"the storage already holds study {self.name!r} with a different spec "
                    f"({what or 'fingerprint differs'}); use another --out or --storage to start afresh"
                )
        else:
            meta = optuna.create_study(study_name=meta_name, storage=self.storage, load_if_exists=True)
            # The fingerprint goes last: a worker that finds it knows every other attribute is there.
            attrs = {
                "spec": json.dumps(self.spec.to_data(), sort_keys=True), "version": __version__,
                "versions": versions(), "device": describe_device(self.device),
                "command": self.command, "admtune": "study", "fingerprint": fp,
            }
            for k, v in attrs.items():
                meta.set_user_attr(k, v)
        direction = self.spec.direction
        for baseline in self.spec.baselines:
            optuna.create_study(study_name=st.tune_name(self.name, baseline), storage=self.storage,
                                direction=direction, load_if_exists=True)
            if self.spec.tune.lr:
                optuna.create_study(study_name=st.tune_name(self.name, baseline, adm=True),
                                    storage=self.storage, direction=direction, load_if_exists=True)
        optuna.create_study(study_name=st.eval_name(self.name), storage=self.storage,
                            direction=direction, load_if_exists=True)

    def _meta_attrs(self, meta_name: str, wait_s: float = 30.0) -> dict[str, Any]:
        """The meta study's attributes, waiting while another worker is still writing them."""
        deadline = time.monotonic() + wait_s
        while True:
            meta = self.storage.get_study_user_attrs(self.storage.get_study_id_from_name(meta_name))
            if "fingerprint" in meta:
                return meta
            if time.monotonic() > deadline:
                raise AdmtuneError(
                    f"the storage holds a study named {self.name!r} that admtune did not finish "
                    "creating (no fingerprint); use another --out or --storage"
                )
            time.sleep(0.2)

    # -- helpers ----------------------------------------------------------------------------
    def _study(self, name: str, sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
        study = self._studies.get(name)
        if study is None:
            study = self._studies[name] = optuna.load_study(study_name=name, storage=self.storage)
        if sampler is not None:
            study.sampler = sampler
        if pruner is not None:
            study.pruner = pruner
        return study

    def _worst(self) -> float:
        return math.inf if self.spec.direction == "minimize" else -math.inf

    def _train_config(self, baseline: str, lr: float, warmup: int) -> TrainConfig:
        t = self.spec.train
        return TrainConfig(
            batch_size=t.batch_size, lr=lr, weight_decay=t.weight_decay[baseline],
            epochs=t.epochs, steps=t.steps, schedule=t.schedule, warmup_steps=warmup,
        )

    def _arm(self, baseline: str, name: str, beta: float | None, lr: float | None = None) -> Arm:
        adm = beta is None
        warmup = self.spec.warmup_for(adm)
        if name == "nowarmup":
            warmup = 0
        return Arm(baseline=baseline, name=name, beta=beta,
                   lr=lr if lr is not None else self.spec.train.lr[baseline],
                   weight_decay=self.spec.train.weight_decay[baseline], warmup_steps=warmup)

    # -- one run -----------------------------------------------------------------------------
    def execute(self, study: optuna.Study, trial: optuna.Trial, arm: Arm, seed: int,
                prune: bool, label: str, extra_attrs: dict[str, Any]) -> None:
        """Train one run as ``trial`` and tell the storage how it ended. Never raises for a
        diverged, pruned or crashed run; re-raises Interrupted after recording it."""
        metric = self.spec.metric
        attrs: dict[str, Any] = {
            "baseline": arm.baseline, "arm": arm.name, "seed": seed, "beta": arm.beta, "lr": arm.lr,
            "metric": f"val_{metric}" if prune else metric, "device": str(self.device),
            "worker": WORKER_ID,
            "warmup_steps": arm.warmup_steps, **extra_attrs,
        }

        reports = 0

        def should_prune(step: int, value: float) -> bool:
            # Only tuning trials tell Optuna their intermediate values (each is a commit; the
            # validation curve of every run is kept in its record). Early evaluation points say
            # little about β (high momentum starts slower): the median rule applies from the
            # MIN_REPORTS-th evaluation point of a run on.
            nonlocal reports
            reports += 1
            if not prune or self.spec.tune.pruner == "none" or reports < MIN_REPORTS:
                return False
            trial.report(value, step)
            return trial.should_prune()

        rec = RunRecorder(
            seed=seed, device=self.device,
            train=self._train_config(arm.baseline, arm.lr, arm.warmup_steps),
            options=self.spec.workload_options, arm=arm, metric=metric, should_prune=should_prune,
            abort_requested=lambda: self.stop.now,
        )
        self.events.run_started(label)
        self.runs_executed += 1
        seed_everything(seed)
        t0 = time.perf_counter()
        state, value, error = TrialState.COMPLETE, None, None
        with _Heartbeat(self.storage, trial._trial_id, self.heartbeat_interval):
            try:
                result = self.workload.run(rec)
                rec.finish()
                value = float(result.test[metric]) if not prune else float(result.validation[metric])
                attrs.update(status="complete", value=value, steps=int(result.steps),
                             val_value=float(result.validation[metric]))
                attrs["metrics"] = {"validation": result.validation, "test": result.test}
                if not math.isfinite(value):
                    raise Diverged(f"{metric} is {value}")
            except Diverged as exc:
                attrs.update(status="diverged", value=None, val_value=None, reason=str(exc),
                             steps=rec.last_step + 1)
                value = self._worst()
            except Pruned:
                state = TrialState.PRUNED
                attrs.update(status="pruned", steps=rec.last_step + 1,
                             value=rec.val_values[-1] if rec.val_values else None)
            except (Interrupted, KeyboardInterrupt):
                state, error = TrialState.FAIL, Interrupted("interrupted")
                attrs.update(status="failed", reason="interrupted", steps=rec.last_step + 1)
            except Exception as exc:  # a crash: recorded, retried up to MAX_ATTEMPTS
                state = TrialState.FAIL
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                attrs.update(status="failed", reason=last[:500], steps=rec.last_step + 1)
                if isinstance(exc, AdmtuneError):
                    error = exc  # bad data or options: the same on every attempt, so stop
        wall = time.perf_counter() - t0
        if self.runs_executed == 1:
            _gc.settle()  # the first run has imported what training needs: see admtune._gc
        attrs.update(wall_s=round(wall, 4), curve=rec.curve(), val_curve=rec.val_curve(),
                     beta_trace=_round_trace(rec.beta_trace()))
        try:
            # One commit per user attribute: the attributes the engine queries (and that Optuna's
            # dashboard shows) go one per key, everything else in one "record".
            known = trial.user_attrs
            record = {k: attrs.pop(k) for k in list(attrs) if k not in QUERIED_ATTRS}
            attrs["record"] = record
            for k, v in attrs.items():
                if k not in known or known[k] != v:
                    trial.set_user_attr(k, v)
            if state == TrialState.COMPLETE:
                study.tell(trial, value)
            else:
                study.tell(trial, state=state)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Our heartbeats went unheard for the grace period (a stalled machine or storage) and
            # another worker failed this run as stale; it has been or will be re-run there.
            attrs["status"] = "failed"
            attrs["value"] = None
            self.events.waiting("a run was taken over as stale by another worker")
        attrs.update(attrs.pop("record", {}))
        shown = None if attrs.get("value") is None else float(attrs["value"])
        self.events.run_finished(label, attrs["status"], shown, wall)
        if error is not None:
            raise error

    # -- tuning ------------------------------------------------------------------------------
    def _sampler(self, study_name: str, n_existing: int) -> optuna.samplers.BaseSampler:
        # Re-seeded from the history's length so a resumed study suggests what an uninterrupted
        # one would have (single worker).
        seed = zlib.crc32(study_name.encode()) + n_existing
        if self.spec.tune.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, multivariate=self.spec.tune.lr)

    def _pruner(self) -> HistoryPruner:
        if self.spec.tune.pruner == "none":
            return HistoryPruner(optuna.pruners.NopPruner())
        return HistoryPruner(optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0))

    def _fail_stale(self, study: optuna.Study) -> None:
        """Optuna's check for runs of dead workers, at most once per heartbeat interval (a run
        turns stale only after the grace period, so checking between every two runs is waste)."""
        now = time.monotonic()
        if now - self._stale_checked.get(study.study_name, -math.inf) >= (self.heartbeat_interval or 0):
            self._stale_checked[study.study_name] = now
            _quiet(optuna.storages.fail_stale_trials, study)

    @staticmethod
    def _tuning_counts(trials: list) -> tuple[int, int, int]:
        """(counted, running, crashed) among a tuning study's trials."""
        counted = st.counted_tuning_trials(trials)
        running = sum(t.state == TrialState.RUNNING for t in counted)
        crashed = sum(t.state == TrialState.FAIL and t.user_attrs.get("reason") != "interrupted"
                      and not t.user_attrs.get("skipped") for t in trials)
        return len(counted), running, crashed

    def tuning_finished(self, baseline: str, adm: bool) -> bool:
        """The budget is counted and no trial of it is still running (here or elsewhere)."""
        trials = self._study(st.tune_name(self.name, baseline, adm)).get_trials(deepcopy=False)
        counted, running, _ = self._tuning_counts(trials)
        return counted >= self.spec.trials and not running

    def tune(self, baseline: str, adm: bool = False) -> None:
        """Run tuning trials until the budget counts ``trials`` (this worker's share)."""
        sname = st.tune_name(self.name, baseline, adm)
        budget = self.spec.trials
        u = self.spec.tune
        pruner = self._pruner()
        study = self._study(sname, pruner=pruner)
        while not self.stop.after_run:
            self._fail_stale(study)
            trials = study.get_trials(deepcopy=False)
            pruner.seen(trials)
            counted, _, crashed = self._tuning_counts(trials)
            self.events.phase(f"tune {baseline}" + (" (AdM lr)" if adm else ""), budget, counted)
            if counted >= budget:
                return
            if crashed >= budget * MAX_ATTEMPTS:
                raise AdmtuneError(f"tuning {baseline} crashed {crashed} times; see runs.csv for the reasons")
            study.sampler = self._sampler(sname, len(trials))
            trial = _quiet(study.ask)
            # Another worker may have taken the last slot between our count and ask(): give it back.
            live = st.counted_tuning_trials(study.get_trials(deepcopy=False))
            if [t.number for t in live].index(trial.number) >= budget:
                trial.set_user_attr("skipped", "budget already reached")
                study.tell(trial, state=TrialState.FAIL)
                continue
            if adm:
                beta = None
            else:
                one_minus = trial.suggest_float(
                    "one_minus_beta", 1 - u.beta_high, 1 - u.beta_low, log=True
                )
                beta = 1.0 - one_minus
            lr = None
            if u.lr:
                lo, hi = u.lr_range[baseline]
                lr = trial.suggest_float("lr", lo, hi, log=True)
            arm = self._arm(baseline, "adm_trial" if adm else "trial", beta, lr)
            seed = TUNING_SEED_OFFSET + trial.number
            what = "AdM lr" if adm else f"β={beta:.4f}"
            self.execute(study, trial, arm, seed, prune=True,
                         label=f"tune {baseline} #{trial.number} {what}", extra_attrs={"kind": "tune"})

    def best_tuning(self, baseline: str, adm: bool = False) -> tuple[float | None, float]:
        """(β, lr) of the best complete, non-diverged tuning trial."""
        study = self._study(st.tune_name(self.name, baseline, adm))
        trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if t.user_attrs.get("status") == "complete" and t.value is not None
                  and math.isfinite(t.value)]
        if not trials:
            what = "AdM's lr" if adm else "β"
            raise AdmtuneError(
                f"every tuning trial of {baseline} ({what}) diverged or failed, so there is nothing to "
                f"evaluate; lower train.lr.{baseline} or narrow the tuning range"
            )
        sign = 1.0 if self.spec.direction == "minimize" else -1.0
        best = min(trials, key=lambda t: (sign * t.value, t.number))  # ties: the earliest trial
        return best.user_attrs.get("beta"), float(best.user_attrs["lr"])

    # -- evaluation --------------------------------------------------------------------------
    def plan(self) -> tuple[list[dict[str, Any]], bool]:
        """The evaluation runs that can be planned now, and whether the plan is complete
        (tuned arms need their tuning finished). A complete plan never changes again."""
        if self._plan is not None:
            return self._plan, True
        runs, complete = [], True
        seeds = range(self.spec.seeds)
        for baseline in self.spec.baselines:
            lr0 = self.spec.train.lr[baseline]
            adm_lr: float | None = lr0
            tuned: tuple[float | None, float] | None = None
            if self.spec.tune.lr:
                finished = self.tuning_finished(baseline, adm=True)
                adm_lr = self.best_tuning(baseline, adm=True)[1] if finished else None
            if self.tuning_finished(baseline, adm=False):
                tuned = self.best_tuning(baseline)
            arms: list[tuple[str, float | None, float | None]] = [("default", DEFAULT_BETA, lr0)]
            if adm_lr is not None:
                arms.insert(0, ("adm", None, adm_lr))
            else:
                complete = False
            if tuned is not None:
                arms.insert(1, ("tuned", tuned[0], tuned[1]))
                for extra in self.spec.extra_arms:
                    arms.append((extra, tuned[0], tuned[1]))
            else:
                complete = False
            for arm, beta, lr in arms:
                for seed in seeds:
                    runs.append({"key": f"{baseline}/{arm}/{seed}", "baseline": baseline,
                                 "arm": arm, "seed": seed, "beta": beta, "lr": lr})
        if complete:
            self._plan = runs
        return runs, complete

    @staticmethod
    def eval_states(trials: list, planned: list[dict[str, Any]]) -> dict[str, str]:
        """key → complete | live (running or waiting somewhere) | failed (crashed MAX_ATTEMPTS
        times) | todo."""
        by_key: dict[str, list] = {}
        for t in trials:
            if "key" in t.user_attrs and not t.user_attrs.get("skipped"):
                by_key.setdefault(t.user_attrs["key"], []).append(t)
        states: dict[str, str] = {}
        for run in planned:
            attempts = by_key.get(run["key"], [])
            if any(t.state == TrialState.COMPLETE for t in attempts):
                states[run["key"]] = "complete"
            elif any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in attempts):
                states[run["key"]] = "live"
            elif sum(t.user_attrs.get("reason") not in (None, "interrupted")
                     for t in attempts) >= MAX_ATTEMPTS:
                states[run["key"]] = "failed"
            else:
                states[run["key"]] = "todo"
        return states

    def evaluate(self) -> bool:
        """Run evaluation runs until the plan is done; True when every planned run ended.

        A worker enqueues one planned key at a time, just before it asks for a trial (which pops the
        oldest waiting one), picking keys in its own random order: workers rarely pick the same
        key, and when two do, the later attempt notices the earlier one and is skipped.
        """
        order = random.Random(os.getpid() * 1_000_003 + time.monotonic_ns())
        total = self.spec.seeds * len(self.spec.baselines) * (3 + len(self.spec.extra_arms))
        while not self.stop.after_run:
            planned, plan_complete = self.plan()
            study = self._study(st.eval_name(self.name))
            self._fail_stale(study)
            trials = study.get_trials(deepcopy=False)
            states = self.eval_states(trials, planned)
            done = sum(s in ("complete", "failed") for s in states.values())
            self.events.phase("evaluate", total, done)
            if plan_complete and done == len(planned):
                # Every worker that sees the study complete reads the same trials, so exactly one
                # finds that it ended the last run (two ending at once would both write otherwise).
                self.writes_report = (last_ended_run(trials) in self._eval_ran if self._eval_ran
                                      else self.runs_executed == 0)
                return True
            todo = [run for run in planned if states[run["key"]] == "todo"]
            if not todo and not any(t.state == TrialState.WAITING for t in trials):
                self.events.waiting("waiting for runs of other workers")
                time.sleep(POLL_S)
                continue
            if todo:
                run = order.choice(todo)
                study.enqueue_trial({"key": run["key"]}, user_attrs=dict(run))
            trial = _quiet(study.ask)
            run = dict(trial.user_attrs)
            key = run.get("key")
            if key is None:  # another worker popped the waiting trial first: a fresh, empty one
                trial.set_user_attr("skipped", "no planned run left")
                study.tell(trial, state=TrialState.FAIL)
                continue
            if self._duplicate(study, trial.number, key):
                trial.set_user_attr("skipped", "duplicate of another attempt")
                study.tell(trial, state=TrialState.FAIL)
                continue
            arm = self._arm(run["baseline"], run["arm"], run["beta"], run["lr"])
            self._eval_ran.add(trial.number)
            self.execute(study, trial, arm, int(run["seed"]), prune=False,
                         label=f"eval {key}", extra_attrs={"kind": "eval", "key": key})
        return False

    @staticmethod
    def _duplicate(study: optuna.Study, number: int, key: str) -> bool:
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if t.number != number and t.user_attrs.get("key") == key and not t.user_attrs.get("skipped"):
                if t.state == TrialState.COMPLETE or t.number < number:
                    return True
        return False

    # -- everything --------------------------------------------------------------------------
    def run(self) -> bool:
        """Tune every baseline, then evaluate. True when the study is complete."""
        self.prepare()
        for baseline in self.spec.baselines:
            self.tune(baseline)
            if self.spec.tune.lr:
                self.tune(baseline, adm=True)
        if self.stop.after_run:
            return False
        return self.evaluate()

    def results(self) -> StudyResults:
        return st.load_results(self.storage, self.name)

    def close(self) -> None:
        """Close the storage's connections (SQLite folds its write-ahead log back into the file)."""
        self._rdb.engine.dispose()


def last_ended_run(trials: list) -> int | None:
    """The number of the evaluation run that ended last (ties go to the higher number)."""
    ended = [t for t in trials
             if "key" in t.user_attrs and not t.user_attrs.get("skipped")
             and t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.datetime_complete]
    if not ended:
        return None
    return max(ended, key=lambda t: (t.datetime_complete, t.number)).number


class _Heartbeat:
    """Records the trial's heartbeat from a thread while it runs (Optuna's stale-trial detection)."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, interval: int | None):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a transient storage error must not kill the run
                pass
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> _Heartbeat:
        if self.interval and hasattr(self.storage, "record_heartbeat"):
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _round_trace(trace: dict[str, Any] | None, digits: int = 5) -> dict[str, Any] | None:
    if trace is None:
        return None
    vals = [[None if v is None else round(v, digits) for v in row] for row in trace["values"]]
    return {**trace, "values": vals}


# --- the Python API ---------------------------------------------------------------------------
@dataclass
class Outcome:
    complete: bool
    results: StudyResults | None
    out_dir: Path
    storage_url: str
    reported: bool = False  # this worker wrote the report (the one that ended the last run)


def prepare_engine(spec: StudySpec, *, storage: str | None = None, out: str | Path | None = None,
                   device: str = "auto", events: Events | None = None, stop: StopFlag | None = None,
                   command: str = "", heartbeat_interval: int | None = st.HEARTBEAT_INTERVAL,
                   grace_period: int | None = st.GRACE_PERIOD) -> tuple[Engine, Path]:
    """Validate everything that can be known before training (workload, metric, device, storage)."""
    workload = get_workload(spec.workload, spec.workload_options)
    if spec.metric not in workload.metrics:
        raise SpecError(
            f"metric {spec.metric!r} is not reported by workload {spec.workload!r} "
            f"(it reports: {', '.join(workload.metrics)})"
        )
    if workload.metrics[spec.metric] != spec.direction:
        raise SpecError(
            f"direction must be {workload.metrics[spec.metric]!r} for metric {spec.metric!r}, "
            f"got {spec.direction!r}"
        )
    dev = resolve_device(device)
    out_dir = Path(out) if out is not None else Path("reports") / spec.name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AdmtuneError(f"cannot create the out folder {out_dir}: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK):
        raise AdmtuneError(f"the out folder {out_dir} is not writable")
    free = shutil.disk_usage(out_dir).free
    if free < MIN_FREE_BYTES:
        raise AdmtuneError(
            f"the disk holding {out_dir} has {free / 2**20:.0f} MiB free; admtune needs at least "
            f"{MIN_FREE_BYTES // 2**20} MiB for the storage and the report"
        )
    url = storage or st.default_url(out_dir)
    engine = Engine(spec=spec, storage_url=url, device=dev, workload=workload, command=command,
                    events=events or Events(), stop=stop or StopFlag(),
                    heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    return engine, out_dir


def run(spec: StudySpec, *, storage: str | None = None, out: str | Path | None = None,
        device: str = "auto", events: Events | None = None, stop: StopFlag | None = None,
        command: str = "", report: bool = True, pdf: bool = True,
        heartbeat_interval: int | None = st.HEARTBEAT_INTERVAL,
        grace_period: int | None = st.GRACE_PERIOD) -> Outcome:
    """Run or resume a study; when every run has ended, write its report into the out folder.

    Example::

        from admtune.study import spec, runner
        outcome = runner.run(spec.load("quick", ["train.epochs=2"]), device="cpu")
        print(outcome.results.frame())
    """
    engine, out_dir = prepare_engine(
        spec, storage=storage, out=out, device=device, events=events, stop=stop, command=command,
        heartbeat_interval=heartbeat_interval, grace_period=grace_period,
    )
    with _storage_errors(engine.storage_url):
        try:
            complete = engine.run()
            results = engine.results()
        finally:
            engine.close()
        reported = complete and report and engine.writes_report
        if reported:
            engine.events.phase("report", 1, 0)
            write_outputs(results, out_dir, pdf=pdf)
            engine.events.phase("report", 1, 1)
        elif report and not complete:
            write_runs_csv(results, out_dir)
    return Outcome(complete=complete, results=results, out_dir=out_dir,
                   storage_url=engine.storage_url, reported=reported)


@contextlib.contextmanager
def _storage_errors(url: str):
    """A storage or disk failure mid-study becomes one sentence (what is stored stays resumable)."""
    import sqlalchemy.exc

    try:
        yield
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        if "disk" in reason and "full" in reason:
            raise StorageError(f"the disk holding the storage is full ({reason}); free space and "
                               "run the same command to resume") from None
        raise StorageError(f"the storage {st.mask_url(url)!r} failed: {reason}; run the same "
                           "command to resume once it is reachable") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise AdmtuneError(f"no space left on the device while writing {exc.filename or 'results'};"
                               " free space and run the same command to resume") from None
        raise


def write_runs_csv(results: StudyResults, out_dir: Path) -> Path:
    """runs.csv alone (a study stopped before its end has no report yet)."""
    from ..report import atomic_write

    path = Path(out_dir) / "runs.csv"
    atomic_write(path, results.frame().to_csv(index=False))
    return path


def write_outputs(results: StudyResults, out_dir: Path, pdf: bool = True) -> dict[str, Any]:
    """The report: summary.json, runs.csv, report.html and report.pdf, each written atomically."""
    from ..report import write_report

    return write_report(results, Path(out_dir), pdf=pdf)


__all__ = ["Engine", "Events", "Outcome", "StopFlag", "prepare_engine", "resolve_device", "run",
           "write_outputs", "write_runs_csv"]
