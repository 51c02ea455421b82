"""Aggregate statistics across the comparisons of a suite: pure functions on numpy arrays.

A *task* is one study × baseline comparison: per evaluation seed, the oriented test values
(higher = better; ``-inf`` a diverged run, NaN an excluded one) of AdM, the tuned-β arm and the
β = 0.9 arm, and the study's margin δ.

The methods are those of rliable (Agarwal et al., "Deep RL at the edge of the statistical
precipice", NeurIPS 2021): interquartile mean of normalised run scores, probability of improvement
averaged over tasks, performance profiles, and the **stratified** percentile bootstrap, which
resamples the seeds within each task and never across tasks. Where this module departs from
rliable 1.2.0, on purpose:

- the median and the mean are of all runs pooled; rliable's ``aggregate_median`` and
  ``aggregate_mean`` are of the per-task means (the means agree when every task has the same
  number of runs, the medians do not);
- the interval of the probability of improvement keeps a seed's arms together; rliable's
  ``get_interval_estimates`` resamples the two arms of a task independently, which ignores that
  runs on one seed are correlated (on the committed cpu suite its interval is about twice as wide);
- the performance profile is over tasks (is an arm's mean within τ margins of the best arm's),
  not rliable's score distribution over runs.

Cross-checked against rliable 1.2.0 in a side environment (pandas 2.3) on the committed cpu suite:
the IQM, the mean, the pooled median and the probability of improvement agree to 2e-16, and
their intervals, driven through rliable's resampler, agree within the bootstrap's own noise
(``tools/rliable_crosscheck``).

The bootstrap is ``scipy.stats.bootstrap`` with one sample per task (scipy resamples each sample
on its own: that is the stratification), each sample holding the task's arms as rows so a
resample keeps a seed's runs together (the pairing by seed). rliable itself is not used: its
1.2.0 requires ``arch < 8``, whose 7.x fails to import beside pandas 3 (see README, "Statistics
across a suite").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from admtune.report import efficiency

CONFIDENCE = 0.95
RESAMPLES = 5000
SEED = 20211206  # the bootstrap's fixed seed: a rebuilt suite.json is the same file
ARMS = ("adm", "tuned", "default")


@dataclass(frozen=True)
class Task:
    study: str
    baseline: str
    margin: float
    adm: np.ndarray      # oriented, aligned by seed
    tuned: np.ndarray
    default: np.ndarray

    def arm(self, name: str) -> np.ndarray:
        return np.asarray(getattr(self, name), dtype=float)

    def stacked(self) -> np.ndarray:
        """(3, seeds): AdM, tuned, β = 0.9 as rows; a bootstrap resamples the columns."""
        return np.vstack([self.arm(a) for a in ARMS])


@dataclass(frozen=True)
class Estimate:
    value: float
    lo: float
    hi: float

    def to_dict(self) -> dict[str, float | None]:
        def ok(x: float) -> float | None:
            return float(x) if x is not None and math.isfinite(x) else None
        return {"value": ok(self.value), "ci": [ok(self.lo), ok(self.hi)]}


# ----------------------------------------------------------------------------------------------
# Probability of improvement


def pair_probability(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(a run of ``x`` beats a run of ``y``), ties ½, over the last axis; NaN runs are left out.

    This is the Mann–Whitney U statistic divided by n·m (scipy.stats.mannwhitneyu's U counts the
    same pairs); it is written as a pair count so that it runs on a whole stack of bootstrap
    resamples at once, where each resample leaves out a different number of NaN runs.
    """
    x = np.asarray(x, dtype=float)[..., :, None]
    y = np.asarray(y, dtype=float)[..., None, :]
    valid = ~np.isnan(x) & ~np.isnan(y)
    with np.errstate(invalid="ignore"):
        wins = np.where(valid, (x > y) + 0.5 * (x == y), 0.0).sum(axis=(-2, -1))
    pairs = valid.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / np.maximum(pairs, 1), np.nan)


def _percentile_interval(samples: list[np.ndarray], statistic, confidence: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The stratified percentile bootstrap interval of ``statistic`` (a scalar or a vector)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples (every run equal): CI = the value
        res = sps.bootstrap(tuple(samples), statistic, n_resamples=RESAMPLES, vectorized=True,
                            paired=False, axis=-1, confidence_level=confidence,
                            method="percentile", rng=np.random.default_rng(SEED))
    return res.confidence_interval.low, res.confidence_interval.high


def _bootstrap(samples: list[np.ndarray], statistic, confidence: float) -> Estimate:
    point = float(statistic(*samples))
    if not math.isfinite(point) or any(s.shape[-1] < 2 for s in samples):
        return Estimate(point, math.nan, math.nan)
    lo, hi = (float(v) for v in _percentile_interval(samples, statistic, confidence))
    if math.isnan(lo) and math.isnan(hi):  # every resample the same value
        lo = hi = point
    return Estimate(point, lo, hi)


def aggregate_poi(tasks: list[Task], a: str = "adm", b: str = "tuned",
                  confidence: float = CONFIDENCE) -> Estimate:
    """Average over tasks of P(a run of arm ``a`` beats a run of arm ``b``), with a stratified
    bootstrap CI (seeds resampled within each task, the arms of a seed together)."""
    ia, ib = ARMS.index(a), ARMS.index(b)

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean([pair_probability(s[ia], s[ib]) for s in samples], axis=0)

    return _bootstrap([t.stacked() for t in tasks], statistic, confidence)


# ----------------------------------------------------------------------------------------------
# Normalised scores


def normalised_scores(task: Task, arm: str = "adm") -> np.ndarray:
    """Per seed, (x_arm − x_tuned) / δ: 0 = as good as tuned momentum on that seed, +1 = better by
    one margin. A seed where either run was excluded is left out; a diverged run scores −inf
    against a finished one, +inf where only the tuned run diverged, and 0 where both did."""
    x, t = task.arm(arm), task.arm("tuned")
    keep = ~np.isnan(x) & ~np.isnan(t)
    x, t = x[keep], t[keep]
    with np.errstate(invalid="ignore"):
        s = (x - t) / float(task.margin)
    s[np.isneginf(x) & np.isneginf(t)] = 0.0
    return s


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50 % (scipy.stats.trim_mean, 25 % cut each end)."""
    return sps.trim_mean(x, 0.25, axis=axis)


AGGREGATES = {"iqm": iqm, "mean": np.mean, "median": np.median}


def aggregate_scores(score_sets: list[np.ndarray], confidence: float = CONFIDENCE
                     ) -> dict[str, Estimate]:
    """IQM, mean and median of all runs' scores pooled over tasks (rliable pools them for the IQM;
    its median and mean are of per-task means, see the module docstring), each
    with a stratified bootstrap CI. A mean with an infinite score (a diverged run) is undefined."""
    samples = [np.asarray(s, dtype=float) for s in score_sets if np.asarray(s).size]
    out: dict[str, Estimate] = {}
    for name, fn in AGGREGATES.items():
        def statistic(*ss: np.ndarray, axis: int = -1, fn=fn) -> np.ndarray:
            with np.errstate(invalid="ignore"):
                return fn(np.concatenate(ss, axis=-1), axis=-1)
        out[name] = _bootstrap(samples, statistic, confidence) if samples else \
            Estimate(math.nan, math.nan, math.nan)
    return out


# ----------------------------------------------------------------------------------------------
# Performance profiles


def gaps(means: dict[str, float], margin: float) -> dict[str, float]:
    """Each arm's distance below the best arm's mean (oriented), in margins δ; ``inf`` for an arm
    without a mean (every run diverged)."""
    finite = [m for m in means.values() if m is not None and math.isfinite(m)]
    best = max(finite) if finite else math.nan
    return {a: (best - m) / margin if m is not None and math.isfinite(m) else math.inf
            for a, m in means.items()}


def performance_profile(task_gaps, taus: np.ndarray) -> np.ndarray:
    """ρ(τ): the fraction of tasks whose gap to the best arm is at most τ (AlgoPerf's and Dolan &
    Moré's performance profile, with the gap in margins instead of a ratio: log-scale metrics such
    as log10(f − f*) have no meaningful ratio). ``task_gaps``: (tasks, ...) → (taus, ...)."""
    g = np.asarray(task_gaps, dtype=float)
    taus = np.asarray(taus, dtype=float)
    if g.size == 0:
        return np.full(len(taus), np.nan)
    return (g[None] <= taus.reshape((-1,) + (1,) * g.ndim) + 1e-12).mean(axis=1)


def _arm_means(s: np.ndarray) -> np.ndarray:
    """Each arm's mean over its finished runs (NaN and −inf left out, as a study's arm mean);
    NaN where an arm has none. ``s``: (arms, ..., seeds)."""
    finite = np.isfinite(s)
    count = finite.sum(axis=-1)
    total = np.where(finite, s, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def profile_bands(tasks: list[Task], taus: np.ndarray, confidence: float = CONFIDENCE
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Per arm, the pointwise stratified bootstrap CI of its performance profile ρ(τ): the seeds of
    each task resampled within it (a seed's three arms together), each resample's arm means turned
    into gaps to that resample's best arm, as :func:`gaps` does. None where a task has fewer than
    two seeds (nothing to resample)."""
    taus = np.asarray(taus, dtype=float)
    samples = [t.stacked() for t in tasks]
    if not samples or any(s.shape[-1] < 2 for s in samples):
        return None
    margins = np.array([float(t.margin) for t in tasks])

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        means = np.stack([_arm_means(s) for s in samples])           # (tasks, arms, ...)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)          # a task with no finished run
            best = np.nanmax(means, axis=1, keepdims=True)
        margin = margins.reshape((-1,) + (1,) * (means.ndim - 1))
        g = np.where(np.isnan(means), np.inf, (best - means) / margin)
        rho = performance_profile(g, taus)                           # (taus, arms, ...)
        return np.swapaxes(rho, 0, 1).reshape((len(ARMS) * taus.size,) + rho.shape[2:])

    point = statistic(*samples)
    lo, hi = _percentile_interval(samples, statistic, confidence)
    lo = np.where(np.isnan(lo), point, lo).reshape(len(ARMS), taus.size)
    hi = np.where(np.isnan(hi), point, hi).reshape(len(ARMS), taus.size)
    return {a: (lo[i], hi[i]) for i, a in enumerate(ARMS)}


# ----------------------------------------------------------------------------------------------
# Multiplicity


def adjust(pvalues: list[float | None], method: str = "holm", alpha: float = 0.05) -> list[float | None]:
    """statsmodels multipletests over the defined p-values (None / NaN stay None, uncounted)."""
    p = np.array([math.nan if v is None else float(v) for v in pvalues])
    out: list[float | None] = [None] * len(p)
    ok = ~np.isnan(p)
    if ok.any():
        adj = multipletests(p[ok], alpha=alpha, method=method)[1]
        for i, v in zip(np.flatnonzero(ok), adj, strict=True):
            out[int(i)] = float(v)
    return out


# ----------------------------------------------------------------------------------------------
# Tuning cost


@dataclass(frozen=True)
class CostSum:
    comparisons: int          # with a defined trials-to-match
    never: int                # where no tuning trial reached AdM (each costs more than the budget)
    mean: float | None
    median: int | None
    lo: int | None
    hi: int | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"comparisons": self.comparisons, "never": self.never, "mean": self.mean,
                "median": self.median, "ci": [self.lo, self.hi]}


def sum_trials_to_match(counts: list[tuple[int, int]], confidence: float = CONFIDENCE) -> CostSum:
    """The total number of tuning trials, in a random order per study, until each comparison's
    tuning first reaches AdM's mean validation value: the exact distribution of a sum of
    independent first-success positions (each from :func:`efficiency.first_good_distribution`,
    convolved), so the interval is exact, not a Monte Carlo one. ``counts``: (trials, good) per
    comparison; good = 0 ("never") is counted apart, not summed."""
    pmf = np.array([1.0])
    used, never = 0, 0
    for n, g in counts:
        if g <= 0:
            never += 1
            continue
        p = np.asarray(efficiency.first_good_distribution(n, g))  # P(T = 1..)
        pmf = np.convolve(pmf, p)
        used += 1
    if used == 0:
        return CostSum(0, never, None, None, None, None)
    values = np.arange(pmf.size) + used  # each term is at least 1
    pmf = pmf / pmf.sum()
    cdf = np.cumsum(pmf)
    q = (1 - confidence) / 2

    def quantile(level: float) -> int:
        return int(values[min(int(np.searchsorted(cdf, level - 1e-12)), values.size - 1)])

    return CostSum(used, never, float(np.dot(values, pmf)), quantile(0.5), quantile(q),
                   quantile(1 - q))
