"""Convex CPU workloads: the ``quick`` study's logistic regression, and the three suboptimality problems.

``logreg-digits`` (:func:`logreg_digits`)
    Multinomial logistic regression on scikit-learn's bundled digits (1797 × 64, 10 classes), split
    60 / 20 / 20 (stratified, fixed seed), features standardised with train statistics. Metrics:
    ``loss`` (mean cross-entropy, minimize) and ``accuracy`` (percent, maximize).

``convex-logreg``, ``convex-lsq``, ``convex-quad`` (:func:`convex_logreg`, :func:`convex_lsq`,
:func:`convex_quad`)
    Optimisation problems, not learning problems: the metric is ``log10_subopt`` = log10(f(x) − f*)
    (minimize; a margin is in decades), where f is the (regularised) training objective over the whole
    dataset and f* comes from a high-precision solve done once per problem and cached in-process.
    f − f* is clamped at ``SUBOPT_FLOOR · max(1, |f*|)`` so the log is finite. ``loss`` (f itself) is
    reported too. There is no generalisation question, so **validation and test are the same
    objective**; tuning stays fair because the engine tunes on seeds disjoint from the evaluation
    seeds (and a seed fixes the start point and the minibatch order / gradient noise).

Everything here runs in float64: suboptimality down to 1e-10 and below needs it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .base import RunContext, RunResult
from .data import minibatches, split_indices, standardize, to_tensor
from .device import cpu_threads
from .loop import check_finite, classification_metrics, eval_steps, report_metric, train
from .options import Opt, parse_options

DTYPE = torch.float64
SUBOPT_FLOOR = 1e-16   # f − f* is clamped at this times max(1, |f*|) before the log
DATA_SEED = 1234       # the fixed seed of generated problems (convex-quad's rotation)

_EVAL = Opt(10, "int", low=1, help="evaluation points (ctx.report) over the run")


# ------------------------------------------------------------------------------------------------
# logreg-digits (the quick study)
# ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _digits_splits() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    tr, va, te = split_indices(len(y), 0.2, 0.2, labels=y)
    xs = standardize(x[tr], x[va], x[te])
    return tuple(
        (to_tensor(a, DTYPE), torch.as_tensor(y[i], dtype=torch.long))
        for a, i in zip(xs, (tr, va, te), strict=True)
    )


class LogRegDigits:
    """Multinomial logistic regression on the bundled digits (see the module docstring)."""

    metrics = {"loss": "minimize", "accuracy": "maximize"}
    schema = {
        "l2": Opt(0.0, low=0.0, help="L2 penalty l2/2·‖W‖² added to the training loss"),
        "init_scale": Opt(0.01, low=0.0, help="std of the initial weights (bias starts at 0)"),
        "eval_points": _EVAL,
    }

    def __init__(self, options: dict[str, Any]):
        self.options = parse_options("logreg-digits", options, self.schema)

    def run(self, ctx: RunContext) -> RunResult:
        with cpu_threads(ctx.device):
            return self._run(ctx)

    def _run(self, ctx: RunContext) -> RunResult:
        dev = ctx.device
        (xtr, ytr), (xva, yva), (xte, yte) = (
            (x.to(dev), y.to(dev)) for x, y in _digits_splits()
        )
        l2 = self.options["l2"]
        g = ctx.generator()
        d, k = xtr.shape[1], 10
        w0 = torch.randn(d, k, generator=g, dtype=DTYPE) * self.options["init_scale"]
        w = torch.nn.Parameter(w0.to(dev))
        b = torch.nn.Parameter(torch.zeros(k, dtype=DTYPE, device=dev))
        metric = report_metric(ctx, self.metrics, "loss")

        total, rows = minibatches(ctx, len(ytr), g, dev)

        def step(t: int) -> torch.Tensor:
            idx = rows(t)
            x, y = (xtr, ytr) if idx is None else (xtr[idx], ytr[idx])
            loss = torch.nn.functional.cross_entropy(x @ w + b, y)
            loss = loss + 0.5 * l2 * (w * w).sum() if l2 else loss
            loss.backward()
            return loss

        def evaluate(x, y):
            with torch.no_grad():
                return classification_metrics(x @ w + b, y)

        val, _ = train(ctx, [w, b], total, step, lambda: evaluate(xva, yva), metric,
                       eval_steps(total, self.options["eval_points"]))
        check_finite(val, "validation")
        return RunResult(validation=val, test=evaluate(xte, yte), steps=total)


def logreg_digits(options: dict[str, Any]) -> LogRegDigits:
    """Factory of the ``logreg-digits`` workload (the ``quick`` study)."""
    return LogRegDigits(options)


# ------------------------------------------------------------------------------------------------
# Suboptimality problems
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """A convex objective f(x) = mean_i ℓ_i(x) + r(x) with its minimum f* (float64).

    ``x_star`` is the solver's minimiser (its gradient norm is ``grad_norm_star``); ``n`` the number of
    examples (1 for a problem without data: always full batch).
    """

    name: str
    n: int
    shape: tuple[int, ...]
    f_star: float
    x_star: torch.Tensor
    grad_norm_star: float

    def batch_objective(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        return self.batch_objective(x, None)

    def to(self, device: torch.device | str) -> Problem:
        """This problem with its tensors on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if torch.is_tensor(getattr(self, f.name))
        }
        return dataclasses.replace(self, **moved)

    def subopt(self, f: float) -> float:
        """f − f*, clamped at the floor."""
        return max(f - self.f_star, SUBOPT_FLOOR * max(1.0, abs(self.f_star)))


def _softmax_newton(x: np.ndarray, y: np.ndarray, k: int, l2: float) -> np.ndarray:
    """The minimiser of mean cross-entropy(x W, y) + l2/2·‖W‖² by damped Newton in float64.

    The objective is l2-strongly convex, so Newton with an Armijo backtracking line search converges
    from W = 0, quadratically at the end; iterating until the step stops shrinking the objective
    leaves ‖∇f‖ at rounding level (≈1e-17), far tighter than any run reaches.
    """
    n, d = x.shape
    onehot = np.eye(k)[y]

    def f_grad(w):
        z = x @ w
        zmax = z.max(axis=1, keepdims=True)
        e = np.exp(z - zmax)
        s = e.sum(axis=1, keepdims=True)
        p = e / s
        f = float(np.mean(np.log(s[:, 0]) + zmax[:, 0] - (z * onehot).sum(axis=1)))
        f += 0.5 * l2 * float((w * w).sum())
        return f, x.T @ (p - onehot) / n + l2 * w, p

    w = np.zeros((d, k))
    f, g, p = f_grad(w)
    for _ in range(100):
        # ∇²f[(a,c),(b,e)] = mean_i x_ia x_ib (p_ic δ_ce − p_ic p_ie) + l2 δ
        xp = (x[:, :, None] * p[:, None, :]).reshape(n, d * k)
        h = -(xp.T @ xp).reshape(d, k, d, k)
        for c in range(k):
            h[:, c, :, c] += (x * p[:, c : c + 1]).T @ x
        h = h.reshape(d * k, d * k) / n + l2 * np.eye(d * k)
        step = np.linalg.solve(h, g.reshape(-1)).reshape(d, k)
        decrement = float((g * step).sum())
        t = 1.0
        while True:
            f_new, g_new, p_new = f_grad(w - t * step)
            if f_new <= f - 0.25 * t * decrement or t < 1e-10:
                break
            t *= 0.5
        converged = decrement < 1e-30 or f_new >= f
        if f_new <= f:
            w, f, g, p = w - t * step, f_new, g_new, p_new
        if converged:
            break
    return w


def _grad_norm(fun, x: torch.Tensor) -> float:
    xg = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fun(xg), xg)
    return float(grad.norm())


@dataclass(frozen=True)
class LogRegProblem(Problem):
    x_data: torch.Tensor = None  # (n, d + 1) standardised features with a ones column
    y_data: torch.Tensor = None  # (n,) class indices
    l2: float = 0.0

    def batch_objective(self, x, idx):
        xd, yd = (self.x_data, self.y_data) if idx is None else (self.x_data[idx], self.y_data[idx])
        return torch.nn.functional.cross_entropy(xd @ x, yd) + 0.5 * self.l2 * (x * x).sum()


_LOGREG_DATA = ("breast_cancer", "wine", "digits")


def _load_classification(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(return_X_y=True)


@functools.lru_cache(maxsize=8)
def logreg_problem(dataset: str, l2: float) -> LogRegProblem:
    """L2-regularised multinomial logistic regression on a whole bundled dataset, and its f*."""
    x, y = _load_classification(dataset)
    (xs,) = standardize(x.astype(np.float64))
    xs = np.hstack([xs, np.ones((len(xs), 1))])
    xt, yt = to_tensor(xs, DTYPE), torch.as_tensor(y, dtype=torch.long)
    k = int(y.max()) + 1
    shape = (xs.shape[1], k)

    def fun(w):
        return torch.nn.functional.cross_entropy(xt @ w, yt) + 0.5 * l2 * (w * w).sum()

    w = torch.as_tensor(_softmax_newton(xs, y, k, l2), dtype=DTYPE)
    with torch.no_grad():
        f_star = float(fun(w))
    return LogRegProblem(
        name=f"logreg[{dataset}, l2={l2:g}]", n=len(y), shape=shape, f_star=f_star, x_star=w,
        grad_norm_star=_grad_norm(fun, w), x_data=xt, y_data=yt, l2=l2,
    )


@dataclass(frozen=True)
class LsqProblem(Problem):
    x_data: torch.Tensor = None  # (n, d + 1) standardised features with a ones column
    y_data: torch.Tensor = None  # (n,) standardised targets
    l2: float = 0.0

    def batch_objective(self, x, idx):
        xd, yd = (self.x_data, self.y_data) if idx is None else (self.x_data[idx], self.y_data[idx])
        r = xd @ x - yd
        f = 0.5 * (r * r).mean()
        return f + 0.5 * self.l2 * (x * x).sum() if self.l2 else f


_LSQ_DATA = ("diabetes",)


@functools.lru_cache(maxsize=8)
def lsq_problem(dataset: str, l2: float) -> LsqProblem:
    """Least squares ½·mean (xᵢ·w − yᵢ)² (+ l2/2·‖w‖²) on a whole bundled dataset; f* exact."""
    from sklearn import datasets

    x, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    xs, ys = standardize(x.astype(np.float64))[0], standardize(y.astype(np.float64))[0]
    xs = np.hstack([xs, np.ones((len(xs), 1))])
    n, p = xs.shape
    # Solve the (augmented) least-squares system with an orthogonal factorisation, not the normal
    # equations, so the minimiser is accurate to rounding.
    a = xs / math.sqrt(n)
    rhs = ys / math.sqrt(n)
    if l2 > 0:
        a = np.vstack([a, math.sqrt(l2) * np.eye(p)])
        rhs = np.concatenate([rhs, np.zeros(p)])
    w = np.linalg.lstsq(a, rhs, rcond=None)[0]
    xt, yt = to_tensor(xs, DTYPE), to_tensor(ys, DTYPE)
    prob = LsqProblem(
        name=f"lsq[{dataset}, l2={l2:g}]", n=n, shape=(p,), f_star=0.0, x_star=torch.as_tensor(w),
        grad_norm_star=0.0, x_data=xt, y_data=yt, l2=l2,
    )
    ws = torch.as_tensor(w, dtype=DTYPE)
    with torch.no_grad():
        f_star = float(prob.objective(ws))
    return LsqProblem(
        name=prob.name, n=n, shape=(p,), f_star=f_star, x_star=ws,
        grad_norm_star=_grad_norm(prob.objective, ws), x_data=xt, y_data=yt, l2=l2,
    )


@dataclass(frozen=True)
class QuadProblem(Problem):
    a: torch.Tensor = None  # (d, d) SPD, eigenvalues log-spaced in [1/condition, 1]

    def batch_objective(self, x, idx):
        return 0.5 * x @ (self.a @ x)


@functools.lru_cache(maxsize=8)
def quad_problem(dim: int, condition: float) -> QuadProblem:
    """½ xᵀAx, A = Q diag(λ) Qᵀ, λ log-spaced in [1/condition, 1], Q a random rotation drawn from the
    fixed ``DATA_SEED``. The minimiser is 0 and f* = 0 exactly."""
    g = torch.Generator().manual_seed(DATA_SEED)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=DTYPE))
    q = q * torch.sign(torch.diagonal(r))  # Haar-distributed rotation
    lam = torch.logspace(-math.log10(condition), 0.0, dim, dtype=DTYPE)
    a = (q * lam) @ q.T
    a = 0.5 * (a + a.T)
    return QuadProblem(
        name=f"quad[d={dim}, condition={condition:g}]", n=1, shape=(dim,), f_star=0.0,
        x_star=torch.zeros(dim, dtype=DTYPE), grad_norm_star=0.0, a=a,
    )


class ConvexWorkload:
    """Train x on a :class:`Problem`; metrics ``log10_subopt`` and ``loss`` (validation = test)."""

    metrics = {"log10_subopt": "minimize", "loss": "minimize"}
    label = "convex"
    schema: dict[str, Opt] = {}

    def __init__(self, options: dict[str, Any]):
        self.options = parse_options(self.label, options, self.schema)
        self.validate_options()

    def validate_options(self) -> None:
        pass

    def problem(self) -> Problem:
        raise NotImplementedError

    def init(self, problem: Problem, g: torch.Generator) -> torch.Tensor:
        """The start point: N(0, init_scale² / fan_in) per coordinate, from the run's generator."""
        fan_in = problem.shape[0]
        z = torch.randn(*problem.shape, generator=g, dtype=DTYPE)
        return z * (self.options["init_scale"] / math.sqrt(fan_in))

    def after_backward(self, x: torch.Tensor, g: torch.Generator):
        return None

    def run(self, ctx: RunContext) -> RunResult:
        with cpu_threads(ctx.device):
            return self._run(ctx)

    def _run(self, ctx: RunContext) -> RunResult:
        prob = self.problem().to(ctx.device)
        g = ctx.generator()
        x = torch.nn.Parameter(self.init(prob, g).to(ctx.device))
        metric = report_metric(ctx, self.metrics, "log10_subopt")

        def measure() -> dict[str, float]:
            with torch.no_grad():
                f = float(prob.objective(x))
            if not math.isfinite(f):
                return {"log10_subopt": f, "loss": f}
            return {"log10_subopt": math.log10(prob.subopt(f)), "loss": f}

        total, rows = minibatches(ctx, prob.n, g, ctx.device)
        perturb = self.after_backward(x, g)

        def step(t: int) -> torch.Tensor:
            loss = prob.batch_objective(x, rows(t))
            loss.backward()
            if perturb is not None:
                perturb()
            return loss

        result, _ = train(ctx, [x], total, step, measure, metric,
                          eval_steps(total, self.options["eval_points"]))
        check_finite(result, "final")
        return RunResult(
            validation=dict(result), test=dict(result), steps=total,
            extra={"f_star": prob.f_star, "problem": prob.name},
        )


class ConvexLogReg(ConvexWorkload):
    """L2-regularised (strongly convex) multinomial logistic regression on a whole bundled dataset
    (default: breast cancer, 569 × 30, 2 classes); f* from L-BFGS + Newton polish in float64."""

    label = "convex-logreg"
    schema = {
        "dataset": Opt("breast_cancer", "choice", choices=_LOGREG_DATA),
        "l2": Opt(1e-3, low=0.0, low_open=True, help="L2 term l2/2·‖W‖² (makes f strongly convex)"),
        "init_scale": Opt(1.0, low=0.0, help="start point std · sqrt(fan_in)"),
        "eval_points": _EVAL,
    }

    def problem(self) -> Problem:
        return logreg_problem(self.options["dataset"], self.options["l2"])


class ConvexLsq(ConvexWorkload):
    """Least squares on the whole bundled diabetes data (442 × 10 + intercept, condition ≈ 470),
    features and target standardised; f* from an orthogonal least-squares solve in float64."""

    label = "convex-lsq"
    schema = {
        "dataset": Opt("diabetes", "choice", choices=_LSQ_DATA),
        "l2": Opt(0.0, low=0.0, help="ridge term l2/2·‖w‖²"),
        "init_scale": Opt(1.0, low=0.0, help="start point std · sqrt(fan_in)"),
        "eval_points": _EVAL,
    }

    def problem(self) -> Problem:
        return lsq_problem(self.options["dataset"], self.options["l2"])


class ConvexQuad(ConvexWorkload):
    """The ill-conditioned quadratic ½ xᵀAx (f* = 0 at x = 0), optionally with Gaussian gradient
    noise of std ``noise`` per coordinate (drawn from the run's generator) so momentum's averaging
    matters. One "epoch" is one step (there is no data); give ``train.steps`` or ``train.epochs``."""

    label = "convex-quad"
    schema = {
        "dim": Opt(100, "int", low=2, high=4096, help="dimension d"),
        "condition": Opt(1e3, low=1.0, help="condition number of A"),
        "noise": Opt(0.0, low=0.0, help="std of the additive Gaussian gradient noise"),
        "init_scale": Opt(1.0, low=0.0, low_open=True, help="start point ~ N(0, init_scale²/d)"),
        "eval_points": _EVAL,
    }

    def problem(self) -> Problem:
        return quad_problem(self.options["dim"], self.options["condition"])

    def after_backward(self, x: torch.Tensor, g: torch.Generator):
        noise = self.options["noise"]
        if noise <= 0:
            return None

        def add_noise() -> None:
            z = torch.randn(x.shape, generator=g, dtype=DTYPE)
            x.grad.add_(z.to(x.device), alpha=noise)

        return add_noise


def convex_logreg(options: dict[str, Any]) -> ConvexLogReg:
    """Factory of the ``convex-logreg`` workload."""
    return ConvexLogReg(options)


def convex_lsq(options: dict[str, Any]) -> ConvexLsq:
    """Factory of the ``convex-lsq`` workload."""
    return ConvexLsq(options)


def convex_quad(options: dict[str, Any]) -> ConvexQuad:
    """Factory of the ``convex-quad`` workload."""
    return ConvexQuad(options)
