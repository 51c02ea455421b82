"""Data helpers of the in-memory workloads: a fixed-seed train / validation / test split,
standardisation with train statistics, and the minibatch index stream.

Seeding discipline: the *data* (the problem, the split) depends only on fixed seeds; the run seed
(``ctx.generator()``) fixes the initialisation and the minibatch order, nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from .base import RunContext

SPLIT_SEED = 20240607  # the fixed seed of every train/validation/test split


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
    """``a`` as a torch tensor of ``dtype`` (copied only when needed)."""
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)


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


def batch_order(n: int, b: int, total: int, generator: torch.Generator) -> torch.Tensor | None:
    """The minibatch index stream: ``total`` rows of ``b`` indices, drawn from consecutive random
    permutations of the training set (a batch may straddle two epochs, so every batch has ``b``
    examples and ``total * b`` examples are seen). ``None`` for full batch."""
    if b >= n:
        return None
    need = total * b
    perms = [torch.randperm(n, generator=generator) for _ in range(math.ceil(need / n))]
    return torch.cat(perms)[:need].view(total, b)


def minibatches(
    ctx: RunContext, n_train: int, generator: torch.Generator, device: torch.device | str
) -> tuple[int, Callable[[int], torch.Tensor | None]]:
    """(total steps, ``rows(t)``: the training rows of step t, ``None`` for the full batch).

    The whole order is drawn up front, so the run seed's draws do not depend on how far a run gets.
    """
    b, total = budget(ctx, n_train)
    order = batch_order(n_train, b, total, generator)
    if order is None:
        return total, lambda t: None
    order = order.to(device)
    return total, order.__getitem__
