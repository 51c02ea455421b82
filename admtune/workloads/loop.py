"""The one training loop every bundled workload runs, and what it reports.

A workload hands :func:`train` two closures: ``step(t)`` does the forward and backward pass of update
t (its own batching, micro-batching, autocast, gradient noise) and returns the training loss;
``validate()`` returns the metrics on the validation split. Steps are numbered 0 … total − 1 as in
the engine, which records ``last_step + 1`` updates for a run that stops early.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import torch

from .base import Diverged, RunContext

FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def train(
    ctx: RunContext,
    params: Iterable[Any],
    total: int,
    step: Callable[[int], torch.Tensor],
    validate: Callable[[], Mapping[str, float]],
    metric: str,
    eval_after: Collection[int],
) -> tuple[dict[str, float], torch.Tensor]:
    """Run ``total`` updates; returns (the last validation metrics, the last training loss).

    ``eval_after`` holds update counts (1 … total) after which to validate and ``ctx.report`` the
    ``metric``; the last update always is one, so a finished run ends with a validation. The
    training loss is checked at evaluation points only: the engine's ``log_step`` checks it in
    batches, and a host sync every step would stall the GPU. ``Pruned`` from ``ctx.report``
    propagates.
    """
    evals = set(eval_after)
    opt = ctx.make_optimizer(params)
    sched = ctx.make_scheduler(opt, total)
    val: dict[str, float] = {}
    loss = torch.zeros(())
    for t in range(total):
        opt.zero_grad(set_to_none=True)
        loss = step(t).detach()
        opt.step()
        ctx.log_step(t, loss, opt)
        sched.step()
        if t + 1 in evals or t + 1 == total:
            last = float(loss)
            if is_bad(last):
                raise Diverged(f"training loss is {last:g} at step {t}")
            with torch.no_grad():
                val = dict(validate())
            value = float(val[metric])
            if is_bad(value):
                raise Diverged(f"validation metric is {value:g} at step {t}")
            ctx.report(t, value)
    return val, loss


def eval_steps(total: int, points: int) -> list[int]:
    """About ``points`` update counts spread evenly over 1 … total, always including ``total``."""
    points = max(1, min(int(points), total))
    return sorted({max(1, round(total * k / points)) for k in range(1, points + 1)})


def is_bad(value: float) -> bool:
    """Non-finite, or beyond float32's range (the engine records losses in float32)."""
    return not math.isfinite(value) or abs(value) > FLOAT32_MAX


def check_finite(result: Mapping[str, float], where: str) -> None:
    """Raise :class:`Diverged` when a metric of ``result`` is bad (see :func:`is_bad`)."""
    for key, value in result.items():
        if is_bad(float(value)):
            raise Diverged(f"{where} {key} is {value:g}")


def report_metric(ctx: RunContext, metrics: Mapping[str, str], primary: str) -> str:
    """The metric to report at evaluation points: the engine's tuning metric when the context names
    one (``ctx.metric``) and the workload has it, else the workload's primary metric."""
    name = getattr(ctx, "metric", None)
    return name if isinstance(name, str) and name in metrics else primary


def classification_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy (``loss``) and accuracy in percent (``accuracy``)."""
    loss = torch.nn.functional.cross_entropy(logits, y)
    acc = (logits.argmax(dim=1) == y).double().mean() * 100.0
    return {"loss": float(loss), "accuracy": float(acc)}
