"""Workloads: the bundled ones, and a user's own named as ``"mypkg.module:factory"``.

Layout: :mod:`.base` (the interface the engine hands a run), :mod:`.loop` (the one training loop),
:mod:`.data` and :mod:`.device` (helpers), :mod:`.options` (``[workload]`` keys), :mod:`.models`
(the networks) and one module per bundled workload (:mod:`.convex`, :mod:`.mlp`, :mod:`.cifar`
with its files in :mod:`.cifar_data`, :mod:`.lm`). Apart from the ``bench_workloads`` script,
nothing here imports the engine (``admtune.study``) or the report.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import SpecError
from .base import (
    Diverged,
    Pruned,
    RunContext,
    RunResult,
    TrainConfig,
    Workload,
    make_scheduler,
)

# Bundled workloads, imported lazily so that `admtune list` does not import torchvision-sized code.
BUNDLED: dict[str, str] = {
    "logreg-digits": "admtune.workloads.convex:logreg_digits",
    "convex-logreg": "admtune.workloads.convex:convex_logreg",
    "convex-lsq": "admtune.workloads.convex:convex_lsq",
    "convex-quad": "admtune.workloads.convex:convex_quad",
    "mlp": "admtune.workloads.mlp:mlp",
    "cifar": "admtune.workloads.cifar:cifar10",
    "cifar10": "admtune.workloads.cifar:cifar10",
    "cifar100": "admtune.workloads.cifar:cifar100",
    "lm": "admtune.workloads.lm:lm",
}


# What a bundled workload needs beyond this package and a CPU (`admtune list` shows it).
NEEDS: dict[str, str] = {
    "cifar": "GPU, CIFAR-10 data", "cifar10": "GPU, CIFAR-10 data",
    "cifar100": "GPU, CIFAR-100 data", "lm": "GPU",
}


def resolve_factory(name: str):
    """The factory for a bundled workload name or a ``module:attribute`` path."""
    target = BUNDLED.get(name, name)
    if ":" not in target:
        known = ", ".join(sorted(BUNDLED))
        raise SpecError(
            f"unknown workload {name!r}: use one of {known}, or 'package.module:factory'"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"workload {name!r}: cannot import module {module_name!r} ({exc})") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise SpecError(f"workload {name!r}: module {module_name!r} has no callable {attr!r}")
    return factory


def get_workload(name: str, options: dict[str, Any] | None = None) -> Workload:
    """Build the workload ``name`` with its ``[workload]`` options (validated by the factory)."""
    factory = resolve_factory(name)
    workload = factory(dict(options or {}))
    if not hasattr(workload, "run") or not isinstance(getattr(workload, "metrics", None), dict):
        raise SpecError(
            f"workload {name!r}: the factory must return an object with a 'metrics' dict "
            "and a run(ctx) method"
        )
    return workload


def check_workload(workload: Workload, device: Any) -> None:
    """Ask the workload whether it can run on ``device`` (its data is there, …) before any storage
    is made: a workload may define ``check(device)`` raising an AdmtuneError saying why not."""
    check = getattr(workload, "check", None)
    if callable(check):
        check(device)


__all__ = [
    "BUNDLED", "NEEDS", "Diverged", "Pruned", "RunContext", "RunResult", "TrainConfig", "Workload",
    "check_workload", "get_workload", "make_scheduler", "resolve_factory",
]
