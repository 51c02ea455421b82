"""The results of a study as read back from its Optuna storage: the input of the report.

Everything here is rebuilt from the storage alone (``admtune.study.storage.load_results``); the
report never needs the process that trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .spec import StudySpec

# Columns of runs.csv, in this order first (the report and the CI gate rely on them).
RUNS_COLUMNS = [
    "study", "baseline", "arm", "seed", "beta", "lr", "metric", "value", "status", "steps", "wall_s",
]
# Every baseline's evaluation arms, in display order; a spec's extra_arms (and workloads) add more.
# Tuning runs are arm "trial" (β, with lr when tune.lr) and "adm_trial" (AdM's lr).
CORE_ARMS = ("adm", "tuned", "default")
TRIAL_ARMS = ("trial", "adm_trial")
# Selection runs: the finalists of tuning on their own seeds, scored on the validation metric.
SELECT_ARMS = ("select", "adm_select")


@dataclass
class Run:
    """One training run (an Optuna trial): a tuning trial or an evaluation run."""

    study: str
    baseline: str          # "sgd" | "adamw"
    arm: str               # trial | adm_trial | tuned | default | adm (workloads may add arms)
    seed: int
    beta: float | None     # None for AdM arms
    lr: float
    metric: str            # what `value` is: "<metric>" for eval runs, "val_<metric>" for trials
    value: float | None    # None when diverged or failed; last reported value when pruned
    status: str            # complete | diverged | failed | pruned
    steps: int
    wall_s: float
    val_value: float | None = None   # validation metric (evaluation runs record it too)
    trial_number: int = 0            # order within its Optuna study (tuning order for trials)
    # Learning curve: {"step": [...], "train_loss": [...]} (downsampled, at most a few hundred points)
    curve: dict[str, list[float]] = field(default_factory=dict)
    # Validation metric at evaluation points: {"step": [...], "value": [...]}
    val_curve: dict[str, list[float]] = field(default_factory=dict)
    # AdM's β_t: {"step": [...], "names": [tensor or group names], "values": [[β per name] per step]}
    beta_trace: dict[str, Any] | None = None
    reason: str | None = None        # for failed runs: "interrupted", the exception text, ...
    device: str | None = None        # where it ran, e.g. "cuda:1"
    worker: str | None = None        # which worker ran it: "host:pid"

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in RUNS_COLUMNS}


@dataclass
class StudyResults:
    name: str
    spec: StudySpec                  # the resolved spec (after overrides), typed
    fingerprint: str
    version: str                     # admtune version
    versions: dict[str, str]         # python, torch, optuna, numpy, ... as recorded
    device: str                      # e.g. "cpu" or "cuda:0 (NVIDIA H200)"
    wall_s: float                    # sum of run wall times
    command: str                     # the command that reproduces the study
    runs: list[Run] = field(default_factory=list)
    # Budgets grown on resume: [{"key": "seeds", "from": 5, "to": 10, "at": ISO time}, ...]
    budget_changes: list[dict[str, Any]] = field(default_factory=list)
    # How far it got: {"tune": {"done", "planned"}, "select": …, "evaluate": …, "complete": bool};
    # None where unknown (results built by hand), read as complete.
    progress: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.progress is None or bool(self.progress.get("complete", True))

    def __post_init__(self) -> None:
        if isinstance(self.spec, dict):  # as stored: canonical plain data
            self.spec = StudySpec.from_data(self.spec)

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def direction(self) -> str:
        return self.spec.direction

    def runs_of(self, baseline: str, arm: str) -> list[Run]:
        return sorted(
            (r for r in self.runs if r.baseline == baseline and r.arm == arm),
            key=lambda r: (r.trial_number, r.seed),
        )

    def frame(self):
        """runs.csv as a pandas DataFrame (RUNS_COLUMNS first, then val_value, trial_number, reason,
        device, worker)."""
        import pandas as pd

        cols = RUNS_COLUMNS + ["val_value", "trial_number", "reason", "device", "worker"]
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.runs], columns=cols)
