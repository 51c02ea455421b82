"""Tuning efficiency: what a baseline's tuning buys per trial, and how fast AdM gets there.

Pure functions on numpy arrays; every result is exact where a closed form exists (combinatorics
over orderings, no Monte Carlo) and JSON-safe: Python floats / ints / tuples, ``None`` where a
number is undefined, never NaN.

Conventions (as in :mod:`admtune.report.stats`):

- Values are **oriented**: higher = better (the caller negates for minimisation).
- Among tuning trials a finite value is a complete trial and ``-inf`` a trial that gave no usable
  value (pruned or diverged): it used budget but can never be the best.
- Quantiles are the lower quantiles of a discrete distribution: the ``q`` quantile is the smallest
  ``v`` with ``P(X <= v) >= q``. The levels are taken from the decimal spelling of ``confidence``
  (``0.95`` → exactly 1/40 and 39/40) and compared with the probabilities in exact rational
  arithmetic, so a quantile that sits on a probability boundary (``P = 0.5`` exactly) is not
  decided by rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import stats as sps
from scipy.special import gammaln

CONFIDENCE = 0.95
TOL_REL = 1e-9

__all__ = [
    "BestSoFar",
    "TrialsToMatch",
    "Speedup",
    "best_so_far_orderings",
    "trials_to_match",
    "first_good_distribution",
    "count_good",
    "first_reach",
    "speedup",
]


# --------------------------------------------------------------------------------------------- #
# helpers


def _levels(confidence: float) -> tuple[Fraction, Fraction, Fraction]:
    """The exact (lower, median, upper) quantile levels of a two-sided ``confidence`` interval.

    ``Fraction(str(c))`` reads the decimal the user wrote (0.95 → 19/20), not the binary float
    (0.95 → 0.9499999999999999555...), so that (1 - c) / 2 is exactly 1/40 and boundary cases are
    decided the same way a hand calculation would.
    """
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise ValueError(f"confidence must be in (0, 1), not {confidence!r}")
    cf = Fraction(repr(c))
    return (1 - cf) / 2, Fraction(1, 2), (1 + cf) / 2


def _threshold(target: float, tol_rel: float) -> float:
    """``target`` lowered by a relative float tolerance, so that "reached exactly" counts."""
    target = float(target)
    if not math.isfinite(target):
        raise ValueError(f"target must be finite, not {target!r}")
    return target - float(tol_rel) * max(1.0, abs(target))


def _log_comb(n: np.ndarray | float, k: np.ndarray | float) -> np.ndarray:
    """log C(n, k) for 0 <= k <= n (float; used to locate, never to decide a quantile)."""
    return gammaln(np.asarray(n, dtype=float) + 1) - gammaln(np.asarray(k, dtype=float) + 1) \
        - gammaln(np.asarray(n, dtype=float) - np.asarray(k, dtype=float) + 1)


def _smallest_true(pred, lo: int, hi: int, guess: int) -> int:
    """Smallest i in [lo, hi] with ``pred(i)`` for a monotone (False..., True...) ``pred``;
    ``pred(hi)`` must be True. Starts at a float ``guess`` and walks, so the exact (big-integer)
    predicate is evaluated only a few times."""
    i = min(max(guess, lo), hi)
    if pred(i):
        while i > lo and pred(i - 1):
            i -= 1
        return i
    step = 1
    # gallop up, then bisect: robust even if the float guess were far off
    j = i
    while True:
        j = min(i + step, hi)
        if pred(j):
            break
        i, step = j, step * 2
    lo_, hi_ = i + 1, j  # pred(i) False, pred(j) True
    while lo_ < hi_:
        mid = (lo_ + hi_) // 2
        if pred(mid):
            hi_ = mid
        else:
            lo_ = mid + 1
    return lo_


# --------------------------------------------------------------------------------------------- #
# 1. best value so far over all orderings of the tuning trials


@dataclass(frozen=True)
class BestSoFar:
    """Distribution of the best value among the first ``k`` tuning trials, over all orderings.

    Every field but ``confidence`` is a tuple aligned with ``k`` = (1, ..., N).

    - ``mean``: expected best, conditional on at least one complete trial among the first k;
      ``None`` where no ordering has one (all trials ``-inf``).
    - ``p_defined``: probability that at least one of the first k trials is complete.
    - ``lo`` / ``median`` / ``hi``: the (1 - c)/2, 1/2 and (1 + c)/2 quantiles of the best value
      (``-inf`` counted as a value, the lowest); ``None`` where that quantile is ``-inf``.
    """

    k: tuple[int, ...]
    mean: tuple[float | None, ...]
    p_defined: tuple[float, ...]
    lo: tuple[float | None, ...]
    median: tuple[float | None, ...]
    hi: tuple[float | None, ...]
    confidence: float


def best_so_far_orderings(values: np.ndarray, confidence: float = CONFIDENCE) -> BestSoFar:
    """Exact best-so-far curve of a baseline's tuning, averaged over every order of its trials.

    The order in which a sampler happened to run the trials is one draw among many; what the
    tuning *budget* buys is better described by all N! orderings equally likely (equivalently: a
    uniformly random k-subset is the first k trials). With the values sorted ascending,
    v(1) <= ... <= v(N) (``-inf`` lowest, ties kept by a stable sort — only the distribution of
    the maximum *value* matters), the best of the first k is v(j) with probability
    C(j-1, k-1) / C(N, k), j = k..N, so P(best <= v(j)) = C(j, k) / C(N, k).

    ``values``: oriented values of the N counted trials, finite or ``-inf``; NaN and ``+inf`` are
    rejected (an excluded trial is not a counted one; the caller drops it). No trials: empty tuples.
    Cost O(N²) float work plus a handful of big-integer binomials per k: fine for N in the
    thousands.
    """
    v = np.asarray(values, dtype=float).ravel()
    if np.any(np.isnan(v)) or np.any(v == np.inf):
        raise ValueError("values must be finite or -inf (NaN / +inf are not counted trials)")
    levels = _levels(confidence)
    n = int(v.size)
    v = np.sort(v, kind="stable")
    m = int(np.count_nonzero(v == -np.inf))  # v[:m] are -inf, v[m:] finite
    finite = v[m:]
    j = np.arange(1, n + 1)  # 1-based ranks
    comb_n = [math.comb(n, k) for k in range(n + 1)]

    means: list[float | None] = []
    p_def: list[float] = []
    quants: list[list[float | None]] = [[], [], []]
    for k in range(1, n + 1):
        # P(no complete trial among the first k) = C(m, k) / C(n, k), exactly
        p_def.append(float(Fraction(comb_n[k] - math.comb(m, k), comb_n[k])))

        # weights of ranks j = max(k, m+1)..n among the complete ones, rescaled (underflow-safe)
        start = max(k, m + 1)
        if start > n:
            means.append(None)
        else:
            jj = j[start - 1:]
            lw = _log_comb(jj - 1, k - 1)
            # math.exp and fsum, not np.exp and np.dot: numpy's SIMD paths round differently on
            # different CPUs, and a rebuilt report must match the committed one byte for byte
            top = float(lw.max())
            w = [math.exp(float(x) - top) for x in lw]
            mean = math.fsum(wi * float(vi) for wi, vi in zip(w, v[start - 1:], strict=True)) / math.fsum(w)
            means.append(min(max(mean, float(finite[0])), float(finite[-1])))

        # quantiles: float CDF to locate, exact integers to decide
        log_cdf = _log_comb(j[k - 1:], k) - _log_comb(n, k)  # ranks k..n
        cdf = np.exp(log_cdf)
        for qi, q in enumerate(levels):
            guess = k + int(np.searchsorted(cdf, float(q), side="left"))
            num, den = q.numerator, q.denominator
            idx = _smallest_true(
                lambda r, k=k, num=num, den=den: math.comb(r, k) * den >= num * comb_n[k],
                k, n, guess,
            )
            val = float(v[idx - 1])
            quants[qi].append(None if val == -np.inf else val)

    return BestSoFar(
        k=tuple(range(1, n + 1)), mean=tuple(means), p_defined=tuple(p_def),
        lo=tuple(quants[0]), median=tuple(quants[1]), hi=tuple(quants[2]),
        confidence=float(confidence),
    )


# --------------------------------------------------------------------------------------------- #
# 2. trials a baseline needs, in a random order, to match AdM


@dataclass(frozen=True)
class TrialsToMatch:
    """Position T of the first "good" trial in a random ordering of the tuning trials.

    ``median`` / ``lo`` / ``hi``: the 1/2, (1 - c)/2 and (1 + c)/2 quantiles of T (ints, 1-based);
    ``mean`` = E[T] = (N + 1) / (G + 1).
    """

    n_trials: int
    n_good: int
    mean: float
    median: int
    lo: int
    hi: int
    confidence: float


def _check_counts(n_trials: int, n_good: int) -> tuple[int, int]:
    n, g = int(n_trials), int(n_good)
    if n != n_trials or g != n_good or n < 1 or not (0 <= g <= n):
        raise ValueError(f"need integers 0 <= n_good <= n_trials, n_trials >= 1; "
                         f"got n_trials={n_trials!r}, n_good={n_good!r}")
    return n, g


def first_good_distribution(n_trials: int, n_good: int) -> tuple[float, ...]:
    """P(T = k) for k = 1..N-G+1: C(N-k, G-1) / C(N, G) (exact ratio, rounded once to float).

    ``n_good == 0``: empty (T is undefined: the target is never matched).
    """
    n, g = _check_counts(n_trials, n_good)
    if g == 0:
        return ()
    total = math.comb(n, g)
    return tuple(float(Fraction(math.comb(n - k, g - 1), total)) for k in range(1, n - g + 2))


def trials_to_match(
    n_trials: int, n_good: int, confidence: float = CONFIDENCE
) -> TrialsToMatch | None:
    """How many tuning trials, run in a random order, it takes to first reach the target.

    Of the N trials G are good (:func:`count_good`); over all orderings the first good one is at
    position T with P(T <= k) = 1 - C(N-k, G) / C(N, G). The quantiles are decided in exact
    integer arithmetic. ``None`` when G = 0: the tuning never matched (the caller says "never").
    """
    n, g = _check_counts(n_trials, n_good)
    if g == 0:
        return None
    total = math.comb(n, g)
    out = []
    for q in _levels(confidence):
        # P(T <= k) >= q  <=>  C(N-k, G) * den <= (den - num) * C(N, G)
        num, den = q.numerator, q.denominator
        out.append(_smallest_true(
            lambda k, num=num, den=den: math.comb(n - k, g) * den <= (den - num) * total,
            1, n - g + 1, 1 + int(float(q) * (n - g)),
        ))
    lo, median, hi = out
    return TrialsToMatch(n_trials=n, n_good=g, mean=(n + 1) / (g + 1), median=median, lo=lo,
                         hi=hi, confidence=float(confidence))


def count_good(values: np.ndarray, target: float, tol_rel: float = TOL_REL) -> int:
    """Number of finite (oriented) values >= ``target`` up to ``tol_rel * max(1, |target|)``.

    The tolerance makes a trial that reproduces the target to float precision count as matching
    it (a value read back from storage or summed in another order differs in the last bits).
    """
    v = np.asarray(values, dtype=float).ravel()
    thr = _threshold(target, tol_rel)
    return int(np.count_nonzero(np.isfinite(v) & (v >= thr)))


# --------------------------------------------------------------------------------------------- #
# 3. first step at which a learning curve reaches a target


def first_reach(
    steps: np.ndarray, values: np.ndarray, target: float, tol_rel: float = TOL_REL
) -> float | None:
    """First step at which an oriented learning curve reaches ``target`` (tolerance of
    :func:`count_good`); ``None`` if it never does.

    Only finite values count: NaN / ``-inf`` entries (after a divergence) never reach. ``steps``
    must be finite and non-decreasing (the evaluation order), the same length as ``values``.
    """
    s = np.asarray(steps, dtype=float).ravel()
    v = np.asarray(values, dtype=float).ravel()
    if s.shape != v.shape:
        raise ValueError(f"steps and values differ in length: {s.size} vs {v.size}")
    if not np.all(np.isfinite(s)) or np.any(np.diff(s) < 0):
        raise ValueError("steps must be finite and non-decreasing")
    thr = _threshold(target, tol_rel)
    hit = np.flatnonzero(np.isfinite(v) & (v >= thr))
    return float(s[hit[0]]) if hit.size else None


# --------------------------------------------------------------------------------------------- #
# 4. paired speed-up of AdM over the tuned baseline


@dataclass(frozen=True)
class Speedup:
    """Steps AdM needs relative to the tuned arm, paired by seed (ratio < 1: AdM faster).

    - ``ratio``: geometric mean of the per-seed ratios adm / tuned over the usable pairs;
      ``None`` when there is none.
    - ``ci``: paired t-interval on the log ratios, exponentiated; ``None`` with fewer than two
      usable pairs; ``(ratio, ratio)`` when every log ratio is the same.
    - ``ratios``: per seed, adm / tuned for a usable pair, else ``None``.
    - Counts, which partition ``n_seeds``: ``n_pairs`` usable (both reached, both steps > 0);
      ``n_adm_never`` (AdM never reached, tuned did); ``n_tuned_never`` (tuned never, AdM did);
      ``n_neither``; and pairs that both reached but where a ratio is undefined because a side
      reached at step 0 (the first evaluation): ``n_both_at_zero``, ``n_adm_at_zero`` (AdM at 0,
      tuned later: AdM faster), ``n_tuned_at_zero`` (tuned at 0, AdM later).
    """

    ratio: float | None
    ci: tuple[float, float] | None
    confidence: float
    n_seeds: int
    n_pairs: int
    n_adm_never: int
    n_tuned_never: int
    n_neither: int
    n_both_at_zero: int
    n_adm_at_zero: int
    n_tuned_at_zero: int
    ratios: tuple[float | None, ...]


def _step(x: float | None) -> float | None:
    if x is None:
        return None
    s = float(x)
    if not math.isfinite(s) or s < 0:
        raise ValueError(f"a step must be a finite number >= 0 or None (never), not {x!r}")
    return s


def speedup(
    adm_steps: Sequence[float | None],
    tuned_steps: Sequence[float | None],
    confidence: float = CONFIDENCE,
) -> Speedup:
    """Paired speed-up of AdM: per seed, steps to reach the target (``None`` = never reached).

    Ratios are averaged on the log scale (a 2x faster and a 2x slower seed cancel), and the
    interval is ``scipy.stats.ttest_1samp(log_ratios, 0).confidence_interval(confidence)``,
    exponentiated. A step of 0 (reached at the first evaluation) counts as reached, but makes the
    ratio 0 or undefined, so such pairs are counted apart and left out of the mean.
    """
    a = [_step(x) for x in adm_steps]
    t = [_step(x) for x in tuned_steps]
    if len(a) != len(t):
        raise ValueError(f"adm_steps and tuned_steps differ in length: {len(a)} vs {len(t)}")
    _levels(confidence)  # validates
    counts = dict(adm_never=0, tuned_never=0, neither=0, both0=0, adm0=0, tuned0=0)
    ratios: list[float | None] = []
    for sa, st in zip(a, t, strict=True):
        r = None
        if sa is None and st is None:
            counts["neither"] += 1
        elif sa is None:
            counts["adm_never"] += 1
        elif st is None:
            counts["tuned_never"] += 1
        elif sa == 0 and st == 0:
            counts["both0"] += 1
        elif sa == 0:
            counts["adm0"] += 1
        elif st == 0:
            counts["tuned0"] += 1
        else:
            r = sa / st
        ratios.append(r)

    used = [r for r in ratios if r is not None]
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    if len(used) == 1:
        ratio = used[0]
    elif len(used) >= 2:
        logs = np.log(np.asarray(used, dtype=float))
        if np.all(logs == logs[0]):
            ratio = used[0]
            ci = (ratio, ratio)
        else:
            ratio = float(np.exp(np.mean(logs)))
            res = sps.ttest_1samp(logs, 0.0).confidence_interval(confidence_level=confidence)
            ci = (float(np.exp(res.low)), float(np.exp(res.high)))
    return Speedup(
        ratio=ratio, ci=ci, confidence=float(confidence), n_seeds=len(a), n_pairs=len(used),
        n_adm_never=counts["adm_never"], n_tuned_never=counts["tuned_never"],
        n_neither=counts["neither"], n_both_at_zero=counts["both0"], n_adm_at_zero=counts["adm0"],
        n_tuned_at_zero=counts["tuned0"], ratios=tuple(ratios),
    )
