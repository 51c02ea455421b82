"""Builders of synthetic StudyResults (for the report's tests, and for anyone who needs a study
without training one).

- :func:`results_from_values`: exact control of the evaluation values per baseline and arm
  (``None`` = a diverged run), for statistics and verdict tests.
- :func:`synthetic_study`: a realistic-looking study (tuning trials with a β valley, learning
  curves, validation curves, AdM β traces per tensor) for rendering tests and visual checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from admtune.study.results import Run, StudyResults

VERSIONS = {"python": "3.11.9", "torch": "2.5.1", "optuna": "5.0.0", "numpy": "2.1.0"}


def make_spec(
    *,
    name: str = "synthetic",
    baselines: Sequence[str] = ("sgd", "adamw"),
    metric: str = "loss",
    direction: str = "minimize",
    margin: float = 0.01,
    alpha: float = 0.05,
    trials: int = 20,
    seeds: int = 5,
    description: str = "A synthetic study for the report's tests.",
    tune_lr: bool = False,
    finalists: int = 3,
    selection_seeds: int = 3,
) -> dict:
    return {
        "name": name,
        "description": description,
        "workload": "quick",
        "metric": metric,
        "direction": direction,
        "margin": margin,
        "alpha": alpha,
        "baselines": list(baselines),
        "trials": trials,
        "seeds": seeds,
        "train": {"epochs": 3, "batch_size": 64, "lr": {"sgd": 0.1, "adamw": 0.001},
                  "weight_decay": {"sgd": 0.0, "adamw": 0.01}, "schedule": "cosine",
                  "warmup_steps": 0},
        "tune": {"beta_low": 0.0, "beta_high": 0.999, "lr": tune_lr, "sampler": "tpe",
                 "pruner": "median", "finalists": finalists, "selection_seeds": selection_seeds},
        "workload_options": {},
    }


SELECTION_SEED = 20_000  # as admtune.study.records.SELECTION_SEED_OFFSET


def choose(finalists: Sequence[tuple[object, Sequence[float | None]]], direction: str) -> int:
    """The engine's selection rule, written out independently: the best mean over the selection
    seeds, a diverged run (None) scoring the worst value, ties to the earlier finalist."""
    worst = math.inf if direction == "minimize" else -math.inf
    sign = 1.0 if direction == "minimize" else -1.0
    means = [sum(worst if v is None else v for v in vals) / len(vals) for _, vals in finalists]
    return min(range(len(means)), key=lambda i: (sign * means[i], i))


def _select_runs(name: str, baseline: str, arm: str, finalists, metric: str, lr: float,
                 number: int) -> list[Run]:
    runs = []
    for f, vals in finalists:
        beta, f_lr = f if isinstance(f, tuple) else (f, lr)
        for i, v in enumerate(vals):
            number += 1
            runs.append(Run(
                study=name, baseline=baseline, arm=arm, seed=SELECTION_SEED + i, beta=beta,
                lr=f_lr, metric=f"val_{metric}", value=v,
                status="complete" if v is not None else "diverged", steps=100, wall_s=1.0,
                trial_number=number,
            ))
    return runs


def _results(spec: dict, runs: list[Run]) -> StudyResults:
    return StudyResults(
        name=spec["name"], spec=spec, fingerprint="f1e2d3c4b5a6", version="0.1.0",
        versions=dict(VERSIONS), device="cpu", wall_s=float(sum(r.wall_s for r in runs)),
        command=f"admtune study {spec['name']}", runs=runs,
    )


def results_from_values(
    values: dict[str, dict[str, Sequence[float | None]]],
    *,
    direction: str = "minimize",
    margin: float = 0.01,
    alpha: float = 0.05,
    metric: str = "loss",
    val_values: dict[str, dict[str, Sequence[float | None]]] | None = None,
    trial_values: dict[str, Sequence[float | None]] | None = None,
    betas: dict[str, float] | None = None,
    select_values: dict[str, Sequence[tuple[float, Sequence[float | None]]]] | None = None,
    name: str = "constructed",
    description: str = "Constructed samples.",
) -> StudyResults:
    """A study whose evaluation runs have exactly ``values[baseline][arm][i]`` on seed 1000 + i.

    ``None`` is a diverged run. ``val_values`` (same shape) sets the runs' validation metric
    (default: equal to the test value). ``trial_values[baseline]`` are the tuning trials' validation
    values in tuning order (None = diverged); β of trial k is spread over (0, 0.999).
    ``select_values[baseline]`` are the selection finalists in order, ``(β, values on seeds
    20000, 20001, …)`` (None = diverged); the tuned arm's β is then the one :func:`choose` picks
    unless ``betas`` says otherwise.
    """
    spec = make_spec(name=name, baselines=list(values), metric=metric, direction=direction,
                     margin=margin, alpha=alpha, description=description)
    runs: list[Run] = []
    number = 0
    for b, arms in values.items():
        finalists = (select_values or {}).get(b)
        default_beta = finalists[choose(finalists, direction)][0] if finalists else 0.95
        tuned_beta = (betas or {}).get(b, default_beta)
        if finalists:
            runs += _select_runs(name, b, "select", finalists, metric, 0.1, 10_000)
        tv = (trial_values or {}).get(b, [])
        for k, v in enumerate(tv):
            beta = 1.0 - 10 ** (-3 * (k + 0.5) / max(1, len(tv)))
            runs.append(Run(
                study=name, baseline=b, arm="trial", seed=k, beta=beta, lr=0.1,
                metric=f"val_{metric}", value=v, status="complete" if v is not None else "diverged",
                steps=100, wall_s=1.0, trial_number=k,
            ))
        for arm, vals in arms.items():
            beta = {"adm": None, "tuned": tuned_beta, "default": 0.9}.get(arm, tuned_beta)
            vv = (val_values or {}).get(b, {}).get(arm, vals)
            for i, v in enumerate(vals):
                number += 1
                runs.append(Run(
                    study=name, baseline=b, arm=arm, seed=1000 + i, beta=beta, lr=0.1,
                    metric=metric, value=v, status="complete" if v is not None else "diverged",
                    steps=100, wall_s=1.0, val_value=vv[i] if v is not None else None,
                    trial_number=number,
                ))
    return _results(spec, runs)


SGD_TENSORS = ["params"]
ADAMW_TENSORS = (
    ["embed.weight"]
    + [f"blocks.{i}.{p}" for i in range(4) for p in ("attn.qkv.weight", "attn.proj.weight",
                                                     "mlp.fc1.weight", "mlp.fc2.weight")]
    + ["norm.weight", "head.weight"]
)


def _curve(rng, final: float, steps: int, points: int, stop: int | None = None) -> dict:
    step = np.linspace(0, steps, points).round().astype(int)
    loss = final + (2.3 - final) * np.exp(-step / (steps / 6)) * (1 + 0.04 * rng.standard_normal(points))
    if stop is not None:  # diverged: blows up, then the curve stops
        keep = step <= stop
        step, loss = step[keep], loss[keep]
        loss[-5:] = loss[-5:] * np.geomspace(1, 40, 5)
    return {"step": step.tolist(), "train_loss": loss.tolist()}


def _val_curve(rng, final: float, steps: int, stop: int | None = None) -> dict:
    step = np.linspace(steps / 10, steps, 10).round().astype(int)
    v = final + (2.0 - final) * np.exp(-step / (steps / 5)) + 0.005 * rng.standard_normal(10)
    if stop is not None:
        keep = step <= stop
        step, v = step[keep], v[keep]
    return {"step": step.tolist(), "value": v.tolist()}


def _beta_trace(rng, names: list[str], steps: int, points: int = 120) -> dict:
    step = np.linspace(1, steps, points).round().astype(int)
    levels = rng.uniform(0.45, 0.85, len(names))
    rates = rng.uniform(0.5, 3.0, len(names))
    u = step[:, None] / steps
    vals = levels[None, :] * (1 - np.exp(-u * 8 * rates[None, :])) + 0.9 * np.exp(-u * 40)
    vals = vals - 0.15 * u * rates[None, :] / 3 + 0.05 * rng.standard_normal(vals.shape)
    vals = np.clip(vals, 0.0, 0.9)
    return {"step": step.tolist(), "names": list(names), "values": vals.round(4).tolist()}


def synthetic_study(
    *,
    name: str = "synthetic",
    baselines: Sequence[str] = ("sgd", "adamw"),
    seeds: int = 5,
    trials: int = 20,
    direction: str = "minimize",
    metric: str = "loss",
    margin: float = 0.01,
    advantage: dict[str, float] | None = None,
    adm_diverged: dict[str, int] | None = None,
    extra_arms: Sequence[str] = (),
    tune_lr: bool = False,
    traces: bool = True,
    description: str = "A synthetic study: two baselines, five seeds, twenty trials each.",
    rng_seed: int = 0,
    finalists: int = 3,
    selection_seeds: int = 3,
) -> StudyResults:
    """A realistic synthetic study. ``advantage[b]`` is AdM's true advantage over tuned β in metric
    units (positive = AdM better; default: sgd +0.03, adamw −0.002). The tuned β is the one the
    selection stage picks among the ``finalists`` best distinct trials and β = 0.9, each run on
    ``selection_seeds`` seeds (0: no selection runs, the tuned β is the best trial)."""
    rng = np.random.default_rng(rng_seed)
    advantage = {"sgd": 0.03, "adamw": -0.002, **(advantage or {})}
    spec = make_spec(name=name, baselines=baselines, metric=metric, direction=direction,
                     margin=margin, trials=trials, seeds=seeds, description=description,
                     tune_lr=tune_lr, finalists=finalists, selection_seeds=selection_seeds or 1)
    def tr(v):  # maximize studies get an accuracy-like 1 − loss
        return v if direction == "minimize" else 1.0 - v

    steps = 1500
    runs: list[Run] = []
    for bi, b in enumerate(baselines):
        level = 0.30 if b == "sgd" else 0.25
        lr = 0.1 if b == "sgd" else 1e-3
        best_q = math.log10(0.06 if b == "sgd" else 0.03)

        def val_of(beta, _best_q=best_q, _level=level):
            q = math.log10(1 - beta)
            return _level + 0.05 + 0.06 * (q - _best_q) ** 2 + 0.004 * rng.standard_normal()

        qs = rng.uniform(-3, 0, trials)
        best_beta, best_val = None, math.inf
        for k, q in enumerate(qs):
            beta = 1 - 10 ** q
            status, value = "complete", val_of(beta)
            if q < -2.5 and b == "sgd":
                status, value = "diverged", None
            elif value > level + 0.2 and k > 4:
                status, value = "pruned", value + 0.05
            if status == "complete" and value < best_val:
                best_val, best_beta = value, beta
            runs.append(Run(
                study=name, baseline=b, arm="trial", seed=100 + k, beta=round(beta, 6),
                lr=lr * (10 ** rng.uniform(-0.5, 0.5) if tune_lr else 1.0),
                metric=f"val_{metric}", value=None if value is None else tr(value),
                status=status, steps=steps if status != "pruned" else steps // 3,
                wall_s=float(rng.uniform(8, 12)), trial_number=k,
                curve=_curve(rng, level + 0.05, steps, 60, stop=steps // 4 if status == "diverged"
                             else None),
            ))
        if tune_lr:
            for k in range(trials // 2):
                v = level + 0.05 - advantage[b] + 0.01 * abs(rng.standard_normal())
                runs.append(Run(
                    study=name, baseline=b, arm="adm_trial", seed=200 + k, beta=None,
                    lr=lr * 10 ** rng.uniform(-0.5, 0.5), metric=f"val_{metric}", value=tr(v),
                    status="complete", steps=steps, wall_s=float(rng.uniform(8, 12)),
                    trial_number=k,
                ))
        # Selection on a generator of its own, so that everything else is drawn as before it.
        srng = np.random.default_rng([rng_seed, bi, 2])
        trial_runs = [r for r in runs if r.baseline == b and r.arm == "trial"]
        tuned_beta, tuned_lr, adm_lr = best_beta, lr, lr
        if selection_seeds:
            done = sorted((r for r in trial_runs if r.status == "complete"),
                          key=lambda r: (-r.value if direction == "maximize" else r.value,
                                         r.trial_number))
            keys: list[tuple[float, float]] = []
            for r in done[:finalists]:
                if (r.beta, r.lr) not in keys:
                    keys.append((r.beta, r.lr))
            if (0.9, lr) not in keys:
                keys.append((0.9, lr))
            sel = [((beta, f_lr),
                    [tr(level + 0.05 + 0.06 * (math.log10(1 - beta) - best_q) ** 2
                        + 0.006 * srng.standard_normal()) for _ in range(selection_seeds)])
                   for beta, f_lr in keys]
            tuned_beta, tuned_lr = sel[choose(sel, direction)][0]
            runs += _select_runs(name, b, "select", sel, metric, lr, 5000 * (bi + 1))
            if tune_lr:
                adm_done = sorted((r for r in runs if r.baseline == b and r.arm == "adm_trial"),
                                  key=lambda r: (-r.value if direction == "maximize" else r.value,
                                                 r.trial_number))
                adm_keys = list(dict.fromkeys([r.lr for r in adm_done[:finalists]] + [lr]))
                adm_sel = [((None, f_lr),
                            [tr(level + 0.05 - advantage[b] + 0.01 * abs(srng.standard_normal()))
                             for _ in range(selection_seeds)]) for f_lr in adm_keys]
                adm_lr = adm_sel[choose(adm_sel, direction)][0][1]
                runs += _select_runs(name, b, "adm_select", adm_sel, metric, lr,
                                     5000 * (bi + 1) + 1000)
        seed_effect = 0.01 * rng.standard_normal(seeds)
        arms = {"adm": (None, -advantage[b]), "tuned": (tuned_beta, 0.0), "default": (0.9, 0.012)}
        for e in extra_arms:
            arms[e] = (tuned_beta, 0.02)
        number = 0
        n_div = (adm_diverged or {}).get(b, 0)
        for arm, (beta, offset) in arms.items():
            for i in range(seeds):
                number += 1
                final = level + offset + seed_effect[i] + 0.003 * rng.standard_normal()
                val = final + 0.05 + 0.003 * rng.standard_normal()
                diverged = arm == "adm" and i < n_div
                stop = steps // 3 if diverged else None
                runs.append(Run(
                    study=name, baseline=b, arm=arm, seed=1000 + i,
                    beta=None if beta is None else round(beta, 6),
                    lr={"adm": adm_lr, "default": lr}.get(arm, tuned_lr), metric=metric,
                    value=None if diverged else tr(final),
                    status="diverged" if diverged else "complete",
                    steps=stop or steps, wall_s=float(rng.uniform(9, 11)),
                    val_value=None if diverged else tr(val), trial_number=1000 * (bi + 1) + number,
                    curve=_curve(rng, final, steps, 200, stop=stop),
                    val_curve=_val_curve(rng, val, steps, stop=stop),
                    beta_trace=(_beta_trace(rng, SGD_TENSORS if b == "sgd" else ADAMW_TENSORS,
                                            stop or steps)
                                if arm == "adm" and traces else None),
                ))
    return _results(spec, runs)
