"""What both AdM optimizers share as ``torch.optim`` citizens: argument checks, the Optimizer base
(validation of every param group, the step wrapper, ``last_betas``) and the checks a step makes
on what LR schedulers and users may have written into the param groups since construction."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

from ._foreach import REDUCE_MODES, STRATEGIES, Knobs, Workspaces

GRANULARITIES = ("global", "tensor")


def check_number(name: str, value: Any, low: float, high: float, *, high_open: bool) -> float:
    """``value`` as a finite float in ``[low, high]`` (``[low, high)`` if ``high_open``;
    ``high=inf`` means no upper bound), else a ValueError naming the argument and the range."""
    open_hi = high_open or math.isinf(high)
    rng = f"[{low:g}, {high:g}{')' if open_hi else ']'}"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and low <= v and (v < high if open_hi else v <= high)
    if not ok:
        raise ValueError(f"{name} must be a number in {rng}, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


class AdMOptimizer(Optimizer):
    """The shared base of :class:`~admtune.optim.AdMSGD` and :class:`~admtune.optim.AdMAdamW`.

    A subclass defines ``_check_group`` (its own arguments) and ``_step_group`` (one group's
    step: ``_init_group``, then its functional ``adm_*``), and returns from the latter the
    group's ``last_betas`` entry."""

    _name = "AdM"

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._check_group(defaults)
        super().__init__(params, defaults)
        #: One 1-D float32 tensor per param group on its device: the β of the last step.
        self.last_betas: list[Tensor] = []
        # CPU scratch memory of the multi-tensor path (not state: never saved or loaded).
        self._workspaces = Workspaces()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("last_betas", [])
        self.__dict__.setdefault("_workspaces", Workspaces())
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)

    # -- validation ------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def _check_group(self, group: dict[str, Any]) -> None:
        if isinstance(group["lr"], Tensor):
            raise ValueError(f"lr must be a number in [0, inf), got a Tensor ({group['lr']!r})")
        check_number("lr", group["lr"], 0.0, math.inf, high_open=False)
        check_number("weight_decay", group["weight_decay"], 0.0, math.inf, high_open=False)
        check_number("lam", group["lam"], 0.0, math.inf, high_open=False)
        check_choice("granularity", group["granularity"], GRANULARITIES)
        check_choice("foreach", group["foreach"], (None, True, False))
        if not isinstance(group["maximize"], bool):
            raise ValueError(f"maximize must be True or False, got {group['maximize']!r}")

    def _check_step(self, index: int, group: dict[str, Any]) -> float:
        """What a step needs of a group that may have changed since construction (LR schedulers,
        users): a float lr (returned), no cycled momentum."""
        lr = group["lr"]
        if isinstance(lr, Tensor):
            # r_t = η_{t-1}/η_t needs the previous value, and a scheduler updates a tensor lr in
            # place: refusing is honest, reading it would also synchronise with the device.
            raise TypeError(
                f"{self._name}: param group {index} has a Tensor lr; {self._name} needs a "
                f"Python float (set group['lr'] = float(lr))"
            )
        if "max_momentum" in group or "base_momentum" in group:
            # OneCycleLR / CyclicLR with cycle_momentum=True (their default) write these keys
            # and cycle betas[0], which here is the cap β_max, not a momentum.
            raise ValueError(
                f"{self._name} chooses its momentum at every step, so it cannot be cycled: "
                "create OneCycleLR/CyclicLR with cycle_momentum=False"
            )
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr >= 0.0:
            raise ValueError(f"{self._name}: param group {index} has lr {lr!r}; it must be >= 0")
        return float(lr)

    # -- gathering -------------------------------------------------------------------------------
    def _with_grad(self, group: dict[str, Any]) -> tuple[list[int], list[Tensor], list[Tensor]]:
        """``(positions in the group, params, grads)`` of the params that have a gradient."""
        pos, params, grads = [], [], []
        for i, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            if g.is_sparse or p.is_sparse:
                raise RuntimeError(
                    f"{self._name} does not support sparse gradients (param {i} of a group); "
                    "use a dense gradient (e.g. nn.Embedding(sparse=False))"
                )
            if torch.is_complex(p) or torch.is_complex(g):
                raise RuntimeError(
                    f"{self._name} does not support complex parameters or gradients (param {i}"
                    " of a group); optimise torch.view_as_real(param) instead"
                )
            if not p.is_floating_point():
                raise RuntimeError(f"{self._name} needs floating-point parameters, got {p.dtype}")
            pos.append(i)
            params.append(p)
            grads.append(g)
        return pos, params, grads

    # -- step ------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(  # type: ignore[override]
        self,
        closure: Callable[[], Any] | None = None,
        *,
        _force_beta: float | None = None,
        _reduce_mode: str | None = None,
        _strategy: str | None = None,
    ) -> Any:
        """Perform a single optimization step (``closure`` re-evaluates the loss, optional).

        After it, :attr:`last_betas` holds the β used, per group, as device tensors. The
        underscored arguments are private test hooks (not API)."""
        check_choice("_reduce_mode", _reduce_mode, REDUCE_MODES)
        check_choice("_strategy", _strategy, STRATEGIES)
        knobs = Knobs(_force_beta, _reduce_mode, _strategy)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.last_betas = self._step_groups(knobs)
        return loss

    @torch.compiler.disable
    def _step_groups(self, knobs: Knobs) -> list[Tensor]:
        # Under torch.compile the step runs eagerly (a graph break): its host-side bookkeeping
        # (per-tensor lr history, pieces) would otherwise force recompilations.
        lrs = [self._check_step(i, g) for i, g in enumerate(self.param_groups)]
        return [self._step_group(g, lr, knobs) for g, lr in zip(self.param_groups, lrs,
                                                                 strict=True)]

    def _step_group(self, group: dict[str, Any], lr: float, knobs: Knobs) -> Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    # -- last_betas ------------------------------------------------------------------------------
    @staticmethod
    def _report(
        group: dict[str, Any], pos: list[int], cols: list[tuple[list[int], Tensor]]
    ) -> Tensor:
        """The ``last_betas`` entry of a group: a fresh 1-D float32 tensor on the group's device.

        ``pos``: the group positions of the params that stepped; ``cols``: ``(indices into pos,
        β)`` pairs, β a vector (``tensor`` granularity) or the group's 0-d β (``global``)."""
        params = group["params"]
        home = params[0].device if params else torch.device("cpu")
        f32 = torch.float32
        if group["granularity"] == "global":
            if not cols:  # nothing stepped
                return torch.full((1,), math.nan, dtype=f32, device=home)
            return cols[0][1].reshape(1).to(home, f32, non_blocking=True, copy=True)
        n = len(params)
        if n == 0:
            return torch.empty(0, dtype=f32, device=home)
        if len(cols) == 1 and pos == list(range(n)) and cols[0][0] == pos:
            return cols[0][1].to(home, f32, non_blocking=True, copy=True)
        entries: list[Tensor | None] = [None] * n
        for idx, vec in cols:
            for k, b in zip(idx, vec.to(home, f32, non_blocking=True).unbind(), strict=True):
                entries[pos[k]] = b
        nan = torch.full((), math.nan, dtype=f32, device=home)
        return torch.stack([nan if e is None else e for e in entries])
