"""One run's context: the arm's optimizer, the schedule, seeding, and the recorder of what happened.

``RunRecorder`` is the engine's implementation of ``admtune.workloads.base.RunContext``. It keeps the
per-step training loss and AdM's β_t as device tensors and synchronises with the host only every
``check_every`` steps (to detect divergence), so recording costs no per-step sync on a GPU.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import families
from ..util import json_safe
from ..workloads.base import Diverged, Pruned, TrainConfig, make_scheduler
from .events import Interrupted

MAX_CURVE_POINTS = 200


@dataclass(frozen=True)
class Arm:
    """What distinguishes one run's optimizer from another's: the family and how β is chosen."""

    baseline: str                # "sgd" | "adamw": the optimizer family
    name: str                    # trial | adm_trial | tuned | default | adm | nowarmup ...
    beta: float | None           # None: AdM chooses β_t itself
    lr: float
    weight_decay: float
    warmup_steps: int = 0

    @property
    def is_adm(self) -> bool:
        return self.beta is None


def build_optimizer(params: Iterable[Any], arm: Arm) -> torch.optim.Optimizer:
    """The arm's optimizer: its family's fixed-β baseline with the arm's β, or the AdM counterpart."""
    try:
        family = families.get(arm.baseline)
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from None
    if arm.is_adm:
        return family.adm(params, arm.lr, arm.weight_decay)
    return family.baseline(params, arm.beta, arm.lr, arm.weight_decay)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch's global generators (workloads should prefer ctx.generator)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _downsample(steps: list[int], values: np.ndarray, max_points: int) -> tuple[list, list]:
    """Window means over at most ``max_points`` windows; the step of a window is its last step."""
    n = len(steps)
    if n <= max_points:
        return list(map(int, steps)), values.tolist()
    edges = np.linspace(0, n, max_points + 1).astype(int)
    out_steps, out_vals = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b > a:
            out_steps.append(int(steps[b - 1]))
            out_vals.append(np.nanmean(values[a:b], axis=0).tolist())
    return out_steps, out_vals


@dataclass
class RunRecorder:
    """The RunContext handed to a workload for one run (see admtune.workloads.base)."""

    seed: int
    device: torch.device
    train: TrainConfig
    options: dict[str, Any]
    arm: Arm
    # The spec's metric: what ``report`` values are (on the validation split); None lets a
    # workload report its primary metric (tests that drive a workload directly).
    metric: str | None = None
    # Called with (step, value) at evaluation points; returns True when the run should be pruned.
    should_prune: Callable[[int, float], bool] | None = None
    # Polled every step; returns True when the user asked to abort the run now.
    abort_requested: Callable[[], bool] | None = None
    check_every: int = 25

    _loss_steps: list[int] = field(default_factory=list)
    _losses: list[Any] = field(default_factory=list)
    _beta_steps: list[int] = field(default_factory=list)
    _betas: list[torch.Tensor] = field(default_factory=list)
    _beta_names: list[str] = field(default_factory=list)
    _param_names: dict[int, str] = field(default_factory=dict)  # id(parameter) → its model name
    val_steps: list[int] = field(default_factory=list)
    val_values: list[float] = field(default_factory=list)
    _checked: int = 0
    last_step: int = 0
    total_steps: int | None = None

    # -- RunContext -----------------------------------------------------------------------------
    def make_optimizer(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        return build_optimizer(self._strip_names(params), self.arm)

    def _strip_names(self, params: Iterable[Any]) -> list[Any]:
        """Parameters, param groups, or ``(name, parameter)`` pairs as ``model.named_parameters()``
        gives them (also inside groups): the names label AdM's β_t per tensor in the report."""
        def plain(items: Iterable[Any]) -> list[Any]:
            out = []
            for item in items:
                if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                    self._param_names[id(item[1])] = item[0]
                    item = item[1]
                out.append(item)
            return out

        items = list(params)
        if items and all(isinstance(g, dict) for g in items):
            return [{**g, "params": plain(g["params"] if not torch.is_tensor(g["params"])
                                          else [g["params"]])} for g in items]
        return plain(items)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
        self.total_steps = int(total_steps)  # the run's length: the pruner waits a share of it
        return make_scheduler(optimizer, self.train.schedule, total_steps, self.arm.warmup_steps)

    def generator(self, device: torch.device | str | None = None) -> torch.Generator:
        g = torch.Generator(device=device if device is not None else "cpu")
        g.manual_seed(self.seed)
        return g

    def log_step(self, step: int, loss: torch.Tensor | float, optimizer: torch.optim.Optimizer) -> None:
        if self.abort_requested is not None and self.abort_requested():
            raise Interrupted("interrupted")
        self.last_step = step
        self._loss_steps.append(step)
        self._losses.append(loss.detach().float().reshape(()) if torch.is_tensor(loss) else float(loss))
        betas = getattr(optimizer, "last_betas", None)
        if betas:
            if not self._beta_names:
                self._beta_names = self._names_for(optimizer)
            self._beta_steps.append(step)
            self._betas.append(torch.cat([b.detach().float().reshape(-1) for b in betas]))
        if len(self._losses) - self._checked >= self.check_every:
            self._check_finite()

    def report(self, step: int, validation_value: float) -> None:
        value = float(validation_value)
        self.val_steps.append(int(step))
        self.val_values.append(value)
        if not math.isfinite(value):
            raise Diverged(f"validation metric is {value} at step {step}")
        if self.should_prune is not None and self.should_prune(step, value):
            raise Pruned(f"pruned at step {step}")

    # -- engine side ----------------------------------------------------------------------------
    def _check_finite(self) -> None:
        pending = self._losses[self._checked:]
        self._checked = len(self._losses)
        if not pending:
            return
        tensors = [v for v in pending if torch.is_tensor(v)]
        floats = [v for v in pending if not torch.is_tensor(v)]
        # One device-side reduction and a single host sync per check.
        finite = bool(torch.isfinite(torch.stack(tensors)).all()) if tensors else True
        if not finite or not all(math.isfinite(v) for v in floats):
            raise Diverged("training loss became NaN or infinite")

    def finish(self) -> None:
        """Final divergence check (call after the workload returns)."""
        self._check_finite()

    def _names_for(self, optimizer: torch.optim.Optimizer) -> list[str]:
        names = []
        for gi, group in enumerate(optimizer.param_groups):
            if group.get("granularity") == "global":  # torch fills groups from the defaults
                names.append(f"group{gi}")
            else:
                names.extend(
                    self._param_names.get(id(p)) or f"g{gi}.p{pi} {tuple(p.shape)}"
                    for pi, p in enumerate(group["params"])
                )
        return names

    def curve(self) -> dict[str, list]:
        if not self._losses:
            return {"step": [], "train_loss": []}
        values = np.array(self._losses_cpu(), dtype=float)
        steps, vals = _downsample(self._loss_steps, values, MAX_CURVE_POINTS)
        return {"step": steps, "train_loss": json_safe(vals)}

    def _losses_cpu(self) -> list[float]:
        if not any(torch.is_tensor(v) for v in self._losses):
            return list(self._losses)
        if all(torch.is_tensor(v) for v in self._losses):
            return torch.stack(self._losses).cpu().tolist()  # one copy for the whole run
        return [float(v) for v in self._losses]

    def val_curve(self) -> dict[str, list]:
        return {"step": list(self.val_steps), "value": json_safe(list(self.val_values))}

    def beta_trace(self) -> dict[str, Any] | None:
        if not self._betas:
            return None
        width = max(b.numel() for b in self._betas)
        rows = [b.cpu() for b in self._betas if b.numel() == width]
        steps = [s for s, b in zip(self._beta_steps, self._betas, strict=True) if b.numel() == width]
        values = torch.stack(rows).numpy().astype(float)
        steps, vals = _downsample(steps, values, MAX_CURVE_POINTS)
        names = self._beta_names if len(self._beta_names) == width else [f"b{i}" for i in range(width)]
        return {"step": steps, "names": names, "values": json_safe(vals)}
