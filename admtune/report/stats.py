"""Statistics on paired samples: pure functions on numpy arrays.

Every test, interval and power calculation is scipy.stats' or statsmodels'; the functions here orient
the data, pick the pairs, rescale, and decide the degenerate cases (n < 2, differences without
spread) where a library answers NaN, ±inf or an interval that pretends certainty. Three small pieces
have no library home and are written out, each with its reference: the noncentral-t CI of the
paired effect size, the Clopper–Pearson interval of a win rate with half-counted ties, and
Newcombe's interval of the Mann–Whitney probability of improvement.

Conventions used throughout:

- Values are **oriented** before they get here (:func:`oriented`): higher = better, whatever the
  study's direction, so a positive paired difference AdM − baseline means "AdM better".
- In an oriented array ``-inf`` is a **diverged** run (the worst possible outcome) and ``NaN`` is a
  run that is missing or excluded (failed, pruned). Arrays of one comparison are aligned by seed.
- Every test here is invariant to the scale of the values, so samples are divided by their largest
  magnitude before testing (values near 1e300 would otherwise overflow a variance) and a spread is
  "zero" relative to that scale, never in absolute terms (values near 1e-13 are not all equal).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, special
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from admtune.report.summary import TEST_NONE, TEST_RANKED, TEST_SIGN, TEST_T

CONFIDENCE = 0.95
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 20240917  # fixed: a report rebuilt from the same storage is identical
BOOTSTRAP_MIN_N = 10       # below this a bootstrap interval under-covers badly (86 % at n = 5)
PERMUTATION_SEED = 20240918
EXACT_UP_TO = 16           # permutation tests enumerate all 2**n sign flips up to this n
POWER = 0.8
RELATIVE_NOISE = 1e-12     # spreads below this fraction of the values' magnitude are rounding


def oriented(values: np.ndarray, direction: str) -> np.ndarray:
    """``values`` turned so that higher is better (negated for ``minimize``)."""
    values = np.asarray(values, dtype=float)
    if direction == "minimize":
        return -values
    if direction == "maximize":
        return values.copy()
    raise ValueError(f"direction must be 'minimize' or 'maximize', not {direction!r}")


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def _scale(*arrays: np.ndarray) -> float:
    """The largest finite magnitude of the arrays (1 when there is none or it is 0)."""
    m = max((float(np.max(np.abs(f))) for f in map(_finite, arrays) if f.size), default=0.0)
    return m if m > 0 and math.isfinite(m) else 1.0


def _no_spread(d: np.ndarray, scale: float) -> bool:
    """True when the values ``d`` are all equal up to the rounding of numbers of size ``scale``."""
    return d.size < 2 or float(np.ptp(d)) <= RELATIVE_NOISE * scale


def _finite_or_nan(x: float) -> float:
    """A bound beyond the float range (values near 1e308 of both signs) is undefined, not ±inf."""
    return x if math.isfinite(x) else math.nan


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) of the finite values; NaN where undefined.

    Computed on rescaled values, so samples near the float limits neither overflow nor underflow."""
    x = _finite(x)
    if x.size == 0:
        return math.nan, math.nan
    s = _scale(x)
    y = x / s
    mean = float(np.mean(y)) * s
    std = _finite_or_nan(float(np.std(y, ddof=1)) * s) if x.size > 1 else math.nan
    return mean, std


# ----------------------------------------------------------------------------------------------
# Intervals


def t_interval(x: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t CI of the mean of the finite values (scipy.stats.ttest_1samp(...).confidence_interval).

    The primary interval of every mean and paired difference of the report: at the 5 seeds a study
    usually has, it keeps its nominal coverage where the bootstrap does not. n < 2: (NaN, NaN). No
    spread: the degenerate interval (v, v), which is what the formula gives.
    """
    x = _finite(x)
    if x.size < 2:
        return math.nan, math.nan
    s = _scale(x)
    y = x / s
    if _no_spread(y, 1.0):
        v = float(np.mean(y)) * s
        return v, v
    ci = sps.ttest_1samp(y, 0.0).confidence_interval(confidence)
    return _finite_or_nan(float(ci.low) * s), _finite_or_nan(float(ci.high) * s)


def bootstrap_ci(x: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """BCa bootstrap CI of the mean of the finite values (scipy.stats.bootstrap): a secondary display.

    Only from :data:`BOOTSTRAP_MIN_N` values on ((NaN, NaN) below: at n = 5 it covers 86 % of normal
    and 76 % of lognormal samples at a nominal 95 %). The values are sorted first, so that the
    interval does not depend on the order the seeds were run in. Falls back to the percentile
    interval where BCa is undefined.
    """
    x = np.sort(_finite(x))
    if x.size < BOOTSTRAP_MIN_N:
        return math.nan, math.nan
    s = _scale(x)
    y = x / s
    if _no_spread(y, 1.0):
        v = float(np.mean(y)) * s
        return v, v
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sps.bootstrap(
                (y,), np.mean, confidence_level=confidence, n_resamples=N_RESAMPLES,
                method=method, vectorized=True, rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo * s, hi * s
    return math.nan, math.nan


def t_band(y: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and pointwise Student-t CI over seeds (axis 0) at every column (learning curves).

    Columns with fewer than two finite values get a NaN band; constant columns a zero-width band.
    """
    y = np.asarray(y, dtype=float)
    mean = np.full(y.shape[1], np.nan)
    lo = np.full(y.shape[1], np.nan)
    hi = np.full(y.shape[1], np.nan)
    finite = np.isfinite(y)
    counts = finite.sum(axis=0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean[counts > 0] = np.nanmean(y[:, counts > 0], axis=0)
        ok = counts >= 2
        if np.any(ok):
            sd = np.nanstd(y[:, ok], axis=0, ddof=1)
            n = counts[ok]
            half = sps.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n)
            lo[ok] = mean[ok] - half
            hi[ok] = mean[ok] + half
    return mean, lo, hi


def proportion_ci(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper–Pearson) CI of a proportion k / n (scipy.stats.binomtest); NaN for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence, method="exact")
    return float(ci.low), float(ci.high)


def _clopper_pearson(k: float, n: int, confidence: float) -> tuple[float, float]:
    """Clopper–Pearson bounds written with beta quantiles, which also take a half-integer k
    (ties counted ½); for an integer k they are scipy's binomtest(...).proportion_ci exactly."""
    a = 1 - confidence
    lo = 0.0 if k <= 0 else float(sps.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(sps.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


# ----------------------------------------------------------------------------------------------
# Pairs


def complete_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs where both runs are complete (finite): what the t-tests and TOST use."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _scaled_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Complete pairs divided by their largest magnitude, and that magnitude."""
    a, b = complete_pairs(a, b)
    s = _scale(a, b)
    return a / s, b / s, s


def has_diverged_pair(a: np.ndarray, b: np.ndarray) -> bool:
    """True when some seed that both arms ran (neither excluded) has a diverged run."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = ~np.isnan(a) & ~np.isnan(b)
    return bool(np.any(np.isinf(a[keep]) | np.isinf(b[keep])))


def _rank_safe(x: np.ndarray) -> np.ndarray:
    """Replace ±inf by finite values beyond every finite value: ranks unchanged, libraries happy."""
    x = np.asarray(x, dtype=float).copy()
    finite = x[np.isfinite(x)]
    big = (float(np.max(np.abs(finite))) if finite.size else 0.0) * 2.0 + 1.0
    x[x == np.inf] = big
    x[x == -np.inf] = -big
    return x


def paired_differences_ranked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Paired differences a − b with diverged runs ranked worst, for rank-based tests.

    Pairs with an excluded run (NaN) are dropped. A diverged run (−inf) loses to any complete run
    (difference −inf, or +inf when the other side diverged); both diverged is a tie (0). The
    infinities are then mapped to finite values beyond every finite difference, which keeps the
    ranks. Returned rescaled to magnitude ≤ 1 (ranks do not depend on scale).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = ~np.isnan(a) & ~np.isnan(b)
    a, b = a[keep], b[keep]
    s = _scale(a, b)
    with np.errstate(invalid="ignore"):
        d = a / s - b / s
    d[np.isinf(a) & np.isinf(b)] = 0.0
    d = _rank_safe(d)
    return d / _scale(d)


# ----------------------------------------------------------------------------------------------
# Tests


@dataclass(frozen=True)
class Directional:
    """The two one-sided p-values of AdM against a baseline and the test that gave them."""

    p_better: float
    p_worse: float
    test: str      # TEST_T | TEST_SIGN | TEST_RANKED | TEST_NONE (admtune.report.summary)
    n: int         # pairs the test used


def sign_test(d: np.ndarray) -> tuple[float, float]:
    """Exact one-sided sign tests (scipy.stats.binomtest) on nonzero differences: (p that the
    differences are positive, p that they are negative). Ties (zeros) carry no evidence and are
    dropped; all ties gives (1, 1)."""
    d = np.asarray(d, dtype=float)
    pos, neg = int(np.sum(d > 0)), int(np.sum(d < 0))
    if pos + neg == 0:
        return 1.0, 1.0
    p_pos = float(sps.binomtest(pos, pos + neg, 0.5, alternative="greater").pvalue)
    p_neg = float(sps.binomtest(neg, pos + neg, 0.5, alternative="greater").pvalue)
    return p_pos, p_neg


def _permutation_method(n: int) -> sps.PermutationMethod:
    """All 2**n sign flips up to :data:`EXACT_UP_TO` pairs (exact), a fixed-seed sample beyond."""
    return sps.PermutationMethod(n_resamples=max(N_RESAMPLES, 2 ** min(n, EXACT_UP_TO)),
                                 rng=np.random.default_rng(PERMUTATION_SEED))


def _wilcoxon_p(d: np.ndarray, alternative: str) -> float:
    """Wilcoxon signed-rank p by a sign-flip permutation test (exact for small n, ties and zeros
    allowed, which scipy's exact null distribution does not allow)."""
    if np.all(d == 0):
        return 1.0
    if d.size == 1:  # scipy's permutation test needs two; the exact answer for one is plain
        if alternative == "two-sided":
            return 1.0
        return 0.5 if (d[0] > 0) == (alternative == "greater") else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.wilcoxon(d, alternative=alternative, zero_method="wilcox",
                           method=_permutation_method(d.size))
    return float(res.pvalue)


def directional(a: np.ndarray, b: np.ndarray) -> Directional:
    """One-sided tests that AdM (``a``) is better / worse than ``b``, the verdict's tests.

    - A seed with a diverged run is never dropped: if any pair has one, both p-values come from a
      one-sided Wilcoxon signed-rank permutation test over every pair that ran, a diverged run
      ranked worst (:func:`paired_differences_ranked`).
    - Otherwise, on the complete pairs: the paired t-test (scipy.stats.ttest_rel); where the
      differences have no spread relative to the values' scale (the t statistic would be ±inf and
      its p a certainty), the exact sign test, one-sided p = 0.5ⁿ, or (1, 1) for no difference.
    - Fewer than two pairs: (NaN, NaN).
    """
    if has_diverged_pair(a, b):
        d = paired_differences_ranked(a, b)
        if d.size < 2:
            return Directional(math.nan, math.nan, TEST_NONE, int(d.size))
        return Directional(_wilcoxon_p(d, "greater"), _wilcoxon_p(d, "less"), TEST_RANKED,
                           int(d.size))
    x, y, _ = _scaled_pairs(a, b)
    if x.size < 2:
        return Directional(math.nan, math.nan, TEST_NONE, int(x.size))
    d = x - y
    if _no_spread(d, 1.0):
        # all differences equal: zero, or one sign on every pair
        d = np.where(np.abs(d) <= RELATIVE_NOISE, 0.0, d)
        p_better, p_worse = sign_test(d)
        return Directional(p_better, p_worse, TEST_SIGN, int(d.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_better = float(sps.ttest_rel(x, y, alternative="greater").pvalue)
        p_worse = float(sps.ttest_rel(x, y, alternative="less").pvalue)
    return Directional(p_better, p_worse, TEST_T, int(d.size))


def paired_t(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(p better, p worse) of :func:`directional` on the complete pairs only (no rank fallback)."""
    x, y = complete_pairs(a, b)
    r = directional(x, y)
    return r.p_better, r.p_worse


def two_sided(p_better: float, p_worse: float) -> float:
    """The two-sided p of a pair of one-sided ones (NaN stays NaN)."""
    if math.isnan(p_better) or math.isnan(p_worse):
        return math.nan
    return min(1.0, 2.0 * min(p_better, p_worse))


def paired_t_two_sided(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p of the complete-pair tests (descriptive comparisons, not in the verdict)."""
    return two_sided(*paired_t(a, b))


def tost(a: np.ndarray, b: np.ndarray, margin: float) -> float:
    """TOST equivalence p that |mean(a − b)| < margin, on complete pairs.

    The larger of the two one-sided paired t-tests against ∓margin (scipy.stats.ttest_1samp; the
    same numbers as statsmodels' ttost_paired). Differences without spread: the exact sign-test
    analogue, 0.5ⁿ if |d| < margin else 1. Fewer than two pairs: NaN.
    """
    x, y, s = _scaled_pairs(a, b)
    if x.size < 2:
        return math.nan
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"the equivalence margin must be a positive number, not {margin!r}")
    d = x - y
    m = margin / s
    if _no_spread(d, 1.0):
        return 0.5 ** d.size if abs(float(np.mean(d))) < m else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_lo = float(sps.ttest_1samp(d, -m, alternative="greater").pvalue)
        p_hi = float(sps.ttest_1samp(d, m, alternative="less").pvalue)
    return max(p_lo, p_hi)


def wilcoxon(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p with diverged runs ranked worst (sign-flip permutation,
    exact up to :data:`EXACT_UP_TO` pairs). No pairs: NaN. All differences zero: 1."""
    d = paired_differences_ranked(a, b)
    if d.size == 0:
        return math.nan
    return _wilcoxon_p(d, "two-sided")


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided Wilcoxon p that ``n`` pairs can give at all (2 / 2ⁿ): at n = 5 it is
    0.0625, so the test cannot reject at α = 0.05 whatever the data. NaN for n = 0."""
    if n <= 0:
        return math.nan
    return _wilcoxon_p(np.arange(1.0, n + 1.0), "two-sided")


def divergence_test(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p that two arms diverge equally often (scipy.stats.fisher_exact):
    k diverged out of n runs that were not excluded. NaN when either arm has no such run."""
    if n_a <= 0 or n_b <= 0:
        return math.nan
    table = [[k_a, n_a - k_a], [k_b, n_b - k_b]]
    return float(sps.fisher_exact(table, alternative="two-sided").pvalue)


def holm(pvalues: list[float], alpha: float) -> list[float]:
    """Holm-adjusted p-values (statsmodels multipletests); NaN entries stay NaN and are not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if np.any(ok):
        out[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return [float(v) for v in out]


# ----------------------------------------------------------------------------------------------
# Effect sizes


@dataclass(frozen=True)
class EffectSize:
    """Paired standardized mean difference of a − b on complete pairs.

    d_z = mean(d) / sd(d); g_z = J(n − 1)·d_z with Hedges' exact small-sample factor
    J(ν) = Γ(ν/2) / (√(ν/2)·Γ((ν − 1)/2)); the CIs invert the noncentral t distribution of
    √n·d_z (ν = n − 1 degrees of freedom), and g_z's is J times d_z's.
    """

    d_z: float
    g_z: float
    d_z_ci: tuple[float, float]
    g_z_ci: tuple[float, float]
    n: int


NAN_EFFECT = EffectSize(math.nan, math.nan, (math.nan, math.nan), (math.nan, math.nan), 0)


def hedges_j(df: int) -> float:
    """Hedges' exact bias correction J(df) (computed with log-gamma, stable for large df)."""
    if df < 2:
        return math.nan
    return math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)


def _nct_ci(t_obs: float, df: int, confidence: float) -> tuple[float, float]:
    """The noncentrality parameters whose t distributions put t_obs at the CI's tail quantiles."""
    a = (1 - confidence) / 2

    def tail(ncp: float, q: float) -> float:
        return float(sps.nct.cdf(t_obs, df, ncp)) - q

    def root(q: float) -> float:
        # cdf(t_obs; ncp) falls from 1 to 0 as ncp grows: bracket around t_obs, widening
        lo, hi = t_obs - 10.0, t_obs + 10.0
        while tail(lo, q) < 0:
            lo -= 10.0 + abs(lo)
        while tail(hi, q) > 0:
            hi += 10.0 + abs(hi)
        return float(optimize.brentq(tail, lo, hi, args=(q,), xtol=1e-10))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return root(1 - a), root(a)


def effect_size(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> EffectSize:
    """d_z and g_z of a − b on complete pairs with noncentral-t CIs (see :class:`EffectSize`).

    Undefined (NaN) with fewer than two pairs (g_z: three, J needs two degrees of freedom) or differences
    without spread (a standardized effect of a constant difference is infinite: no certainty is
    invented, the sign test speaks for it instead).
    """
    x, y, _ = _scaled_pairs(a, b)
    n = int(x.size)
    d = x - y
    if n < 2 or _no_spread(d, 1.0):
        return replace(NAN_EFFECT, n=n)
    dz = float(np.mean(d) / np.std(d, ddof=1))
    j = hedges_j(n - 1)  # NaN at n = 2: g_z needs two degrees of freedom, d_z does not
    try:
        lo, hi = _nct_ci(dz * math.sqrt(n), n - 1, confidence)
        ci = (lo / math.sqrt(n), hi / math.sqrt(n))
    except (ValueError, RuntimeError):  # extreme t: the root cannot be bracketed in floats
        ci = (math.nan, math.nan)
    return EffectSize(dz, j * dz, ci, (j * ci[0], j * ci[1]), n)


@dataclass(frozen=True)
class Rate:
    """A probability estimate with its CI and the count it is over."""

    value: float
    ci: tuple[float, float]
    n: int


def win_rate(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> Rate:
    """Paired win rate of a over b: (wins + ½ ties) / pairs over every pair that ran, a diverged run
    losing to any complete one (both diverged: a tie), with the Clopper–Pearson interval of
    :func:`_clopper_pearson`. NaN with no pairs."""
    d = paired_differences_ranked(a, b)
    n = int(d.size)
    if n == 0:
        return Rate(math.nan, (math.nan, math.nan), 0)
    ties = np.abs(d) <= RELATIVE_NOISE
    k = float(np.sum((d > 0) & ~ties)) + 0.5 * float(np.sum(ties))
    return Rate(k / n, _clopper_pearson(k, n, confidence), n)


def _newcombe_ci(theta: float, m: int, n: int, confidence: float) -> tuple[float, float]:
    """Newcombe's (2006, Statist. Med. 25:543, method 5) score-type interval for the Mann–Whitney
    probability θ: the θ with |θ̂ − θ| = z·√V(θ), V from Hanley and McNeil's variance with
    Q1 = θ/(2 − θ), Q2 = 2θ²/(1 + θ). It stays inside [0, 1] and does not collapse at θ̂ = 0 or 1,
    where a Wald interval (statsmodels' rank_compare_2indep) is NaN or leaves [0, 1] at n = 5."""
    z = float(sps.norm.ppf(0.5 + confidence / 2))

    def var(t: float) -> float:
        return t * (1 - t) / (m * n) * (1 + (m - 1) * (1 - t) / (2 - t) + (n - 1) * t / (1 + t))

    def f(t: float) -> float:
        return (theta - t) ** 2 - z * z * var(t)

    # f(θ̂) < 0 except at θ̂ = 0 or 1, where V vanishes: bracket just inside, not at θ̂ itself
    eps = 1e-12
    lo = 0.0 if theta <= 0 else float(optimize.brentq(f, 0.0, min(theta, 1 - eps), xtol=1e-12))
    hi = 1.0 if theta >= 1 else float(optimize.brentq(f, max(theta, eps), 1.0, xtol=1e-12))
    return lo, hi


def prob_improvement(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> Rate:
    """P(a run of ``a`` beats a run of ``b``), unpaired: Mann–Whitney U / (n·m), ties count ½
    (scipy.stats.mannwhitneyu over all non-excluded runs, diverged runs ranked worst), with
    Newcombe's interval. It ignores the pairing by seed; :func:`win_rate` keeps it. NaN when
    either side is empty; ``n`` is the smaller group."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return Rate(math.nan, (math.nan, math.nan), 0)
    both = _rank_safe(np.r_[a, b])
    both = both / _scale(both)
    x, y = both[: a.size], both[a.size:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = sps.mannwhitneyu(x, y, alternative="two-sided").statistic
    theta = float(u) / (x.size * y.size)
    return Rate(theta, _newcombe_ci(theta, x.size, y.size, confidence), int(min(x.size, y.size)))


# ----------------------------------------------------------------------------------------------
# Power


def _solve_nobs(effect: float, alpha: float, power: float) -> float | None:
    """Pairs a one-sided paired t-test needs for ``power`` at ``effect`` (statsmodels TTestPower)."""
    if not (math.isfinite(effect) and effect > 1e-3):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = TTestPower().solve_power(
                effect_size=effect, nobs=None, alpha=alpha, power=power, alternative="larger"
            )
        n = float(np.asarray(n).item())
    except Exception:  # the solver fails for extreme effects; report "unknown" rather than crash
        return None
    return n if math.isfinite(n) and n > 0 else None


def _t_power(effect: float, n: float, alpha: float) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(TTestPower().power(effect_size=effect, nobs=n, alpha=alpha,
                                        alternative="larger"))


def tost_power(n: int, effect: float, margin: float, alpha: float) -> float:
    """Power of the paired TOST with ``n`` pairs when the true standardized difference is
    ``effect`` and the margin is ``margin`` standard deviations: the lower bound
    P(reject lower) + P(reject upper) − 1 from the two one-sided t-tests' powers (statsmodels
    TTestPower), clipped to [0, 1]. Simulation at d = 0, δ = 0.5 sd: 0.62 at 27 pairs, and so is the
    bound; 80 % needs 36, and so does the bound."""
    if n < 2 or not (margin > abs(effect)):
        return 0.0
    p = _t_power(margin + effect, n, alpha) + _t_power(margin - effect, n, alpha) - 1.0
    return min(1.0, max(0.0, p))


def tost_nobs(effect: float, margin: float, alpha: float, power: float = POWER,
              limit: int = 100_000) -> int | None:
    """Fewest pairs for which :func:`tost_power` reaches ``power`` (None beyond ``limit`` or when
    |effect| ≥ margin: equivalence is then not true and no sample shows it)."""
    if not (margin > abs(effect)):
        return None
    # the power grows with n: double until it is reached, then bisect (never evaluating the
    # noncentral t at sizes far beyond the answer, where its numerics are poor)
    lo, hi = 1, 2
    while tost_power(hi, effect, margin, alpha) < power:
        if hi >= limit:
            return None
        lo, hi = hi, min(limit, 2 * hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tost_power(mid, effect, margin, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def minimal_detectable_effect(n: int, alpha: float, power: float = POWER) -> float | None:
    """The smallest standardized paired difference d_z that ``n`` pairs detect with ``power`` in a
    one-sided paired t-test at ``alpha`` (statsmodels TTestPower): multiply by the sd of the
    differences for the effect in the metric's units. At n = 5 and α = 0.05/4 it is 2.05."""
    if n < 2:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power,
                                         alternative="larger")
        e = float(np.asarray(e).item())
    except Exception:
        return None
    return e if math.isfinite(e) and e > 0 else None


def _seeds_needed(effect: float, margin: float, *, alpha: float, alpha_directional: float,
                  allow: tuple[str, ...], power: float) -> float | None:
    """The smallest sample size among the tests allowed to decide, with ``effect`` (mean Δ / sd)
    taken as true; None when no allowed test can decide at any size."""
    candidates = []
    if effect > 0 and "better" in allow:
        candidates.append(_solve_nobs(effect, alpha_directional, power))
    if effect < 0 and "worse" in allow:
        candidates.append(_solve_nobs(-effect, alpha_directional, power))
    if abs(effect) < margin and "equivalent" in allow:
        candidates.append(tost_nobs(effect, margin, alpha, power))
    candidates = [c for c in candidates if c is not None]
    return min(candidates) if candidates else None


@dataclass(frozen=True)
class Power:
    """What this comparison's sample can and cannot show (all from the complete pairs)."""

    n: int
    sd: float                      # sd of the paired differences (metric units)
    mde_z: float                   # minimal detectable d_z at n pairs and the strictest Holm level
    mde: float                     # the same in the metric's units (mde_z × sd)
    tost_power: float              # TOST power at n pairs if the arms were identical
    tost_seeds: int | None         # pairs for 80 % TOST power if the arms were identical
    seeds: int | None              # seeds to resolve, the observed effect taken as true
    seeds_range: tuple[int | None, int | None]  # over the d_z CI; high None = unbounded


NAN_POWER = Power(0, math.nan, math.nan, math.nan, math.nan, None, None, (None, None))


def power_analysis(
    a: np.ndarray,
    b: np.ndarray,
    *,
    margin: float,
    alpha: float,
    alpha_directional: float,
    allow: tuple[str, ...] = ("better", "worse", "equivalent"),
    power: float = POWER,
    effect: EffectSize | None = None,
    seeds_run: int | None = None,
) -> Power:
    """Power of the comparison, honestly: no single post-hoc number.

    - ``mde``: the Δ that ``n`` pairs detect with ``power`` at ``alpha_directional`` (the strictest
      Holm threshold, α / m), at the observed sd of the differences;
    - ``tost_power`` / ``tost_seeds``: the TOST's power if the arms were identical (the best case
      for showing a match) from :func:`tost_power`; below ``power`` the study is underpowered for
      its own margin;
    - ``seeds`` / ``seeds_range``: the seeds per arm that the allowed tests (``allow``: the verdict's
      remaining possibilities) need, with the observed d_z taken as true, and over d_z's CI (the
      range's high end None when the CI includes effects no sample size resolves). At least one more
      seed than were run (``seeds_run``, by default the complete pairs), since the present sample
      did not decide it.
    """
    x, y, s = _scaled_pairs(a, b)
    n = int(x.size)
    if n < 2:
        return NAN_POWER
    d = x - y
    sd_scaled = float(np.std(d, ddof=1))
    mde_z = minimal_detectable_effect(n, alpha_directional, power)
    if _no_spread(d, 1.0):
        return Power(n, 0.0, _nan(mde_z), 0.0, math.nan, None, None, (None, None))
    sd = _finite_or_nan(sd_scaled * s)
    m_z = (margin / s) / sd_scaled
    tp = tost_power(n, 0.0, m_z, alpha)
    ts = tost_nobs(0.0, m_z, alpha, power)
    e = effect if effect is not None else effect_size(a, b)
    dz = float(np.mean(d)) / sd_scaled

    def need(z: float) -> int | None:
        k = _seeds_needed(z, m_z, alpha=alpha, alpha_directional=alpha_directional, allow=allow,
                          power=power)
        return None if k is None else max(int(math.ceil(k)), max(n, seeds_run or 0) + 1)

    point = need(dz)
    lo_z, hi_z = e.d_z_ci
    rng: tuple[int | None, int | None] = (None, None)
    if math.isfinite(lo_z) and math.isfinite(hi_z):
        grid = [dz, *np.linspace(lo_z, hi_z, 41)] + ([0.0] if lo_z < 0 < hi_z else [])
        needed = [need(z) for z in grid]
        known = [k for k in needed if k is not None]
        rng = (min(known) if known else None, None if None in needed else max(known))
    return Power(n, sd, _nan(mde_z), _finite_or_nan(_nan(mde_z) * sd), tp, ts, point, rng)


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)
