"""Statistics on paired samples: pure functions on numpy arrays.

Every test, the bootstrap and the power calculation are done by scipy.stats or statsmodels; the
functions here only orient the data, pick the pairs and handle the degenerate cases (n < 2, all
differences identical) that the libraries answer with NaN or a warning.

Conventions used throughout:

- Values are **oriented** before they get here (:func:`oriented`): higher = better, whatever the
  study's direction, so a positive paired difference AdM − baseline means "AdM better".
- In an oriented array ``-inf`` is a **diverged** run (the worst possible outcome) and ``NaN`` is a
  run that is missing or excluded (failed, pruned). Arrays of one comparison are aligned by seed.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as sps
from statsmodels.stats.meta_analysis import effectsize_smd
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

CONFIDENCE = 0.95
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 20240917  # fixed: a report rebuilt from the same storage is identical
POWER = 0.8


def oriented(values: np.ndarray, direction: str) -> np.ndarray:
    """``values`` turned so that higher is better (negated for ``minimize``)."""
    values = np.asarray(values, dtype=float)
    if direction == "minimize":
        return -values
    if direction == "maximize":
        return values.copy()
    raise ValueError(f"direction must be 'minimize' or 'maximize', not {direction!r}")


def _zero_spread(x: np.ndarray) -> bool:
    """True when all values are equal up to floating-point noise (t-tests are undefined there)."""
    if x.size < 2:
        return True
    scale = max(1.0, float(np.max(np.abs(x))))
    return float(np.ptp(x)) <= 1e-12 * scale


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) of the finite values; NaN where undefined."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    mean = float(np.mean(x))
    std = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    return mean, std


def bootstrap_ci(x: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Bootstrap CI of the mean of the finite values (scipy.stats.bootstrap, BCa).

    n < 2: (NaN, NaN). All values equal: the degenerate interval (v, v). When BCa is undefined
    (it can be for tiny, heavily tied samples) the percentile interval is used instead.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, math.nan
    if _zero_spread(x):
        v = float(np.mean(x))
        return v, v
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sps.bootstrap(
                (x,), np.mean, confidence_level=confidence, n_resamples=N_RESAMPLES,
                method=method, vectorized=True, rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi
    return math.nan, math.nan


def bootstrap_band(
    y: np.ndarray, confidence: float = CONFIDENCE, n_resamples: int = 2000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and percentile-bootstrap CI over seeds (axis 0) at every column (learning curves).

    Columns with fewer than two finite values get a NaN band; constant columns a zero-width band.
    """
    y = np.asarray(y, dtype=float)
    mean = np.full(y.shape[1], np.nan)
    lo = np.full(y.shape[1], np.nan)
    hi = np.full(y.shape[1], np.nan)
    finite = np.isfinite(y)
    with np.errstate(invalid="ignore"):
        counts = finite.sum(axis=0)
        mean[counts > 0] = np.nanmean(y[:, counts > 0], axis=0)
    full = np.all(finite, axis=0) & (y.shape[0] >= 2)
    if np.any(full):
        data = y[:, full]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sps.bootstrap(
                (data,), np.mean, axis=0, confidence_level=confidence, n_resamples=n_resamples,
                method="percentile", vectorized=True, rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
        lo[full] = res.confidence_interval.low
        hi[full] = res.confidence_interval.high
        const = np.ptp(data, axis=0) == 0
        idx = np.flatnonzero(full)[const]
        lo[idx] = hi[idx] = mean[idx]
    return mean, lo, hi


def complete_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs where both runs are complete (finite): what the t-tests and TOST use."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def paired_t(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """One-sided paired t-tests on complete pairs: (p that a is better, p that a is worse).

    ``scipy.stats.ttest_rel(a, b, alternative="greater" / "less")`` on oriented values. Degenerate
    cases: fewer than two pairs gives (NaN, NaN); identical differences d give the limit of the test,
    (0, 1) for d > 0, (1, 0) for d < 0 and (1, 1) for d = 0 (no evidence either way).
    """
    a, b = complete_pairs(a, b)
    if a.size < 2:
        return math.nan, math.nan
    d = a - b
    if _zero_spread(d):
        m = float(np.mean(d))
        if abs(m) <= 1e-12 * max(1.0, float(np.max(np.abs(np.r_[a, b])))):
            return 1.0, 1.0
        return (0.0, 1.0) if m > 0 else (1.0, 0.0)
    p_better = float(sps.ttest_rel(a, b, alternative="greater").pvalue)
    p_worse = float(sps.ttest_rel(a, b, alternative="less").pvalue)
    return p_better, p_worse


def paired_t_two_sided(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p on complete pairs (descriptive comparisons, not in the verdict)."""
    p_better, p_worse = paired_t(a, b)
    if math.isnan(p_better):
        return math.nan
    return min(1.0, 2.0 * min(p_better, p_worse))


def tost(a: np.ndarray, b: np.ndarray, margin: float) -> float:
    """TOST equivalence p that |mean(a − b)| < margin, on complete pairs (statsmodels ttost_paired).

    Fewer than two pairs: NaN. Identical differences d: 0 if |d| < margin, else 1.
    """
    a, b = complete_pairs(a, b)
    if a.size < 2:
        return math.nan
    d = a - b
    if _zero_spread(d):
        return 0.0 if abs(float(np.mean(d))) < margin else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = ttost_paired(a, b, -margin, margin)[0]
    return float(p)


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
    infinities are then mapped to finite values beyond every finite difference, which keeps the ranks.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = ~np.isnan(a) & ~np.isnan(b)
    a, b = a[keep], b[keep]
    with np.errstate(invalid="ignore"):
        d = a - b
    d[np.isinf(a) & np.isinf(b)] = 0.0
    return _rank_safe(d)


def wilcoxon(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p (scipy.stats.wilcoxon) with diverged runs ranked worst.

    No pairs: NaN. All differences zero: 1 (no evidence of a difference).
    """
    d = paired_differences_ranked(a, b)
    if d.size == 0:
        return math.nan
    if np.all(d == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = sps.wilcoxon(d, alternative="two-sided").pvalue
    return float(p)


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Hedges' g of a − b on complete pairs (statsmodels effectsize_smd: bias-corrected, pooled SD).

    NaN when fewer than two pairs or both arms have zero spread.
    """
    a, b = complete_pairs(a, b)
    if a.size < 2:
        return math.nan
    sa, sb = float(np.std(a, ddof=1)), float(np.std(b, ddof=1))
    if sa == 0.0 and sb == 0.0:
        return math.nan
    g = effectsize_smd(float(np.mean(a)), sa, a.size, float(np.mean(b)), sb, b.size)[0]
    return float(g)


def prob_improvement(a: np.ndarray, b: np.ndarray) -> float:
    """P(a run of ``a`` beats a run of ``b``): Mann–Whitney U / (n·m), ties count ½.

    Computed with scipy.stats.mannwhitneyu over all non-excluded runs; diverged runs rank worst.
    NaN when either side is empty.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return math.nan
    both = _rank_safe(np.r_[a, b])
    a, b = both[: a.size], both[a.size:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = sps.mannwhitneyu(a, b, alternative="two-sided").statistic
    return float(u) / (a.size * b.size)


def holm(pvalues: list[float], alpha: float) -> list[float]:
    """Holm-adjusted p-values (statsmodels multipletests); NaN entries stay NaN and are not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if np.any(ok):
        out[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return [float(v) for v in out]


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


def seeds_to_resolve(
    a: np.ndarray,
    b: np.ndarray,
    *,
    margin: float,
    alpha: float,
    alpha_directional: float,
    allow: tuple[str, ...] = ("better", "worse", "equivalent"),
    power: float = POWER,
) -> int | None:
    """Seeds per arm that a power calculation says would decide an inconclusive comparison.

    The observed mean d and SD s of the complete-pair differences are taken as the truth. Candidates:
    the one-sided paired t-test in the observed direction at ``alpha_directional`` (the strictest
    Holm threshold, α/m) with effect |d|/s; and, when |d| < margin, the TOST, approximated by its
    binding one-sided test at ``alpha`` with effect (margin − |d|)/s. Both via statsmodels'
    TTestPower at ``power``. The smallest candidate wins, and at least one more seed than were run
    (the present sample did not decide it). None when no candidate exists (fewer than two pairs,
    zero spread, or an observed effect too small to ever resolve).
    """
    a, b = complete_pairs(a, b)
    if a.size < 2:
        return None
    d = a - b
    if _zero_spread(d):
        return None
    m = float(np.mean(d))
    s = float(np.std(d, ddof=1))
    candidates = []
    if m > 0 and "better" in allow:
        candidates.append(_solve_nobs(m / s, alpha_directional, power))
    if m < 0 and "worse" in allow:
        candidates.append(_solve_nobs(-m / s, alpha_directional, power))
    if abs(m) < margin and "equivalent" in allow:
        candidates.append(_solve_nobs((margin - abs(m)) / s, alpha, power))
    candidates = [c for c in candidates if c is not None]
    if not candidates:
        return None
    return max(int(math.ceil(min(candidates))), int(a.size) + 1)
