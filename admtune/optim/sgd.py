r"""AdM-SGD: heavy-ball momentum (EMA form) whose β is chosen afresh at every step.

Layout (as ``torch/optim/sgd.py``): the :class:`AdMSGD` class and its ``_init_group``; the
functional :func:`adm_sgd`, which dispatches to :func:`_single_tensor_adm_sgd` (``foreach=False``:
whole tensors, one at a time, straight from :mod:`~admtune.optim.twoplane`: the reference a reader
checks the docstring against) or :func:`_multi_tensor_adm_sgd` (the default: cache-sized pieces and
``torch._foreach_*`` kernels, see :mod:`admtune.optim._foreach`). The two paths compute the same
thing in different summation orders: they agree to rounding, not bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import _foreach as fe
from . import twoplane
from ._base import AdMOptimizer, check_number
from ._foreach import DEFAULT_KNOBS, BetaCols, Knobs, Workspaces

__all__ = ["AdMSGD", "adm_sgd"]

class AdMSGD(AdMOptimizer):
    r"""AdM-SGD: SGD with adaptive-memory momentum (Topollai & Choromanska, arXiv:2510.04988).

    Heavy-ball momentum in EMA form, like ``torch.optim.SGD(momentum=β, dampening=β)``, but β is
    the solution of a two-plane proximal model, recomputed at every step from three sums of
    squares — no momentum to tune:

    .. math::
        \begin{aligned}
        g_t &\leftarrow \pm\nabla f(x_t) + \mu x_t \qquad (-\text{ with } \texttt{maximize}) \\
        \beta_t &= \operatorname{clip}\Big(\frac{(1+\lambda)\big(\lVert g_t\rVert^2
                 + (r_t-1)\,g_t^\top d_t\big) - \lambda\lVert d_t-g_t\rVert^2}
                 {\lVert d_t-g_t\rVert^2},\ 0,\ \beta_{\max}\Big),
                 \qquad r_t = \eta_{t-1}/\eta_t \\
        d_{t+1} &= \tfrac{\beta_t+\lambda}{1+\lambda}\,d_t + \tfrac{1-\beta_t}{1+\lambda}\,g_t
                 \qquad (d_1 = g_0 \text{ at the first step}) \\
        x_{t+1} &= x_t - \eta_t\, d_{t+1}
        \end{aligned}

    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: step size η ≥ 0, a Python float (LR schedulers work as usual, except momentum
            cycling: see README; r_t comes from the lr history, kept per tensor in the state).
        weight_decay: coupled L2 coefficient μ ≥ 0 (as ``torch.optim.SGD``).
        lam: proximal weight λ ≥ 0 of the model (a fixed constant, 0.1; not a knob to tune).
        beta_max: cap on β, in [0, 1).
        granularity: ``"global"`` (one β per param group, the dot products over all its
            parameters that have a gradient) or ``"tensor"`` (one β per parameter tensor).
        maximize: maximise the objective (the model is built on −f), as torch's optimizers.
        foreach: the multi-tensor path (``True``, and the default ``None``) or the
            single-tensor reference path (``False``).

    Conventions: ‖d − g‖² = 0 gives β = 0 (the step is exactly g); η_t = 0 leaves the
    parameters in place, updates d with r = 1, and makes the next r exactly 0. Parameters
    without a gradient (and empty groups) are skipped, as by torch's optimizers.

    After each :meth:`step`, :attr:`last_betas` holds one 1-D float32 tensor per param group on
    its device — length 1 for ``global`` (NaN if no parameter of the group had a gradient), one
    entry per parameter for ``tensor`` (NaN where a parameter had no gradient) — fresh tensors,
    produced without any host synchronisation. The first step reports β = 0 (d = g).

    State per parameter: ``momentum_buffer`` (d, the parameter's dtype and shape) and
    ``prev_lr`` (a float) — the same memory as torch's SGD with momentum.
    """

    _name = "AdMSGD"

    def __init__(
        self,
        params: Any,
        lr: float,
        weight_decay: float = 0.0,
        lam: float = 0.1,
        beta_max: float = 0.9,
        granularity: str = "global",
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, lam=lam, beta_max=beta_max,
                        granularity=granularity, maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_number("beta_max", group["beta_max"], 0.0, 1.0, high_open=True)

    def _init_group(
        self, group: dict[str, Any]
    ) -> tuple[list[int], list[Tensor], list[Tensor], list[Tensor | None], list[float | None]]:
        """The params with a gradient: positions, params, grads, momentum buffers (None at a
        tensor's first step) and previous step sizes (None at the first step)."""
        pos, params, grads = self._with_grad(group)
        bufs = [self.state[p].get("momentum_buffer") for p in params]
        prev = [self.state[p].get("prev_lr") for p in params]
        return pos, params, grads, bufs, prev

    def _step_group(self, group: dict[str, Any], lr: float, knobs: Knobs) -> Tensor:
        pos, params, grads, bufs, prev = self._init_group(group)
        cols = adm_sgd(params, grads, bufs, prev, lr=lr, weight_decay=group["weight_decay"],
                       lam=group["lam"], beta_max=group["beta_max"],
                       granularity=group["granularity"], maximize=group["maximize"],
                       foreach=group["foreach"], _knobs=knobs, _workspaces=self._workspaces)
        for p, d in zip(params, bufs, strict=True):
            self.state[p]["momentum_buffer"] = d
            self.state[p]["prev_lr"] = lr
        return self._report(group, pos, cols)


def adm_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffer_list: list[Tensor | None],
    prev_lrs: list[float | None],
    *,
    lr: float,
    weight_decay: float = 0.0,
    lam: float = 0.1,
    beta_max: float = 0.9,
    granularity: str = "global",
    maximize: bool = False,
    foreach: bool | None = None,
    _knobs: Knobs = DEFAULT_KNOBS,
    _workspaces: Workspaces | None = None,
) -> BetaCols:
    """Functional AdM-SGD (see :class:`AdMSGD`): one step over tensors that all have a gradient.

    ``momentum_buffer_list`` is updated in place (None entries, a tensor's first step, are
    replaced by its new buffer); ``prev_lrs`` holds each tensor's previous lr (None at its first
    step) and is not modified. Returns the β used, as ``(indices, β)`` pairs."""
    if not params:
        return []
    func = _single_tensor_adm_sgd if foreach is False else _multi_tensor_adm_sgd
    return func(params, grads, momentum_buffer_list, prev_lrs, lr=lr,
                weight_decay=weight_decay, lam=lam, beta_max=beta_max, granularity=granularity,
                maximize=maximize, knobs=_knobs, workspaces=_workspaces or Workspaces())


def _single_tensor_adm_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    prev_lrs: list[float | None],
    *,
    lr: float,
    weight_decay: float,
    lam: float,
    beta_max: float,
    granularity: str,
    maximize: bool,
    knobs: Knobs,
    workspaces: Workspaces,
) -> BetaCols:
    gs = []
    for i, (x, g) in enumerate(zip(params, grads, strict=True)):
        g = -g if maximize else g  # ascent on f is descent on −f: the model of −f
        if weight_decay != 0.0:
            g = g.add(x, alpha=weight_decay)
        if bufs[i] is None:  # first step: d = g, so that d − g = 0 and r = 0 add nothing below
            bufs[i] = torch.clone(g).detach()
        gs.append(g)

    # β_t: per tensor, or the group's from the summed numerators and denominators.
    nums, dens = [], []
    for g, d, prev in zip(gs, bufs, prev_lrs, strict=True):
        gg, gd, uu = twoplane.sgd_sums(g, d)
        num, den = twoplane.sgd_num_den(gg, gd, uu, twoplane.lr_ratio(prev, lr), lam)
        nums.append(num)
        dens.append(den)
    if knobs.force_beta is not None:
        betas = [torch.full_like(n, knobs.force_beta) for n in nums]
    elif granularity == "tensor":
        betas = [twoplane.clip_beta(n, d, beta_max) for n, d in zip(nums, dens, strict=True)]
    else:
        beta = twoplane.clip_beta(fe.total(nums), fe.total(dens), beta_max)
        betas = [beta.to(n.device, n.dtype) for n in nums]

    # d_{t+1} = a d + b g (= d.lerp(g, b)), x_{t+1} = x − η d_{t+1}.
    for x, g, d, beta in zip(params, gs, bufs, betas, strict=True):
        assert d is not None
        _, b = twoplane.sgd_coeffs(beta, lam)
        d.lerp_(g, b)
        if lr != 0.0:
            x.add_(d, alpha=-lr)

    if granularity == "global":
        return [(list(range(len(params))), betas[0])]
    return [(list(range(len(params))), torch.stack([b.to(betas[0]) for b in betas]))]


# ---------------------------------------------------------------------------------------------
# Multi-tensor path
# ---------------------------------------------------------------------------------------------


def _decayed(xs: list[Tensor], gs: list[Tensor], wd: float, ws: list[Tensor] | None) -> list[Tensor]:
    """g + μx (coupled weight decay), in the workspace when there is one."""
    if wd == 0.0:
        return gs
    if ws is not None:
        return [torch.add(gs[0], xs[0], alpha=wd, out=ws[0])]
    return list(torch._foreach_add(gs, xs, alpha=wd))


def _reduce(
    xs: list[Tensor], gs: list[Tensor], ds: list[Tensor], wd: float, acc: torch.dtype,
    dot: bool, ws: list[Tensor] | None,
) -> list[list[Tensor]]:
    """Per piece, with g including the coupled weight decay: ``dot`` style (g·g, g·d, d·d) —
    three BLAS dots, no temporary; else (‖g‖², ‖d‖², ‖d − g‖²) — one multi-tensor reduction."""
    gs = _decayed(xs, gs, wd, ws)
    if dot:
        gd = fe.dots(gs, ds)  # first: streams g and d from memory together; the others hit cache
        return [fe.dots(gs, gs), gd, fe.dots(ds, ds)]
    us = torch._foreach_sub(ds, gs)
    sums = fe.sumsq([*gs, *ds, *us], acc)
    n = len(xs)
    return [sums[:n], sums[n : 2 * n], sums[2 * n :]]


def _canon_dot(v: Tensor) -> Tensor:
    """(g·g, g·d, d·d) → (‖g‖², g·d, ‖d−g‖² = g·g − 2 g·d + d·d)."""
    return torch.stack([v[0], v[1], v[0] - 2.0 * v[1] + v[2]])


def _canon_sumsq(v: Tensor) -> Tensor:
    """(‖g‖², ‖d‖², ‖d−g‖²) → (‖g‖², g·d = (‖g‖² + ‖d‖² − ‖d−g‖²)/2, ‖d−g‖²)."""
    return torch.stack([v[0], 0.5 * (v[0] + v[1] - v[2]), v[2]])


def _apply(
    xs: list[Tensor], gs: list[Tensor], ds: list[Tensor], b: list[Tensor],
    one_b: tuple[Tensor, Tensor] | None, lr: float, wd: float, ws: list[Tensor] | None,
) -> None:
    """d ← d + b (g − d) (= a d + b g), then x ← x − η d. ``one_b``: ``(a, b)`` when the whole
    bucket shares one coefficient (``global`` on an accelerator: multi-tensor fast paths)."""
    gs = _decayed(xs, gs, wd, ws)
    if one_b is not None:
        torch._foreach_mul_(ds, one_b[0])
        torch._foreach_add_(ds, torch._foreach_mul(gs, one_b[1]))
    elif len(ds) == 1:  # a bucket of one piece: plain ops, less call overhead
        ds[0].lerp_(gs[0], b[0])
    else:
        torch._foreach_lerp_(ds, gs, b)
    if lr != 0.0:
        if len(xs) == 1:
            xs[0].add_(ds[0], alpha=-lr)
        else:
            torch._foreach_add_(xs, ds, alpha=-lr)


def _multi_tensor_adm_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    prev_lrs: list[float | None],
    *,
    lr: float,
    weight_decay: float,
    lam: float,
    beta_max: float,
    granularity: str,
    maximize: bool,
    knobs: Knobs,
    workspaces: Workspaces,
) -> BetaCols:
    wd = weight_decay
    if maximize:
        grads = list(torch._foreach_neg(grads))
    # First step of a tensor: d = g (the step is g whatever β is); it adds nothing to the sums
    # of the others (r = 0 and d − g = 0), so it is done here and left out of the passes.
    old: list[int] = []
    new: list[int] = []
    for k, (x, g) in enumerate(zip(params, grads, strict=True)):
        if bufs[k] is None:
            d = torch.add(g, x, alpha=wd) if wd != 0.0 else torch.clone(g).detach()
            bufs[k] = d
            if lr != 0.0:
                x.add_(d, alpha=-lr)
            new.append(k)
        else:
            old.append(k)

    # Reduce: per (device, dtype) part, per-tensor numerator and denominator of β.
    forced = knobs.force_beta
    parts: list[_SGDPart] = []
    for (dev, dtype), js in fe.by_device_dtype([params[k] for k in old]).items():
        ks = [old[j] for j in js]
        xs, gs = [params[k] for k in ks], [grads[k] for k in ks]
        ds: list[Tensor] = [bufs[k] for k in ks]  # type: ignore[misc]
        acc, accel = twoplane.acc_dtype(dtype), knobs.accelerator(dev)
        pieces = fe.Pieces([xs, gs, ds], fe.DEVICE_BUCKET if accel else fe.SGD_CPU_CHUNK, accel)
        part = _SGDPart(ks, dev, dtype, acc, accel, pieces)
        if forced is None:
            col = fe.Collect()
            for owners, views in pieces.buckets:
                dot = knobs.dot_mode(dev, dtype, len(owners))
                ws = workspaces.get(1, views, accel) if wd != 0.0 else None
                col.add(dot, _reduce(*views, wd, acc, dot, ws), owners)
            mat, owners = col.finish(_canon_dot, _canon_sumsq)
            gg, gd, uu = pieces.per_tensor(mat, owners).unbind()
            r = fe.host_vec([twoplane.lr_ratio(prev_lrs[k], lr) for k in ks], acc, dev)
            part.num, part.den = twoplane.sgd_num_den(gg, gd, torch.clamp(uu, min=0.0), r, lam)
        parts.append(part)

    per_tensor = granularity == "tensor"
    if forced is not None:
        betas = [torch.full((), float(forced), dtype=p.acc, device=p.device) for p in parts]
        if per_tensor:
            betas = [b.expand(len(p.ks)) for b, p in zip(betas, parts, strict=True)]
    else:
        betas = fe.combine_betas(granularity, [(p.num, p.den, p.device) for p in parts],
                                 beta_max)

    # Apply.
    cols: BetaCols = []
    for part, beta in zip(parts, betas, strict=True):
        a_t, b_t = twoplane.sgd_coeffs(beta, lam)
        b_list = list(b_t.unbind()) if per_tensor else [b_t] * len(part.ks)
        # One coefficient for all: multi-tensor fast paths on accelerators (which need the
        # scalar in the tensors' dtype; bf16/fp16 keep fp32 coefficients, per tensor).
        fast = not per_tensor and part.accel and a_t.dtype == part.dtype
        one_b = (a_t, b_t) if fast else None
        # Reverse order: the pieces the reduction read last are still in cache.
        for (_, views), bl in zip(reversed(part.pieces.buckets),
                                  reversed(part.pieces.expand(b_list)), strict=True):
            ws = workspaces.get(1, views, part.accel) if wd != 0.0 else None
            _apply(*views, bl, one_b, lr, wd, ws)
        cols.append((part.ks, beta))

    first = 0.0 if forced is None else float(forced)  # first step: d = g, reported β = 0
    if per_tensor:
        if new:
            dev0 = params[new[0]].device
            cols.append((new, torch.full((len(new),), first, device=dev0)))
        return cols
    if cols:
        return [(list(range(len(params))), cols[0][1])]
    return [(new, torch.full((), first, device=params[new[0]].device))]


@dataclass
class _SGDPart:
    """One (device, dtype) part of a group in the multi-tensor path."""

    ks: list[int]  # indices into the tensors given
    device: torch.device
    dtype: torch.dtype
    acc: torch.dtype
    accel: bool
    pieces: fe.Pieces
    num: Tensor | None = None  # per-tensor β numerators / denominators (None if β is forced)
    den: Tensor | None = None
