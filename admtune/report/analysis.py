"""From StudyResults to a :class:`~admtune.report.summary.Summary`: per baseline, per arm, the
tests, the verdict, and the curves and bands the figures draw. Every statistic of the report is
computed here; :mod:`admtune.report.text` words it and :mod:`admtune.report.figures` draws it."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from admtune.report import efficiency, stats, text
from admtune.report.summary import (
    CORE_ARMS,
    ArmCurves,
    ArmStats,
    BaselineSummary,
    BestSoFar,
    BetaTraces,
    CurveBand,
    CurvePanel,
    Difference,
    EffectSize,
    FinalistStats,
    OtherComparison,
    PowerStats,
    Rate,
    SeedResult,
    SelectionStats,
    Sensitivity,
    Summary,
    TimeToTarget,
    TrialPoint,
    TrialsToMatch,
    TuningStats,
    WallTime,
)
from admtune.report.verdict import decide
from admtune.study.results import SELECT_ARMS, TRIAL_ARMS, Run, StudyResults
from admtune.study.spec import StudySpec


def _defined(x: Any) -> float | None:
    """A statistic as the summary holds it: a Python float, None where undefined (NaN, ±inf)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _interval(ci: tuple[float, float]) -> tuple[float | None, float | None]:
    return _defined(ci[0]), _defined(ci[1])


# ----------------------------------------------------------------------------------------------
# Data aligned by seed


def is_complete(run: Run) -> bool:
    return run.status == "complete" and run.value is not None and math.isfinite(float(run.value))


def is_diverged(run: Run) -> bool:
    if run.status == "diverged":
        return True
    # a "complete" run with a non-finite value diverged in all but name
    return run.status == "complete" and run.value is not None and not math.isfinite(float(run.value))


def _by_seed(runs: list[Run]) -> dict[int, Run]:
    """An arm's runs by seed. Which attempt of a run counts was decided when the results were read
    (admtune.study.records.final_attempts): a seed seen twice here is a bug, not a choice to make."""
    by_seed: dict[int, Run] = {}
    for r in runs:
        if int(r.seed) in by_seed:
            raise ValueError(f"two runs of {r.baseline}/{r.arm} on seed {r.seed} in the results")
        by_seed[int(r.seed)] = r
    return by_seed


@dataclass
class ArmData:
    arm: str
    runs: dict[int, Run]  # by seed
    beta: float | None = None
    lr: float | None = None  # what identifies the selection's finalist this arm evaluates

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
    select: list[Run] = field(default_factory=list)  # selection runs, in finalist order
    adm_select: list[Run] = field(default_factory=list)

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
        # selection runs are on seeds of their own and scored on validation: not an arm to compare
        eval_arms = {r.arm for r in runs if r.arm not in TRIAL_ARMS and r.arm not in SELECT_ARMS}
        extras = sorted(eval_arms - set(CORE_ARMS))
        bd = BaselineData(b)
        for arm in [a for a in CORE_ARMS if a in eval_arms] + extras:
            arm_runs = [r for r in runs if r.arm == arm]
            betas = [r.beta for r in arm_runs if r.beta is not None]
            bd.arms[arm] = ArmData(arm, _by_seed(arm_runs), float(betas[0]) if betas else None,
                                   _lr(arm_runs[0].lr) if arm_runs else None)
        bd.trials = sorted((r for r in runs if r.arm == "trial"), key=lambda r: r.trial_number)
        bd.adm_trials = sorted((r for r in runs if r.arm == "adm_trial"), key=lambda r: r.trial_number)
        # as read back, in the engine's finalist order: the order is what breaks selection ties
        bd.select = [r for r in runs if r.arm == "select"]
        bd.adm_select = [r for r in runs if r.arm == "adm_select"]
        data[b] = bd
    return data


def _lr(lr: Any) -> float | None:
    """A run's lr as an identity: None where unknown (NaN would never equal itself)."""
    return _defined(lr) if lr is not None else None


def extra_arms(data: dict[str, BaselineData]) -> list[str]:
    """Evaluation arms beyond adm / tuned / default, across all baselines (sorted)."""
    return sorted({a for bd in data.values() for a in bd.arms if a not in CORE_ARMS})


# ----------------------------------------------------------------------------------------------
# Statistics per arm and per comparison


def arm_stats(name: str, arm: ArmData | None) -> ArmStats:
    if arm is None:
        return ArmStats(name, None, None, None, (None, None), 0, 0, 0)
    x = arm.values(sorted(arm.runs))
    mean, std = stats.mean_std(x)
    counts = arm.counts()
    return ArmStats(
        arm=name, beta=None if name == "adm" else arm.beta, mean=_defined(mean), std=_defined(std),
        ci=_interval(stats.t_interval(x)), n=counts["n"], diverged=counts["diverged"],
        excluded=counts["excluded"], wall_s=sum(r.wall_s for r in arm.runs.values()),
        wall_median_s=_median_wall(list(arm.runs.values())),
        diverged_ci=_interval(stats.proportion_ci(counts["diverged"],
                                                  counts["n"] + counts["diverged"])),
    )


@dataclass
class _Compared:
    """AdM against another arm on the seeds both ran: the raw, unadjusted statistics (NaN where
    undefined), with the oriented samples the power calculation needs."""

    a: np.ndarray
    b: np.ndarray
    diff: Difference
    tests: stats.Directional
    p_wilcoxon: float
    p_wilcoxon_min: float
    p_tost: float
    effect: stats.EffectSize
    win_rate: stats.Rate
    prob_improvement: stats.Rate


def compare(bd: BaselineData, other: str, direction: str, margin: float) -> _Compared:
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
    diff = Difference(_defined(mean), _interval(stats.t_interval(d)), int(d.size),
                      _interval(stats.bootstrap_ci(d)))
    return _Compared(
        a=a, b=b, diff=diff, tests=stats.directional(a, b), p_wilcoxon=stats.wilcoxon(a, b),
        p_wilcoxon_min=stats.wilcoxon_min_p(stats.paired_differences_ranked(a, b).size),
        p_tost=stats.tost(a, b, margin), effect=stats.effect_size(a, b),
        win_rate=stats.win_rate(a, b), prob_improvement=stats.prob_improvement(a, b),
    )


def _rate(r: stats.Rate) -> Rate:
    return Rate(_defined(r.value), _interval(r.ci), r.n)


def _effect(e: stats.EffectSize) -> EffectSize:
    return EffectSize(_defined(e.d_z), _interval(e.d_z_ci), _defined(e.g_z), _interval(e.g_z_ci),
                      e.n)


def _adm_validation(bd: BaselineData) -> np.ndarray:
    adm = bd.arms.get("adm")
    return adm.values(sorted(adm.runs), "val_value") if adm is not None else np.array([])


def tuning_stats(bd: BaselineData, direction: str) -> TuningStats:
    """The baseline's tuning trials and the trial at which they first reached AdM's validation mean.

    Trials counted: complete, pruned and diverged (the budget); failed ones are retried, not counted.
    Best-so-far uses complete trials only (a pruned trial's value is an intermediate one). The
    best trial is the earliest of equal ones, as in the engine (admtune.study.records).

    The study's own order is one draw: the trial that happened to come first decides "trials to
    match". So the same is computed over every random ordering of the trials as well (exactly, by
    counting): the median trial count with its 95 % interval, and the best-so-far band.
    """
    counted = [r for r in bd.trials if r.status in ("complete", "pruned", "diverged")]
    target = math.nan
    if bd.arms.get("adm") is not None:
        target, _ = stats.mean_std(_adm_validation(bd))
    sign = -1.0 if direction == "minimize" else 1.0
    # oriented (higher = better); a trial without a usable value never improves the best
    values = np.array([sign * float(r.value) if is_complete(r) else -np.inf for r in counted])
    goal = sign * target

    best = -np.inf
    best_beta = None
    to_match = None
    in_order: list[float | None] = []
    for k, (r, v) in enumerate(zip(counted, values, strict=True), start=1):
        if v > best:  # strictly: ties keep the earlier trial
            best, best_beta = v, r.beta
        in_order.append(_defined(sign * best) if math.isfinite(best) else None)
        if to_match is None and math.isfinite(goal) and math.isfinite(best) \
                and efficiency.count_good(np.array([best]), goal):
            to_match = k
    orderings = curve = None
    if values.size:
        bsf = efficiency.best_so_far_orderings(values)
        def flip(t: tuple) -> tuple:
            return tuple(None if v is None else sign * v for v in t)

        curve = BestSoFar(tuple(bsf.k), flip(bsf.mean), flip(bsf.median), flip(bsf.lo),
                          flip(bsf.hi), tuple(in_order))
        if math.isfinite(goal):
            ttm = efficiency.trials_to_match(len(values), efficiency.count_good(values, goal))
            if ttm is not None:
                orderings = TrialsToMatch(int(ttm.median), (int(ttm.lo), int(ttm.hi)),
                                          float(ttm.mean), int(ttm.n_good))
    return TuningStats(
        trials=len(counted),
        complete=sum(is_complete(r) for r in counted),
        pruned=sum(r.status == "pruned" for r in counted),
        diverged=sum(is_diverged(r) for r in counted),
        failed=sum(r.status == "failed" for r in bd.trials),
        best_value=_defined(sign * best) if math.isfinite(best) else None,
        best_beta=_defined(best_beta),
        adm_val_mean=_defined(target),
        trials_to_match=to_match,
        adm_trials=len(bd.adm_trials),
        to_match=orderings,
        best_so_far=curve,
    )


def _finalists(runs: list[Run], evaluated: ArmData | None, seeds: int,
               origin: Any) -> tuple[FinalistStats, ...]:
    """Selection runs grouped by finalist, (β, lr) in the order they first appear."""
    groups: dict[tuple[float | None, float | None], list[Run]] = {}
    for r in runs:
        beta = None if r.beta is None else float(r.beta)
        groups.setdefault((beta, _lr(r.lr)), []).append(r)
    chosen_key = None
    if evaluated is not None:
        chosen_key = (evaluated.beta, evaluated.lr)
    out = []
    for (beta, lr), group in groups.items():
        values = np.array([float(r.value) for r in group if is_complete(r)])
        mean, std = stats.mean_std(values)
        out.append(FinalistStats(
            beta=beta, lr=lr, origin=origin(beta, lr), mean=_defined(mean), std=_defined(std),
            n=int(values.size), diverged=sum(is_diverged(r) for r in group), seeds=seeds,
            chosen=(beta, lr) == chosen_key,
        ))
    return tuple(out)


def selection_stats(bd: BaselineData, spec: StudySpec) -> SelectionStats:
    """The selection stage of a baseline as its runs show it.

    Runs do not record why a (β, lr) was a finalist; the origin is inferred in the engine's order
    of precedence (a complete tuning trial, then β = 0.9 at the spec's lr, then a candidate).
    """
    lr0 = _lr(spec.train.lr.get(bd.baseline)) if spec.train.lr else None
    candidates = {float(c) for c in spec.tune.candidates}

    def trial_keys(trials: list[Run], adm: bool) -> set[tuple[float | None, float | None]]:
        return {(None if adm or r.beta is None else float(r.beta), _lr(r.lr))
                for r in trials if is_complete(r)}

    tuned_keys, adm_keys = trial_keys(bd.trials, False), trial_keys(bd.adm_trials, True)

    def origin(beta: float | None, lr: float | None) -> str | None:
        if (beta, lr) in tuned_keys:
            return "tuning trial"
        if beta is not None and beta == 0.9 and lr == lr0:
            return "β = 0.9"
        if beta is not None and beta in candidates:
            return "candidate"
        return None

    def adm_origin(beta: float | None, lr: float | None) -> str | None:
        if (None, lr) in adm_keys:
            return "tuning trial"
        return "spec lr" if lr == lr0 else None

    k = int(spec.tune.selection_seeds)
    return SelectionStats(
        selection_seeds=k,
        finalists=_finalists(bd.select, bd.arms.get("tuned"), k, origin),
        adm_finalists=_finalists(bd.adm_select, bd.arms.get("adm"), k, adm_origin),
    )


def time_to_target(bd: BaselineData, direction: str) -> TimeToTarget | None:
    """Steps each evaluation seed's validation curve needs to reach the tuned arm's final mean
    validation value, for AdM and the tuned β, and AdM's step ratio (efficiency.speedup). A diverged
    run that reached the target before diverging counts as having reached it; one that never did,
    and a run without a curve, as never. None when either arm is missing or no target exists."""
    adm, tuned = bd.arms.get("adm"), bd.arms.get("tuned")
    if adm is None or tuned is None:
        return None
    target, _ = stats.mean_std(tuned.values(sorted(tuned.runs), "val_value"))
    if not math.isfinite(target):
        return None
    sign = -1.0 if direction == "minimize" else 1.0
    seeds = [s for s in bd.seeds if s in adm.runs and s in tuned.runs]

    def reach(run: Run) -> float | None:
        c = run.val_curve
        if not c or not c.get("step") or len(c["step"]) != len(c.get("value") or []):
            return None
        steps = np.asarray(c["step"], dtype=float)
        values = sign * np.asarray([np.nan if v is None else v for v in c["value"]], dtype=float)
        return efficiency.first_reach(steps, values, sign * target)

    usable = [s for s in seeds if not _excluded(adm.runs[s]) and not _excluded(tuned.runs[s])]
    a = [reach(adm.runs[s]) for s in usable]
    t = [reach(tuned.runs[s]) for s in usable]
    if not usable:
        return None
    sp = efficiency.speedup(a, t)
    return TimeToTarget(
        target=_defined(target), seeds=tuple(usable), adm_steps=tuple(a), tuned_steps=tuple(t),
        ratio=_defined(sp.ratio), ratio_ci=_interval(sp.ci) if sp.ci else (None, None),
        pairs=sp.n_pairs, adm_never=sp.n_adm_never, tuned_never=sp.n_tuned_never,
        both_never=sp.n_neither,
    )


def _excluded(run: Run) -> bool:
    return not is_complete(run) and not is_diverged(run)


# ----------------------------------------------------------------------------------------------
# What the figures draw


def sensitivity(bd: BaselineData) -> Sensitivity:
    """Every tuning trial (failed ones left out) and AdM's validation mean with its t-interval."""
    points = tuple(
        TrialPoint(beta=float(r.beta), value=_defined(r.value),
                   state="diverged" if is_diverged(r) else r.status)
        for r in bd.trials if r.beta is not None and r.status != "failed"
    )
    adm_val = _adm_validation(bd)
    mean, _ = stats.mean_std(adm_val)
    return Sensitivity(points, _defined(mean), _interval(stats.t_interval(adm_val)),
                       int(np.isfinite(adm_val).sum()))


def _curve_key(curve: dict[str, list]) -> str | None:
    if not curve or not curve.get("step"):
        return None
    if "train_loss" in curve:
        return "train_loss"
    keys = [k for k in curve if k != "step"]
    return keys[0] if keys else None


def _aligned(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Curves interpolated onto the grid of the longest one (NaN outside each run's range)."""
    grid = max(curves, key=lambda c: (c[0][-1] if c[0].size else 0, c[0].size))[0]
    rows = []
    for x, y in curves:
        ok = np.isfinite(y)
        row = np.full(grid.size, np.nan)
        if ok.sum() >= 1:
            inside = (grid >= x[ok].min()) & (grid <= x[ok].max())
            row[inside] = np.interp(grid[inside], x[ok], y[ok])
        rows.append(row)
    return grid, np.vstack(rows)


def _panel(bd: BaselineData, kind: str, key: str) -> CurvePanel:
    """The training-loss (kind 'train') or validation (kind 'val') curves of every arm."""
    arms = []
    drawn = []
    for arm, ad in bd.arms.items():
        complete, diverged = [], []
        for r in ad.runs.values():
            c = r.curve if kind == "train" else r.val_curve
            k = _curve_key(c) if kind == "train" else ("value" if c and c.get("step") else None)
            if k is None or not c.get(k):
                continue
            x = np.asarray(c["step"], dtype=float)
            y = np.asarray(c[k], dtype=float)
            if x.size != y.size or x.size == 0:
                continue
            (complete if is_complete(r) else diverged if is_diverged(r) else []).append((x, y))
        drawn += [y for _, y in diverged]
        band = None
        if complete:
            grid, ys = _aligned(complete)
            drawn.append(ys.ravel())
            band = CurveBand(grid, *stats.t_band(ys))
        arms.append(ArmCurves(arm, band, tuple(diverged)))
    values = np.concatenate(drawn) if drawn else np.array([])
    values = values[np.isfinite(values)]
    span = (float(values.min()), float(values.max())) if values.size else (None, None)
    return CurvePanel(kind, key, tuple(arms), span)


def learning_curves(bd: BaselineData, metric: str) -> tuple[CurvePanel, ...]:
    """A training-loss panel if any run recorded one, a validation panel likewise."""
    runs = [r for a in bd.arms.values() for r in a.runs.values()]
    train_key = next((_curve_key(r.curve) for r in runs if _curve_key(r.curve)), None)
    has_val = any(r.val_curve and r.val_curve.get("step") for r in runs)
    panels = []
    if train_key is not None:
        panels.append(_panel(bd, "train", train_key))
    if has_val:
        panels.append(_panel(bd, "val", metric))
    return tuple(panels)


def beta_traces(bd: BaselineData) -> BetaTraces | None:
    """AdM's β traces aligned on the longest run's steps, with their spread; None if none usable."""
    adm = bd.arms.get("adm")
    if adm is None:
        return None
    traces = []
    for r in adm.runs.values():
        t = r.beta_trace
        if not t or not t.get("step") or not t.get("values"):
            continue
        x = np.asarray(t["step"], dtype=float)
        y = np.asarray(t["values"], dtype=float)
        if y.ndim == 1:
            y = y[:, None]
        if y.shape[0] != x.size:
            continue
        names = list(t.get("names") or [f"β{i}" for i in range(y.shape[1])])
        if len(names) != y.shape[1]:
            names = [f"β{i}" for i in range(y.shape[1])]
        traces.append((names, x, y))
    if not traces:
        return None
    names = max(traces, key=lambda t: t[2].shape[1])[0]
    traces = [t for t in traces if t[0] == names]
    grid = max(traces, key=lambda t: (t[1][-1], t[1].size))[1]  # the longest run's steps
    vals = np.full((len(traces), grid.size, len(names)), np.nan)
    for s, (_, x, y) in enumerate(traces):
        for j in range(len(names)):
            ok = np.isfinite(y[:, j])
            if ok.sum() >= 1:
                inside = (grid >= x[ok].min()) & (grid <= x[ok].max())
                vals[s, inside, j] = np.interp(grid[inside], x[ok], y[ok, j])
    # steps no seed reached are all-NaN slices: NaN there is the answer, not a warning
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(vals, axis=0)
        lo, hi = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0)
        quantiles = np.nanpercentile(mean, [5, 25, 50, 75, 95], axis=1)
    return BetaTraces(tuple(names), grid, len(traces), mean, lo, hi, quantiles)


def per_seed(bd: BaselineData) -> dict[str, dict[int, SeedResult]]:
    out: dict[str, dict[int, SeedResult]] = {}
    for arm, ad in bd.arms.items():
        out[arm] = {}
        for s in bd.seeds:
            r = ad.runs.get(s)
            if r is None:
                continue
            state = "complete" if is_complete(r) else "diverged" if is_diverged(r) else "excluded"
            out[arm][s] = SeedResult(state, r.status,
                                     float(r.value) if state == "complete" else None)
    return out


def wall_times(bd: BaselineData) -> tuple[WallTime, ...]:
    groups = [("trial", bd.trials), ("adm_trial", bd.adm_trials), ("select", bd.select),
              ("adm_select", bd.adm_select)]
    groups += [(a, list(ad.runs.values())) for a, ad in bd.arms.items()]
    return tuple(WallTime(arm, len(runs), sum(r.wall_s for r in runs), _median_wall(runs))
                 for arm, runs in groups if runs)


def _median_wall(runs: list[Run]) -> float | None:
    walls = sorted(float(r.wall_s) for r in runs if r.wall_s is not None)
    if not walls:
        return None
    mid = len(walls) // 2
    return walls[mid] if len(walls) % 2 else (walls[mid - 1] + walls[mid]) / 2


# ----------------------------------------------------------------------------------------------
# The summary


def analyse(results: StudyResults) -> dict[str, Any]:
    """The summary of a study as plain data (the content of summary.json; NaN → None)."""
    return summarise(results).to_dict()


def summarise(results: StudyResults) -> Summary:
    """The analysis of a study, typed: every number of summary.json, the tables and the figures."""
    data = collect(results)
    spec = results.spec
    direction = spec.direction
    if spec.margin is None or not (math.isfinite(float(spec.margin)) and float(spec.margin) > 0):
        raise ValueError(f"the study's equivalence margin must be a positive number, not "
                         f"{spec.margin!r}: without one no verdict can be 'matches'")
    alpha, margin = float(spec.alpha), float(spec.margin)
    comparisons = {b: compare(bd, "tuned", direction, margin) for b, bd in data.items()}
    arm_table = {b: {arm: arm_stats(arm, ad) for arm, ad in bd.arms.items()}
                 for b, bd in data.items()}
    for arms in arm_table.values():
        arms.update({arm: arm_stats(arm, None) for arm in CORE_ARMS if arm not in arms})

    # The Holm family (text.HOLM_FAMILY): both one-sided AdM-vs-tuned tests of every baseline, and
    # the divergence-rate test of every baseline where an AdM or tuned run diverged. A Fisher test
    # without any divergence cannot reject (Tarone's argument), so it does not dilute the others.
    flat: list[float] = []
    fisher: dict[str, float] = {}
    for b, c in comparisons.items():
        flat += [c.tests.p_better, c.tests.p_worse]
        adm, tuned = arm_table[b]["adm"], arm_table[b]["tuned"]
        fisher[b] = math.nan
        if adm.diverged or tuned.diverged:
            fisher[b] = stats.divergence_test(adm.diverged, adm.runs, tuned.diverged, tuned.runs)
    p_all = flat + list(fisher.values())
    adj = stats.holm(p_all, alpha)
    m = sum(not math.isnan(p) for p in p_all)
    alpha_directional = alpha / max(1, m)

    baselines: dict[str, BaselineSummary] = {}
    for i, (b, bd) in enumerate(data.items()):
        c = comparisons[b]
        arms = arm_table[b]
        p_better_holm, p_worse_holm = adj[2 * i], adj[2 * i + 1]
        p_div_holm = adj[len(flat) + i]
        a_arm, t_arm = arms["adm"], arms["tuned"]
        decision = decide(
            p_better_holm=p_better_holm, p_worse_holm=p_worse_holm, p_tost=c.p_tost, alpha=alpha,
            adm_diverged=a_arm.diverged, baseline_diverged=t_arm.diverged,
            p_divergence_holm=p_div_holm,
            adm_rate=a_arm.diverged / a_arm.runs if a_arm.runs else None,
            baseline_rate=t_arm.diverged / t_arm.runs if t_arm.runs else None,
        )
        if decision.capped:
            allow: tuple[str, ...] = ("worse",)
        elif decision.capped_baseline:
            allow = ("better", "equivalent")
        else:
            allow = ("better", "worse", "equivalent")
        pw = stats.power_analysis(c.a, c.b, margin=margin, alpha=alpha,
                                  alpha_directional=alpha_directional, allow=allow,
                                  effect=c.effect, seeds_run=len(bd.seeds))
        seeds = pw.seeds if decision.verdict == "inconclusive" else None
        mde = _defined(pw.mde)
        tost_power = _defined(pw.tost_power)
        power = PowerStats(
            n=pw.n, sd=_defined(pw.sd), alpha_directional=alpha_directional, mde=mde,
            mde_z=_defined(pw.mde_z), tost_power=tost_power, tost_seeds=pw.tost_seeds,
            underpowered=bool((tost_power is not None and tost_power < stats.POWER)
                              or (mde is not None and mde > margin)),
            seeds_to_resolve=seeds,
            seeds_range=pw.seeds_range if decision.verdict == "inconclusive" else (None, None),
        )
        others = {}
        for arm in bd.arms:
            if arm in ("adm", "tuned"):
                continue
            o = compare(bd, arm, direction, margin)
            others[arm] = OtherComparison(
                arm, o.diff, _defined(stats.paired_t_two_sided(o.a, o.b)), _defined(o.p_wilcoxon),
                _defined(o.prob_improvement.value), _interval(o.prob_improvement.ci),
                _rate(o.win_rate),
            )
        tuning = tuning_stats(bd, direction)
        entry = BaselineSummary(
            baseline=b, verdict=decision.verdict, reason="", arms=arms,
            eval_arms=tuple(bd.arms), seeds=tuple(bd.seeds), diff=c.diff,
            p_better=_defined(c.tests.p_better), p_worse=_defined(c.tests.p_worse),
            p_better_holm=_defined(p_better_holm), p_worse_holm=_defined(p_worse_holm),
            p_wilcoxon=_defined(c.p_wilcoxon), p_tost=_defined(c.p_tost),
            prob_improvement=_defined(c.prob_improvement.value),
            trials_to_match=tuning.trials_to_match, capped_by_divergence=decision.capped,
            seeds_to_resolve=seeds, tuning=tuning,
            selection=selection_stats(bd, spec),
            vs_other_arms=others, sensitivity=sensitivity(bd),
            curves=learning_curves(bd, spec.metric), traces=beta_traces(bd),
            per_seed=per_seed(bd), walls=wall_times(bd),
            test=c.tests.test, test_n=c.tests.n,
            p_wilcoxon_min=_defined(c.p_wilcoxon_min),
            p_divergence=_defined(fisher[b]), p_divergence_holm=_defined(p_div_holm),
            capped_by_baseline_divergence=decision.capped_baseline,
            decided_by_divergence=decision.by_divergence,
            effect=_effect(c.effect), win_rate=_rate(c.win_rate),
            prob_improvement_ci=_interval(c.prob_improvement.ci), power=power,
            time_to_target=time_to_target(bd, direction),
        )
        baselines[b] = replace(entry, reason=text.verdict_reason(entry, spec, alpha, margin))
    return Summary(
        study=results.name, metric=spec.metric, direction=direction, margin=margin, alpha=alpha,
        fingerprint=results.fingerprint, description=spec.description, beta_free=spec.beta_free,
        holm_family=text.HOLM_FAMILY, baselines=baselines, version=results.version,
        versions=dict(results.versions), device=results.device, wall_s=results.wall_s,
        extra_arms=tuple(extra_arms(data)),
        budget_changes=tuple(dict(c) for c in results.budget_changes),
        complete=results.complete, progress=results.progress,
    )
