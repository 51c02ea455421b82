"""A tiny user workload (a plug-in, as a user would write one): noisy least squares in torch.

Options: ``dim`` (int), ``n`` (samples), ``crash_seeds`` (seeds whose run raises, for retry tests),
``nan_seeds`` (seeds whose loss turns NaN: divergence), ``sleep`` (seconds per step, for
kill/interrupt tests), ``metric_nan`` (return a NaN metric), ``lucky_seeds`` (seeds whose final
validation value is a thousand times too good: a tuning trial that won by luck).
"""

from __future__ import annotations

import time

import torch

from admtune.errors import SpecError
from admtune.workloads.base import RunContext, RunResult

KNOWN = {"dim", "n", "crash_seeds", "nan_seeds", "sleep", "metric_nan", "lucky_seeds"}


class Toy:
    metrics = {"loss": "minimize", "score": "maximize"}

    def __init__(self, options: dict):
        unknown = set(options) - KNOWN
        if unknown:
            raise SpecError(f"workload.{sorted(unknown)[0]} is not an option of the toy workload")
        self.dim = int(options.get("dim", 8))
        self.n = int(options.get("n", 64))
        self.crash_seeds = set(options.get("crash_seeds", []))
        self.nan_seeds = set(options.get("nan_seeds", []))
        self.sleep = float(options.get("sleep", 0.0))
        self.metric_nan = bool(options.get("metric_nan", False))
        self.lucky_seeds = set(options.get("lucky_seeds", []))
        g = torch.Generator().manual_seed(0)  # the problem is fixed; the run seed picks the start
        self.X = torch.randn(self.n, self.dim, generator=g, dtype=torch.float64)
        w = torch.randn(self.dim, generator=g, dtype=torch.float64)
        self.y = self.X @ w + 0.1 * torch.randn(self.n, generator=g, dtype=torch.float64)

    def _loss(self, w: torch.Tensor, idx: slice | torch.Tensor = slice(None)) -> torch.Tensor:
        return 0.5 * ((self.X[idx] @ w - self.y[idx]) ** 2).mean()

    def run(self, ctx: RunContext) -> RunResult:
        if ctx.seed in self.crash_seeds:
            raise RuntimeError(f"toy crash for seed {ctx.seed}")
        g = ctx.generator()
        w = torch.zeros(self.dim, dtype=torch.float64)
        w += torch.randn(self.dim, generator=g, dtype=torch.float64)
        w.requires_grad_(True)
        opt = ctx.make_optimizer([w])
        total = ctx.train.total_steps(self.n)
        sched = ctx.make_scheduler(opt, total)
        bs = ctx.train.batch_size
        for step in range(total):
            idx = torch.randint(0, self.n, (bs,), generator=g)
            loss = self._loss(w, idx)
            if ctx.seed in self.nan_seeds and step >= 3:
                loss = loss * float("nan")
            opt.zero_grad()
            loss.backward()
            opt.step()
            ctx.log_step(step, loss, opt)
            sched.step()
            if self.sleep:
                time.sleep(self.sleep)
            if (step + 1) % max(1, total // 4) == 0 or step == total - 1:
                with torch.no_grad():
                    ctx.report(step, float(self._loss(w)))
        with torch.no_grad():
            full = float(self._loss(w))
        if self.metric_nan:
            full = float("nan")
        metrics = {"loss": full, "score": -full}
        validation = dict(metrics)
        if ctx.seed in self.lucky_seeds:
            validation = {"loss": full * 1e-3, "score": -full * 1e-3}
        return RunResult(validation=validation, test=dict(metrics), steps=total)


def toy(options: dict) -> Toy:
    return Toy(options)
