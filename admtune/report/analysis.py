"""From StudyResults to the summary dict (summary.json): per baseline, per arm, the tests, the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from admtune.report import stats
from admtune.report.labels import (  # noqa: F401  (re-exported: figures and render use them)
    adm_name,
    adm_qualifier,
    arm_label,
    baseline_name,
    beta_free,
    fmt,
    fmt_ci,
    fmt_p,
    p_is,
)
from admtune.report.verdict import decide
from admtune.study.results import Run, StudyResults
from admtune.study.spec import StudySpec

TRIAL_ARMS = ("trial", "adm_trial")
CORE_ARMS = ("adm", "tuned", "default")
HOLM_FAMILY = (
    "all one-sided AdM-vs-tuned tests of the report: p(better) and p(worse) for every baseline"
)


def metric_decimals(entry: dict[str, Any]) -> int | None:
    """Decimals for a baseline's metric values: two significant digits of its smallest spread.

    The spread is the narrowest of the arms' standard deviations and the Δ CI width, so that means,
    CIs and per-seed values of one baseline share one precision. None (4 significant digits) when
    no spread is known.
    """
    widths = []
    for v in entry.values():
        if isinstance(v, dict) and "std" in v and v.get("std"):
            widths.append(abs(float(v["std"])))
    ci = (entry.get("diff") or {}).get("ci") or [None, None]
    if ci[0] is not None and ci[1] is not None and ci[1] > ci[0]:
        widths.append(float(ci[1]) - float(ci[0]))
    widths = [w for w in widths if math.isfinite(w) and w > 0]
    if not widths:
        return None
    return int(min(8, max(0, math.ceil(-math.log10(min(widths))) + 1)))


# ----------------------------------------------------------------------------------------------
# Data aligned by seed


def is_complete(run: Run) -> bool:
    return run.status == "complete" and run.value is not None and math.isfinite(float(run.value))


def is_diverged(run: Run) -> bool:
    if run.status == "diverged":
        return True
    # a "complete" run with a non-finite value diverged in all but name
    return run.status == "complete" and run.value is not None and not math.isfinite(float(run.value))


def _final_attempts(runs: list[Run]) -> dict[int, Run]:
    """One run per seed (the latest trial number wins should a seed appear twice)."""
    by_seed: dict[int, Run] = {}
    for r in sorted(runs, key=lambda r: r.trial_number):
        by_seed[int(r.seed)] = r
    return by_seed


@dataclass
class ArmData:
    arm: str
    runs: dict[int, Run]  # by seed
    beta: float | None = None

    def counts(self) -> dict[str, int]:
        n = sum(is_complete(r) for r in self.runs.values())
        div = sum(is_diverged(r) for r in self.runs.values())
        return {"n": n, "diverged": div, "excluded": len(self.runs) - n - div}

    def values(self, seeds: list[int], attr: str = "value") -> np.ndarray:
        """Raw values aligned to ``seeds``: NaN for diverged, excluded or missing runs."""
        out = np.full(len(seeds), np.nan)
        for i, s in enumerate(seeds):
            r = self.runs.get(s)
            if r is not None and is_complete(r):
                v = getattr(r, attr)
                out[i] = float(v) if v is not None else np.nan
        return out

    def oriented(self, seeds: list[int], direction: str) -> np.ndarray:
        """Oriented values (higher = better) aligned to ``seeds``: −inf diverged, NaN excluded."""
        out = stats.oriented(self.values(seeds), direction)
        for i, s in enumerate(seeds):
            r = self.runs.get(s)
            if r is not None and is_diverged(r):
                out[i] = -np.inf
        return out


@dataclass
class BaselineData:
    baseline: str
    arms: dict[str, ArmData] = field(default_factory=dict)  # eval arms, in display order
    trials: list[Run] = field(default_factory=list)  # the baseline's tuning trials, tuning order
    adm_trials: list[Run] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return sorted({s for a in self.arms.values() for s in a.runs})


def collect(results: StudyResults) -> dict[str, BaselineData]:
    """The runs grouped per baseline and arm, baselines in the spec's order."""
    order = list(results.spec.baselines)
    for r in results.runs:
        if r.baseline not in order:
            order.append(r.baseline)
    data: dict[str, BaselineData] = {}
    for b in order:
        runs = [r for r in results.runs if r.baseline == b]
        eval_arms = {r.arm for r in runs if r.arm not in TRIAL_ARMS}
        extras = sorted(eval_arms - set(CORE_ARMS))
        bd = BaselineData(b)
        for arm in [a for a in CORE_ARMS if a in eval_arms] + extras:
            arm_runs = [r for r in runs if r.arm == arm]
            betas = [r.beta for r in arm_runs if r.beta is not None]
            bd.arms[arm] = ArmData(arm, _final_attempts(arm_runs), float(betas[0]) if betas else None)
        bd.trials = sorted((r for r in runs if r.arm == "trial"), key=lambda r: r.trial_number)
        bd.adm_trials = sorted((r for r in runs if r.arm == "adm_trial"), key=lambda r: r.trial_number)
        data[b] = bd
    return data


def extra_arms(data: dict[str, BaselineData]) -> list[str]:
    """Evaluation arms beyond adm / tuned / default, across all baselines (sorted)."""
    return sorted({a for bd in data.values() for a in bd.arms if a not in CORE_ARMS})


# ----------------------------------------------------------------------------------------------
# Statistics per arm and per comparison


def arm_stats(arm: ArmData | None) -> dict[str, Any]:
    if arm is None:
        return {"mean": None, "std": None, "ci": [None, None], "n": 0, "diverged": 0, "excluded": 0}
    seeds = sorted(arm.runs)
    x = arm.values(seeds)
    mean, std = stats.mean_std(x)
    lo, hi = stats.bootstrap_ci(x)
    out: dict[str, Any] = {"mean": mean, "std": std, "ci": [lo, hi]}
    out.update(arm.counts())
    return out


def compare(
    bd: BaselineData, other: str, direction: str, margin: float
) -> dict[str, Any]:
    """AdM against ``other`` on the seeds both ran: the raw, unadjusted statistics."""
    seeds = bd.seeds
    adm = bd.arms.get("adm")
    oth = bd.arms.get(other)
    if adm is None or oth is None:
        a = b = np.full(0, np.nan)
    else:
        a, b = adm.oriented(seeds, direction), oth.oriented(seeds, direction)
    ca, cb = stats.complete_pairs(a, b)
    d = ca - cb
    mean, _ = stats.mean_std(d)
    lo, hi = stats.bootstrap_ci(d)
    p_better, p_worse = stats.paired_t(a, b)
    return {
        "a": a, "b": b,
        "diff": {"mean": mean, "ci": [lo, hi], "n": int(d.size)},
        "p_better": p_better,
        "p_worse": p_worse,
        "p_wilcoxon": stats.wilcoxon(a, b),
        "p_tost": stats.tost(a, b, margin),
        "hedges_g": stats.hedges_g(a, b),
        "prob_improvement": stats.prob_improvement(a, b),
    }


def tuning_stats(bd: BaselineData, direction: str) -> dict[str, Any]:
    """The baseline's tuning trials and the trial at which they first reached AdM's validation mean.

    Trials counted: complete, pruned and diverged (the budget); failed ones are retried, not counted.
    Best-so-far uses complete trials only (a pruned trial's value is an intermediate one).
    """
    counted = [r for r in bd.trials if r.status in ("complete", "pruned", "diverged")]
    adm = bd.arms.get("adm")
    target = math.nan
    if adm is not None:
        target, _ = stats.mean_std(adm.values(sorted(adm.runs), "val_value"))
    def better(v: float, t: float) -> bool:  # v at least as good as t (float noise forgiven)
        tol = 1e-9 * max(1.0, abs(t))
        return v <= t + tol if direction == "minimize" else v >= t - tol

    best = math.nan
    best_beta = None
    to_match = None
    for k, r in enumerate(counted, start=1):
        if is_complete(r):
            v = float(r.value)
            if math.isnan(best) or better(v, best):
                best, best_beta = v, r.beta
        if to_match is None and math.isfinite(target) and not math.isnan(best) and better(best, target):
            to_match = k
    return {
        "trials": len(counted),
        "complete": sum(r.status == "complete" for r in counted),
        "pruned": sum(r.status == "pruned" for r in counted),
        "diverged": sum(is_diverged(r) for r in counted),
        "failed": sum(r.status == "failed" for r in bd.trials),
        "best_value": best,
        "best_beta": best_beta,
        "adm_val_mean": target,
        "trials_to_match": to_match,
        "adm_trials": len(bd.adm_trials),
    }


def _reason(b: str, entry: dict[str, Any], summary: dict[str, Any], capped: bool) -> str:
    """One honest paragraph saying what the verdict is and why."""
    spec = summary["_spec"]
    adm = f"{adm_name(b)} ({adm_qualifier(spec)})"
    tuned_beta = entry["tuned"]["beta"]
    base = f"{baseline_name(b)} with tuned β = {fmt(tuned_beta, 3)}" if tuned_beta is not None \
        else f"tuned {baseline_name(b)}"
    metric, alpha, margin = summary["metric"], summary["alpha"], summary["margin"]
    a, t, d = entry["adm"], entry["tuned"], entry["diff"]
    dec = metric_decimals(entry)
    means = (f"mean test {metric} {fmt(a['mean'], decimals=dec)} (AdM) vs "
             f"{fmt(t['mean'], decimals=dec)} (tuned β); AdM advantage "
             f"Δ = {fmt(d['mean'], decimals=dec)} {fmt_ci(d['ci'], dec)}")
    v = entry["verdict"]
    within = entry["p_tost"] is not None and entry["p_tost"] < alpha
    if v == "beats":
        text = (f"{adm} beats {base}: {means} (positive = AdM better), "
                f"Holm-adjusted {p_is(entry['p_better_holm'])} < α = {fmt(alpha)}.")
    elif v == "loses":
        text = (f"{adm} loses to {base}: {means} (negative = AdM worse), "
                f"Holm-adjusted {p_is(entry['p_worse_holm'])} < α = {fmt(alpha)}.")
        if within:
            text += (f" Tuning β pays off here, if only slightly: the difference is within the "
                     f"margin δ = {fmt(margin)} (TOST {p_is(entry['p_tost'])}), smaller than what "
                     f"this study counts as practically relevant.")
        else:
            text += " Here tuning β pays off and AdM does not replace it."
    elif v == "matches":
        text = (f"{adm} matches {base} within the margin δ = {fmt(margin)}: {means}; "
                f"TOST equivalence {p_is(entry['p_tost'])} < α = {fmt(alpha)}.")
    elif not d["n"]:
        text = (f"Inconclusive for {adm} against {base}: there is no seed on which both "
                f"completed ({a['n']} complete AdM runs, {t['n']} complete tuned-β runs), so "
                f"nothing can be tested.")
    else:
        text = (f"Inconclusive for {adm} against {base}: {means}. "
                f"Neither one-sided test is significant after Holm "
                f"({p_is(entry['p_better_holm'])} for better, {p_is(entry['p_worse_holm'])} for worse)")
        if capped:
            text += "."
        else:
            text += (f" and equivalence within δ = {fmt(margin)} is not shown "
                     f"(TOST {p_is(entry['p_tost'])}).")
    if v == "beats" and within:
        text += (f" The advantage is within the margin δ = {fmt(margin)} "
                 f"(TOST {p_is(entry['p_tost'])}): detectable, but smaller than what this "
                 f"study counts as practically relevant.")
    if capped:
        text += (f" AdM diverged in {a['diverged']} of {a['n'] + a['diverged']} runs against "
                 f"{t['diverged']} of {t['n'] + t['diverged']} for the tuned β, so it can be "
                 f"neither a win nor a match.")
    if v == "inconclusive":
        if entry["seeds_to_resolve"] is not None:
            text += (f" A power calculation (80 % power, the observed effect taken as true) says "
                     f"about {entry['seeds_to_resolve']} seeds per arm would decide it.")
        elif capped:
            text += (" More seeds could at most show that AdM loses; the complete pairs do not "
                     "point that way, so no seed estimate is given.")
        else:
            text += (" No seed estimate is possible from these runs (too few complete pairs, "
                     "or an observed effect too small to resolve).")
    if d["n"] == 1:
        text += " Only 1 complete pair: the tests need at least two."
    return text + _warmup_sentence(entry, spec, dec)


def _warmup_sentence(entry: dict[str, Any], spec: StudySpec, dec: int | None) -> str:
    """When AdM trained with another warmup than the baselines (the LM study's warmup-free
    question), say so, and how AdM fared against the tuned β trained without warmup too."""
    warm, adm_warm = int(spec.train.warmup_steps or 0), spec.train.adm_warmup_steps
    if adm_warm is None or int(adm_warm) == warm:
        return ""

    def steps(n: int) -> str:
        return "without warmup" if n == 0 else f"with {n} warmup steps"

    text = (f" AdM trained {steps(int(adm_warm))} (train.adm_warmup_steps), the tuned β and β = 0.9 "
            f"{steps(warm)} (train.warmup_steps).")
    o = (entry.get("vs_other_arms") or {}).get("nowarmup")
    if o and o["diff"]["n"]:
        text += (f" Against the tuned β trained without warmup as well (arm nowarmup), AdM's "
                 f"advantage is Δ = {fmt(o['diff']['mean'], decimals=dec)} "
                 f"{fmt_ci(o['diff']['ci'], dec)} (two-sided {p_is(o['p_two_sided'])}, not "
                 f"adjusted: descriptive).")
    return text


def _clean(x: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN / inf to None, tuples to lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_clean(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def _number(x: Any, default: float) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def analyse(results: StudyResults) -> dict[str, Any]:
    """The summary of a study (the content of summary.json), JSON-safe (NaN → None)."""
    return _clean(_analyse(results, collect(results)))


def _analyse(results: StudyResults, data: dict[str, BaselineData]) -> dict[str, Any]:
    spec = results.spec
    direction = spec.direction
    alpha = _number(spec.alpha, 0.05)
    margin = _number(spec.margin, 0.0)
    summary: dict[str, Any] = {
        "study": results.name,
        "metric": spec.metric,
        "direction": direction,
        "margin": margin,
        "alpha": alpha,
        "fingerprint": results.fingerprint,
        "description": spec.description,
        "beta_free": beta_free(spec),
        "holm_family": HOLM_FAMILY,
        "baselines": {},
        "version": results.version,
        "versions": dict(results.versions),
        "device": results.device,
        "wall_s": results.wall_s,
        "_spec": spec,
    }
    comparisons = {b: compare(bd, "tuned", direction, margin) for b, bd in data.items()}

    # Holm across every one-sided AdM-vs-tuned test of the report (see HOLM_FAMILY)
    flat = [p for b in data for p in (comparisons[b]["p_better"], comparisons[b]["p_worse"])]
    adj = stats.holm(flat, alpha)
    m = sum(not math.isnan(p) for p in flat)
    alpha_directional = alpha / max(1, m)

    for i, (b, bd) in enumerate(data.items()):
        c = comparisons[b]
        entry: dict[str, Any] = {}
        for arm in bd.arms:
            st = arm_stats(bd.arms[arm])
            if arm != "adm":
                st = {"beta": bd.arms[arm].beta, **st}
            entry[arm] = st
        for arm in CORE_ARMS:
            if arm not in entry:
                st = arm_stats(None)
                entry[arm] = st if arm == "adm" else {"beta": None, **st}
        entry["diff"] = c["diff"]
        entry["p_better"], entry["p_worse"] = c["p_better"], c["p_worse"]
        entry["p_better_holm"], entry["p_worse_holm"] = adj[2 * i], adj[2 * i + 1]
        for k in ("p_wilcoxon", "p_tost", "hedges_g", "prob_improvement"):
            entry[k] = c[k]
        tuning = tuning_stats(bd, direction)
        entry["trials_to_match"] = tuning["trials_to_match"]
        decision = decide(
            p_better_holm=entry["p_better_holm"], p_worse_holm=entry["p_worse_holm"],
            p_tost=entry["p_tost"], alpha=alpha,
            adm_diverged=entry["adm"]["diverged"], baseline_diverged=entry["tuned"]["diverged"],
        )
        entry["verdict"] = decision.verdict
        entry["capped_by_divergence"] = decision.capped
        seeds = None
        if decision.verdict == "inconclusive":
            allow = ("worse",) if decision.capped else ("better", "worse", "equivalent")
            seeds = stats.seeds_to_resolve(
                c["a"], c["b"], margin=margin, alpha=alpha,
                alpha_directional=alpha_directional, allow=allow,
            )
        entry["seeds_to_resolve"] = seeds
        entry["tuning"] = tuning
        # AdM against the other evaluation arms (β = 0.9, workload extras): descriptive, raw p
        others = {}
        for arm in bd.arms:
            if arm in ("adm", "tuned"):
                continue
            o = compare(bd, arm, direction, margin)
            others[arm] = {
                "diff": o["diff"],
                "p_two_sided": stats.paired_t_two_sided(o["a"], o["b"]),
                "p_wilcoxon": o["p_wilcoxon"],
                "prob_improvement": o["prob_improvement"],
            }
        entry["vs_other_arms"] = others
        entry["reason"] = _reason(b, _clean(entry), summary, decision.capped)
        order = ["verdict", "reason", "adm", "tuned", "default"]
        order += [a for a in entry if a in bd.arms and a not in order]
        ordered = {k: entry[k] for k in order}
        ordered.update({k: v for k, v in entry.items() if k not in ordered})
        summary["baselines"][b] = ordered
    summary.pop("_spec")
    return summary
