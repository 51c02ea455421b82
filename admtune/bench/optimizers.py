"""Step-time and state-memory benchmark of the AdM optimizers against torch's.

``python -m admtune.bench [--device cpu|cuda] [--repeats N]`` (``admtune bench`` calls
:func:`main`). A ResNet-18 parameter set (the real layer shapes, 11,689,512 parameters) with
random gradients; every optimizer owns a copy of the parameters, and their steps are interleaved
in one process (each repetition times one step of each, in turn), so machine noise hits all of
them alike. Reported: median step time, its ratio to the baseline, and the optimizer state size.

Baselines: ``torch.optim.SGD(momentum=0.9, dampening=0.9, foreach=True)`` for AdM-SGD (the same
EMA heavy ball with a fixed β) and ``torch.optim.AdamW(foreach=True)`` for AdM-AdamW (plus
``fused=True`` on CUDA).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from admtune import families

__all__ = ["RESNET18_SHAPES", "main", "resnet18_shapes", "run_bench", "state_bytes"]

#: Ratio targets on a 2-core CPU (the issue's acceptance numbers).
TARGETS = {"AdMSGD": 1.5, "AdMAdamW": 2.0}


def resnet18_shapes(num_classes: int = 1000) -> list[tuple[int, ...]]:
    """Parameter shapes of torchvision's ``resnet18`` (conv weights have no bias; every
    BatchNorm has a weight and a bias), listed by hand: 62 tensors, 11,689,512 parameters."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]  # conv1, bn1
    inplanes = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):  # layer1..layer4
        for block in range(2):  # BasicBlock x 2
            shapes += [(planes, inplanes, 3, 3), (planes,), (planes,)]  # conv1, bn1
            shapes += [(planes, planes, 3, 3), (planes,), (planes,)]  # conv2, bn2
            if block == 0 and (stride != 1 or inplanes != planes):
                shapes += [(planes, inplanes, 1, 1), (planes,), (planes,)]  # downsample
            inplanes = planes
    shapes += [(num_classes, 512), (num_classes,)]  # fc
    return shapes


RESNET18_SHAPES = resnet18_shapes()


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's state tensors (not counting the parameters)."""
    total = 0
    for st in opt.state.values():
        for v in st.values():
            if isinstance(v, torch.Tensor):
                total += v.numel() * v.element_size()
    return total


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _candidates(device: torch.device) -> list[tuple[str, str, Callable[[list], Any]]]:
    """(name, family, factory) from the family registry; a family's first entry is its baseline."""
    return [(c.label, f.bench_name or f.name, c.make)
            for f in (families.get(n) for n in families.names()) for c in f.bench
            if device.type in c.devices]


def run_bench(
    device: str = "cpu",
    repeats: int = 30,
    warmup: int = 3,
    shapes: Sequence[tuple[int, ...]] | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time one ``step()`` of each optimizer ``repeats`` times, interleaved.

    Returns one dict per optimizer: ``name``, ``family`` (``AdMSGD`` / ``AdMAdamW``),
    ``baseline`` (bool), ``median_ms``, ``ratio`` (to the family's foreach baseline),
    ``state_bytes``, ``params``, ``device``, ``repeats``."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    dev = torch.device(device)
    shapes = list(RESNET18_SHAPES if shapes is None else shapes)
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=gen, dtype=dtype) * 0.05 for s in shapes]
    # Two gradient sets, alternated, so that AdM's β does not settle on a constant input.
    grads = [[(torch.randn(s, generator=gen, dtype=dtype) * 1e-2).to(dev) for s in shapes]
             for _ in range(2)]
    runs = []
    for name, family, factory in _candidates(dev):
        params = [torch.nn.Parameter(t.to(dev).clone()) for t in init]
        runs.append({"name": name, "family": family, "opt": factory(params), "params": params,
                     "times": []})
    for it in range(warmup + repeats):
        gset = grads[it % 2]
        for run in runs:
            for p, g in zip(run["params"], gset, strict=True):
                p.grad = g
            _sync(dev)
            t0 = time.perf_counter()
            run["opt"].step()
            _sync(dev)
            if it >= warmup:
                run["times"].append(time.perf_counter() - t0)
    n_params = sum(math.prod(s) for s in shapes)
    base = {}
    for run in runs:
        run["median_ms"] = statistics.median(run["times"]) * 1e3
        base.setdefault(run["family"], run["median_ms"])  # the family's first entry
    return [
        {
            "name": r["name"],
            "family": r["family"],
            "baseline": r["name"].startswith("torch"),
            "median_ms": r["median_ms"],
            "ratio": r["median_ms"] / base[r["family"]],
            "state_bytes": state_bytes(r["opt"]),
            "params": n_params,
            "device": str(dev),
            "repeats": repeats,
        }
        for r in runs
    ]


def _print(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    r0 = rows[0]
    table = Table(
        title=f"Optimizer step, ResNet-18 parameter set ({r0['params']:,} parameters)",
        caption=f"{r0['device']}, {torch.get_num_threads()} threads, median of {r0['repeats']} "
        "interleaved steps; ratio = time / the family's torch foreach baseline "
        "(SGD momentum=dampening=0.9; AdamW)",
    )
    table.add_column("optimizer")
    for col in ("median ms", "ratio", "target", "state bytes", "vs baseline"):
        table.add_column(col, justify="right")
    base_bytes: dict[str, int] = {}
    for r in rows:
        target = ""
        if not r["baseline"] and r["device"] == "cpu" and r["family"] in TARGETS:
            ok = r["ratio"] <= TARGETS[r["family"]]
            target = f"{'[green]' if ok else '[red]'}<= {TARGETS[r['family']]:.1f}x"
        table.add_row(
            r["name"],
            f"{r['median_ms']:.2f}",
            f"{r['ratio']:.2f}x",
            target,
            f"{r['state_bytes']:,}",
            f"{r['state_bytes'] - base_bytes.setdefault(r['family'], r['state_bytes']):+,}",
        )
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m admtune.bench [--device DEV] [--repeats N] [--warmup N]``."""
    ap = argparse.ArgumentParser(prog="admtune bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    ap.add_argument("--repeats", type=int, default=30, help="timed steps per optimizer")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available on this machine")
    _print(run_bench(args.device, repeats=args.repeats, warmup=args.warmup))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
