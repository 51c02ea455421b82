"""Oracles 1 and 2 of ALGORITHM.md on the pure two-plane functions, plus their conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from admtune.optim import twoplane as tp
from tests.test_optim_reference import _solve_model

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def vec(n: int, lo: float = -3.0, hi: float = 3.0):
    return st.lists(st.floats(lo, hi, allow_nan=False, allow_subnormal=False), min_size=n, max_size=n)


instance = st.integers(2, 6).flatmap(
    lambda n: st.tuples(
        vec(n),  # g
        vec(n),  # d
        vec(n, 0.05, 3.0),  # P (diagonal metric, AdamW)
        st.floats(0.0, 1.0),  # lam
        st.floats(0.05, 2.0),  # eta_t
        st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0]),  # r = eta_{t-1}/eta_t
    )
)


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


# --- the dual, evaluated on a grid (oracle 1) --------------------------------------------------


def dual_grid(g, d, G, eta, lam, P, n_grid=40001):
    """D(θ) = (1-θ)G + min_z [c·z + z'Pz/(2η) + λΣP²(z+ηd/P)²/(2η)], c = θg + (1-θ)d, on a
    grid of θ ∈ [0, 1] (the inner minimum of the strongly convex quadratic in closed form)."""
    th = np.linspace(0.0, 1.0, n_grid)[:, None]
    c = th * g + (1 - th) * d
    z = -eta * (c + lam * P * d) / (P + lam * P**2)
    val = (
        (1 - th[:, 0]) * G
        + (c * z).sum(1)
        + (P * z * z).sum(1) / (2 * eta)
        + lam * (P**2 * (z + eta * d / P) ** 2).sum(1) / (2 * eta)
    )
    return th[:, 0], val


def dual_at(theta, g, d, G, eta, lam, P):
    c = theta * g + (1 - theta) * d
    z = -eta * (c + lam * P * d) / (P + lam * P**2)
    return (
        (1 - theta) * G
        + c @ z
        + (P * z * z).sum() / (2 * eta)
        + lam * (P**2 * (z + eta * d / P) ** 2).sum() / (2 * eta)
    )


def check_dual(beta, g, d, G, eta, lam, P):
    th, val = dual_grid(g, d, G, eta, lam, P)
    best = val.max()
    scale = 1.0 + abs(best)
    # The closed form attains the grid maximum (to rounding) ...
    assert dual_at(1.0 - beta, g, d, G, eta, lam, P) >= best - 1e-9 * scale
    # ... and sits at the grid argmax where the dual is not flat.
    curv = eta * ((g - d) ** 2 / (P + lam * P**2)).sum()
    if curv > 1e-3 * scale:
        assert abs((1.0 - beta) - th[val.argmax()]) <= 2e-3


@SETTINGS
@given(instance)
def test_oracle1_sgd_closed_form_is_dual_argmax(inst):
    g, d = np.asarray(inst[0]), np.asarray(inst[1])
    lam, eta, r = inst[3], inst[4], inst[5]
    assume(((g - d) ** 2).sum() > 1e-12)  # d = g: β = 0 by convention, see below
    beta = tp.sgd_beta(t64(g @ g), t64(g @ d), t64(d @ d), r=r, lam=lam, beta_max=1.0)
    G = r * eta * (g @ d)  # η_{t-1} g·d
    check_dual(float(beta), g, d, G, eta, lam, np.ones_like(g))


@SETTINGS
@given(instance)
def test_oracle1_adamw_closed_form_is_dual_argmax(inst):
    g, d, P = (np.asarray(a) for a in inst[:3])
    lam, eta, r = inst[3], inst[4], inst[5]
    assume(((g - d) ** 2).sum() > 1e-12)
    sums = tp.adamw_sums(t64(g), t64(d), t64(np.zeros_like(g)), t64(P), lam)
    beta = tp.adamw_beta(*sums, r=r, weight_decay=0.0, beta_max=1.0)
    G = r * eta * (g * d / P).sum()
    check_dual(float(beta), g, d, G, eta, lam, P)


def test_d_equals_g_convention_moves_by_g_for_any_beta():
    """‖d − g‖² = 0: the dual is linear in θ (argmax at an end), β = 0 by convention, and
    the step is exactly g whatever β: both planes coincide up to G."""
    g = t64([0.5, -1.0, 2.0])
    P = t64([0.5, 1.0, 2.0])
    assert float(tp.sgd_beta(g @ g, g @ g, g @ g, r=1.0, lam=0.1)) == 0.0
    sums = tp.adamw_sums(g, g, torch.zeros_like(g), P, 0.1)
    assert float(tp.adamw_beta(*sums, r=1.0, beta_max=0.9)) == 0.0
    for beta in (0.0, 0.3, 0.9):
        a, b = tp.sgd_coeffs(t64(beta), 0.1)
        torch.testing.assert_close(a * g + b * g, g)
        torch.testing.assert_close(tp.adamw_direction(g, g, P, t64(beta), 0.1), g)


# --- a generic convex solver on the primal model (oracle 2) ------------------------------------


@settings(max_examples=25, deadline=None, derandomize=True)
@given(instance)
def test_oracle2_sgd_step_is_model_argmin(inst):
    g, d = np.asarray(inst[0]), np.asarray(inst[1])
    lam, eta, r = inst[3], inst[4], inst[5]
    assume(np.linalg.norm(g - d) > 1e-3)
    beta = tp.sgd_beta(t64(g @ g), t64(g @ d), t64(d @ d), r=r, lam=lam, beta_max=1.0)
    a, b = tp.sgd_coeffs(beta, lam)
    z_closed = -eta * (a.item() * d + b.item() * g)
    z = _solve_model(g, d, r * eta * (g @ d), eta, lam, np.ones_like(g))
    np.testing.assert_allclose(z_closed, z, atol=2e-5 * (1 + np.abs(z).max()))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(instance)
def test_oracle2_adamw_step_is_model_argmin(inst):
    g, d, P = (np.asarray(a) for a in inst[:3])
    lam, eta, r = inst[3], inst[4], inst[5]
    assume(np.linalg.norm(g - d) > 1e-3)
    sums = tp.adamw_sums(t64(g), t64(d), t64(np.zeros_like(g)), t64(P), lam)
    beta = tp.adamw_beta(*sums, r=r, weight_decay=0.0, beta_max=1.0)
    d_next = tp.adamw_direction(t64(d), t64(g), t64(P), beta, lam).numpy()
    z_closed = -eta * d_next / P
    z = _solve_model(g, d, r * eta * (g * d / P).sum(), eta, lam, P)
    np.testing.assert_allclose(z_closed, z, atol=2e-5 * (1 + np.abs(z).max()))


# --- algebra: the evaluated forms equal the spec's literal ones ---------------------------------


@SETTINGS
@given(instance, st.floats(0.0, 0.1), vec(6))
def test_adamw_num_den_equals_spec_literal(inst, mu, xs):
    g, d, P = (np.asarray(a) for a in inst[:3])
    x = np.asarray(xs[: g.size])
    lam, r = inst[3], inst[5]
    m = 1.0 / (P * (1 + lam * P))
    num_lit = r * (g * (d / P + mu * x)).sum() - ((d - g) * (g + lam * P * d) * m).sum()
    den_lit = ((d - g) ** 2 * m).sum()
    num, den = tp.adamw_num_den(*tp.adamw_sums(t64(g), t64(d), t64(x), t64(P), lam), r, mu)
    assert float(num) == pytest.approx(num_lit, rel=1e-9, abs=1e-9)
    assert float(den) == pytest.approx(den_lit, rel=1e-12, abs=1e-12)


@SETTINGS
@given(instance)
def test_sgd_num_equals_spec_literal(inst):
    g, d = np.asarray(inst[0]), np.asarray(inst[1])
    lam, r = inst[3], inst[5]
    gg, gd, dd = g @ g, g @ d, d @ d
    lit = gg + (lam - 1) * gd - lam * dd + (1 + lam) * r * gd
    num, den = tp.sgd_num_den(t64(gg), t64(gd), t64(((d - g) ** 2).sum()), r, lam)
    assert float(num) == pytest.approx(lit, rel=1e-9, abs=1e-9)


@SETTINGS
@given(instance)
def test_sgd_is_adamw_with_unit_metric(inst):
    """AdM-SGD is AdM-AdamW's model with P = 1 (ALGORITHM.md: "the AdM-SGD model in Adam's
    metric")."""
    g, d = np.asarray(inst[0]), np.asarray(inst[1])
    lam, r = inst[3], inst[5]
    one = np.ones_like(g)
    # ‖d − g‖² given directly: the identity is about the two models, not about the cancellation
    # in ‖g‖² − 2g·d + ‖d‖² when d ≈ g (where β is ill-conditioned and does not move the step).
    uu = t64(((d - g) ** 2).sum())
    b_sgd = tp.sgd_beta(t64(g @ g), t64(g @ d), t64(d @ d), r=r, lam=lam, beta_max=0.9, uu=uu)
    sums = tp.adamw_sums(t64(g), t64(d), t64(one), t64(one), lam)
    b_adam = tp.adamw_beta(*sums, r=r, weight_decay=0.0, beta_max=0.9)
    assert float(b_sgd) == pytest.approx(float(b_adam), abs=1e-9)


# --- conventions and intuition checks ------------------------------------------------------------


def test_intuition_checks():
    g = t64([1.0, -2.0, 0.5])
    gg = g @ g
    # g = -d (overshoot) at λ = 0: β = 1/4.
    assert float(tp.sgd_beta(gg, -gg, gg, r=1.0, lam=0.0)) == pytest.approx(0.25)
    # g = 0: β = 0.
    d = t64([0.3, 0.1, -0.2])
    z = torch.zeros((), dtype=torch.float64)
    assert float(tp.sgd_beta(z, z, d @ d, r=1.0, lam=0.1)) == 0.0
    # g ≈ d (consistent gradients): β_max.
    d2 = g * (1 + 1e-3)
    assert float(tp.sgd_beta(gg, g @ d2, d2 @ d2, r=1.0, lam=0.1, beta_max=0.9)) == 0.9
    # d = g exactly: 0 by convention (the step is g whatever β is).
    assert float(tp.sgd_beta(gg, gg, gg, r=1.0, lam=0.1)) == 0.0
    a, b = tp.sgd_coeffs(torch.tensor(0.37, dtype=torch.float64), 0.1)
    assert float(a + b) == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_clip_beta_conventions(dtype):
    tiny = torch.finfo(dtype).tiny
    num = torch.tensor([1.0, -1.0, 5.0, 0.5, 1.0, math.nan], dtype=dtype)
    den = torch.tensor([2.0, 2.0, 1.0, tiny, 0.0, 1.0], dtype=dtype)
    out = tp.clip_beta(num, den, 0.9)
    assert out[:5].tolist() == [0.5, 0.0, pytest.approx(0.9), 0.0, 0.0]
    assert math.isnan(out[5])
    assert math.isnan(tp.clip_beta(torch.tensor(1.0), torch.tensor(math.nan), 0.9))
    assert out.dtype == dtype


def test_lr_ratio():
    assert tp.lr_ratio(0.1, 0.1) == 1.0
    assert tp.lr_ratio(0.2, 0.1) == 2.0
    assert tp.lr_ratio(0.0, 0.1) == 0.0  # the last step moved nothing
    assert tp.lr_ratio(0.1, 0.0) == 1.0  # zero step: r = 1
    assert tp.lr_ratio(0.0, 0.0) == 1.0
    assert tp.lr_ratio(None, 0.1) == 0.0  # no previous step


def test_adamw_precond_is_adams_denominator():
    v = torch.rand(5, dtype=torch.float64)
    # B = β_max^(t-1): 1 - β_max B = 1 - β_max^t, Adam's first-moment bias correction.
    P = tp.adamw_precond(v, step=3, beta_prod=0.9**2, beta_max=0.9, beta2=0.999, eps=1e-8)
    want = (1 - 0.9**3) * ((v / (1 - 0.999**3)).sqrt() + 1e-8)
    torch.testing.assert_close(P, want)


def test_functions_accept_device_vectors_without_sync():
    """Vectorised over tensors (one β per tensor) and tensor-valued r."""
    gg = torch.tensor([1.0, 2.0, 0.0])
    gd = torch.tensor([0.5, -1.0, 0.0])
    dd = torch.tensor([1.0, 1.0, 1.0])
    r = torch.tensor([1.0, 0.0, 2.0])
    b = tp.sgd_beta(gg, gd, dd, r=r, lam=0.1, beta_max=torch.tensor(0.9))
    for i in range(3):
        bi = tp.sgd_beta(gg[i], gd[i], dd[i], r=float(r[i]), lam=0.1, beta_max=0.9)
        assert float(b[i]) == pytest.approx(float(bi))
