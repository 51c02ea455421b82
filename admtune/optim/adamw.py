r"""AdM-AdamW: AdamW whose first-moment coefficient β₁ is chosen afresh at every step.

Layout as :mod:`admtune.optim.sgd`: the :class:`AdMAdamW` class and its ``_init_group``; the
functional :func:`adm_adamw`, dispatching to :func:`_single_tensor_adm_adamw` (``foreach=False``:
the whole-tensor reference, straight from :mod:`~admtune.optim.twoplane`) or
:func:`_multi_tensor_adm_adamw` (cache-sized pieces and ``torch._foreach_*`` kernels, see
:mod:`admtune.optim._foreach`). The paths agree to rounding, not bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import _foreach as fe
from . import twoplane
from ._base import AdMOptimizer, check_number
from ._foreach import DEFAULT_KNOBS, BetaCols, Knobs, Workspaces

__all__ = ["AdMAdamW", "adm_adamw"]


class AdMAdamW(AdMOptimizer):
    r"""AdM-AdamW: AdamW with adaptive-memory first moment (arXiv:2510.04988).

    The two-plane model of :class:`~admtune.optim.AdMSGD` solved in the diagonal metric of Adam's
    preconditioner; decoupled weight decay as ``torch.optim.AdamW``:

    .. math::
        \begin{aligned}
        v_t &= \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2, \qquad
        P_t = (1-\beta_{\max} B)\big(\sqrt{v_t/(1-\beta_2^t)} + \epsilon\big), \qquad
        m_t = \frac{1}{P_t(1+\lambda P_t)} \\
        \beta_t &= \operatorname{clip}\Big(\frac{r_t\sum g_t\,(d_t/P_t + \mu x_t)
                  - \sum (d_t-g_t)(g_t+\lambda P_t d_t)\,m_t}{\sum (d_t-g_t)^2 m_t},
                  \ 0,\ \beta_{\max}\Big) \qquad (\beta_1 = \beta_{\max}) \\
        d_{t+1} &= \frac{(1-\beta_t)\,g_t + (\lambda P_t+\beta_t)\,d_t}{1+\lambda P_t}, \qquad
        x_{t+1} = (1-\eta_t\mu)\,x_t - \eta_t\, d_{t+1}/P_t, \qquad B \leftarrow B\,\beta_t
        \end{aligned}

    with :math:`B = \prod_{i<t}\beta_i` (1 at the start, so that :math:`1-\beta_{\max}B` is
    Adam's first-moment bias correction when β is constant), :math:`r_t = \eta_{t-1}/\eta_t` and
    :math:`g_t = \pm\nabla f(x_t)` (− with ``maximize``). With λ = 0 and β fixed at β_max this
    is exactly ``torch.optim.AdamW``.

    **Not invariant to the scale of the loss** (unlike Adam): λP carries gradient units, so
    mean vs sum reduction or gradient accumulation changes the trajectory. This is the algorithm
    as specified.

    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: step size η ≥ 0, a Python float (LR schedulers work as usual, except momentum
            cycling, which is refused: ``betas[0]`` is a cap here, not a momentum).
        betas: ``(β_max, β2)``: ``betas[0]`` is the upper bound of the adaptive β (and the
            first step's β), ``betas[1]`` the second-moment coefficient; both in [0, 1).
        eps: ε ≥ 0 added to the square root of the second moment.
        weight_decay: decoupled weight decay μ ≥ 0.
        lam: proximal weight λ ≥ 0 of the model (a fixed constant, 0.1; not a knob to tune).
        granularity: ``"tensor"`` (one β per parameter tensor, default) or ``"global"``.
        maximize: maximise the objective (the model is built on −f), as torch's optimizers.
        foreach: as :class:`~admtune.optim.AdMSGD`.

    :attr:`last_betas` as for :class:`~admtune.optim.AdMSGD`; the first step reports β_max.

    State per parameter: ``exp_avg`` (d) and ``exp_avg_sq_sqrt`` (:math:`\sqrt{v}`, kept
    instead of v so that each step takes one square root, not two) in the parameter's dtype,
    ``step`` (int), ``beta_prod`` (B, a 0-d fp32/fp64 tensor) and ``prev_lr`` (float): the
    memory of torch's AdamW state (two buffers and one 0-d tensor per parameter).
    """

    _name = "AdMAdamW"

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        lam: float = 0.1,
        granularity: str = "tensor",
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, lam=lam,
                        granularity=granularity, maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        betas = group["betas"]
        if isinstance(betas, Tensor) or not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta_max, beta2) of numbers, got {betas!r}")
        check_number("betas[0] (beta_max)", betas[0], 0.0, 1.0, high_open=True)
        check_number("betas[1] (beta2)", betas[1], 0.0, 1.0, high_open=True)
        check_number("eps", group["eps"], 0.0, math.inf, high_open=False)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # torch casts floating-point state to the param's dtype; B (a running product) keeps its
        # fp32/fp64 accumulation dtype. It is read from the dict the pre-hooks produced (this
        # hook is appended, so it runs after the user's) and restored before the post-hooks.
        precise: dict[Tensor, Tensor] = {}  # param -> its B as saved

        def capture(_opt: Any, sd: dict[str, Any]) -> None:
            ids = [i for g in sd["param_groups"] for i in g["params"]]
            params = [p for g in self.param_groups for p in g["params"]]
            for i, p in zip(ids, params, strict=False):
                b = sd["state"].get(i, {}).get("beta_prod")
                if isinstance(b, Tensor):
                    precise[p] = b

        def restore(_opt: Any) -> None:
            for p, b in precise.items():
                if p in self.state:
                    self.state[p]["beta_prod"] = b.to(p.device, twoplane.acc_dtype(p.dtype),
                                                      copy=True)

        pre = self.register_load_state_dict_pre_hook(capture)
        post = self.register_load_state_dict_post_hook(restore, prepend=True)
        try:
            super().load_state_dict(state_dict)
        finally:
            pre.remove()
            post.remove()

    def _init_group(self, group: dict[str, Any]) -> tuple[list[int], list[Tensor], list[Tensor],
                                                          list[dict[str, Any]]]:
        """The params with a gradient (positions, params, grads) and their state, created at a
        tensor's first step; each state's ``step`` is advanced here."""
        pos, params, grads = self._with_grad(group)
        states = []
        for p in params:
            st = self.state[p]
            if "exp_avg" not in st:
                st["step"] = 0
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq_sqrt"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["beta_prod"] = torch.ones((), dtype=twoplane.acc_dtype(p.dtype), device=p.device)
            st["step"] += 1
            states.append(st)
        return pos, params, grads, states

    def _step_group(self, group: dict[str, Any], lr: float, knobs: Knobs) -> Tensor:
        pos, params, grads, states = self._init_group(group)
        cols = adm_adamw(
            params, grads, [st["exp_avg"] for st in states],
            [st["exp_avg_sq_sqrt"] for st in states], [st["beta_prod"] for st in states],
            [st["step"] for st in states], [st.get("prev_lr") for st in states], lr=lr,
            betas=group["betas"], eps=group["eps"], weight_decay=group["weight_decay"],
            lam=group["lam"], granularity=group["granularity"], maximize=group["maximize"],
            foreach=group["foreach"], _knobs=knobs, _workspaces=self._workspaces,
        )
        for st in states:
            st["prev_lr"] = lr
        return self._report(group, pos, cols)


def adm_adamw(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sq_sqrts: list[Tensor],
    beta_prods: list[Tensor],
    steps: list[int],
    prev_lrs: list[float | None],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    lam: float = 0.1,
    granularity: str = "tensor",
    maximize: bool = False,
    foreach: bool | None = None,
    _knobs: Knobs = DEFAULT_KNOBS,
    _workspaces: Workspaces | None = None,
) -> BetaCols:
    """Functional AdM-AdamW (see :class:`AdMAdamW`): one step over tensors that all have a
    gradient. ``steps`` counts this step (1 at a tensor's first step, where ``exp_avgs`` are
    zeros and ``beta_prods`` ones). The buffers and the products B are updated in place.
    Returns the β used, as ``(indices, β)`` pairs."""
    if not params:
        return []
    func = _single_tensor_adm_adamw if foreach is False else _multi_tensor_adm_adamw
    return func(
        params, grads, exp_avgs, exp_avg_sq_sqrts, beta_prods, steps, prev_lrs, lr=lr,
        beta_max=float(betas[0]), beta2=float(betas[1]), eps=eps, weight_decay=weight_decay,
        lam=lam, granularity=granularity, maximize=maximize, knobs=_knobs,
        workspaces=_workspaces or Workspaces())


def _single_tensor_adm_adamw(
    params: list[Tensor], grads: list[Tensor], ds: list[Tensor], sqs: list[Tensor],
    beta_prods: list[Tensor], steps: list[int], prev_lrs: list[float | None], *, lr: float,
    beta_max: float, beta2: float, eps: float, weight_decay: float, lam: float,
    granularity: str, maximize: bool, knobs: Knobs, workspaces: Workspaces,
) -> BetaCols:
    gs, Ps, nums, dens = [], [], [], []
    for x, g, d, s, B, t, prev in zip(params, grads, ds, sqs, beta_prods, steps, prev_lrs,
                                     strict=True):
        g = -g if maximize else g  # ascent on f is descent on −f: the model of −f
        s.mul_(s).mul_(beta2).addcmul_(g, g, value=1.0 - beta2).sqrt_()  # √v_t, kept as state
        c1, c2 = twoplane.adamw_precond_coeffs(B, twoplane.adamw_bc2(t, beta2), beta_max, eps)
        P = s * c1 + c2
        num, den = twoplane.adamw_num_den(*twoplane.adamw_sums(g, d, x, P, lam),
                                          twoplane.lr_ratio(prev, lr), weight_decay)
        gs.append(g)
        Ps.append(P)
        nums.append(num)
        dens.append(den)

    # β_t: per tensor or the group's; a tensor's first step takes β_max (no previous iterate)
    # and is left out of the group's sums.
    old = [k for k, t in enumerate(steps) if t > 1]
    if knobs.force_beta is not None:
        betas = [torch.full_like(n, knobs.force_beta) for n in nums]
    elif granularity == "tensor":
        betas = [twoplane.clip_beta(n, d, beta_max) for n, d in zip(nums, dens, strict=True)]
    elif old:
        beta = twoplane.clip_beta(fe.total([nums[k] for k in old]), fe.total([dens[k] for k in old]),
                                  beta_max)
        betas = [beta.to(n.device, n.dtype) for n in nums]
    else:
        betas = [torch.full_like(n, beta_max) for n in nums]
    if knobs.force_beta is None:
        betas = [b if t > 1 else torch.full_like(b, beta_max) for b, t in zip(betas, steps,
                                                                              strict=True)]

    for x, g, d, P, B, beta in zip(params, gs, ds, Ps, beta_prods, betas, strict=True):
        d.lerp_(g, (1.0 - beta) / (1.0 + lam * P))  # = twoplane.adamw_direction, in place
        if lr != 0.0:
            x.mul_(1.0 - lr * weight_decay).addcdiv_(d, P, value=-lr)
        B.mul_(beta)

    idx = list(range(len(params)))
    if granularity == "global":
        gb = betas[old[0]] if old else betas[0]
        return [(idx, gb)]
    return [(idx, torch.stack([b.to(betas[0]) for b in betas]))]


# ---------------------------------------------------------------------------------------------
# Multi-tensor path
# ---------------------------------------------------------------------------------------------


def _precond(sq: list[Tensor], c1: list[Tensor], c2: list[Tensor]) -> list[Tensor]:
    r""":math:`P = c_1\sqrt{v} + c_2` (:func:`twoplane.adamw_precond_coeffs`), ``sq`` holding
    :math:`\sqrt{v}`."""
    pp = torch._foreach_mul(sq, c1)
    torch._foreach_add_(pp, c2)
    return pp


def _reduce(
    xs: list[Tensor], gs: list[Tensor], ds: list[Tensor], sq: list[Tensor], c1: list[Tensor],
    c2: list[Tensor], beta2: float, lam: float, wd: float, acc: torch.dtype, dot: bool | None,
) -> list[list[Tensor]]:
    r"""Second-moment update (the state holds :math:`\sqrt{v}`, so that the square root is
    taken once per step), then per piece, with :math:`M = P(1+\lambda P)`:

    * ``dot`` style: :math:`\sum g d/P,\ \sum d^2/P,\ \sum (d-g)^2/M` and, with weight decay,
      :math:`\sum g x` — BLAS dot products;
    * sums of squares (one multi-tensor reduction each, accumulated in ``acc``):
      :math:`\sum g^2/P,\ \sum d^2/P,\ \sum (d-g)^2/P,\ \sum (d-g)^2/M` and, with weight
      decay, :math:`\sum g^2,\ \sum x^2,\ \sum (x-g)^2` (for the signed sums, by polarisation);
    * ``dot=None``: the moment update only (β forced).
    """
    torch._foreach_mul_(sq, sq)
    torch._foreach_mul_(sq, beta2)
    torch._foreach_addcmul_(sq, gs, gs, value=1.0 - beta2)
    torch._foreach_sqrt_(sq)
    if dot is None:
        return []
    pp = _precond(sq, c1, c2)
    if dot:
        q = torch._foreach_div(ds, pp)
        out = [fe.dots(gs, q), fe.dots(ds, q)]
        del q
        m = torch._foreach_addcmul(pp, pp, pp, value=lam) if lam != 0.0 else pp
        us = torch._foreach_sub(ds, gs)
        out.append(fe.dots(us, torch._foreach_div(us, m)))
        if wd != 0.0:
            out.append(fe.dots(gs, xs))
        return out
    n = len(xs)
    rs = torch._foreach_rsqrt(pp)
    a = torch._foreach_mul(gs, rs)
    b = torch._foreach_mul(ds, rs)
    del rs
    ab = fe.sumsq([*a, *b], acc)
    torch._foreach_sub_(a, b)  # a = (g - d)/sqrt(P)
    del b
    uw = fe.sumsq(a, acc)
    if lam != 0.0:
        torch._foreach_mul_(pp, lam)
        torch._foreach_add_(pp, 1.0)
        torch._foreach_rsqrt_(pp)
        torch._foreach_mul_(a, pp)
        den = fe.sumsq(a, acc)
    else:
        den = uw
    out = [ab[:n], ab[n:], uw, den]
    if wd != 0.0:
        xg = torch._foreach_sub(xs, gs)
        s3 = fe.sumsq([*gs, *xs, *xg], acc)
        out += [s3[:n], s3[n : 2 * n], s3[2 * n :]]
    return out


def _reduce_ws(
    x: Tensor, g: Tensor, d: Tensor, sq: Tensor, c1: Tensor, c2: Tensor, beta2: float,
    lam: float, wd: float, ws: list[Tensor],
) -> list[list[Tensor]]:
    """:func:`_reduce` (``dot`` style) for one flat piece, in a workspace of 3 vectors."""
    sq.mul_(sq).mul_(beta2).addcmul_(g, g, value=1.0 - beta2).sqrt_()
    pp = torch.mul(sq, c1, out=ws[0]).add_(c2)
    q = torch.div(d, pp, out=ws[1])
    out = [[torch.dot(g, q)], [torch.dot(d, q)]]
    m = torch.addcmul(pp, pp, pp, value=lam, out=ws[1]) if lam != 0.0 else pp
    u = torch.sub(d, g, out=ws[2])
    out.append([torch.dot(u, torch.div(u, m, out=ws[1]))])
    if wd != 0.0:
        out.append([torch.dot(g, x)])
    return out


def _canon_dot(v: Tensor) -> Tensor:
    """→ (Σ g d/P, Σ d²/P, Σ (d−g)²/M, Σ g x) (the last 0 without weight decay)."""
    return v if v.shape[0] == 4 else torch.cat([v, torch.zeros_like(v[:1])])


def _canon_sumsq(v: Tensor) -> Tensor:
    """Sums of squares → (Σ g d/P, Σ d²/P, Σ (d−g)²/M, Σ g x) by polarisation."""
    gx = 0.5 * (v[4] + v[5] - v[6]) if v.shape[0] == 7 else torch.zeros_like(v[0])
    return torch.stack([0.5 * (v[0] + v[1] - v[2]), v[1], v[3], gx])


def _apply(
    xs: list[Tensor], gs: list[Tensor], ds: list[Tensor], sq: list[Tensor], c1: list[Tensor],
    c2: list[Tensor], w: list[Tensor], lam: float, lr: float, wd: float,
) -> None:
    r""":math:`d \leftarrow d + \frac{1-\beta}{1+\lambda P}(g-d)`, then
    :math:`x \leftarrow (1-\eta\mu)\,x - \eta\, d/P`. ``w`` holds :math:`(1-\beta)/\lambda`
    per piece when λ > 0 (:math:`\frac{1-\beta}{1+\lambda P} =
    \frac{(1-\beta)/\lambda}{P + 1/\lambda}`), else :math:`1-\beta`."""
    pp = _precond(sq, c1, c2)
    if lam != 0.0:
        wt = torch._foreach_add(pp, 1.0 / lam)
        torch._foreach_reciprocal_(wt)
        torch._foreach_mul_(wt, w)
        torch._foreach_lerp_(ds, gs, wt)
        del wt
    else:
        torch._foreach_lerp_(ds, gs, w)
    if lr != 0.0:
        if wd != 0.0:
            torch._foreach_mul_(xs, 1.0 - lr * wd)
        torch._foreach_addcdiv_(xs, ds, pp, value=-lr)


def _apply_ws(
    x: Tensor, g: Tensor, d: Tensor, sq: Tensor, c1: Tensor, c2: Tensor, w: Tensor, lam: float,
    lr: float, wd: float, ws: list[Tensor],
) -> None:
    """:func:`_apply` for one flat piece, in a workspace of 2 vectors."""
    pp = torch.mul(sq, c1, out=ws[0]).add_(c2)
    if lam != 0.0:
        wt = torch.add(pp, 1.0 / lam, out=ws[1]).reciprocal_().mul_(w)
        d.lerp_(g, wt)
    else:
        d.lerp_(g, w)
    if lr != 0.0:
        if wd != 0.0:
            x.mul_(1.0 - lr * wd)
        x.addcdiv_(d, pp, value=-lr)


@dataclass
class _Part:
    """One (device, dtype) part of a group in the multi-tensor path."""

    ks: list[int]  # indices into the tensors given
    device: torch.device
    acc: torch.dtype
    accel: bool
    c1: list[Tensor]  # preconditioner coefficients per tensor (0-d)
    c2: list[Tensor]
    pieces: fe.Pieces
    num: Tensor | None = None  # per-tensor β numerators / denominators (None if β is forced)
    den: Tensor | None = None


def _multi_tensor_adm_adamw(
    params: list[Tensor], grads: list[Tensor], ds: list[Tensor], sqs: list[Tensor],
    beta_prods: list[Tensor], steps: list[int], prev_lrs: list[float | None], *, lr: float,
    beta_max: float, beta2: float, eps: float, weight_decay: float, lam: float,
    granularity: str, maximize: bool, knobs: Knobs, workspaces: Workspaces,
) -> BetaCols:
    wd, forced = weight_decay, knobs.force_beta
    per_tensor = granularity == "tensor"
    if maximize:
        grads = list(torch._foreach_neg(grads))

    # Reduce.
    parts: list[_Part] = []
    for (dev, dtype), ks in fe.by_device_dtype(params).items():
        xs, gs = [params[k] for k in ks], [grads[k] for k in ks]
        d_l, sq_l = [ds[k] for k in ks], [sqs[k] for k in ks]
        acc, accel = twoplane.acc_dtype(dtype), knobs.accelerator(dev)
        bprod = torch.stack([beta_prods[k] for k in ks])
        bc2 = fe.host_vec([twoplane.adamw_bc2(steps[k], beta2) for k in ks], acc, dev)
        c1, c2 = twoplane.adamw_precond_coeffs(bprod, bc2, beta_max, eps)
        pieces = fe.Pieces([xs, gs, d_l, sq_l], fe.DEVICE_BUCKET if accel else fe.CPU_CHUNK,
                           accel)
        part = _Part(ks, dev, acc, accel, list(c1.unbind()), list(c2.unbind()), pieces)
        col = fe.Collect()
        for owners, views in pieces.buckets:
            dot = None if forced is not None else knobs.dot_mode(dev, dtype, len(owners))
            c1b, c2b = [part.c1[i] for i in owners], [part.c2[i] for i in owners]
            ws = workspaces.get(3, views, accel) if dot else None
            if ws is not None:
                res = _reduce_ws(*(v[0] for v in views), c1b[0], c2b[0], beta2, lam, wd, ws)
            else:
                res = _reduce(*views, c1b, c2b, beta2, lam, wd, acc, dot)
            if dot is not None:
                col.add(dot, res, owners)
        if forced is None:
            mat, owners = col.finish(_canon_dot, _canon_sumsq)
            s_gd, s_dd, dm, s_gx = pieces.per_tensor(mat, owners).unbind()
            r = fe.host_vec([twoplane.lr_ratio(prev_lrs[k], lr) for k in ks], acc, dev)
            part.num, part.den = twoplane.adamw_num_den(s_gd, s_dd, s_gx, dm, r, wd)
        parts.append(part)

    # β per part; first-step tensors take β_max (d = 0, no previous iterate) and are left out
    # of the group's sums.
    betas: list[Tensor] = []
    group_beta: Tensor | None = None
    if forced is not None:
        betas = [torch.full((len(p.ks),), float(forced), dtype=p.acc, device=p.device)
                 for p in parts]
        group_beta = betas[0][0]
    else:
        olds = [[j for j, k in enumerate(p.ks) if steps[k] > 1] for p in parts]
        sums = []
        for p, old in zip(parts, olds, strict=True):
            assert p.num is not None and p.den is not None
            num, den = p.num, p.den
            if len(old) != len(p.ks):  # some tensors take their first step
                nl, dl = num.unbind(), den.unbind()
                num = torch.stack([nl[j] for j in old]) if old else num[:0]
                den = torch.stack([dl[j] for j in old]) if old else den[:0]
            sums.append((num, den, p.device))
        if not per_tensor and not any(olds):
            raw = [torch.full((), beta_max, dtype=n.dtype, device=dv) for n, _, dv in sums]
        else:
            raw = fe.combine_betas(granularity, sums, beta_max)
        for p, old, b in zip(parts, olds, raw, strict=True):
            if len(old) == len(p.ks):
                betas.append(b if per_tensor else b.expand(len(p.ks)))
                continue
            bmax = torch.full((), beta_max, dtype=p.acc, device=p.device)
            col_b = [bmax] * len(p.ks)
            for j, bj in zip(old, b.unbind() if per_tensor else [b] * len(old), strict=True):
                col_b[j] = bj
            betas.append(torch.stack(col_b))
        if not per_tensor:  # the group's β: that of the tensors past their first step
            group_beta = next((b for b, old in zip(raw, olds, strict=True) if old), raw[0])

    # Apply.
    cols: BetaCols = []
    for p, beta in zip(parts, betas, strict=True):
        w_l = list(((1.0 - beta) / lam if lam != 0.0 else 1.0 - beta).unbind())
        for owners, views in reversed(p.pieces.buckets):  # cache-warm pieces first
            c1b, c2b = [p.c1[i] for i in owners], [p.c2[i] for i in owners]
            w = [w_l[i] for i in owners]
            ws = workspaces.get(2, views, p.accel)
            if ws is not None:
                _apply_ws(*(v[0] for v in views), c1b[0], c2b[0], w[0], lam, lr, wd, ws)
            else:
                _apply(*views, c1b, c2b, w, lam, lr, wd)
        # B ← B β, in place (one multi-tensor op).
        torch._foreach_mul_([beta_prods[k] for k in p.ks], list(beta.unbind()))
        cols.append((p.ks, beta))
    if per_tensor:
        return cols
    assert group_beta is not None
    return [(list(range(len(params))), group_beta)]
