"""The workload interface: what a bundled or user workload implements, and what the engine hands it.

A workload is an object with

- ``metrics``: ``{metric_name: "minimize" | "maximize"}``: every metric ``run`` returns;
- ``run(ctx: RunContext) -> RunResult``: build model and data from ``ctx.options`` and ``ctx.seed``,
  train with ``ctx.make_optimizer(...)`` for the budget in ``ctx.train``, call ``ctx.log_step`` every
  step and ``ctx.report`` at evaluation points, and return the metrics on the validation split
  (used for tuning) and on the test split (used for evaluation);
- optionally ``check(device) -> None``: raise an ``admtune.errors.AdmtuneError`` (``DataError``…)
  saying why the workload cannot run here (its data is missing); called before a study's storage
  is created, so a study that cannot start leaves nothing behind;

A user's workload is named in a spec as ``"mypkg.module:factory"``; ``factory(options: dict)`` returns
such an object (``options`` is the spec's ``[workload]`` table). A seed must fix initialisation, data
order and augmentation: use ``ctx.generator()`` / ``ctx.seed`` for every random draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

Direction = str  # "minimize" | "maximize"


class Diverged(Exception):
    """Raised when the training loss becomes NaN or infinite; the run is recorded as ``diverged``."""


class Pruned(Exception):
    """Raised by ``RunContext.report`` when the tuning pruner stops an unpromising trial."""


@dataclass(frozen=True)
class TrainConfig:
    """The resolved ``[train]`` table for one run (lr and weight decay already picked per family)."""

    batch_size: int
    lr: float
    weight_decay: float
    epochs: float | None = None
    steps: int | None = None
    schedule: str = "constant"  # constant | cosine | linear
    warmup_steps: int = 0

    def total_steps(self, n_train: int) -> int:
        """The step budget: ``steps`` if given, else ``ceil(epochs * n_train / batch_size)``;
        ``batch_size = 0`` means the full training set in every step (full batch)."""
        if self.steps is not None:
            return int(self.steps)
        if self.epochs is None:
            raise ValueError("train.epochs or train.steps must be set")
        batch = self.batch_size if self.batch_size > 0 else n_train
        return max(1, math.ceil(self.epochs * n_train / max(1, batch)))


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """Multiplier of the base lr at step ``t`` (the lr used *for* step t, t = 0 … total_steps − 1).

    Linear warmup over ``warmup_steps`` from 1/(warmup+1) to 1, then ``constant``, ``cosine`` (to 0 at
    the last step) or ``linear`` decay (to 0 at the last step).
    """
    if schedule not in ("constant", "cosine", "linear"):
        raise ValueError(f"train.schedule must be constant, cosine or linear, not {schedule!r}")
    warmup_steps = max(0, int(warmup_steps))
    decay_steps = max(1, total_steps - warmup_steps)

    def factor(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / (warmup_steps + 1)
        if schedule == "constant":
            return 1.0
        u = min(1.0, (t - warmup_steps) / decay_steps)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * u))
        return 1.0 - u

    return factor


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, total_steps: int, warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A torch LR scheduler for the spec's schedule; call ``scheduler.step()`` after each step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(schedule, total_steps, warmup_steps)
    )


@dataclass
class RunResult:
    """What a run returns: each metric on the validation split and on the test split."""

    validation: dict[str, float]
    test: dict[str, float]
    steps: int
    extra: dict[str, Any] = field(default_factory=dict)


class RunContext(Protocol):
    """What the engine hands a workload for one run (implemented by ``admtune.study``)."""

    seed: int
    device: torch.device
    train: TrainConfig
    options: dict[str, Any]
    metric: str  # the spec's metric: report it (on the validation split) at evaluation points

    def make_optimizer(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """The optimizer of this arm (torch SGD/AdamW with the arm's β, or AdM), lr/wd filled in.

        ``params``: parameters, param groups, or ``model.named_parameters()`` (also as a group's
        ``params``): with names, the report labels AdM's per-tensor β_t by them."""

    def make_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
        """The spec's warmup + schedule for this arm, as a torch LR scheduler."""

    def generator(self, device: torch.device | str | None = None) -> torch.Generator:
        """A torch.Generator seeded from the run's seed (on ``device``, default CPU)."""

    def log_step(self, step: int, loss: torch.Tensor | float, optimizer: torch.optim.Optimizer) -> None:
        """Record the training loss (and AdM's β_t) after step ``step``; raises Diverged on NaN/inf.

        Cheap to call every step: tensors are kept on the device and synchronised rarely.
        """

    def report(self, step: int, validation_value: float) -> None:
        """Report ``ctx.metric`` on the validation split at an evaluation point; raises Pruned when
        the pruner says so."""


@runtime_checkable
class Workload(Protocol):
    metrics: dict[str, Direction]

    def run(self, ctx: RunContext) -> RunResult: ...


WorkloadFactory = Callable[[dict[str, Any]], Workload]
