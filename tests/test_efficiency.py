"""admtune.report.efficiency against brute force over every ordering, and scipy for the speed-up."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as sps

from admtune.report.efficiency import (
    best_so_far_orderings,
    count_good,
    first_good_distribution,
    first_reach,
    speedup,
    trials_to_match,
)

NINF = -math.inf
REL = 1e-12


def lower_quantile(dist: Counter, total: int, q: Fraction):
    """Smallest v with P(X <= v) >= q, from exact counts."""
    acc = 0
    for v in sorted(dist):
        acc += dist[v]
        if Fraction(acc, total) >= q:
            return v
    raise AssertionError("unreachable")


def brute_best(values, confidence=0.95):
    """mean / p_defined / quantiles of the best of the first k, over all N! orderings."""
    c = Fraction(str(confidence))
    levels = ((1 - c) / 2, Fraction(1, 2), (1 + c) / 2)
    n = len(values)
    perms = list(itertools.permutations(values))
    total = len(perms)
    out = {"mean": [], "p_defined": [], "lo": [], "median": [], "hi": []}
    for k in range(1, n + 1):
        bests = [max(p[:k]) for p in perms]
        dist = Counter(bests)
        finite = [b for b in bests if b != NINF]
        out["p_defined"].append(len(finite) / total)
        out["mean"].append(sum(finite) / len(finite) if finite else None)
        for name, q in zip(("lo", "median", "hi"), levels, strict=True):
            v = lower_quantile(dist, total, q)
            out[name].append(None if v == NINF else v)
    return out


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if w is None:
            assert g is None
        else:
            assert g is not None and g == pytest.approx(w, rel=REL, abs=1e-14)


CASES = [
    [3.0],
    [NINF],
    [1.0, 2.0],
    [2.0, NINF],
    [1.0, 2.0, 3.0, 4.0],                       # k = 2: P(best <= v(3)) = 1/2 exactly
    [1.0, 1.0, 2.0, 2.0, 2.0],                  # ties
    [NINF, NINF, 0.5, -1.0, 0.5, 3.0],          # ties and -inf
    [NINF, NINF, NINF, NINF, NINF, 1.0, 2.0],   # mostly -inf: lower quantiles undefined
    [NINF, NINF, NINF],                         # nothing complete
    [-5.0, 7.25, 0.0, 1e-3, 7.25, -2.5, 3.0],   # N = 7
]


@pytest.mark.parametrize("values", CASES)
@pytest.mark.parametrize("confidence", [0.95, 0.5])
def test_best_so_far_matches_all_orderings(values, confidence):
    got = best_so_far_orderings(np.array(values), confidence=confidence)
    want = brute_best(values, confidence)
    assert got.k == tuple(range(1, len(values) + 1))
    for name in ("mean", "p_defined", "lo", "median", "hi"):
        assert_same(getattr(got, name), want[name])
    # the order the trials are given in does not matter
    again = best_so_far_orderings(np.array(values[::-1]), confidence=confidence)
    assert again == got


def test_best_so_far_exact_boundary():
    # N = 4, k = 2: P(best <= 3) = C(3, 2) / C(4, 2) = 1/2 exactly, so the median is 3, not 4
    got = best_so_far_orderings(np.array([4.0, 3.0, 2.0, 1.0]))
    assert got.median[1] == 3.0
    # k = N: the best of all, with certainty
    assert got.lo[-1] == got.median[-1] == got.hi[-1] == got.mean[-1] == 4.0


def test_best_so_far_large_n_against_exact_fractions():
    rng = np.random.default_rng(3)
    n = 300
    vals = np.round(rng.normal(size=n), 3)
    vals[rng.random(n) < 0.4] = NINF
    got = best_so_far_orderings(vals)
    s = sorted(vals.tolist())
    m = sum(1 for x in s if x == NINF)
    for k in (1, 2, 17, 150, 299, 300):
        den = math.comb(n, k)
        p_def = 1 - Fraction(math.comb(m, k), den)
        num = sum(Fraction(math.comb(j - 1, k - 1), den) * Fraction(s[j - 1])
                  for j in range(max(k, m + 1), n + 1))
        assert got.p_defined[k - 1] == pytest.approx(float(p_def), rel=REL)
        assert got.mean[k - 1] == pytest.approx(float(num / p_def), rel=1e-10)
        for name, q in (("lo", Fraction(1, 40)), ("median", Fraction(1, 2)),
                        ("hi", Fraction(39, 40))):
            j = next(j for j in range(k, n + 1) if Fraction(math.comb(j, k), den) >= q)
            want = None if s[j - 1] == NINF else s[j - 1]
            assert getattr(got, name)[k - 1] == want
    for field in (got.mean, got.p_defined, got.lo, got.median, got.hi):
        assert all(x is None or math.isfinite(x) for x in field)
    # more trials never make the best worse
    for field in (got.p_defined, got.median, got.hi):
        xs = [x for x in field if x is not None]
        assert all(a <= b for a, b in itertools.pairwise(xs))


def test_best_so_far_rejects_nan_and_empty_is_empty():
    with pytest.raises(ValueError):
        best_so_far_orderings(np.array([1.0, math.nan]))
    with pytest.raises(ValueError):
        best_so_far_orderings(np.array([1.0, math.inf]))
    empty = best_so_far_orderings(np.array([]))
    assert empty.k == () and empty.mean == () and empty.median == ()


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.sampled_from([NINF, -1.5, 0.0, 0.25, 2.0, 10.0]), min_size=1, max_size=6),
           st.sampled_from([0.95, 0.8, 0.5]))
    def test_best_so_far_property(values, confidence):
        got = best_so_far_orderings(np.array(values), confidence=confidence)
        want = brute_best(values, confidence)
        for name in ("mean", "p_defined", "lo", "median", "hi"):
            assert_same(getattr(got, name), want[name])


# ---------------------------------------------------------------------------- trials to match


def brute_first_good(n, g):
    """Counts of T (position of the first good trial) over all orderings of n trials, g good."""
    dist = Counter()
    for p in itertools.permutations(range(n)):
        dist[next(i for i, x in enumerate(p, 1) if x < g)] += 1
    return dist, math.factorial(n)


@pytest.mark.parametrize("n,g", [(1, 1), (2, 1), (3, 2), (5, 1), (5, 3), (6, 6), (7, 2), (7, 1)])
@pytest.mark.parametrize("confidence", [0.95, 0.5, 0.8])
def test_trials_to_match_matches_all_orderings(n, g, confidence):
    dist, total = brute_first_good(n, g)
    pmf = first_good_distribution(n, g)
    assert len(pmf) == n - g + 1
    for k, p in enumerate(pmf, 1):
        assert p == pytest.approx(dist[k] / total, rel=REL)
    got = trials_to_match(n, g, confidence)
    c = Fraction(str(confidence))
    assert got.lo == lower_quantile(dist, total, (1 - c) / 2)
    assert got.median == lower_quantile(dist, total, Fraction(1, 2))
    assert got.hi == lower_quantile(dist, total, (1 + c) / 2)
    brute_mean = Fraction(sum(k * c_ for k, c_ in dist.items()), total)
    assert got.mean == pytest.approx(float(brute_mean), rel=REL)
    assert got.mean == pytest.approx((n + 1) / (g + 1), rel=REL)
    assert (got.n_trials, got.n_good) == (n, g)


def test_trials_to_match_closed_form_large():
    for n, g in [(2000, 1), (2000, 7), (500, 499), (1000, 1000)]:
        got = trials_to_match(n, g)
        assert got.mean == pytest.approx((n + 1) / (g + 1), rel=REL)
        pmf = np.array(first_good_distribution(n, g))
        assert pmf.sum() == pytest.approx(1.0, rel=1e-12)
        assert float(np.dot(np.arange(1, pmf.size + 1), pmf)) == pytest.approx(got.mean, rel=1e-9)
    # one good trial among N: T is uniform on 1..N, P(T <= k) = k / N
    got = trials_to_match(2000, 1)
    assert (got.lo, got.median, got.hi) == (50, 1000, 1950)


def test_trials_to_match_never_and_bad_input():
    assert trials_to_match(10, 0) is None
    assert first_good_distribution(10, 0) == ()
    for n, g in [(0, 0), (3, 4), (3, -1)]:
        with pytest.raises(ValueError):
            trials_to_match(n, g)


def test_count_good():
    vals = np.array([1.0, 2.0, NINF, math.nan, 2.0 - 1e-12, 1.999, 3.0])
    assert count_good(vals, 2.0) == 3  # 2.0, 2.0 - 1e-12 (within tolerance), 3.0
    assert count_good(vals, 2.0, tol_rel=0.0) == 2
    assert count_good(vals, 100.0) == 0
    assert count_good(np.array([-1e6 * (1 + 1e-10)]), -1e6) == 1  # tolerance is relative
    with pytest.raises(ValueError):
        count_good(vals, math.nan)


# ---------------------------------------------------------------------------- first reach


def test_first_reach():
    steps = np.array([0, 100, 200, 300, 400, 500])
    curve = np.array([-3.0, -2.0, -1.0, -0.5, -0.4, -0.1])
    assert first_reach(steps, curve, -1.0) == 200.0
    assert first_reach(steps, curve, -1.0 - 1e-12) == 200.0
    assert first_reach(steps, curve, -1.0 + 1e-12) == 200.0  # within float tolerance
    assert first_reach(steps, curve, -0.99) == 300.0
    assert first_reach(steps, curve, -5.0) == 0.0
    assert first_reach(steps, curve, 0.0) is None
    # diverged: NaN / -inf after step 200 never reach, even a -inf target is not "reached" by -inf
    div = np.array([-3.0, -2.0, -1.5, math.nan, NINF, math.nan])
    assert first_reach(steps, div, -1.0) is None
    assert first_reach(steps, div, -2.0) == 100.0
    assert first_reach(np.array([]), np.array([]), 0.0) is None
    with pytest.raises(ValueError):
        first_reach(steps[:3], curve, 0.0)
    with pytest.raises(ValueError):
        first_reach(steps[::-1], curve, 0.0)


# ---------------------------------------------------------------------------- speed-up


def test_speedup_against_ttest():
    adm = [100.0, 250.0, None, 300.0, 80.0, None, 0.0, 400.0, 0.0, 50.0]
    tuned = [200.0, 200.0, 300.0, None, 160.0, None, 0.0, 350.0, 20.0, 0.0]
    got = speedup(adm, tuned)
    pairs = [(a, t) for a, t in zip(adm, tuned, strict=True) if a and t]  # both reached, both > 0
    logs = np.log([a / t for a, t in pairs])
    ci = sps.ttest_1samp(logs, 0).confidence_interval(0.95)
    assert got.n_pairs == len(pairs) == 4
    assert got.ratio == pytest.approx(math.exp(logs.mean()), rel=REL)
    assert got.ci == pytest.approx((math.exp(ci.low), math.exp(ci.high)), rel=1e-10)
    assert (got.n_adm_never, got.n_tuned_never, got.n_neither) == (1, 1, 1)
    assert (got.n_both_at_zero, got.n_adm_at_zero, got.n_tuned_at_zero) == (1, 1, 1)
    assert got.n_seeds == 10
    assert got.ratios == pytest.approx((0.5, 1.25, None, None, 0.5, None, None, 400 / 350,
                                        None, None))
    c80 = speedup(adm, tuned, confidence=0.8)
    ci80 = sps.ttest_1samp(logs, 0).confidence_interval(0.8)
    assert c80.ci == pytest.approx((math.exp(ci80.low), math.exp(ci80.high)), rel=1e-10)
    assert got.ci[0] < c80.ci[0] < got.ratio < c80.ci[1] < got.ci[1]


def test_speedup_degenerate():
    one = speedup([300.0, None], [100.0, 100.0])
    assert (one.ratio, one.ci, one.n_pairs, one.n_adm_never) == (3.0, None, 1, 1)
    flat = speedup([100.0, 50.0, 30.0], [200.0, 100.0, 60.0])
    assert flat.ratio == 0.5 and flat.ci == (0.5, 0.5)
    none = speedup([None, None, 0.0], [None, 5.0, 0.0])
    assert (none.ratio, none.ci, none.n_pairs) == (None, None, 0)
    assert (none.n_neither, none.n_adm_never, none.n_both_at_zero) == (1, 1, 1)
    assert speedup([], []).ratio is None
    with pytest.raises(ValueError):
        speedup([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        speedup([math.nan], [1.0])
    with pytest.raises(ValueError):
        speedup([-1.0], [1.0])
