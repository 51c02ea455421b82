"""Device helpers shared by the workloads: CPU threads, autocast, seeding, compilation, and the
optimizer's parameter groups."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn


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


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing elsewhere (CPU runs stay in float32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def init_seed(ctx: Any) -> int:
    """A seed for parameter initialisation, drawn from the run's (CPU) generator."""
    return int(torch.randint(0, 2**62, (1,), generator=ctx.generator("cpu")).item())


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded, restoring the global RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def is_norm_or_bias(model: nn.Module) -> Callable[[str, nn.Parameter], bool]:
    """``no_decay`` predicate: BatchNorm/LayerNorm parameters and every bias."""
    norm_params = {
        id(p) for m in model.modules()
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm))
        for p in m.parameters(recurse=False)
    }
    return lambda name, p: id(p) in norm_params or name.endswith(".bias") or p.ndim < 2


def param_groups(model: nn.Module, no_decay: Callable[[str, nn.Parameter], bool]) -> list[dict]:
    """Two optimizer groups: weight-decayed and not (``no_decay(name, p)``); frozen params left out.

    Only ``params`` (``(name, parameter)`` pairs, whose names label the report's β_t) and, for the
    second group, ``weight_decay = 0`` are set: the engine fills in the arm's lr and weight decay."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (plain if no_decay(name, p) else decay).append((name, p))
    groups = []
    if decay:
        groups.append({"params": decay})
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    return groups


def maybe_compile(module: nn.Module, enabled: bool) -> Callable[..., Any]:
    """``torch.compile(module)`` when asked for, else the module itself."""
    if not enabled:
        return module
    return torch.compile(module)


def device_name(device: torch.device) -> str:
    """``device`` with the GPU's model name, for benchmark records."""
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)
