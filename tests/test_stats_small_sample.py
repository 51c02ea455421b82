"""Small-sample behaviour of admtune.report.stats and the verdict rules, checked against the libraries.

Every expected number is computed here by calling scipy.stats / statsmodels (or is a closed form such
as 0.5**n); nothing is copied from the implementation's output. Oriented values: higher = better,
-inf = a diverged run, NaN = an excluded run; arrays are aligned by seed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special
from scipy import stats as sps
from statsmodels.stats.meta_analysis import effectsize_smd
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from admtune.report import stats as S
from admtune.report.verdict import decide

ALPHA = 0.05
Z95 = float(sps.norm.ppf(0.975))
PROPERTY = settings(max_examples=40, deadline=None)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _floats(obj) -> list[float]:
    """Every float inside a (nested) dataclass / tuple / list result."""
    if dataclasses.is_dataclass(obj):
        return [f for field in dataclasses.fields(obj) for f in _floats(getattr(obj, field.name))]
    if isinstance(obj, (tuple, list)):
        return [f for item in obj for f in _floats(item)]
    if isinstance(obj, (float, np.floating)):
        return [float(obj)]
    return []


def _no_inf(obj) -> None:
    for f in _floats(obj):
        assert math.isfinite(f) or math.isnan(f), obj
        assert not math.isinf(f), obj


# ------------------------------------------------------------------------------------------------
# 1. t_interval


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_t_interval_is_scipy_t_interval(n):
    x = _rng(n).normal(3.0, 2.0, n)
    lo, hi = S.t_interval(x)
    ref = sps.t.interval(0.95, n - 1, loc=np.mean(x), scale=sps.sem(x))
    assert lo == pytest.approx(ref[0], rel=1e-10, abs=1e-12)
    assert hi == pytest.approx(ref[1], rel=1e-10, abs=1e-12)
    # other levels too
    lo90, hi90 = S.t_interval(x, 0.90)
    ref90 = sps.t.interval(0.90, n - 1, loc=np.mean(x), scale=sps.sem(x))
    assert (lo90, hi90) == pytest.approx(ref90, rel=1e-10)


def test_t_interval_ignores_non_finite_values():
    x = np.array([1.0, np.nan, 2.5, -np.inf, 4.0, 0.5])
    f = x[np.isfinite(x)]
    ref = sps.t.interval(0.95, f.size - 1, loc=np.mean(f), scale=sps.sem(f))
    assert S.t_interval(x) == pytest.approx(ref, rel=1e-10)


def test_t_interval_degenerate_cases():
    assert all(math.isnan(v) for v in S.t_interval(np.array([1.0])))
    assert all(math.isnan(v) for v in S.t_interval(np.array([])))
    assert all(math.isnan(v) for v in S.t_interval(np.array([2.0, np.nan, -np.inf])))
    for v in (3.25, -7.0, 0.0, 1e-13, 1e300):
        assert S.t_interval(np.full(5, v)) == (pytest.approx(v), pytest.approx(v))


def test_t_interval_at_tiny_and_huge_scale_is_scale_equivariant():
    x = _rng(1).normal(1.0, 0.3, 5)
    ref = sps.t.interval(0.95, 4, loc=np.mean(x), scale=sps.sem(x))
    for s in (1e-13, 1e300):
        lo, hi = S.t_interval(x * s)
        assert math.isfinite(lo) and math.isfinite(hi)
        assert lo / s == pytest.approx(ref[0], rel=1e-9)
        assert hi / s == pytest.approx(ref[1], rel=1e-9)


def test_t_interval_covers_at_n5_where_bca_bootstrap_does_not():
    """Coverage by simulation at n = 5 (normal data, fixed seed): the Student-t interval of a mean and
    of a paired difference keeps its nominal 95 %; scipy's BCa bootstrap at the same n covers clearly
    less. The contrast is the reason the report's primary interval is t, and bootstrap_ci refuses
    n < 10."""
    rng = _rng(20240917)
    n, reps, mu = 5, 2000, 1.5
    hit_mean = hit_diff = 0
    for _ in range(reps):
        x = rng.normal(mu, 2.0, n)
        lo, hi = S.t_interval(x)
        hit_mean += lo <= mu <= hi
        seed_effect = rng.normal(0.0, 3.0, n)  # shared by both arms: the pairing matters
        a = seed_effect + rng.normal(0.4, 1.0, n)
        b = seed_effect + rng.normal(0.0, 1.0, n)
        lo, hi = S.t_interval(a - b)
        hit_diff += lo <= 0.4 <= hi
    assert hit_mean / reps >= 0.93
    assert hit_diff / reps >= 0.93

    # documented contrast: BCa bootstrap at n = 5 (scipy directly; bootstrap_ci itself returns NaN)
    boot_reps, hit_boot = 300, 0
    for _ in range(boot_reps):
        x = rng.normal(mu, 2.0, n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = sps.bootstrap((x,), np.mean, confidence_level=0.95, n_resamples=999,
                               method="BCa", vectorized=True, rng=rng).confidence_interval
        hit_boot += bool(ci.low <= mu <= ci.high)
    assert hit_boot / boot_reps < 0.92
    assert all(math.isnan(v) for v in S.bootstrap_ci(rng.normal(mu, 2.0, n)))


# ------------------------------------------------------------------------------------------------
# 2. bootstrap_ci


def test_bootstrap_ci_needs_ten_values():
    x = _rng(2).normal(0, 1, 12)
    for k in range(0, 10):
        assert all(math.isnan(v) for v in S.bootstrap_ci(x[:k]))
    lo, hi = S.bootstrap_ci(x[:10])
    assert math.isfinite(lo) and math.isfinite(hi) and lo < np.mean(x[:10]) < hi
    # non-finite values do not count towards the ten
    padded = np.r_[x[:9], np.nan, -np.inf, np.nan]
    assert all(math.isnan(v) for v in S.bootstrap_ci(padded))


def test_bootstrap_ci_is_order_independent():
    x = _rng(3).lognormal(0.0, 1.0, 12)
    ref = S.bootstrap_ci(x)
    assert all(math.isfinite(v) for v in ref)
    rng = _rng(4)
    for _ in range(5):
        assert S.bootstrap_ci(rng.permutation(x)) == ref
    assert S.bootstrap_ci(x[::-1]) == ref


# ------------------------------------------------------------------------------------------------
# 3. directional


@pytest.mark.parametrize("n", [2, 3, 5, 9])
def test_directional_is_ttest_rel_on_complete_pairs(n):
    rng = _rng(10 + n)
    a = rng.normal(0.3, 1.0, n)
    b = rng.normal(0.0, 1.0, n)
    r = S.directional(a, b)
    assert r.test == S.TEST_T and r.n == n
    assert r.p_better == pytest.approx(sps.ttest_rel(a, b, alternative="greater").pvalue, rel=1e-9)
    assert r.p_worse == pytest.approx(sps.ttest_rel(a, b, alternative="less").pvalue, rel=1e-9)


def test_directional_drops_excluded_pairs():
    rng = _rng(20)
    a = rng.normal(0.5, 1.0, 7)
    b = rng.normal(0.0, 1.0, 7)
    a[1] = np.nan
    b[4] = np.nan
    keep = ~np.isnan(a) & ~np.isnan(b)
    r = S.directional(a, b)
    assert r.n == 5 and r.test == S.TEST_T
    assert r.p_better == pytest.approx(
        sps.ttest_rel(a[keep], b[keep], alternative="greater").pvalue, rel=1e-9)
    assert r.p_worse == pytest.approx(
        sps.ttest_rel(a[keep], b[keep], alternative="less").pvalue, rel=1e-9)
    # fewer than two pairs left: undefined
    r1 = S.directional(np.array([1.0, np.nan]), np.array([0.0, 2.0]))
    assert math.isnan(r1.p_better) and math.isnan(r1.p_worse) and r1.n == 1


@pytest.mark.parametrize("n", [2, 5])
def test_directional_constant_nonzero_difference_is_exact_sign_test(n):
    b = _rng(30 + n).normal(0.0, 1.0, n)
    up = S.directional(b + 1e-9, b)
    assert up.test == S.TEST_SIGN and up.n == n
    assert up.p_better == pytest.approx(0.5 ** n, rel=1e-12)
    assert up.p_worse == 1.0
    down = S.directional(b - 1e-9, b)
    assert down.test == S.TEST_SIGN
    assert down.p_better == 1.0
    assert down.p_worse == pytest.approx(0.5 ** n, rel=1e-12)


def test_directional_constant_zero_difference():
    b = _rng(31).normal(0.0, 1.0, 5)
    r = S.directional(b.copy(), b)
    assert r.test == S.TEST_SIGN
    assert (r.p_better, r.p_worse) == (1.0, 1.0)


def test_directional_tiny_values_with_real_spread_use_the_t_test():
    rng = _rng(32)
    a = 1e-13 * (1.0 + rng.normal(0.0, 0.3, 5))
    b = 1e-13 * (1.0 + rng.normal(0.0, 0.3, 5))
    r = S.directional(a, b)
    assert r.test == S.TEST_T
    assert r.p_better == pytest.approx(sps.ttest_rel(a, b, alternative="greater").pvalue, rel=1e-7)
    assert r.p_worse == pytest.approx(sps.ttest_rel(a, b, alternative="less").pvalue, rel=1e-7)
    assert 0.0 < r.p_better < 1.0


def test_directional_huge_values_are_scale_invariant():
    rng = _rng(33)
    u = rng.normal(1.0, 0.2, 5)
    v = rng.normal(0.9, 0.2, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow inside
        big = S.directional(u * 1e300, v * 1e300)
    small = S.directional(u, v)
    assert big.test == small.test == S.TEST_T
    assert math.isfinite(big.p_better) and math.isfinite(big.p_worse)
    assert big.p_better == pytest.approx(small.p_better, rel=1e-9)
    assert big.p_worse == pytest.approx(small.p_worse, rel=1e-9)
    assert big.p_better == pytest.approx(sps.ttest_rel(u, v, alternative="greater").pvalue, rel=1e-9)


def _ranked_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differences a − b over pairs that ran, diverged worst, both diverged a tie: built here."""
    keep = ~np.isnan(a) & ~np.isnan(b)
    a, b = a[keep], b[keep]
    fin = np.isfinite(a) & np.isfinite(b)
    d = np.zeros(a.size)
    d[fin] = a[fin] - b[fin]
    beyond = 10.0 * (np.max(np.abs(d[fin])) if fin.any() else 1.0) + 1.0
    d[np.isinf(a) & np.isfinite(b)] = -beyond
    d[np.isfinite(a) & np.isinf(b)] = beyond
    return d  # both diverged stays 0


def _scipy_wilcoxon(d: np.ndarray, alternative: str) -> float:
    return float(sps.wilcoxon(d, alternative=alternative,
                              method=sps.PermutationMethod(n_resamples=2 ** d.size)).pvalue)


@pytest.mark.parametrize("case", range(4))
def test_directional_with_a_diverged_pair_is_ranked_wilcoxon(case):
    rng = _rng(40 + case)
    a = rng.normal(0.5, 1.0, 6)
    b = rng.normal(0.0, 1.0, 6)
    if case == 0:
        a[2] = -np.inf                     # AdM diverged once
    elif case == 1:
        b[0] = -np.inf                     # baseline diverged once
    elif case == 2:
        a[1], b[3] = -np.inf, -np.inf      # one each
    else:
        a[1], b[5], a[4] = -np.inf, -np.inf, np.nan  # and an excluded pair
    r = S.directional(a, b)
    d = _ranked_reference(a, b)
    assert r.test == S.TEST_RANKED and r.n == d.size
    assert r.p_better == pytest.approx(_scipy_wilcoxon(d, "greater"), rel=1e-12)
    assert r.p_worse == pytest.approx(_scipy_wilcoxon(d, "less"), rel=1e-12)


def test_directional_adm_diverged_everywhere():
    b = _rng(44).normal(0.0, 1.0, 5)
    r = S.directional(np.full(5, -np.inf), b)
    assert r.test == S.TEST_RANKED and r.n == 5
    assert r.p_worse == pytest.approx(1 / 32, rel=1e-12)
    assert r.p_better == 1.0
    mirror = S.directional(b, np.full(5, -np.inf))
    assert mirror.p_better == pytest.approx(1 / 32, rel=1e-12)
    assert mirror.p_worse == 1.0


seeds_and_sizes = st.tuples(st.integers(0, 2**32 - 1), st.integers(2, 9),
                            st.sampled_from([1e-13, 1.0, 1e6, 1e300]))


@PROPERTY
@given(seeds_and_sizes, st.booleans())
def test_property_directional_p_values_sum_to_at_least_one(params, diverge):
    seed, n, scale = params
    rng = _rng(seed)
    a = rng.normal(rng.normal(), 1.0, n) * scale
    b = rng.normal(0.0, 1.0, n) * scale
    if diverge:
        a[rng.integers(n)] = -np.inf
    r = S.directional(a, b)
    assert 0.0 <= r.p_better <= 1.0 and 0.0 <= r.p_worse <= 1.0
    assert r.p_better + r.p_worse >= 1.0 - 1e-12


# ------------------------------------------------------------------------------------------------
# 4. tost


@pytest.mark.parametrize(("n", "shift", "margin"), [(2, 0.1, 0.5), (5, 0.0, 0.5), (5, 0.3, 0.5),
                                                    (8, -0.2, 1.0), (5, 2.0, 0.5)])
def test_tost_is_statsmodels_ttost_paired(n, shift, margin):
    rng = _rng(50 + n)
    b = rng.normal(0.0, 1.0, n)
    a = b + shift + rng.normal(0.0, 0.4, n)
    ref = float(ttost_paired(a, b, -margin, margin)[0])
    assert S.tost(a, b, margin) == pytest.approx(ref, rel=1e-9)
    # at a scale of 1e300 the same p (margin scaled with the data)
    assert S.tost(a * 1e300, b * 1e300, margin * 1e300) == pytest.approx(ref, rel=1e-7)


def test_tost_zero_spread_and_bad_margins():
    b = _rng(55).normal(0.0, 1.0, 5)
    assert S.tost(b + 0.1, b, 0.5) == pytest.approx(0.5 ** 5, rel=1e-12)
    assert S.tost(b - 0.1, b, 0.5) == pytest.approx(0.5 ** 5, rel=1e-12)
    assert S.tost(b.copy(), b, 0.5) == pytest.approx(0.5 ** 5, rel=1e-12)
    assert S.tost(b + 0.7, b, 0.5) == 1.0
    assert S.tost(b - 0.7, b, 0.5) == 1.0
    a = b + _rng(56).normal(0, 0.1, 5)
    for bad in (0.0, -0.5, math.nan, math.inf):
        with pytest.raises(ValueError):
            S.tost(a, b, bad)
    assert math.isnan(S.tost(a[:1], b[:1], 0.5))


# ------------------------------------------------------------------------------------------------
# 5. effect_size


def _j_reference(df: int) -> float:
    return float(special.gamma(df / 2) / (math.sqrt(df / 2) * special.gamma((df - 1) / 2)))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_effect_size_dz_gz_and_noncentral_t_ci(n):
    rng = _rng(60 + n)
    b = rng.normal(0.0, 1.0, n)
    a = b + rng.normal(0.6, 1.0, n)
    e = S.effect_size(a, b)
    d = a - b
    dz = np.mean(d) / np.std(d, ddof=1)
    df = n - 1
    assert e.n == n
    assert e.d_z == pytest.approx(dz, rel=1e-9)
    assert e.g_z == pytest.approx(dz * _j_reference(df), rel=1e-9)
    t_obs = sps.ttest_1samp(d, 0.0).statistic
    lo, hi = e.d_z_ci
    assert lo < e.d_z < hi
    assert sps.nct.cdf(t_obs, df, lo * math.sqrt(n)) == pytest.approx(0.975, abs=1e-6)
    assert sps.nct.cdf(t_obs, df, hi * math.sqrt(n)) == pytest.approx(0.025, abs=1e-6)
    J = _j_reference(df)
    assert e.g_z_ci == (pytest.approx(J * lo, rel=1e-9), pytest.approx(J * hi, rel=1e-9))


def test_effect_size_degenerate():
    b = _rng(65).normal(0.0, 1.0, 5)
    for e in (S.effect_size(b + 1.0, b), S.effect_size(b[:1], b[:1]), S.effect_size(b, b)):
        assert all(math.isnan(f) for f in _floats(e))
    e2 = S.effect_size(np.array([1.0, 2.5]), np.array([0.0, 0.5]))
    assert e2.n == 2 and math.isfinite(e2.d_z) and math.isnan(e2.g_z)  # J needs two df


def test_effect_size_paired_vs_independent_groups():
    """The convex-logreg situation: the seed moves both arms a lot (strong correlation), AdM is a
    small, very consistent amount better. The independent-groups Hedges' g sees mostly seed noise;
    the paired d_z sees the consistent shift."""
    rng = _rng(66)
    n = 5
    seed_effect = rng.normal(0.0, 5.0, n)
    b = 10.0 + seed_effect + rng.normal(0.0, 0.05, n)
    a = b + 0.3 + rng.normal(0.0, 0.05, n)
    assert np.corrcoef(a, b)[0, 1] > 0.99
    g_ind, _ = effectsize_smd(np.mean(a), np.std(a, ddof=1), n, np.mean(b), np.std(b, ddof=1), n)
    e = S.effect_size(a, b)
    assert e.d_z > 4 * abs(float(g_ind))
    assert e.d_z_ci[0] > 0


# ------------------------------------------------------------------------------------------------
# 6. win_rate


def test_win_rate_counts_and_exact_ci():
    a = np.array([1.0, 2.0, 0.0, 5.0, 3.0, 1.0, 4.0])
    b = np.array([0.0, 3.0, -1.0, 1.0, 3.0, 0.0, 2.0])  # wins: 0, 2, 3, 5, 6; loss: 1; tie: 4
    r = S.win_rate(a, b)
    assert r.n == 7 and r.value == pytest.approx(5.5 / 7)
    # an integer count: exactly binomtest's Clopper–Pearson interval
    a2 = a.copy()
    a2[4] = 3.5
    r2 = S.win_rate(a2, b)
    ref = sps.binomtest(6, 7).proportion_ci(0.95, method="exact")
    assert r2.value == pytest.approx(6 / 7)
    assert r2.ci == (pytest.approx(ref.low, rel=1e-9), pytest.approx(ref.high, rel=1e-9))
    # the half-counted tie lies between the neighbouring integer counts' intervals
    r_lo = sps.binomtest(5, 7).proportion_ci(0.95, method="exact")
    assert r_lo.low <= r.ci[0] <= ref.low and r_lo.high <= r.ci[1] <= ref.high


@pytest.mark.parametrize("k", range(0, 6))
def test_win_rate_ci_is_binomtest_for_integer_counts(k):
    b = np.zeros(5)
    a = np.r_[np.ones(k), -np.ones(5 - k)]
    r = S.win_rate(a, b)
    ref = sps.binomtest(k, 5).proportion_ci(0.95, method="exact")
    assert r.value == pytest.approx(k / 5)
    assert r.ci == (pytest.approx(ref.low, rel=1e-9, abs=1e-15),
                    pytest.approx(ref.high, rel=1e-9, abs=1e-15))


def test_win_rate_five_of_five():
    r = S.win_rate(np.arange(5.0) + 1, np.arange(5.0))
    ref = sps.binomtest(5, 5).proportion_ci(0.95, method="exact")
    assert r.value == 1.0
    assert r.ci[0] == pytest.approx(ref.low, rel=1e-9) and r.ci[1] == 1.0
    assert r.ci[0] < 1.0


def test_win_rate_diverged_is_worst_and_both_diverged_tie():
    a = np.array([-np.inf, -np.inf, 1.0, 2.0, np.nan])
    b = np.array([-np.inf, 5.0, -np.inf, 1.0, 0.0])  # tie, loss, win, win, excluded
    r = S.win_rate(a, b)
    assert r.n == 4 and r.value == pytest.approx(2.5 / 4)
    assert math.isnan(S.win_rate(np.array([np.nan]), np.array([1.0])).value)


# ------------------------------------------------------------------------------------------------
# 7. prob_improvement


def _newcombe_reference(theta: float, m: int, n: int) -> tuple[float, float]:
    """Newcombe (2006) method 5, solved here: the θ with (θ̂ − θ)² = z²·V(θ)."""
    def V(t):
        return t * (1 - t) / (m * n) * (1 + (m - 1) * (1 - t) / (2 - t) + (n - 1) * t / (1 + t))

    def g(t):
        return (theta - t) ** 2 - Z95 ** 2 * V(t)

    lo = 0.0 if theta == 0 else optimize.brentq(g, 0.0, theta, xtol=1e-14)
    hi = 1.0 if theta == 1 else optimize.brentq(g, theta, 1.0, xtol=1e-14)
    return lo, hi


@pytest.mark.parametrize(("m", "n"), [(5, 5), (4, 7), (8, 3)])
def test_prob_improvement_is_mann_whitney_with_newcombe_ci(m, n):
    rng = _rng(70 + 10 * m + n)
    a = rng.normal(0.4, 1.0, m)
    b = rng.normal(0.0, 1.0, n)
    r = S.prob_improvement(a, b)
    theta = sps.mannwhitneyu(a, b).statistic / (m * n)
    assert r.value == pytest.approx(theta, rel=1e-12)
    assert r.n == min(m, n)
    lo, hi = r.ci
    assert 0.0 <= lo <= r.value <= hi <= 1.0
    if 0 < theta < 1:
        ref = _newcombe_reference(theta, m, n)
        assert lo == pytest.approx(ref[0], abs=1e-8)
        assert hi == pytest.approx(ref[1], abs=1e-8)


def test_prob_improvement_newcombe_at_a_fixed_interior_value():
    a = np.array([1.0, 3.0, 5.0, 7.0])
    b = np.array([0.0, 2.0, 4.0, 6.0, 8.0, 9.0])
    theta = sps.mannwhitneyu(a, b).statistic / 24
    assert 0 < theta < 1
    r = S.prob_improvement(a, b)
    ref = _newcombe_reference(theta, 4, 6)
    assert r.ci == (pytest.approx(ref[0], abs=1e-8), pytest.approx(ref[1], abs=1e-8))


def test_prob_improvement_boundaries_do_not_collapse():
    a = np.arange(5.0) + 10
    b = np.arange(5.0)
    up = S.prob_improvement(a, b)
    assert up.value == 1.0 and up.ci[1] == 1.0 and 0.0 < up.ci[0] < 1.0
    down = S.prob_improvement(b, a)
    assert down.value == 0.0 and down.ci[0] == 0.0 and 0.0 < down.ci[1] < 1.0
    # the same boundary solved here
    ref_lo = optimize.brentq(lambda t: (1 - t) ** 2 - Z95 ** 2 * t * (1 - t) / 25
                             * (1 + 4 * (1 - t) / (2 - t) + 4 * t / (1 + t)), 0.0, 1 - 1e-12)
    assert up.ci[0] == pytest.approx(ref_lo, abs=1e-8)
    assert down.ci[1] == pytest.approx(1 - ref_lo, abs=1e-8)


def test_prob_improvement_diverged_worst_and_ties():
    a = np.array([-np.inf, 1.0, 2.0, np.nan])
    b = np.array([0.0, 1.0, -np.inf])
    r = S.prob_improvement(a, b)
    # pairs: -inf vs (0, 1, -inf) -> 0 + 0 + .5; 1 vs -> 1 + .5 + 1; 2 vs -> 1 + 1 + 1
    assert r.value == pytest.approx(6.0 / 9.0)
    assert r.n == 3
    assert math.isnan(S.prob_improvement(np.array([np.nan]), b).value)


# ------------------------------------------------------------------------------------------------
# 8. wilcoxon floor


@pytest.mark.parametrize("n", range(1, 9))
def test_wilcoxon_min_p(n):
    assert S.wilcoxon_min_p(n) == pytest.approx(2 / 2 ** n, rel=1e-12)


def test_wilcoxon_all_positive_five_is_the_floor():
    b = np.zeros(5)
    a = np.array([0.3, 1.1, 2.0, 0.7, 5.0])
    assert S.wilcoxon(a, b) == pytest.approx(S.wilcoxon_min_p(5), rel=1e-12)
    assert S.wilcoxon(a, b) == pytest.approx(0.0625, rel=1e-12)
    assert math.isnan(S.wilcoxon_min_p(0))


# ------------------------------------------------------------------------------------------------
# 9. divergence_test


@pytest.mark.parametrize(("ka", "na", "kb", "nb"),
                         [(5, 5, 0, 5), (0, 5, 5, 5), (2, 5, 0, 5), (1, 4, 1, 6), (3, 7, 0, 5)])
def test_divergence_test_is_fisher_exact(ka, na, kb, nb):
    ref = sps.fisher_exact([[ka, na - ka], [kb, nb - kb]], alternative="two-sided").pvalue
    assert S.divergence_test(ka, na, kb, nb) == pytest.approx(ref, rel=1e-12)


def test_divergence_test_five_vs_zero():
    assert S.divergence_test(5, 5, 0, 5) == pytest.approx(2 / 252, rel=1e-12)
    assert math.isnan(S.divergence_test(0, 0, 1, 5))


# ------------------------------------------------------------------------------------------------
# 10. power


def test_minimal_detectable_effect_at_five_seeds():
    ref = TTestPower().solve_power(effect_size=None, nobs=5, alpha=0.0125, power=0.8,
                                   alternative="larger")
    mde = S.minimal_detectable_effect(5, 0.05 / 4)
    assert mde == pytest.approx(float(np.asarray(ref).item()), rel=1e-6)
    assert mde == pytest.approx(2.05, abs=0.01)
    assert S.minimal_detectable_effect(1, 0.05) is None


@pytest.mark.parametrize("n", [5, 10, 27, 36, 60])
def test_tost_power_is_two_one_sided_bound(n):
    ref = 2 * TTestPower().power(0.5, n, 0.05, alternative="larger") - 1
    assert S.tost_power(n, 0.0, 0.5, 0.05) == pytest.approx(max(0.0, float(ref)), abs=1e-10)


def test_tost_nobs_is_smallest_and_simulated_power_agrees():
    n = S.tost_nobs(0.0, 0.5, 0.05)
    assert n is not None

    def bound(k):
        return 2 * TTestPower().power(0.5, k, 0.05, alternative="larger") - 1

    assert bound(n) >= 0.8
    assert bound(n - 1) < 0.8
    rng = _rng(20240918)
    reps, rejected = 2000, 0
    for _ in range(reps):
        d = rng.normal(0.0, 1.0, n)
        rejected += ttost_paired(d, np.zeros(n), -0.5, 0.5)[0] < 0.05
    assert rejected / reps >= 0.78
    assert S.tost_nobs(0.6, 0.5, 0.05) is None


def test_power_analysis_on_constructed_data():
    rng = _rng(80)
    n = 5
    b = rng.normal(0.0, 1.0, n)
    a = b + rng.normal(0.8, 1.0, n)
    p = S.power_analysis(a, b, margin=0.3, alpha=0.05, alpha_directional=0.0125)
    sd = float(np.std(a - b, ddof=1))
    assert p.n == n
    assert p.sd == pytest.approx(sd, rel=1e-9)
    assert p.mde_z == pytest.approx(S.minimal_detectable_effect(n, 0.0125), rel=1e-12)
    assert p.mde == pytest.approx(p.mde_z * sd, rel=1e-9)
    assert p.tost_power == pytest.approx(S.tost_power(n, 0.0, 0.3 / sd, 0.05), rel=1e-9)
    assert p.seeds is not None and p.seeds >= n + 1
    low, high = p.seeds_range
    assert low is not None and low <= p.seeds
    assert high is None or p.seeds <= high
    assert low >= n + 1


# ------------------------------------------------------------------------------------------------
# 11. verdict.decide


def _decide(**kw):
    base = dict(p_better_holm=0.5, p_worse_holm=0.5, p_tost=0.5, alpha=ALPHA,
                adm_diverged=0, baseline_diverged=0)
    base.update(kw)
    return decide(**base)


def test_divergence_rule_decides_both_ways():
    loses = _decide(p_divergence_holm=0.01, adm_diverged=5, baseline_diverged=0,
                    p_better_holm=1e-6, p_tost=1e-6)
    assert loses.verdict == "loses" and loses.by_divergence and loses.capped
    beats = _decide(p_divergence_holm=0.01, adm_diverged=0, baseline_diverged=5,
                    p_worse_holm=1e-6, p_tost=1e-6)
    assert beats.verdict == "beats" and beats.by_divergence and beats.capped_baseline
    # rates, not counts, decide rule 1
    by_rate = _decide(p_divergence_holm=0.01, adm_diverged=3, baseline_diverged=4,
                      adm_rate=3 / 3, baseline_rate=4 / 10)
    assert by_rate.verdict == "loses" and by_rate.by_divergence
    # not significant: rule 1 does not apply
    ns = _decide(p_divergence_holm=0.2, adm_diverged=2, baseline_diverged=0)
    assert not ns.by_divergence and ns.verdict == "inconclusive"


def test_adm_cap_never_beats_or_matches():
    for kw in (dict(p_better_holm=1e-6), dict(p_tost=1e-6), dict(p_better_holm=1e-6, p_tost=1e-6)):
        d = _decide(adm_diverged=1, baseline_diverged=0, **kw)
        assert d.capped and d.verdict == "inconclusive"
    d = _decide(adm_diverged=2, baseline_diverged=1, p_tost=1e-6, p_worse_holm=1e-6)
    assert d.verdict == "loses"  # a loss inside the margin is a loss once capped


def test_mirror_cap_never_loses():
    d = _decide(adm_diverged=0, baseline_diverged=1, p_worse_holm=1e-6)
    assert d.capped_baseline and not d.capped and d.verdict == "inconclusive"
    d = _decide(adm_diverged=0, baseline_diverged=1, p_worse_holm=1e-6, p_tost=1e-6)
    assert d.verdict == "matches"
    d = _decide(adm_diverged=1, baseline_diverged=1, p_worse_holm=1e-6)
    assert not d.capped and not d.capped_baseline and d.verdict == "loses"


@pytest.mark.parametrize("undefined", [math.nan, None])
def test_undefined_p_never_significant(undefined):
    d = _decide(p_better_holm=undefined, p_worse_holm=undefined, p_tost=undefined,
                p_divergence_holm=undefined, adm_diverged=3, baseline_diverged=0)
    assert d.verdict == "inconclusive" and not d.by_divergence
    assert _decide(p_better_holm=undefined, p_worse_holm=0.01).verdict == "loses"
    assert _decide(p_tost=undefined, p_better_holm=0.01).verdict == "beats"


@PROPERTY
@given(st.lists(st.one_of(st.none(), st.just(math.nan), st.floats(0, 1)), min_size=4, max_size=4),
       st.integers(0, 5), st.integers(0, 5))
def test_property_caps(ps, ka, kb):
    d = decide(p_better_holm=ps[0], p_worse_holm=ps[1], p_tost=ps[2], p_divergence_holm=ps[3],
               alpha=ALPHA, adm_diverged=ka, baseline_diverged=kb)
    if not d.by_divergence:
        if ka > kb:
            assert d.verdict in ("loses", "inconclusive")
        if kb > ka:
            assert d.verdict in ("beats", "matches", "inconclusive")


# ------------------------------------------------------------------------------------------------
# 12. degenerate inputs: no ±inf leaks out, no exceptions


def _degenerate_cases():
    rng = _rng(90)
    r5 = rng.normal(0.0, 1.0, 5)
    e = np.array([])
    return {
        "empty": (e, e),
        "n1": (np.array([1.0]), np.array([0.0])),
        "constant equal": (np.full(5, 2.0), np.full(5, 2.0)),
        "constant shift": (np.full(5, 2.0), np.full(5, 1.0)),
        "adm all diverged": (np.full(5, -np.inf), r5),
        "both all diverged": (np.full(5, -np.inf), np.full(5, -np.inf)),
        "all excluded": (np.full(5, np.nan), r5),
        "tiny": (1e-300 * (1 + rng.random(5)), 1e-300 * (1 + rng.random(5))),
        "tiny constant": (np.full(5, 1e-300), np.full(5, 2e-300)),
        "huge": (1e300 * (1 + rng.random(5)), 1e300 * (1 + rng.random(5))),
        "huge constant": (np.full(5, 1e300), np.full(5, 1e300)),
        "mixed": (np.array([1.0, -np.inf, np.nan, 3.0, 2.0]), np.array([0.5, 1.0, 2.0, np.nan, 2.0])),
    }


@pytest.mark.parametrize("name", list(_degenerate_cases()))
def test_degenerate_inputs_leak_no_infinity(name):
    a, b = _degenerate_cases()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = [
            S.effect_size(a, b),
            S.win_rate(a, b),
            S.prob_improvement(a, b),
            S.power_analysis(a, b, margin=0.1 * S._scale(a, b), alpha=0.05,
                             alpha_directional=0.0125),
            S.t_interval(a),
            S.t_interval(a - b),
            S.directional(a, b),
            S.mean_std(a),
        ]
    for r in results:
        _no_inf(r)
    for r in results[1:3]:  # rates stay probabilities
        if not math.isnan(r.value):
            assert 0.0 <= r.ci[0] <= r.value <= r.ci[1] <= 1.0


def test_values_near_float_max_never_leak_infinity():
    """An sd beyond the float range is undefined (NaN, null in summary.json), never ±inf."""
    a = np.array([1.7e308, -1.7e308, 1.7e308, -1.7e308, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = S.power_analysis(a, -a, margin=1.0, alpha=0.05, alpha_directional=0.0125)
        ci = S.t_interval(np.array([1.7e308, -1.7e308, 1.0]))
    _no_inf(p)
    assert all(math.isnan(v) for v in ci)


# ------------------------------------------------------------------------------------------------
# order invariance under a common permutation of the seeds


@PROPERTY
@given(seeds_and_sizes, st.integers(0, 2), st.randoms(use_true_random=False))
def test_property_common_permutation_of_seeds_changes_nothing(params, special_kind, rnd):
    seed, n, scale = params
    rng = _rng(seed)
    a = rng.normal(rng.normal(), 1.0, n) * scale
    b = rng.normal(0.0, 1.0, n) * scale
    if special_kind == 1:
        a[rng.integers(n)] = -np.inf
    elif special_kind == 2:
        b[rng.integers(n)] = np.nan
    perm = list(range(n))
    rnd.shuffle(perm)
    pa, pb = a[perm], b[perm]

    def close(x, y):
        fx, fy = _floats(x), _floats(y)
        assert len(fx) == len(fy)
        for u, v in zip(fx, fy, strict=True):
            if math.isnan(u):
                assert math.isnan(v)
            else:
                assert v == pytest.approx(u, rel=1e-7, abs=1e-12 * max(1.0, abs(u)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r, pr = S.directional(a, b), S.directional(pa, pb)
        assert r.test == pr.test and r.n == pr.n
        close(r, pr)
        close(S.effect_size(a, b), S.effect_size(pa, pb))
        assert S.win_rate(a, b) == S.win_rate(pa, pb)
        close(S.prob_improvement(a, b), S.prob_improvement(pa, pb))
        close(S.t_interval(a - b), S.t_interval(pa - pb))
        if special_kind == 0:
            m = 0.5 * scale
            close(S.tost(a, b, m), S.tost(pa, pb, m))
