"""Shared helpers of the bundled CPU workloads (``convex``, ``mlp``).

- option parsing (:mod:`admtune.workloads.options`, shared with the GPU workloads): each factory
  declares its ``[workload]`` keys as :class:`Opt` and gets one clear SpecError naming a bad key;
- data: a fixed-seed train / validation / test split and standardisation with train statistics;
- :func:`train_loop`: the generic full-batch / minibatch loop all CPU workloads train with.

Seeding discipline: the *data* (the problem, the split) depends only on fixed seeds; the run seed
(``ctx.generator()``) fixes the initialisation and the minibatch order, nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from .base import Diverged, RunContext
from .options import Opt, parse_options  # noqa: F401 (the CPU workloads import them from here)

SPLIT_SEED = 20240607  # the fixed seed of every train/validation/test split
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


# -- data ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Standardised features and targets of one split, as torch tensors."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


def split_indices(
    n: int, val_fraction: float, test_fraction: float, *, labels: np.ndarray | None = None,
    seed: int = SPLIT_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test indices from a fixed seed (stratified when ``labels`` given)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    holdout = val_fraction + test_fraction
    if holdout <= 0:
        return idx, idx[:0], idx[:0]
    strat = labels if labels is not None else None
    train, rest = train_test_split(idx, test_size=holdout, random_state=seed, stratify=strat)
    if test_fraction <= 0:
        return np.sort(train), np.sort(rest), rest[:0]
    if val_fraction <= 0:
        return np.sort(train), rest[:0], np.sort(rest)
    strat = labels[rest] if labels is not None else None
    val, test = train_test_split(
        rest, test_size=test_fraction / holdout, random_state=seed + 1, stratify=strat
    )
    return np.sort(train), np.sort(val), np.sort(test)


def standardize(
    train: np.ndarray, *others: np.ndarray, eps: float = 1e-12
) -> tuple[np.ndarray, ...]:
    """Centre and scale every array with the train split's mean and std (constant columns: 1)."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > eps, std, 1.0)
    return tuple((a - mean) / std for a in (train, *others))


def to_tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)


# -- training -----------------------------------------------------------------------------------
@contextlib.contextmanager
def cpu_threads(device: torch.device | str | None, n: int = 1) -> Iterator[None]:
    """Run torch single-threaded on the CPU for the duration (restored afterwards).

    The bundled CPU problems are tiny: intra-op threads cost more than they save, and on a loaded
    machine OpenMP's spinning makes a (569 × 31) @ (31 × 2) float64 product ~50× slower.
    """
    if torch.device(device if device is not None else "cpu").type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def effective_batch(batch_size: int, n_train: int) -> int:
    """``batch_size``, or ``n_train`` (full batch) when it is 0 or at least ``n_train``."""
    if batch_size is None or batch_size <= 0 or batch_size >= n_train:
        return n_train
    return int(batch_size)


def budget(ctx: RunContext, n_train: int) -> tuple[int, int]:
    """(batch size, total steps) for ``n_train`` examples under the run's ``[train]`` table."""
    b = effective_batch(ctx.train.batch_size, n_train)
    train = ctx.train if b == ctx.train.batch_size else dataclasses.replace(ctx.train, batch_size=b)
    return b, int(train.total_steps(n_train))


def eval_steps(total: int, points: int) -> list[int]:
    """About ``points`` update counts spread evenly over 1 … total, always including ``total``."""
    points = max(1, min(int(points), total))
    return sorted({max(1, round(total * k / points)) for k in range(1, points + 1)})


def batch_order(n: int, b: int, total: int, generator: torch.Generator) -> torch.Tensor | None:
    """The minibatch index stream: ``total`` rows of ``b`` indices, drawn from consecutive random
    permutations of the training set (a batch may straddle two epochs, so every batch has ``b``
    examples and ``total * b`` examples are seen). ``None`` for full batch."""
    if b >= n:
        return None
    need = total * b
    perms = [torch.randperm(n, generator=generator) for _ in range(math.ceil(need / n))]
    return torch.cat(perms)[:need].view(total, b)


def is_bad(value: float) -> bool:
    """Non-finite, or beyond float32's range (the engine records losses in float32)."""
    return not math.isfinite(value) or abs(value) > FLOAT32_MAX


def train_loop(
    ctx: RunContext,
    params: Iterable[torch.nn.Parameter],
    n_train: int,
    batch_loss: Callable[[torch.Tensor | None], torch.Tensor],
    validate: Callable[[], float],
    *,
    generator: torch.Generator,
    eval_points: int = 10,
    after_backward: Callable[[], None] | None = None,
) -> int:
    """Train for the run's budget; returns the number of steps taken.

    ``batch_loss(idx)`` is the loss on the training rows ``idx`` (``None``: the full training set);
    ``validate()`` is the value reported to ``ctx.report`` at the evaluation points (the last one at
    the last step); ``after_backward()`` may modify gradients (e.g. add noise). Steps are numbered
    0 … total − 1, as in the engine: ``log_step(t)`` / ``report(t)`` after update t. A non-finite
    training loss or validation value raises :class:`Diverged` at the next evaluation point at the
    latest (the engine's ``log_step`` usually catches it sooner); ``Pruned`` from ``ctx.report``
    propagates.
    """
    params = list(params)
    b, total = budget(ctx, n_train)
    order = batch_order(n_train, b, total, generator)
    if order is not None:
        order = order.to(params[0].device)
    evals = set(eval_steps(total, eval_points))
    opt = ctx.make_optimizer(params)
    sched = ctx.make_scheduler(opt, total)
    for step in range(total):
        idx = None if order is None else order[step]
        opt.zero_grad(set_to_none=True)
        loss = batch_loss(idx)
        loss.backward()
        if after_backward is not None:
            after_backward()
        opt.step()
        loss = loss.detach()
        ctx.log_step(step, loss, opt)
        sched.step()
        if step + 1 in evals:
            value = float(loss)
            if is_bad(value):
                raise Diverged(f"training loss is {value:g} at step {step}")
            with torch.no_grad():
                val = float(validate())
            if is_bad(val):
                raise Diverged(f"validation metric is {val:g} at step {step}")
            ctx.report(step, val)
    return total


def report_metric(ctx: RunContext, metrics: Mapping[str, str], primary: str) -> str:
    """The metric to report at evaluation points: the engine's tuning metric when the context names
    one (``ctx.metric``) and the workload has it, else the workload's primary metric."""
    name = getattr(ctx, "metric", None)
    return name if isinstance(name, str) and name in metrics else primary


def check_finite(result: Mapping[str, float], where: str) -> None:
    for key, value in result.items():
        if is_bad(float(value)):
            raise Diverged(f"{where} {key} is {value:g}")


# -- classification helpers -----------------------------------------------------------------------
def classification_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy (``loss``) and accuracy in percent (``accuracy``)."""
    loss = torch.nn.functional.cross_entropy(logits, y)
    acc = (logits.argmax(dim=1) == y).double().mean() * 100.0
    return {"loss": float(loss), "accuracy": float(acc)}
