"""A literal, unoptimised float64 transcription of ALGORITHM.md (AdM-SGD and AdM-AdamW).

The optimizer tests compare :mod:`admtune.optim` with it step by step; the tests in this file
check the reference itself against the model it comes from (its step is the model's minimiser).
Everything here is written from the spec's formulas with direct products — no polarisation, no
pieces, no sqrt(v) state — so that it shares no code path with the implementation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize

TINY64 = float(np.finfo(np.float64).tiny)


def _clip(num: float, den: float, beta_max: float) -> float:
    if not den > TINY64:
        return 0.0
    return min(max(num / den, 0.0), beta_max)


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum())


def _ratio(prev: float | None, lr: float) -> float:
    if lr == 0.0:
        return 1.0
    return 0.0 if prev is None else prev / lr


class RefAdMSGD:
    """ALGORITHM.md's AdM-SGD on lists of float64 tensors (one list per param group)."""

    def __init__(self, groups: list[dict]):
        # group: params (list of tensors, updated in place), lr, weight_decay, lam, beta_max,
        # granularity
        self.groups = groups
        self.state: dict[int, dict] = {}
        self.force_beta: float | None = None

    def step(self, grads: list[list[torch.Tensor | None]]) -> list[list[float]]:
        out = []
        for group, gl in zip(self.groups, grads, strict=True):
            lr, wd, lam, bmax = group["lr"], group["weight_decay"], group["lam"], group["beta_max"]
            items, new = [], []
            for i, (x, g) in enumerate(zip(group["params"], gl, strict=True)):
                if g is None:
                    continue
                g = g.double() + wd * x
                st = self.state.setdefault(id(x), {})
                if "d" not in st:
                    new.append(i)
                    st["d"] = g.clone()
                    x -= lr * st["d"]
                else:
                    items.append((i, x, g, st))
            nums, dens = {}, {}
            for i, _x, g, st in items:
                d = st["d"]
                r = _ratio(st.get("prev_lr"), lr)
                gg, gd, dd = _dot(g, g), _dot(g, d), _dot(d, d)
                nums[i] = gg + (lam - 1.0) * gd - lam * dd + (1.0 + lam) * r * gd
                dens[i] = _dot(d - g, d - g)
            if self.force_beta is not None:
                betas = {i: self.force_beta for i, *_ in items}
            elif group["granularity"] == "global":
                b = _clip(sum(nums.values()), sum(dens.values()), bmax)
                betas = {i: b for i, *_ in items}
            else:
                betas = {i: _clip(nums[i], dens[i], bmax) for i, *_ in items}
            for i, x, g, st in items:
                b = betas[i]
                st["d"] = (b + lam) / (1 + lam) * st["d"] + (1 - b) / (1 + lam) * g
                if lr != 0.0:
                    x -= lr * st["d"]
            for i, x in enumerate(group["params"]):
                if gl[i] is not None:
                    self.state[id(x)]["prev_lr"] = lr
            first = 0.0 if self.force_beta is None else self.force_beta
            col = [betas.get(i, first if i in new else math.nan) for i in range(len(gl))]
            if group["granularity"] == "global":
                col = [next(iter(betas.values()))] if betas else ([first] if new else [math.nan])
            out.append(col)
        return out


class RefAdMAdamW:
    """ALGORITHM.md's AdM-AdamW on lists of float64 tensors (one list per param group)."""

    def __init__(self, groups: list[dict]):
        # group: params, lr, betas, eps, weight_decay, lam, granularity
        self.groups = groups
        self.state: dict[int, dict] = {}
        self.force_beta: float | None = None

    def step(self, grads: list[list[torch.Tensor | None]]) -> list[list[float]]:
        out = []
        for group, gl in zip(self.groups, grads, strict=True):
            lr, wd, lam, eps = group["lr"], group["weight_decay"], group["lam"], group["eps"]
            bmax, b2 = group["betas"]
            items = []
            for i, (x, g) in enumerate(zip(group["params"], gl, strict=True)):
                if g is None:
                    continue
                g = g.double()
                st = self.state.setdefault(id(x), {})
                new = "d" not in st
                if new:
                    st.update(t=0, d=torch.zeros_like(x), v=torch.zeros_like(x), B=1.0)
                st["t"] += 1
                st["v"] = b2 * st["v"] + (1 - b2) * g * g
                P = (1 - bmax * st["B"]) * (torch.sqrt(st["v"] / (1 - b2 ** st["t"])) + eps)
                m = 1.0 / (P * (1 + lam * P))
                d = st["d"]
                r = _ratio(st.get("prev_lr"), lr)
                num = r * _dot(g, d / P + wd * x) - _dot((d - g) * (g + lam * P * d), m)
                den = float(((d - g) ** 2 * m).sum())
                items.append((i, x, g, st, P, new, num, den))
            if self.force_beta is not None:
                betas = {it[0]: self.force_beta for it in items}
            else:
                betas = {it[0]: bmax for it in items if it[5]}
                old = [it for it in items if not it[5]]
                if group["granularity"] == "global":
                    if old:
                        b = _clip(sum(it[6] for it in old), sum(it[7] for it in old), bmax)
                        betas.update({it[0]: b for it in old})
                else:
                    betas.update({it[0]: _clip(it[6], it[7], bmax) for it in old})
            for i, x, g, st, P, _new, _n, _d in items:
                b = betas[i]
                st["d"] = ((1 - b) * g + (lam * P + b) * st["d"]) / (1 + lam * P)
                if lr != 0.0:
                    x.mul_(1 - lr * wd)
                    x -= lr * st["d"] / P
                st["B"] *= b
                st["prev_lr"] = lr
            col = [betas.get(i, math.nan) for i in range(len(gl))]
            if group["granularity"] == "global":
                old_b = [betas[it[0]] for it in items if not it[5]]
                col = [old_b[0] if old_b else (bmax if items else math.nan)]
                if self.force_beta is not None and items:
                    col = [self.force_beta]
            out.append(col)
        return out


# --- the reference's step is the model's minimiser (a generic solver) ---------------------------


def _solve_model(g, d, G, eta, lam, P):
    """argmin_z max(g·z, G + d·z) + z'Pz/(2η) + λ Σ P²(z + ηd/P)²/(2η), by SLSQP (epigraph)."""
    n = g.size

    def obj(v):
        z, t = v[:n], v[n]
        return t + (P * z * z).sum() / (2 * eta) + lam * (P**2 * (z + eta * d / P) ** 2).sum() / (
            2 * eta
        )

    cons = [
        {"type": "ineq", "fun": lambda v: v[n] - g @ v[:n]},
        {"type": "ineq", "fun": lambda v: v[n] - G - d @ v[:n]},
    ]
    res = minimize(obj, np.zeros(n + 1), constraints=cons, method="SLSQP",
                   options={"ftol": 1e-15, "maxiter": 500})
    return res.x[:n]


def test_reference_sgd_step_is_the_model_minimiser():
    rng = np.random.default_rng(0)
    for _ in range(5):
        n = 4
        x = torch.tensor(rng.normal(size=n))
        g1, g2 = rng.normal(size=n), rng.normal(size=n)
        ref = RefAdMSGD([dict(params=[x], lr=0.3, weight_decay=0.0, lam=0.1, beta_max=1.0,
                              granularity="global")])
        ref.step([[torch.tensor(g1)]])
        d = ref.state[id(x)]["d"].numpy().copy()
        x_before = x.clone()
        ref.groups[0]["lr"] = 0.2
        ref.step([[torch.tensor(g2)]])
        z = _solve_model(g2, d, 0.3 * g2 @ d, 0.2, 0.1, np.ones(n))
        np.testing.assert_allclose((x - x_before).numpy(), z, atol=1e-6)


def test_reference_adamw_step_is_the_model_minimiser():
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(20):
        n = 4
        x = torch.tensor(rng.normal(size=n))
        g, d = rng.normal(size=n), rng.normal(size=n)
        v, B = rng.uniform(0.1, 2.0, size=n), rng.uniform(0.0, 1.0)
        ref = RefAdMAdamW([dict(params=[x], lr=0.2, betas=(0.95, 0.9), eps=1e-8,
                                weight_decay=0.0, lam=0.5, granularity="tensor")])
        ref.state[id(x)] = dict(t=3, d=torch.tensor(d), v=torch.tensor(v), B=B, prev_lr=0.3)
        x_before = x.clone()
        (beta,), = ref.step([[torch.tensor(g)]])
        if beta >= 0.95:  # capped by beta_max: not the model's own maximiser
            continue
        v2 = 0.9 * v + 0.1 * g * g
        P = (1 - 0.95 * B) * (np.sqrt(v2 / (1 - 0.9**4)) + 1e-8)
        z = _solve_model(g, d, 0.3 * (g * d / P).sum(), 0.2, 0.5, P)
        np.testing.assert_allclose((x - x_before).numpy(), z, atol=1e-6)
        checked += 1
    assert checked >= 5
