"""A complete admtune workload plug-in: a small MLP classifying 2-D points of three interleaved
spirals, with its own data, model and evaluation. Copy this folder and replace the three parts
marked below with your own.

The spec names it as ``name = "tinynet.workload:factory"`` under ``[workload]``; admtune imports
``tinynet.workload``, so its parent folder must be on the import path: run with
``PYTHONPATH=examples/plugin`` or ``pip install -e examples/plugin``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from admtune.errors import SpecError
from admtune.workloads import RunResult

OPTIONS = {"width": 32, "depth": 2, "n": 1500, "eval_every": 100}


# --- 1. data: fixed by a seed of its own, so every run sees the same problem -----------------
class Split:
    """One split in memory: what the training loop below asks of a dataset (its length and a
    random minibatch drawn from the run's generator)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self), (size,), generator=generator)
        return self.x[idx], self.y[idx]


def load_data(n: int) -> tuple[Split, Split, Split]:
    """Three noisy spirals, split 60 / 20 / 20 (train / validation / test)."""
    g = torch.Generator().manual_seed(1234)  # the data seed: not the run's seed
    y = torch.arange(n) % 3
    r = torch.rand(n, generator=g)
    angle = 4.0 * r + y * (2 * math.pi / 3) + 0.25 * torch.randn(n, generator=g)
    x = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)
    order = torch.randperm(n, generator=g)
    a, b = int(0.6 * n), int(0.8 * n)
    return tuple(Split(x[order[i:j]], y[order[i:j]]) for i, j in ((0, a), (a, b), (b, n)))


# --- 2. model -----------------------------------------------------------------------------
def build_model(width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    d = 2
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, 3))


# --- 3. evaluation: every metric named in `metrics`, on one split ----------------------------
@torch.no_grad()
def evaluate(model: nn.Module, split: Split) -> dict[str, float]:
    logits = model(split.x)
    return {"loss": float(nn.functional.cross_entropy(logits, split.y)),
            "accuracy": 100.0 * float((logits.argmax(1) == split.y).float().mean())}


# --- the workload: what admtune calls ------------------------------------------------------
class TinyNet:
    # every metric evaluate() returns, with its direction; a spec without `direction` takes it
    metrics = {"loss": "minimize", "accuracy": "maximize"}

    def __init__(self, options: dict[str, Any]):  # the spec's [workload] table, minus name
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise SpecError(f"workload.{sorted(unknown)[0]} is not an option of tinynet "
                            f"(known: {', '.join(OPTIONS)})")
        self.options = {**OPTIONS, **options}
        self.data = load_data(int(self.options["n"]))

    def run(self, ctx) -> RunResult:
        if torch.device(ctx.device).type == "cpu":
            torch.set_num_threads(1)        # a model this small: more threads only wait on each other
        torch.manual_seed(ctx.seed)         # the seed fixes the initialisation …
        g = ctx.generator()                 # … and the minibatch order
        model = build_model(int(self.options["width"]), int(self.options["depth"])).to(ctx.device)
        train, val, test = self.data
        total = ctx.train.total_steps(len(train))
        opt = ctx.make_optimizer(model.named_parameters())  # the arm's SGD/AdamW β, or AdM
        sched = ctx.make_scheduler(opt, total)               # the spec's warmup and schedule
        every = int(self.options["eval_every"])
        for step in range(total):
            x, y = train.batch(ctx.train.batch_size, generator=g)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.log_step(step, loss, opt)   # the learning curve and AdM's β_t; NaN → diverged
            sched.step()
            if (step + 1) % every == 0 or step + 1 == total:
                # the spec's metric on the validation split: the curve and the median pruner
                ctx.report(step, evaluate(model, val)[ctx.metric])
        return RunResult(validation=evaluate(model, val), test=evaluate(model, test), steps=total)


def factory(options: dict[str, Any]) -> TinyNet:
    return TinyNet(options)
