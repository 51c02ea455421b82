"""The study engine: scheduling only. Tune β per baseline with Optuna, plan the evaluation runs,
and hand each run to the executor.

Every run is an Optuna trial in the storage, so any number of workers (processes, GPUs, machines)
sharing one storage divide the work, and a killed study resumes where it stopped:

- Tuning: one study per baseline; a worker asks for a trial only while fewer than ``trials`` count
  (complete, pruned, diverged or running elsewhere). Crashed or interrupted trials do not count and are
  replaced; a trial of a dead worker is failed by Optuna's heartbeat check and replaced too.
- Selection: the finalists of each tuning study (its best distinct β, β = 0.9, tune.candidates)
  run on their own seeds, scored on the validation metric; the best mean is the tuned β. Keyed
  runs, shared like evaluation runs.
- Evaluation: each planned run has a key (baseline, arm, seed); a worker enqueues one key that has
  no live attempt, then pops the oldest waiting trial atomically. A duplicate (two workers picked
  the same key at once) is noticed when popped and skipped, so each key completes once.

Which trials count, and how a run is stored, is ``records``' business; training one run is
``execute``'s; composing a study with its out folder and report is ``admtune.api``'s.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from .. import __version__
from ..errors import AdmtuneError
from ..workloads.base import Workload
from . import records
from . import storage as st
from .context import Arm
from .environment import WORKER_ID, describe_device, versions
from .events import Events, StopFlag
from .execute import Executor
from .pruning import HistoryPruner
from .results import StudyResults
from .spec import GROWABLE, StudySpec, budget, diff, without_budget

POLL_S = 0.5                  # how often an idle worker looks for work finished elsewhere
WAIT_TIMEOUT_S = 3600.0       # an idle worker gives up after this long without progress elsewhere
RETRY = "retry"               # a stage's answer: an earlier stage has work again
REPORT_CLAIM_S = 600.0        # a report begun longer ago than this by a silent worker: it died

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _quiet(fn, *args, **kwargs):
    """Call an Optuna function without its warnings that heartbeats are experimental and meant for
    optimize(): ask/tell with our own heartbeat thread is what runs that outlive one call need."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return fn(*args, **kwargs)


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
    wait_timeout: float | None = WAIT_TIMEOUT_S

    def __post_init__(self) -> None:
        self.name = self.spec.name
        opened = st.open_storage(
            self.storage_url, heartbeat_interval=self.heartbeat_interval, grace_period=self.grace_period
        )
        # One caching wrapper for the whole process (Optuna's own, as load_study(url) would make):
        # finished trials are read from the database once, not at every look at a study. A journal
        # keeps every trial in memory and the gRPC client caches finished ones: neither gets one.
        self.storage = optuna.storages.get_storage(opened)
        self._opened = opened
        self._guard = st.FileGuard(self.storage_url)
        self._studies: dict[str, optuna.Study] = {}
        self._plan: list[dict[str, Any]] | None = None
        self.executor = Executor(spec=self.spec, workload=self.workload, device=self.device,
                                 storage=self.storage, events=self.events, stop=self.stop,
                                 heartbeat_interval=self.heartbeat_interval)
        self._stale_checked: dict[str, float] = {}
        # True when this worker should write the report: it ended the study's last run, or it
        # found the study already complete without running anything (a resume of a finished study).
        self.writes_report = False

    # -- setup ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the studies (or check the stored spec matches, recording budgets that grew)
        before any training."""
        fp = self.spec.fingerprint(__version__)
        meta_name = st.meta_name(self.name)
        data = self.spec.to_data()
        meta = self._meta_attrs(meta_name) if st.study_exists(self.storage, meta_name) else None
        if meta is not None:
            old = json.loads(meta.get("spec", "{}"))
            if meta.get("fingerprint") != fp:
                changes = diff(without_budget(old), without_budget(data))
                if meta.get("version") != __version__:
                    changes.append(f"admtune version: {meta.get('version')} → {__version__}")
                what = "; ".join(c.replace("workload_options.", "workload.") for c in changes[:4])
                raise AdmtuneError(
                    f"the storage already holds study {self.name!r} with a different spec "
                    f"({what or 'fingerprint differs'}); use another --out or --storage to start afresh"
                )
            self._grow(meta_name, meta, old, data)
        else:
            # A new study, or one whose creator died before writing its fingerprint (it holds no
            # runs then: the fingerprint is written before any): this worker finishes creating it.
            study = optuna.create_study(study_name=meta_name, storage=self.storage, load_if_exists=True)
            # The fingerprint goes last: a worker that finds it knows every other attribute is there.
            attrs = {
                "spec": json.dumps(data, sort_keys=True), "version": __version__,
                "versions": versions(), "device": describe_device(self.device),
                "command": self.command, "source": self.spec.source,
                "overrides": list(self.spec.overrides), "notes": list(self.spec.notes),
                "admtune": "study", "fingerprint": fp,
            }
            for k, v in attrs.items():
                study.set_user_attr(k, v)
        direction = self.spec.direction
        for baseline in self.spec.baselines:
            optuna.create_study(study_name=st.tune_name(self.name, baseline), storage=self.storage,
                                direction=direction, load_if_exists=True)
            if self.spec.tune.lr:
                optuna.create_study(study_name=st.tune_name(self.name, baseline, adm=True),
                                    storage=self.storage, direction=direction, load_if_exists=True)
        for name in (st.select_name(self.name), st.eval_name(self.name)):
            optuna.create_study(study_name=name, storage=self.storage, direction=direction,
                                load_if_exists=True)

    def _grow(self, meta_name: str, meta: dict[str, Any], old: dict[str, Any],
              new: dict[str, Any]) -> None:
        """Budgets may grow on resume (exactly the new runs are added), never shrink. Each change
        is recorded with its time: the report calls a study grown after a report an interim look."""
        before, after = budget(old), budget(new)
        shrunk = [f"{k}: {before[k]} → {after[k]}" for k in GROWABLE if after[k] < before[k]]
        if shrunk:
            raise AdmtuneError(
                f"the storage holds study {self.name!r} with a larger budget ({'; '.join(shrunk)}); "
                "a budget may grow on resume, never shrink: use another --out or --storage"
            )
        grown = [k for k in GROWABLE if after[k] > before[k]]
        if not grown:
            return
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        changes = list(meta.get("budget_changes", []))
        changes += [{"key": k, "from": before[k], "to": after[k], "at": at} for k in grown]
        study_id = self.storage.get_study_id_from_name(meta_name)
        self.storage.set_study_user_attr(study_id, "budget_changes", changes)
        self.storage.set_study_user_attr(study_id, "spec", json.dumps(new, sort_keys=True))
        self.events.waiting("budget grown: " + ", ".join(f"{k} {before[k]} → {after[k]}" for k in grown))

    def claim_report(self) -> bool:
        """Before writing the report of a complete study: False when another worker began writing
        it less than :data:`REPORT_CLAIM_S` ago and has not said it finished (this worker joined
        the finished study while the worker that ended its last run was writing: two writes of one
        report are wasted work). Otherwise this worker's claim is recorded and it writes."""
        sid = self.storage.get_study_id_from_name(st.meta_name(self.name))
        attrs = self.storage.get_study_user_attrs(sid)
        writing, written = attrs.get("report_writing"), attrs.get("report_written")
        now = time.time()
        if (isinstance(writing, dict) and writing.get("worker") != WORKER_ID
                and now - float(writing.get("at", 0)) < REPORT_CLAIM_S
                and not (isinstance(written, dict)
                         and float(written.get("at", 0)) >= float(writing.get("at", 0)))):
            self.events.waiting(f"report: worker {writing.get('worker')} is writing it")
            return False
        self.storage.set_study_user_attr(sid, "report_writing", {"worker": WORKER_ID, "at": now})
        return True

    def report_written(self) -> None:
        """Say that this worker's report is written (a later joiner may write it again)."""
        sid = self.storage.get_study_id_from_name(st.meta_name(self.name))
        self.storage.set_study_user_attr(sid, "report_written",
                                         {"worker": WORKER_ID, "at": time.time()})

    def _meta_attrs(self, meta_name: str) -> dict[str, Any] | None:
        """The meta study's attributes, waiting while another worker is still writing them; None
        when they stay without a fingerprint for the grace period (their writer died)."""
        deadline = time.monotonic() + (self.grace_period or st.GRACE_PERIOD)
        while True:
            meta = self.storage.get_study_user_attrs(self.storage.get_study_id_from_name(meta_name))
            if "fingerprint" in meta:
                return meta
            if time.monotonic() > deadline:
                return None
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

    def _arm(self, baseline: str, name: str, beta: float | None, lr: float | None = None) -> Arm:
        adm = beta is None
        warmup = self.spec.warmup_for(adm)
        if name == "nowarmup":
            warmup = 0
        return Arm(baseline=baseline, name=name, beta=beta,
                   lr=lr if lr is not None else self.spec.train.lr[baseline],
                   weight_decay=self.spec.train.weight_decay[baseline], warmup_steps=warmup)

    @property
    def runs_executed(self) -> int:
        return self.executor.runs_executed

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
        """Fail the runs of dead workers, at most once per heartbeat interval (a run turns stale
        only after the grace period, so checking between every two runs is waste)."""
        if not self.heartbeat_interval:
            return
        now = time.monotonic()
        if now - self._stale_checked.get(study.study_name, -math.inf) >= self.heartbeat_interval:
            self._stale_checked[study.study_name] = now
            grace = self.grace_period or 3 * self.heartbeat_interval
            st.fail_stale_trials(study, grace)

    def _earlier_work(self, phase: str) -> bool:
        """While a stage waits for other workers: fail the dead ones' runs in the stages before it
        and say whether one of those stages has work again (a killed worker's tuning trial no
        longer counts), so that this worker goes back and does it instead of waiting forever."""
        for baseline, adm in records.tuning_studies(self.spec):
            study = self._study(st.tune_name(self.name, baseline, adm))
            self._fail_stale(study)
            counted, _, _ = records.tuning_counts(study.get_trials(deepcopy=False))
            if counted < self.spec.trials:
                return True
        if phase == "evaluate":
            study = self._study(st.select_name(self.name))
            self._fail_stale(study)
            planned, _ = self.selection_plan()
            states = records.eval_states(study.get_trials(deepcopy=False), [r["key"] for r in planned])
            return any(v == "todo" for v in states.values())
        return False

    def _wait(self, phase: str, trials: list, since: float) -> None:
        """One poll of an idle worker: say what it waits for, give up after wait_timeout."""
        live = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)
                and not t.user_attrs.get("skipped")]
        what = ", ".join(str(t.user_attrs.get("key", f"#{t.number}")) for t in live[:3])
        more = f" and {len(live) - 3} more" if len(live) > 3 else ""
        if live:
            runs = f"{len(live)} run{'s' if len(live) != 1 else ''}"
            reason = f"{phase}: waiting for {runs} of other workers ({what}{more})"
        else:
            reason = f"{phase}: waiting for earlier stages of other workers"
        self.events.waiting(reason)
        self._guard.check()
        if self.wait_timeout is not None and time.monotonic() - since > self.wait_timeout:
            raise AdmtuneError(
                f"gave up after waiting {self.wait_timeout:.0f} s for runs of other workers that "
                f"never ended ({reason.partition(': ')[2]}); if those workers are gone their runs "
                f"are failed after the grace period of {self.grace_period or 0} s: run the same "
                "command again, or raise --wait-timeout"
            )
        time.sleep(POLL_S)

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
            counted, _, crashed = records.tuning_counts(trials)
            self.events.phase(f"tune {baseline}" + (" (AdM lr)" if adm else ""), budget, counted)
            if counted >= budget:
                return
            if crashed >= budget * records.MAX_ATTEMPTS:
                first = records.first_crash(trials)
                raise AdmtuneError(f"tuning {baseline} crashed {crashed} times; the first: {first} "
                                   "(runs.csv lists every reason)")
            study.sampler = self._sampler(sname, len(trials))
            trial = _quiet(study.ask)
            # Another worker may have taken the last slot between our count and ask(): give it back.
            live = records.counted_tuning_trials(study.get_trials(deepcopy=False))
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
            seed = records.TUNING_SEED_OFFSET + trial.number
            what = "AdM lr" if adm else f"β={beta:.4f}"
            self._guard.check()
            self.executor.run(study, trial, arm, seed, prune=True, score="validation",
                              label=f"tune {baseline} #{trial.number} {what}", extra_attrs={"kind": "tune"})

    # -- selection and evaluation: keyed runs ------------------------------------------------
    def _finished_tuning(self) -> dict[tuple[str, bool], list | None]:
        return records.finished_only(self.spec, {
            (b, adm): self._study(st.tune_name(self.name, b, adm)).get_trials(deepcopy=False)
            for b, adm in records.tuning_studies(self.spec)})

    def selection_plan(self) -> tuple[list[dict[str, Any]], bool]:
        """The selection runs that can be planned now; complete once every tuning study is done."""
        return records.selection_plan(self.spec, self._finished_tuning())

    def plan(self) -> tuple[list[dict[str, Any]], bool]:
        """The evaluation runs that can be planned now, and whether the plan is complete (the
        tuned arms need their selection decided). A complete plan never changes again."""
        if self._plan is not None:
            return self._plan, True
        selection = self._study(st.select_name(self.name)).get_trials(deepcopy=False)
        tuning = self._finished_tuning()
        runs, complete = records.evaluation_plan(self.spec, tuning, selection)
        if complete:
            self._check_selection(tuning, selection)
            self._plan = runs
        return runs, complete

    def _check_selection(self, tuning: dict, selection: list) -> None:
        """A selection in which every run of every finalist diverged chose nothing."""
        for (baseline, adm), trials in tuning.items():
            cands = records.finalists(trials, self.spec, baseline, adm)
            scores = records.selection_scores(selection, cands, self.spec, baseline, adm)
            if all(v is not None and not math.isfinite(v) for _, values in scores for v in values):
                what = "AdM's lr" if adm else "β"
                raise AdmtuneError(
                    f"every finalist of {baseline} ({what}: {len(cands)} finalists on "
                    f"{self.spec.tune.selection_seeds} selection seeds) diverged or failed, so there "
                    f"is nothing to evaluate; lower train.lr.{baseline} or narrow the tuning range"
                )

    def select(self) -> bool | str:
        """Run the finalists of tuning on their selection seeds; True when every run ended."""
        n_finalists = self.spec.tune.finalists + 1 + len(self.spec.tune.candidates)  # at most
        arms = 2 if self.spec.tune.lr else 1
        return self._run_keyed(
            st.select_name(self.name), self.selection_plan, "select",
            lambda planned, complete: len(planned) if complete else
            len(self.spec.baselines) * arms * n_finalists * self.spec.tune.selection_seeds,
            score="validation",
        )

    def evaluate(self) -> bool | str:
        """Run the evaluation runs until the plan is done; True when every planned run ended."""
        return self._run_keyed(st.eval_name(self.name), self.plan, "evaluate",
                               lambda planned, complete: records.planned_runs(self.spec), score="test")

    def _run_keyed(self, study_name: str, plan: Callable[[], tuple[list[dict[str, Any]], bool]],
                   phase: str, total: Callable[[list, bool], int], score: str) -> bool | str:
        """Run a stage's keyed runs until its plan is done; True when every planned run ended,
        False when stopped, RETRY when an earlier stage has work again (a dead worker's run).

        A worker enqueues one planned key at a time, just before it asks for a trial (which pops the
        oldest waiting one), picking keys in its own random order: workers rarely pick the same
        key, and when two do, the later attempt notices the earlier one and is skipped.
        """
        order = random.Random(os.getpid() * 1_000_003 + time.monotonic_ns())
        ran: set[int] = set()  # numbers of the trials of this stage that this worker ran
        idle_since: float | None = None   # since when this worker has waited without progress
        last_done = -1
        while not self.stop.after_run:
            planned, plan_complete = plan()
            study = self._study(study_name)
            self._fail_stale(study)
            trials = study.get_trials(deepcopy=False)
            states = records.eval_states(trials, [run["key"] for run in planned])
            done = sum(s in ("complete", "failed") for s in states.values())
            self.events.phase(phase, total(planned, plan_complete), done)
            if plan_complete and done == len(planned):
                if phase == "evaluate":
                    # Every worker that sees the study complete reads the same trials, so exactly
                    # one finds that it ended the last run (two ending at once would both write).
                    self.writes_report = (records.last_ended_run(trials) in ran if ran
                                          else self.runs_executed == 0)
                return True
            todo = [run for run in planned if states[run["key"]] == "todo"]
            if not todo and not any(t.state == TrialState.WAITING for t in trials):
                if not plan_complete and self._earlier_work(phase):
                    return RETRY
                if idle_since is None or done != last_done:  # others made progress: not stuck
                    idle_since, last_done = time.monotonic(), done
                self._wait(phase, trials, idle_since)
                continue
            idle_since = None
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
            if records.is_duplicate(study.get_trials(deepcopy=False), trial.number, key):
                trial.set_user_attr("skipped", "duplicate of another attempt")
                study.tell(trial, state=TrialState.FAIL)
                continue
            arm = self._arm(run["baseline"], run["arm"], run["beta"], run["lr"])
            ran.add(trial.number)
            self._guard.check()
            self.executor.run(study, trial, arm, int(run["seed"]), prune=False, score=score,
                              label=f"{phase} {key}", extra_attrs={"kind": phase, "key": key})
        return False

    # -- everything --------------------------------------------------------------------------
    def run(self) -> bool:
        """Tune every baseline, select among the finalists, then evaluate. True when the study
        is complete."""
        self.prepare()
        while True:  # again from tuning when a later stage found a dead worker's run to redo
            for baseline, adm in records.tuning_studies(self.spec):
                self.tune(baseline, adm=adm)
            if self.stop.after_run:
                return False
            selected = self.select()
            if selected == RETRY:
                continue
            if not selected:
                return False
            evaluated = self.evaluate()
            if evaluated != RETRY:
                return bool(evaluated)

    def results(self) -> StudyResults:
        return records.load_results(self.storage, self.name)

    def close(self) -> None:
        """Close the storage's connections (SQLite folds its write-ahead log back into the file)."""
        st.close_storage(self._opened)


__all__ = ["Engine"]
