r"""AdM-AdamW: AdamW whose first-moment coefficient β₁ is chosen afresh at every step.

See :mod:`admtune.optim.sgd` for the execution model shared with AdM-SGD (two passes over
cache-sized pieces; β from :mod:`admtune.optim.twoplane` on the device, no host sync).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import twoplane
from .sgd import _AdMOptimizer, _check_number, _Collect, _dots, _host_vec, _sumsq

__all__ = ["AdMAdamW"]


def _precond(sq: list[Tensor], c1: list[Tensor], c2: list[Tensor]) -> list[Tensor]:
    r""":math:`P = c_1\sqrt{v} + c_2` with :math:`c_1 = (1-\beta_{\max}B)/\sqrt{1-\beta_2^t}`,
    :math:`c_2 = (1-\beta_{\max}B)\,\epsilon` (per-tensor 0-d tensors); ``sq`` holds
    :math:`\sqrt{v}`."""
    pp = torch._foreach_mul(sq, c1)
    torch._foreach_add_(pp, c2)
    return pp


def _adamw_reduce(
    xs: list[Tensor],
    gs: list[Tensor],
    ds: list[Tensor],
    sq: list[Tensor],
    c1: list[Tensor],
    c2: list[Tensor],
    beta2: float,
    lam: float,
    wd: float,
    acc: torch.dtype,
    dot: bool | None,
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
        out = [_dots(gs, q), _dots(ds, q)]
        del q
        m = torch._foreach_addcmul(pp, pp, pp, value=lam) if lam != 0.0 else pp
        us = torch._foreach_sub(ds, gs)
        out.append(_dots(us, torch._foreach_div(us, m)))
        if wd != 0.0:
            out.append(_dots(gs, xs))
        return out
    n = len(xs)
    rs = torch._foreach_rsqrt(pp)
    a = torch._foreach_mul(gs, rs)
    b = torch._foreach_mul(ds, rs)
    del rs
    ab = _sumsq([*a, *b], acc)
    torch._foreach_sub_(a, b)  # a = (g - d)/sqrt(P)
    del b
    uw = _sumsq(a, acc)
    if lam != 0.0:
        torch._foreach_mul_(pp, lam)
        torch._foreach_add_(pp, 1.0)
        torch._foreach_rsqrt_(pp)
        torch._foreach_mul_(a, pp)
        den = _sumsq(a, acc)
    else:
        den = uw
    out = [ab[:n], ab[n:], uw, den]
    if wd != 0.0:
        xg = torch._foreach_sub(xs, gs)
        s3 = _sumsq([*gs, *xs, *xg], acc)
        out += [s3[:n], s3[n : 2 * n], s3[2 * n :]]
    return out


def _adamw_reduce_ws(
    x: Tensor,
    g: Tensor,
    d: Tensor,
    sq: Tensor,
    c1: Tensor,
    c2: Tensor,
    beta2: float,
    lam: float,
    wd: float,
    ws: list[Tensor],
) -> list[list[Tensor]]:
    """:func:`_adamw_reduce` (``dot`` style) for one flat piece, in a workspace of 3 vectors."""
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


def _adamw_apply_ws(
    x: Tensor,
    g: Tensor,
    d: Tensor,
    sq: Tensor,
    c1: Tensor,
    c2: Tensor,
    w: Tensor,
    lam: float,
    lr: float,
    wd: float,
    ws: list[Tensor],
) -> None:
    """:func:`_adamw_apply` for one flat piece, in a workspace of 2 vectors."""
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


def _adamw_canon_dot(v: Tensor) -> Tensor:
    """→ (Σ g d/P, Σ d²/P, Σ (d−g)²/M, Σ g x) (the last 0 without weight decay)."""
    return v if v.shape[0] == 4 else torch.cat([v, torch.zeros_like(v[:1])])


def _adamw_canon_sumsq(v: Tensor) -> Tensor:
    """Sums of squares → (Σ g d/P, Σ d²/P, Σ (d−g)²/M, Σ g x) by polarisation."""
    gx = 0.5 * (v[4] + v[5] - v[6]) if v.shape[0] == 7 else torch.zeros_like(v[0])
    return torch.stack([0.5 * (v[0] + v[1] - v[2]), v[1], v[3], gx])


def _adamw_apply(
    xs: list[Tensor],
    gs: list[Tensor],
    ds: list[Tensor],
    sq: list[Tensor],
    c1: list[Tensor],
    c2: list[Tensor],
    w: list[Tensor],
    lam: float,
    lr: float,
    wd: float,
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


class AdMAdamW(_AdMOptimizer):
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
    Adam's first-moment bias correction when β is constant) and :math:`r_t = \eta_{t-1}/\eta_t`.
    With λ = 0 and β fixed at β_max this is exactly ``torch.optim.AdamW``.

    **Not invariant to the scale of the loss** (unlike Adam): λP carries gradient units, so
    mean vs sum reduction or gradient accumulation changes the trajectory. This is the algorithm
    as specified.

    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: step size η ≥ 0 (float; LR schedulers work as usual).
        betas: ``(β_max, β2)``: ``betas[0]`` is the upper bound of the adaptive β (and the
            first step's β), ``betas[1]`` the second-moment coefficient; both in [0, 1).
        eps: ε ≥ 0 added to the square root of the second moment.
        weight_decay: decoupled weight decay μ ≥ 0.
        lam: proximal weight λ ≥ 0 of the model (a fixed constant, 0.1; not a knob to tune).
        granularity: ``"tensor"`` (one β per parameter tensor, default) or ``"global"``.
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
        foreach: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "lam": lam,
            "granularity": granularity,
            "foreach": foreach,
        }
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        betas = group["betas"]
        if isinstance(betas, Tensor) or not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta_max, beta2) of numbers, got {betas!r}")
        _check_number("betas[0] (beta_max)", betas[0], 0.0, 1.0, high_open=True)
        _check_number("betas[1] (beta2)", betas[1], 0.0, 1.0, high_open=True)
        _check_number("eps", group["eps"], 0.0, math.inf, high_open=False)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # torch casts floating-point state to the param's dtype; B (a running product) must keep
        # its fp32/fp64 accumulation dtype, so take it from the saved state directly.
        saved = state_dict["state"]
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        keep = {
            p: saved[i]["beta_prod"]
            for i, p in zip(ids, params, strict=False)
            if isinstance(saved.get(i, {}).get("beta_prod"), Tensor)
        }
        super().load_state_dict(state_dict)
        for p, b in keep.items():
            self.state[p]["beta_prod"] = b.to(p.device, twoplane.acc_dtype(p.dtype), copy=True)

    def _step_group(self, group: dict[str, Any]) -> Tensor:
        lr: float = group["lr"]
        wd: float = group["weight_decay"]
        lam: float = group["lam"]
        eps: float = group["eps"]
        beta_max, beta2 = (float(b) for b in group["betas"])
        items = self._gather(group)
        state = self.state
        per_tensor = group["granularity"] == "tensor"
        forced = self._force_beta
        foreach = self._use_foreach(group)

        is_new: list[bool] = []
        for _, p, _ in items:
            st = state[p]
            fresh = "exp_avg" not in st
            if fresh:
                st["step"] = 0
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq_sqrt"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["beta_prod"] = torch.ones((), dtype=twoplane.acc_dtype(p.dtype), device=p.device)
            st["step"] += 1
            is_new.append(fresh)

        # Reduce.
        runs = []
        for (dev, dtype), ks in self._by_device_dtype(items).items():
            xs = [items[k][1] for k in ks]
            gs = [items[k][2] for k in ks]
            sts = [state[p] for p in xs]
            ds = [st["exp_avg"] for st in sts]
            sq = [st["exp_avg_sq_sqrt"] for st in sts]
            acc = twoplane.acc_dtype(dtype)
            bprod = torch.stack([st["beta_prod"] for st in sts])
            s = 1.0 - beta_max * bprod  # first-moment bias correction 1 - β_max B
            bc2 = _host_vec([math.sqrt(1.0 - beta2 ** st["step"]) for st in sts], acc, dev)
            c1_l, c2_l = list((s / bc2).unbind()), list((s * eps).unbind())
            pieces = self._pieces([xs, gs, ds, sq], dev, foreach)
            col = _Collect()
            for owners, views in pieces.buckets:
                dot = None if forced is not None else self._dot_mode(dev, dtype, len(owners))
                c1, c2 = [c1_l[i] for i in owners], [c2_l[i] for i in owners]
                ws = self._workspace(dev, dtype, 3, views) if dot else None
                if ws is not None:
                    res = _adamw_reduce_ws(*(v[0] for v in views), c1[0], c2[0],
                                           beta2, lam, wd, ws)
                else:
                    res = _adamw_reduce(*views, c1, c2, beta2, lam, wd, acc, dot)
                if dot is not None:
                    col.add(dot, res, owners)
            num = den = None
            if forced is None:
                mat, owners = col.finish(_adamw_canon_dot, _adamw_canon_sumsq)
                s_gd, s_dd, dm, s_gx = pieces.per_tensor(mat, owners).unbind()
                r = _host_vec([twoplane.lr_ratio(st.get("prev_lr"), lr) for st in sts], acc, dev)
                num, den = twoplane.adamw_num_den(s_gd, s_dd, s_gx, dm, r, wd)
            runs.append((ks, dev, acc, sts, bprod, c1_l, c2_l, pieces, num, den))

        # β per part; first-step tensors take β_max (d = 0, no previous iterate).
        betas: list[Tensor] = []
        group_beta: Tensor | None = None
        if forced is not None:
            betas = [
                torch.full((len(ks),), float(forced), dtype=acc, device=dev)
                for ks, dev, acc, *_ in runs
            ]
        else:
            olds = [[j for j, k in enumerate(ks) if not is_new[k]] for ks, *_ in runs]
            parts = []
            for (ks, dev, *_, num, den), old in zip(runs, olds, strict=True):
                if len(old) != len(ks):  # some tensors take their first step
                    nl, dl = num.unbind(), den.unbind()
                    num = torch.stack([nl[j] for j in old]) if old else num[:0]
                    den = torch.stack([dl[j] for j in old]) if old else den[:0]
                parts.append((num, den, dev))
            if not per_tensor and not any(olds):
                raw = [torch.full((), beta_max, dtype=n.dtype, device=dv) for n, _, dv in parts]
            else:
                raw = self._betas(group["granularity"], parts, beta_max)
            for (ks, dev, acc, *_), old, b in zip(runs, olds, raw, strict=True):
                if len(old) == len(ks):
                    betas.append(b if per_tensor else b.expand(len(ks)))
                    continue
                bmax = torch.full((), beta_max, dtype=acc, device=dev)
                col_b = [bmax] * len(ks)
                for j, bj in zip(old, b.unbind() if per_tensor else [b] * len(old), strict=True):
                    col_b[j] = bj
                betas.append(torch.stack(col_b))
            if not per_tensor:  # the group's β: that of the tensors past their first step
                group_beta = next((b for b, old in zip(raw, olds, strict=True) if old), raw[0])

        # Apply.
        cols: list[tuple[list[int], Tensor]] = []
        for (ks, dev, _, sts, bprod, c1_l, c2_l, pieces, _, _), beta in zip(runs, betas,
                                                                           strict=True):
            dtype = sts[0]["exp_avg"].dtype
            w_l = list(((1.0 - beta) / lam if lam != 0.0 else 1.0 - beta).unbind())
            for owners, views in reversed(pieces.buckets):  # cache-warm pieces first
                c1, c2 = [c1_l[i] for i in owners], [c2_l[i] for i in owners]
                w = [w_l[i] for i in owners]
                ws = self._workspace(dev, dtype, 2, views)
                if ws is not None:
                    _adamw_apply_ws(*(v[0] for v in views), c1[0], c2[0], w[0], lam, lr, wd, ws)
                else:
                    _adamw_apply(*views, c1, c2, w, lam, lr, wd)
            for st, b in zip(sts, (bprod * beta).unbind(), strict=True):
                st["beta_prod"] = b
                st["prev_lr"] = lr
            cols.append((ks, beta))

        if per_tensor:
            return self._report(group, items, cols, None)
        if forced is not None:
            group_beta = betas[0][0] if betas else None
        return self._report(group, items, [], group_beta if runs else None)
