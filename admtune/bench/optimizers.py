"""Step-time and state-memory benchmark of the AdM optimizers against torch's.

``python -m admtune.bench [--device cpu|cuda] [--repeats N]`` (``admtune bench`` calls
:func:`main`). A ResNet-18 parameter set (the real layer shapes, 11,689,512 parameters) with
random gradients; every optimizer owns a copy of the parameters, and their steps are interleaved
in one process, interleaved step by step (or in alternating blocks, ``--protocol blocks``), so
machine noise hits all of them alike. Reported: median step time, its ratio to the baseline
(``--rounds N``: the median of N whole measurements, with their range), whether the target is
met, and the optimizer state size.

Baselines: ``torch.optim.SGD(momentum=0.9, dampening=0.9, foreach=True)`` for AdM-SGD (the same
EMA heavy ball with a fixed β) and ``torch.optim.AdamW(foreach=True)`` for AdM-AdamW; torch's
``fused=True`` kernels and AdM's single-tensor paths (``foreach=False``) are timed beside them.
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

#: Ratio targets of the default (multi-tensor) AdM path to its family's torch foreach baseline,
#: per device type: a 2-core CPU (issue 9's numbers) and CUDA (issue 18's).
TARGETS = {"cpu": {"AdMSGD": 1.5, "AdMAdamW": 2.0}, "cuda": {"AdMSGD": 1.4, "AdMAdamW": 1.6}}
PROTOCOLS = ("interleaved", "blocks", "train")


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
    protocol: str = "interleaved",
    rounds: int = 1,
    blocks: int = 5,
    batch: int = 8,
    width: float = 1.0,
) -> list[dict[str, Any]]:
    """Time ``step()`` of each optimizer, each on its own parameters and gradients.

    ``protocol``: ``"interleaved"`` (each of ``warmup + repeats`` iterations times one step of
    every optimizer in turn, so that machine noise and drift hit all of them alike) or
    ``"blocks"`` (``blocks`` alternating blocks; in each, every optimizer takes ``warmup``
    untimed steps, then ``repeats // blocks`` timed steps in a row). ``rounds`` repeats the
    whole measurement; each round gives a median per optimizer and a ratio to its family's
    baseline, and the rows report the median over rounds (with the range of the ratios).
    ``"train"``: what a user training a model sees. Each optimizer trains its own copy of the
    CIFAR ResNet-18 (11.2 M parameters) on a fixed random batch of ``batch`` images, interleaved
    iteration by iteration; the optimizer step is timed right after its backward pass (caches
    and allocator as a training loop leaves them), and so is the whole iteration (``iter_ms``,
    with ``share``: the step's part of it). ``shapes`` and ``dtype`` do not apply.

    Returns one dict per optimizer: ``name``, ``family`` (``AdMSGD`` / ``AdMAdamW``),
    ``baseline`` (bool), ``median_ms``, ``ratio`` (to the family's foreach baseline),
    ``ratio_min``/``ratio_max`` (over rounds), ``target`` (None where none applies), ``met``,
    ``state_bytes``, ``params``, ``device``, ``repeats``, ``rounds``, ``protocol``."""
    if repeats < 1 or warmup < 0 or rounds < 1 or blocks < 1:
        raise ValueError(f"repeats, rounds and blocks must be >= 1 and warmup >= 0, got "
                         f"{repeats}, {rounds}, {blocks} and {warmup}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    dev = torch.device(device)
    if protocol == "train":
        return _train_bench(dev, repeats, warmup, rounds, batch, seed, width)
    shapes = list(RESNET18_SHAPES if shapes is None else shapes)
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=gen, dtype=dtype) * 0.05 for s in shapes]
    # Two gradient sets, alternated, so that AdM's β does not settle on a constant input.
    grads = [[torch.randn(s, generator=gen, dtype=dtype) * 1e-2 for s in shapes]
             for _ in range(2)]
    runs = []
    for name, family, factory in _candidates(dev):
        params = [torch.nn.Parameter(t.to(dev).clone()) for t in init]
        own = [[g.to(dev).clone() for g in gs] for gs in grads]
        runs.append({"name": name, "family": family, "opt": factory(params), "params": params,
                     "grads": own, "it": 0})

    def step(run: dict[str, Any]) -> float:
        for p, g in zip(run["params"], run["grads"][run["it"] % 2], strict=True):
            p.grad = g
        run["it"] += 1
        _sync(dev)
        t0 = time.perf_counter()
        run["opt"].step()
        _sync(dev)
        return time.perf_counter() - t0

    medians: dict[str, list[float]] = {r["name"]: [] for r in runs}
    ratios: dict[str, list[float]] = {r["name"]: [] for r in runs}
    n_params = sum(math.prod(s) for s in shapes)
    for _ in range(rounds):
        times: dict[str, list[float]] = {r["name"]: [] for r in runs}
        if protocol == "interleaved":
            for it in range(warmup + repeats):
                for run in runs:
                    t = step(run)
                    if it >= warmup:
                        times[run["name"]].append(t)
        else:
            for _b in range(blocks):
                for run in runs:
                    for _w in range(warmup):
                        step(run)
                    times[run["name"]] += [step(run) for _ in range(max(1, repeats // blocks))]
        _round_ratios(runs, times, medians, ratios)
    return _rows(runs, medians, ratios, dev, n_params, repeats, rounds, protocol)


def _round_ratios(runs: list[dict[str, Any]], times: dict[str, list[float]],
                  medians: dict[str, list[float]], ratios: dict[str, list[float]]) -> None:
    """One round's median per optimizer and its ratio to the family's first entry."""
    base: dict[str, float] = {}
    for run in runs:
        med = statistics.median(times[run["name"]]) * 1e3
        base.setdefault(run["family"], med)
        medians[run["name"]].append(med)
        ratios[run["name"]].append(med / base[run["family"]])


def _rows(runs: list[dict[str, Any]], medians: dict[str, list[float]],
          ratios: dict[str, list[float]], dev: torch.device, n_params: int, repeats: int,
          rounds: int, protocol: str) -> list[dict[str, Any]]:
    rows = []
    for r in runs:
        target = TARGETS.get(dev.type, {}).get(r["name"])  # the default AdM rows only
        ratio = statistics.median(ratios[r["name"]])
        rows.append({
            "name": r["name"],
            "family": r["family"],
            "baseline": r["name"].startswith("torch"),
            "median_ms": statistics.median(medians[r["name"]]),
            "ratio": ratio,
            "ratio_min": min(ratios[r["name"]]),
            "ratio_max": max(ratios[r["name"]]),
            "target": target,
            "met": None if target is None else ratio <= target,
            "state_bytes": state_bytes(r["opt"]),
            "params": n_params,
            "device": str(dev),
            "repeats": repeats,
            "rounds": rounds,
            "protocol": protocol,
        })
    return rows


def _train_bench(dev: torch.device, repeats: int, warmup: int, rounds: int, batch: int,
                 seed: int, width: float) -> list[dict[str, Any]]:
    """The ``"train"`` protocol of :func:`run_bench`."""
    import copy

    from admtune.workloads.models.resnet import ResNet18

    torch.manual_seed(seed)
    net = ResNet18(10, width=width).to(dev)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 32, 32, generator=gen).to(dev)
    y = torch.randint(0, 10, (batch,), generator=gen).to(dev)
    runs = []
    for name, family, factory in _candidates(dev):
        model = copy.deepcopy(net)
        runs.append({"name": name, "family": family, "model": model,
                     "opt": factory(list(model.parameters()))})
    medians: dict[str, list[float]] = {r["name"]: [] for r in runs}
    ratios: dict[str, list[float]] = {r["name"]: [] for r in runs}
    iters: dict[str, list[float]] = {r["name"]: [] for r in runs}
    for _ in range(rounds):
        times: dict[str, list[float]] = {r["name"]: [] for r in runs}
        for it in range(warmup + repeats):
            for run in runs:
                _sync(dev)
                t0 = time.perf_counter()
                run["opt"].zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(run["model"](x), y).backward()
                _sync(dev)
                t1 = time.perf_counter()
                run["opt"].step()
                _sync(dev)
                t2 = time.perf_counter()
                if it >= warmup:
                    times[run["name"]].append(t2 - t1)
                    iters[run["name"]].append(t2 - t0)
        _round_ratios(runs, times, medians, ratios)
    n_params = sum(p.numel() for p in net.parameters())
    rows = _rows(runs, medians, ratios, dev, n_params, repeats, rounds, "train")
    for row in rows:
        row["iter_ms"] = statistics.median(iters[row["name"]]) * 1e3
        row["share"] = row["median_ms"] / row["iter_ms"]
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    r0 = rows[0]
    how = {"interleaved": f"median of {r0['repeats']} interleaved steps",
           "blocks": f"median of {r0['repeats']} steps in alternating blocks",
           "train": f"median of {r0['repeats']} training iterations each (interleaved), "
                    "the step timed after its backward"}[r0["protocol"]]
    what = ("CIFAR ResNet-18 training" if r0["protocol"] == "train"
            else "ResNet-18 parameter set")
    if r0["rounds"] > 1:
        how += f", median of {r0['rounds']} rounds (ratio range in brackets)"
    table = Table(
        title=f"Optimizer step, {what} ({r0['params']:,} parameters)",
        caption=f"{r0['device']}, {torch.get_num_threads()} threads, {how}; ratio = time / "
        "the family's torch foreach baseline (SGD momentum=dampening=0.9; AdamW)",
    )
    table.add_column("optimizer")
    train = r0["protocol"] == "train"
    cols = ("median ms", "ratio", "target", *(("of iteration",) if train else ()),
            "state bytes", "vs baseline")
    for col in cols:
        table.add_column(col, justify="right")
    base_bytes: dict[str, int] = {}
    for r in rows:
        ratio = f"{r['ratio']:.2f}x"
        if r["rounds"] > 1:
            ratio += f" [{r['ratio_min']:.2f}-{r['ratio_max']:.2f}]"
        target = ""
        if r["target"] is not None:  # the words carry the verdict without colour (CI logs)
            target = (f"[green]met <= {r['target']:.1f}x[/]" if r["met"]
                      else f"[bold red]MISSED <= {r['target']:.1f}x[/]")
        table.add_row(
            r["name"],
            f"{r['median_ms']:.2f}",
            ratio,
            target,
            *((f"{r['share']:.1%} of {r['iter_ms']:.0f} ms",) if train else ()),
            f"{r['state_bytes']:,}",
            f"{r['state_bytes'] - base_bytes.setdefault(r['family'], r['state_bytes']):+,}",
        )
    console = Console()
    (console if console.is_terminal else Console(width=120)).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m admtune.bench [--device DEV] [--repeats N] [--warmup N]``."""
    ap = argparse.ArgumentParser(prog="admtune bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    ap.add_argument("--repeats", type=int, default=30, help="timed steps per optimizer")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--protocol", choices=PROTOCOLS, default="interleaved",
                    help="interleaved single steps (default) or alternating blocks of steps")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole measurement")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available on this machine")
    if args.repeats < 1 or args.warmup < 0 or args.rounds < 1:
        ap.error("--repeats and --rounds must be >= 1 and --warmup >= 0")
    _print(run_bench(args.device, repeats=args.repeats, warmup=args.warmup,
                     protocol=args.protocol, rounds=args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
