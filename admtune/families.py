"""The optimizer families: one registry, read by the spec, the engine, the report, the gate and the bench.

A **family** pairs a fixed-momentum optimizer (the baseline whose β a study tunes) with its AdM
counterpart. A study's ``baselines = [...]`` lists family names; everywhere in admtune a
*baseline* is a family as one study compares it (spec and summary keys, runs.csv's column), and
the *family* is the registry entry behind it. Adding a family is one optimizer file, one
:func:`register` call and its tests::

    from admtune import families

    families.register(families.Family(
        name="rmsprop", display="RMSprop",
        baseline=lambda params, beta, lr, wd: torch.optim.RMSprop(params, lr=lr, momentum=beta,
                                                                  weight_decay=wd),
        adm=lambda params, lr, wd: MyAdMRMSprop(params, lr=lr, weight_decay=wd),
        beta_param="momentum",
    ))

Registered families are known to spec validation, ``admtune check`` expectations and the report
labels of the running process. Only the built-in two are importable from a fresh interpreter; a
plug-in family registers itself when its module is imported (a workload plug-in may do that).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing the registry must stay cheap: spec checks and verdict tables use it
    import torch

Params = Iterable[Any]
BaselineFactory = Callable[[Params, float, float, float], "torch.optim.Optimizer"]  # (params, β, lr, wd)
AdMFactory = Callable[[Params, float, float], "torch.optim.Optimizer"]              # (params, lr, wd)


@dataclass(frozen=True)
class BenchCandidate:
    """One optimizer timed by ``admtune bench``: the first of a family's candidates is the
    reference its ratios are taken against."""

    label: str
    make: Callable[[list], torch.optim.Optimizer]
    devices: tuple[str, ...] = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class Family:
    name: str                    # as written in specs: baselines = ["sgd"], train.lr.sgd = 0.1
    display: str                 # "SGD"
    baseline: BaselineFactory    # the fixed-β optimizer whose β is tuned
    adm: AdMFactory              # its AdM counterpart (β_t chosen by the optimizer)
    beta_param: str              # where β goes in the baseline, for the report: "momentum", "betas[0]"
    bench: tuple[BenchCandidate, ...] = field(default=())
    bench_name: str = ""         # the name of the family in bench tables, e.g. "AdMSGD"


_REGISTRY: dict[str, Family] = {}


def register(family: Family, *, replace: bool = False) -> Family:
    """Add a family (``replace=True`` to redefine one, e.g. in tests)."""
    if family.name in _REGISTRY and not replace:
        raise ValueError(f"optimizer family {family.name!r} is already registered")
    _REGISTRY[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family that is not built in (tests that register their own)."""
    if name in BUILTIN:
        raise ValueError(f"{name!r} is a built-in family")
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered family name, built-in ones first."""
    return tuple(_REGISTRY)


def get(name: str) -> Family:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown optimizer family {name!r} (known: {', '.join(_REGISTRY)})") from None


def display(name: str) -> str:
    """A family's display name; an unregistered one (a stored study of a plug-in family read by
    another process) shows its own name."""
    f = _REGISTRY.get(name)
    return f.display if f is not None else name


# --- the built-in families -------------------------------------------------------------------
def _sgd(params: Params, beta: float, lr: float, wd: float) -> torch.optim.Optimizer:
    import torch

    # dampening = β makes torch's buffer the EMA d ← βd + (1 − β)g, the form AdM generalises.
    return torch.optim.SGD(params, lr=lr, momentum=beta, dampening=beta, weight_decay=wd)


def _adm_sgd(params: Params, lr: float, wd: float) -> torch.optim.Optimizer:
    from .optim import AdMSGD

    return AdMSGD(params, lr=lr, weight_decay=wd)


def _adamw(params: Params, beta: float, lr: float, wd: float) -> torch.optim.Optimizer:
    import torch

    return torch.optim.AdamW(params, lr=lr, betas=(beta, 0.999), weight_decay=wd)


def _adm_adamw(params: Params, lr: float, wd: float) -> torch.optim.Optimizer:
    from .optim import AdMAdamW

    return AdMAdamW(params, lr=lr, weight_decay=wd)


def _bench(module: str, cls_name: str, **kw: Any) -> Callable[[list], torch.optim.Optimizer]:
    """A bench factory ``module.cls_name(params, lr=1e-3, **kw)``, imported when called."""
    def make(ps: list) -> torch.optim.Optimizer:
        import importlib

        return getattr(importlib.import_module(module), cls_name)(ps, lr=1e-3, **kw)

    return make


SGD = Family(
    name="sgd", display="SGD", baseline=_sgd, adm=_adm_sgd, beta_param="momentum = dampening",
    bench_name="AdMSGD",
    bench=(
        BenchCandidate("torch SGD, foreach",
                       _bench("torch.optim", "SGD", momentum=0.9, dampening=0.9, foreach=True)),
        BenchCandidate("AdMSGD", _bench("admtune.optim", "AdMSGD")),
        BenchCandidate("AdMSGD, for-loop", _bench("admtune.optim", "AdMSGD", foreach=False)),
        BenchCandidate("torch SGD, fused",
                       _bench("torch.optim", "SGD", momentum=0.9, dampening=0.9, fused=True)),
    ),
)
ADAMW = Family(
    name="adamw", display="AdamW", baseline=_adamw, adm=_adm_adamw, beta_param="betas[0]",
    bench_name="AdMAdamW",
    bench=(
        BenchCandidate("torch AdamW, foreach", _bench("torch.optim", "AdamW", foreach=True)),
        BenchCandidate("AdMAdamW", _bench("admtune.optim", "AdMAdamW")),
        BenchCandidate("AdMAdamW, for-loop", _bench("admtune.optim", "AdMAdamW", foreach=False)),
        BenchCandidate("torch AdamW, fused", _bench("torch.optim", "AdamW", fused=True)),
    ),
)
BUILTIN = ("sgd", "adamw")
register(SGD)
register(ADAMW)

__all__ = ["ADAMW", "BUILTIN", "SGD", "BenchCandidate", "Family", "display", "get", "names",
           "register", "unregister"]
