"""One run as one trial: train the arm on the workload, beat the heartbeat meanwhile, and tell the
storage how the run ended (complete, diverged, pruned, interrupted or crashed).

:class:`Executor` holds what every run of one worker shares (spec, workload, device, storage); the
engine decides *which* run to do, this module only does it.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from .. import _gc
from ..errors import AdmtuneError
from ..workloads import Diverged, Pruned, TrainConfig
from ..workloads.base import Workload
from . import records
from .context import Arm, Interrupted, RunRecorder, seed_everything
from .environment import WORKER_ID
from .events import Events, StopFlag
from .spec import StudySpec


@dataclass
class Executor:
    spec: StudySpec
    workload: Workload
    device: torch.device
    storage: optuna.storages.BaseStorage
    events: Events = field(default_factory=Events)
    stop: StopFlag = field(default_factory=StopFlag)
    heartbeat_interval: int | None = None
    runs_executed: int = 0

    def train_config(self, arm: Arm) -> TrainConfig:
        t = self.spec.train
        return TrainConfig(
            batch_size=t.batch_size, lr=arm.lr, weight_decay=t.weight_decay[arm.baseline],
            epochs=t.epochs, steps=t.steps, schedule=t.schedule, warmup_steps=arm.warmup_steps,
        )

    def _worst(self) -> float:
        return math.inf if self.spec.direction == "minimize" else -math.inf

    def run(self, study: optuna.Study, trial: optuna.Trial, arm: Arm, seed: int, *,
            prune: bool, score: str, label: str, extra_attrs: dict[str, Any]) -> None:
        """Train one run as ``trial`` and tell the storage how it ended. Never raises for a
        diverged, pruned or crashed run; re-raises Interrupted after recording it.

        ``score`` is the split whose metric is the trial's value: "validation" for tuning and
        selection (β is never chosen on the test set), "test" for evaluation. ``prune`` lets the
        median pruner stop it (tuning only)."""
        metric = self.spec.metric
        on_validation = score == "validation"
        attrs: dict[str, Any] = {
            "baseline": arm.baseline, "arm": arm.name, "seed": seed, "beta": arm.beta, "lr": arm.lr,
            "metric": f"val_{metric}" if on_validation else metric, "device": str(self.device),
            "worker": WORKER_ID,
            "warmup_steps": arm.warmup_steps, **extra_attrs,
        }

        def should_prune(step: int, value: float) -> bool:
            # Only tuning trials tell Optuna their intermediate values (each is a commit; the
            # validation curve of every run is kept in its record). Early evaluation points say
            # little about β (high momentum starts slower, and a run that overfits late wins
            # late): the median rule applies only after tune.prune_after of the run's steps, which
            # the recorder learns from the workload's scheduler. Unknown length: never pruned.
            if not prune or self.spec.tune.pruner == "none" or rec.total_steps is None:
                return False
            if step + 1 < self.spec.tune.prune_after * rec.total_steps:
                return False
            trial.report(value, step)
            return trial.should_prune()

        rec = RunRecorder(
            seed=seed, device=self.device, train=self.train_config(arm),
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
                value = float(result.validation[metric] if on_validation else result.test[metric])
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
            except Exception as exc:  # a crash: recorded, retried up to records.MAX_ATTEMPTS
                state = TrialState.FAIL
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                attrs.update(status="failed", reason=last[:500], steps=rec.last_step + 1)
                if isinstance(exc, AdmtuneError):
                    error = exc  # bad data or options: the same on every attempt, so stop
        wall = time.perf_counter() - t0
        if self.runs_executed == 1:
            _gc.settle()  # the first run has imported what training needs: see admtune._gc
        attrs.update(wall_s=round(wall, 4), curve=rec.curve(), val_curve=rec.val_curve(),
                     beta_trace=round_trace(rec.beta_trace()))
        try:
            # One commit per user attribute, and none for what the trial already holds (the
            # enqueued key and plan of an evaluation run).
            known = trial.user_attrs
            for k, v in records.pack(attrs).items():
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
        shown = None if attrs.get("value") is None else float(attrs["value"])
        self.events.run_finished(label, attrs["status"], shown, wall, attrs.get("reason"))
        if error is not None:
            raise error


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


def round_trace(trace: dict[str, Any] | None, digits: int = 5) -> dict[str, Any] | None:
    """β_t traces to ``digits`` decimals: what the report can show, at a fraction of the bytes."""
    if trace is None:
        return None
    vals = [[None if v is None else round(v, digits) for v in row] for row in trace["values"]]
    return {**trace, "values": vals}


__all__ = ["Executor", "round_trace"]
