r"""The two-plane coefficient of adaptive memory (AdM): small pure tensor functions.

Both optimizers (:class:`~admtune.optim.AdMSGD`, :class:`~admtune.optim.AdMAdamW`) reduce their
tensors to a handful of scalars (sums over one tensor for ``tensor`` granularity, over a whole
param group for ``global``) and pass them here. Everything in this module is elementwise on those
reduced scalars, so it works unchanged on a 0-d tensor, on a vector of per-tensor sums, on CUDA
tensors (no host synchronisation: no ``.item()``, no data-dependent Python branch) and under
``torch.compile``. The tests exercise these functions alone against the model they come from.

**The model** (Topollai & Choromanska, arXiv:2510.04988). At step :math:`t`, with step size
:math:`\eta_t`, :math:`r_t = \eta_{t-1}/\eta_t`, memory direction :math:`d`, gradient :math:`g`,
diagonal metric :math:`P` (:math:`P = 1` for SGD) and :math:`z = x - x_t`:

.. math::
    \min_z \max\{g^\top z,\; G_t + d^\top z\} + \frac{z^\top P z}{2\eta_t}
           + \frac{\lambda}{2\eta_t}\,\lVert z + \eta_t P^{-1} d\rVert^2_{P^2},
    \qquad G_t = \eta_{t-1}\, g^\top P^{-1} d .

Its dual is a concave quadratic in the weight :math:`\theta = 1-\beta \in [0, 1]` of the gradient
plane; the maximiser, clipped to :math:`[0, \beta_{\max}]`, is the closed form below.

**AdM-SGD** (:math:`P = 1`):

.. math::
    \beta_t = \operatorname{clip}\Big(\frac{\lVert g\rVert^2 + (\lambda-1)\,g^\top d
              - \lambda\lVert d\rVert^2 + (1+\lambda)\,r_t\,g^\top d}{\lVert d-g\rVert^2},
              0, \beta_{\max}\Big),\qquad
    d_{t+1} = \frac{\beta_t+\lambda}{1+\lambda}\,d + \frac{1-\beta_t}{1+\lambda}\,g .

Equivalently (the form evaluated, one cancellation fewer): numerator
:math:`(1+\lambda)\big(\lVert g\rVert^2 + (r_t-1)\,g^\top d\big) - \lambda\lVert d-g\rVert^2`.

**AdM-AdamW** (diagonal :math:`P`, metric :math:`m = 1/(P(1+\lambda P))`, decoupled weight decay
:math:`\mu`):

.. math::
    \beta_t = \operatorname{clip}\Big(\frac{r_t \sum g\,(d/P + \mu x)
              - \sum (d-g)(g+\lambda P d)\, m}{\sum (d-g)^2 m}, 0, \beta_{\max}\Big),\qquad
    d_{t+1} = \frac{(1-\beta_t)\,g + (\lambda P+\beta_t)\,d}{1+\lambda P}.

Using :math:`(d-g)(g+\lambda P d)\,m = (d-g)\,d/P - (d-g)^2 m`, the numerator is
:math:`D + (1+r_t)\,S_{gd} - S_{dd} + r_t \mu S_{gx}` with :math:`S_{gd} = \sum g d/P`,
:math:`S_{dd} = \sum d^2/P`, :math:`S_{gx} = \sum g x` and :math:`D = \sum (d-g)^2 m` — the form
evaluated, so that ``global`` granularity is a plain sum of per-tensor numerators and denominators.

**Conventions.** A denominator at or below the dtype's ``tiny`` (``d = g``) gives
:math:`\beta = 0` (the step is then exactly ``g`` whatever β is). NaN inputs propagate (a
diverging run stays visibly diverged). The cap :math:`\beta_{\max} < 1` is a safeguard on top of
the model's own clip to :math:`[0, 1]`; pass ``beta_max=1`` to get the model's exact maximiser.

**What each function is.** *Scalar kernels* (elementwise on reduced sums, 0-d or per-tensor
vectors; used by every path): :func:`lr_ratio`, :func:`clip_beta`, :func:`sgd_num_den`,
:func:`sgd_beta`, :func:`sgd_coeffs`, :func:`adamw_bc2`, :func:`adamw_precond_coeffs`,
:func:`adamw_num_den`, :func:`adamw_beta`. *Whole-tensor reference forms* (direct products over
one tensor: the single-tensor paths ``foreach=False`` and the tests use them; the multi-tensor
paths compute the same quantities piece by piece from dot products or sums of squares):
:func:`sgd_sums`, :func:`adamw_precond`, :func:`adamw_metric`, :func:`adamw_sums`,
:func:`adamw_direction`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "acc_dtype",
    "adamw_bc2",
    "adamw_beta",
    "adamw_direction",
    "adamw_metric",
    "adamw_num_den",
    "adamw_precond",
    "adamw_precond_coeffs",
    "adamw_sums",
    "clip_beta",
    "lr_ratio",
    "sgd_beta",
    "sgd_coeffs",
    "sgd_num_den",
    "sgd_sums",
]

Scalar = Tensor | float


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype for reductions over tensors of ``dtype``: float64 for float64, else
    float32 (bf16 / fp16 parameters keep fp32 dot products)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def lr_ratio(prev_lr: float | None, lr: float) -> float:
    r"""The step-size ratio :math:`r_t = \eta_{t-1}/\eta_t` (a host float, no tensor).

    * :math:`\eta_t = 0` (the end of a schedule): ``1.0`` — the parameters do not move, and the
      memory is updated as for a constant step.
    * :math:`\eta_{t-1} = 0` (the last step moved nothing), :math:`\eta_t > 0`: ``0.0`` exactly.
    * ``prev_lr is None`` (no previous step for this tensor): ``0.0`` — there is no last step,
      so the memory plane's offset :math:`G_t` is zero.
    """
    if lr == 0.0:
        return 1.0
    if prev_lr is None:
        return 0.0
    return prev_lr / lr


def clip_beta(num: Tensor, den: Tensor, beta_max: Scalar) -> Tensor:
    r""":math:`\operatorname{clip}(\text{num}/\text{den}, 0, \beta_{\max})`, and 0 where
    ``den <= finfo(den.dtype).tiny`` (the ``d = g`` convention). Elementwise, sync-free; NaN in
    ``num`` or ``den`` (above tiny) propagates."""
    ok = den > torch.finfo(den.dtype).tiny
    ratio = num / torch.where(ok, den, 1.0)
    if isinstance(beta_max, Tensor):
        beta = torch.minimum(torch.clamp(ratio, min=0.0), beta_max)
    else:
        beta = torch.clamp(ratio, 0.0, beta_max)
    beta = torch.where(ok, beta, 0.0)
    # A NaN denominator fails `ok` but means a diverging run: keep the NaN visible.
    return torch.where(torch.isnan(den), den, beta)


# ---------------------------------------------------------------------------------------------
# AdM-SGD
# ---------------------------------------------------------------------------------------------


def sgd_sums(g: Tensor, d: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Reference reduction of one tensor: :math:`(\lVert g\rVert^2,\ g^\top d,\
    \lVert d-g\rVert^2)`, accumulated in :func:`acc_dtype` (the last one computed directly)."""
    acc = acc_dtype(g.dtype)
    g, d = g.reshape(-1).to(acc), d.reshape(-1).to(acc)
    u = d - g
    return g @ g, g @ d, u @ u


def sgd_num_den(gg: Tensor, gd: Tensor, uu: Tensor, r: Scalar, lam: float) -> tuple[Tensor, Tensor]:
    r"""Numerator and denominator of AdM-SGD's β from reduced sums.

    Args:
        gg: :math:`\lVert g\rVert^2`.  gd: :math:`g^\top d`.
        uu: :math:`\lVert d - g\rVert^2` (computed directly by the caller: it is the sensitive
            quantity; :func:`sgd_beta` derives it from ``gg, gd, dd`` when not given).
        r: :math:`r_t = \eta_{t-1}/\eta_t` (float, or a tensor broadcastable with the sums).
        lam: λ.

    Returns ``(num, den)`` with :math:`\text{num} = (1+\lambda)(\lVert g\rVert^2 + (r-1)\,g^\top d)
    - \lambda\lVert d-g\rVert^2` and :math:`\text{den} = \lVert d-g\rVert^2`. Both are additive over
    tensors, so ``global`` granularity sums them before :func:`clip_beta`.
    """
    num = (1.0 + lam) * (gg + (r - 1.0) * gd) - lam * uu
    return num, uu


def sgd_beta(
    gg: Tensor,
    gd: Tensor,
    dd: Tensor,
    r: Scalar = 1.0,
    lam: float = 0.1,
    beta_max: Scalar = 0.9,
    uu: Tensor | None = None,
) -> Tensor:
    r"""AdM-SGD's β (ALGORITHM.md):

    .. math::
        \beta = \operatorname{clip}\Big(\frac{\lVert g\rVert^2 + (\lambda-1)\,g^\top d
                - \lambda\lVert d\rVert^2 + (1+\lambda)\,r\,g^\top d}{\lVert d-g\rVert^2},
                0, \beta_{\max}\Big)

    ``uu`` = :math:`\lVert d-g\rVert^2` if already computed, else
    :math:`\lVert g\rVert^2 - 2g^\top d + \lVert d\rVert^2` (clamped at 0).
    """
    if uu is None:
        uu = torch.clamp(gg - 2.0 * gd + dd, min=0.0)
    return clip_beta(*sgd_num_den(gg, gd, uu, r, lam), beta_max)


def sgd_coeffs(beta: Tensor, lam: float) -> tuple[Tensor, Tensor]:
    r"""``(a, b)`` with :math:`d_{t+1} = a\,d_t + b\,g_t`: :math:`a = (\beta+\lambda)/(1+\lambda)`,
    :math:`b = (1-\beta)/(1+\lambda) = 1 - a` (so the update is ``d.lerp_(g, b)``)."""
    b = (1.0 - beta) / (1.0 + lam)
    return 1.0 - b, b


# ---------------------------------------------------------------------------------------------
# AdM-AdamW
# ---------------------------------------------------------------------------------------------


def adamw_bc2(step: int, beta2: float) -> float:
    r""":math:`\sqrt{1-\beta_2^t}` (a host float): the second moment's bias correction."""
    return math.sqrt(1.0 - beta2**step)


def adamw_precond_coeffs(
    beta_prod: Tensor, bc2: Scalar, beta_max: float, eps: float
) -> tuple[Tensor, Tensor]:
    r"""``(c1, c2)`` with :math:`P_t = c_1\sqrt{v_t} + c_2`: :math:`c_1 = (1-\beta_{\max}B)/
    \sqrt{1-\beta_2^t}`, :math:`c_2 = (1-\beta_{\max}B)\,\epsilon` (``bc2`` from
    :func:`adamw_bc2`; elementwise in B, so one call serves a vector of tensors)."""
    s = 1.0 - beta_max * beta_prod  # the first-moment bias correction 1 - β_max B
    return s / bc2, s * eps


def adamw_precond(
    v: Tensor, step: int, beta_prod: Scalar, beta_max: float, beta2: float, eps: float
) -> Tensor:
    r""":math:`P_t = (1 - \beta_{\max} B)\,\big(\sqrt{v_t/(1-\beta_2^t)} + \epsilon\big)` with
    :math:`B = \prod_{i<t}\beta_i` (1 at the first step): Adam's denominator with the first-moment
    bias correction folded in. ``step`` is :math:`t` (1 at the first step)."""
    bc2 = 1.0 - beta2**step
    return (1.0 - beta_max * beta_prod) * (torch.sqrt(v) / math.sqrt(bc2) + eps)


def adamw_metric(P: Tensor, lam: float) -> Tensor:
    r"""The diagonal metric :math:`m = 1/(P(1+\lambda P))`."""
    return 1.0 / (P * (1.0 + lam * P))


def adamw_sums(
    g: Tensor, d: Tensor, x: Tensor, P: Tensor, lam: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Reference reduction (whole tensors, direct products):
    :math:`(S_{gd}, S_{dd}, S_{gx}, D) = (\sum g d/P,\ \sum d^2/P,\ \sum g x,\ \sum (d-g)^2 m)`.
    Accumulated in :func:`acc_dtype`; the multi-tensor paths compute the same sums piece by
    piece."""
    acc = acc_dtype(g.dtype)
    g, d, x, P = (t.reshape(-1).to(acc) for t in (g, d, x, P))
    q, u = d / P, d - g
    return g @ q, d @ q, g @ x, u @ (u * adamw_metric(P, lam))


def adamw_num_den(
    s_gd: Tensor, s_dd: Tensor, s_gx: Tensor | float, den: Tensor, r: Scalar, weight_decay: float
) -> tuple[Tensor, Tensor]:
    r"""Numerator and denominator of AdM-AdamW's β from the reduced sums of :func:`adamw_sums`:

    .. math::
        \text{num} = D + (1+r)\,S_{gd} - S_{dd} + r\,\mu\,S_{gx}
        \;=\; r\sum g\,(d/P+\mu x) - \sum (d-g)(g+\lambda P d)\,m,\qquad \text{den} = D .
    """
    num = den + (1.0 + r) * s_gd - s_dd
    if weight_decay != 0.0:
        num = num + (r * weight_decay) * s_gx
    return num, den


def adamw_beta(
    s_gd: Tensor,
    s_dd: Tensor,
    s_gx: Tensor | float,
    den: Tensor,
    r: Scalar = 1.0,
    weight_decay: float = 0.0,
    beta_max: Scalar = 0.9,
) -> Tensor:
    r"""AdM-AdamW's β (ALGORITHM.md):

    .. math::
        \beta = \operatorname{clip}\Big(\frac{r\sum g\,(d/P + \mu x)
                - \sum (d-g)(g+\lambda P d)\,m}{\sum (d-g)^2 m}, 0, \beta_{\max}\Big)
    """
    return clip_beta(*adamw_num_den(s_gd, s_dd, s_gx, den, r, weight_decay), beta_max)


def adamw_direction(d: Tensor, g: Tensor, P: Tensor, beta: Tensor, lam: float) -> Tensor:
    r""":math:`d_{t+1} = \big((1-\beta)\,g + (\lambda P + \beta)\,d\big)/(1+\lambda P)`
    (reference; the optimizer does ``d.lerp_(g, (1-β)/(1+λP))``, the same thing)."""
    return ((1.0 - beta) * g + (lam * P + beta) * d) / (1.0 + lam * P)
