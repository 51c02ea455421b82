"""A plug-in workload with a planted effect: its metric ignores training and is drawn N(μ, σ²)
per run, with μ shifted by ``shift`` when the optimizer is AdM's. So the true probability that an
AdM run beats a tuned-β run is Φ(shift / (σ√2)) (minimised metric: a lower value is better)."""

from __future__ import annotations

import hashlib

import torch

from admtune.optim._base import AdMOptimizer
from admtune.workloads.base import RunContext, RunResult

SIGMA = 0.1


class Planted:
    metrics = {"loss": "minimize"}

    def __init__(self, options: dict):
        self.shift = float(options.get("shift", 0.0))  # how much lower (better) AdM's loss is

    def run(self, ctx: RunContext) -> RunResult:
        w = torch.zeros(2, requires_grad=True)
        opt = ctx.make_optimizer([w])
        adm = isinstance(opt, AdMOptimizer)
        group = opt.param_groups[0]
        beta = group.get("momentum", (group.get("betas") or (0.0,))[0])
        # independent noise per run: seeded by the seed, the arm and β, never shared across arms
        key = f"{ctx.seed}/{adm}/{float(beta):.9f}".encode()
        g = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(key).digest()[:7], "big"))
        val, test = (1.0 + SIGMA * torch.randn(2, generator=g, dtype=torch.float64)).tolist()
        if adm:
            val, test = val - self.shift, test - self.shift
        ctx.report(0, val)
        return RunResult(validation={"loss": val}, test={"loss": test}, steps=1)


def planted(options: dict) -> Planted:
    return Planted(options)
