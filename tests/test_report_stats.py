"""The report's statistics and verdict rules, on constructed samples (no rendering: fast)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from admtune.report import analyse, stats
from admtune.report.verdict import decide
from tests.report_fixtures import results_from_values

BASE = [0.30, 0.31, 0.29, 0.32, 0.30, 0.31, 0.28, 0.33]
JITTER = [0.001, -0.001, 0.0005, -0.0005, 0.0, 0.0002, -0.0003, 0.0004]


def verdict_of(adm, tuned, **kw):
    values = {"sgd": {"adm": adm, "tuned": tuned, "default": [v + 0.01 if v is not None else None
                                                               for v in tuned]}}
    return analyse(results_from_values(values, **kw))["baselines"]["sgd"]


# ---------------------------------------------------------------------------------------------
# Verdict rules on constructed samples


def test_equal_arms_match():
    e = verdict_of([b + j for b, j in zip(BASE, JITTER, strict=True)], BASE, margin=0.01)
    assert e["verdict"] == "matches"
    assert e["p_tost"] < 0.05
    assert e["p_better_holm"] > 0.05 and e["p_worse_holm"] > 0.05
    assert e["seeds_to_resolve"] is None


def test_identical_arms_match_without_nan():
    """All differences zero: the t-tests are undefined in scipy; the exact sign tests decide (no
    evidence of a difference either way, equivalence at p = 0.5ⁿ), no NaN."""
    e = verdict_of(list(BASE), list(BASE), margin=0.01)
    assert e["verdict"] == "matches"
    assert e["p_better"] == 1.0 and e["p_worse"] == 1.0 and e["p_tost"] == 0.5 ** len(BASE)
    assert e["test"] == "sign test"
    assert e["diff"]["mean"] == 0.0 and e["diff"]["ci"] == [0.0, 0.0]
    assert e["p_wilcoxon"] == 1.0


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_clear_shift_beats_and_loses(direction):
    better = -0.05 if direction == "minimize" else 0.05
    adm = [b + better + j for b, j in zip(BASE, JITTER, strict=True)]
    e = verdict_of(adm, BASE, direction=direction)
    assert e["verdict"] == "beats"
    assert e["diff"]["mean"] == pytest.approx(0.05, abs=1e-3)  # positive = AdM better
    assert e["p_better_holm"] < 0.05 and e["effect_size"]["g_z"] > 0
    assert e["prob_improvement"] > 0.9 and e["win_rate"]["value"] == 1.0
    assert "beats" in e["reason"]
    worse = [b - better + j for b, j in zip(BASE, JITTER, strict=True)]
    e = verdict_of(worse, BASE, direction=direction)
    assert e["verdict"] == "loses"
    assert e["diff"]["mean"] == pytest.approx(-0.05, abs=1e-3)
    assert e["p_worse_holm"] < 0.05 and e["effect_size"]["g_z"] < 0
    assert e["prob_improvement"] < 0.1 and e["win_rate"]["value"] == 0.0
    assert "loses to" in e["reason"] and "does not replace it" in e["reason"]


@pytest.mark.parametrize("shift", [0.02, 1e-9])
def test_identical_shift_zero_variance_is_a_sign_test(shift):
    """Every seed improved by exactly the same amount: no certainty is invented (the t statistic
    would be infinite, p = 0); the exact sign test decides, one-sided p = 0.5ⁿ. Four seeds cannot
    reach α after Holm (2 × 1/16); eight can, whatever the size of the shift."""
    e = verdict_of([b - shift for b in BASE[:4]], BASE[:4], margin=0.01 if shift > 0.01 else 1e-12)
    assert e["test"] == "sign test"
    assert e["p_better"] == pytest.approx(sps.binomtest(4, 4, alternative="greater").pvalue)
    assert e["p_worse"] == 1.0 and e["verdict"] == "inconclusive"
    assert e["effect_size"]["g_z"] is None  # a standardized constant difference is infinite
    e = verdict_of([b - shift for b in BASE], BASE, margin=0.01 if shift > 0.01 else 1e-12)
    assert e["p_better"] == pytest.approx(0.5 ** len(BASE)) and e["verdict"] == "beats"


def test_noisy_small_sample_is_inconclusive_with_seed_estimate():
    tuned = [0.30, 0.31, 0.29]
    adm = [0.32, 0.295, 0.30]
    e = verdict_of(adm, tuned, margin=0.01)
    assert e["verdict"] == "inconclusive"
    assert isinstance(e["seeds_to_resolve"], int) and e["seeds_to_resolve"] > 3
    assert "seeds per arm would decide it" in e["reason"]


def test_seed_estimate_matches_statsmodels_power():
    from statsmodels.stats.power import TTestPower

    tuned = np.array([0.30, 0.31, 0.29, 0.30])
    adm = tuned + np.array([0.004, -0.006, 0.010, 0.001])  # small, noisy, |mean| < margin
    e = verdict_of(list(adm), list(tuned), margin=0.01)
    assert e["verdict"] == "inconclusive"
    d = tuned - adm  # oriented: minimize, positive = AdM better
    m, s = d.mean(), d.std(ddof=1)
    def tost_power(n):  # the bound P(reject lower) + P(reject upper) − 1
        pw = [TTestPower().power(effect_size=(0.01 + sgn * m) / s, nobs=n, alpha=0.05,
                                 alternative="larger") for sgn in (1, -1)]
        return pw[0] + pw[1] - 1

    n_eq = next(n for n in range(2, 10_000) if tost_power(n) >= 0.8)
    n_dir = TTestPower().solve_power(effect_size=abs(m) / s, alpha=0.05 / 2, power=0.8,
                                     alternative="larger")
    assert e["seeds_to_resolve"] == max(math.ceil(min(n_eq, n_dir)), 5)


def test_adm_diverging_more_often_never_beats():
    adm = [None, None] + [b - 0.1 for b in BASE[2:]]  # far better where it finished
    e = verdict_of(adm, BASE)
    assert e["verdict"] not in ("beats", "matches")
    assert e["capped_by_divergence"] is True
    assert e["adm"]["diverged"] == 2 and e["adm"]["n"] == 6
    # the complete pairs alone would have said beats; the diverged seeds are not dropped
    a, t = np.array(BASE[2:]) - 0.1, np.array(BASE[2:])
    assert sps.ttest_rel(a, t, alternative="less").pvalue * 2 < 0.05
    assert e["test"] == "wilcoxon, diverged worst" and e["test_n"] == len(BASE)
    assert "The complete pairs favour AdM, but AdM diverged more often" in e["reason"]
    assert "so it cannot be a win" in e["reason"]


def test_adm_diverging_more_often_never_matches():
    adm = [None] + [b + j for b, j in zip(BASE[1:], JITTER[1:], strict=True)]
    e = verdict_of(adm, BASE)
    assert e["p_tost"] < 0.05
    assert e["verdict"] == "inconclusive"


def test_divergence_cap_still_allows_loses():
    adm = [None] + [b + 0.05 for b in BASE[1:]]
    assert verdict_of(adm, BASE)["verdict"] == "loses"


def test_equal_divergence_does_not_cap():
    adm = [None] + [b - 0.05 for b in BASE[1:]]
    tuned = [None] + BASE[1:]
    e = verdict_of(adm, tuned)
    assert e["verdict"] == "beats" and not e["capped_by_divergence"]


samples = st.lists(
    st.tuples(st.floats(0.1, 1.0), st.floats(-0.2, 0.2), st.booleans(), st.booleans()),
    min_size=2, max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples)
def test_property_more_adm_divergence_never_beats_or_matches(rows):
    tuned = [None if td else t for t, _, _, td in rows]
    adm = [None if ad else t + d for t, d, ad, _ in rows]
    e = verdict_of(adm, tuned)
    assert e["verdict"] in ("beats", "matches", "loses", "inconclusive")
    if sum(a is None for a in adm) > sum(t is None for t in tuned):
        assert e["verdict"] in ("loses", "inconclusive")
    json.dumps(e, allow_nan=False)  # never a NaN in the summary


def test_decide_order_and_nan():
    """The margin first: TOST significant is a match whatever the one-sided tests say."""
    kw = dict(alpha=0.05, adm_diverged=0, baseline_diverged=0)
    assert decide(p_better_holm=0.01, p_worse_holm=0.99, p_tost=0.01, **kw).verdict == "matches"
    assert decide(p_better_holm=0.99, p_worse_holm=0.01, p_tost=0.01, **kw).verdict == "matches"
    assert decide(p_better_holm=0.01, p_worse_holm=0.99, p_tost=0.5, **kw).verdict == "beats"
    assert decide(p_better_holm=0.99, p_worse_holm=0.01, p_tost=0.5, **kw).verdict == "loses"
    assert decide(p_better_holm=0.5, p_worse_holm=0.5, p_tost=0.01, **kw).verdict == "matches"
    assert decide(p_better_holm=0.5, p_worse_holm=0.5, p_tost=0.5, **kw).verdict == "inconclusive"
    assert decide(p_better_holm=math.nan, p_worse_holm=None, p_tost=math.nan,
                  **kw).verdict == "inconclusive"
    capped = dict(alpha=0.05, adm_diverged=1, baseline_diverged=0)
    assert decide(p_better_holm=0.01, p_worse_holm=0.99, p_tost=0.01, **capped).verdict \
        == "inconclusive"
    assert decide(p_better_holm=0.99, p_worse_holm=0.01, p_tost=0.01, **capped).verdict == "loses"


def _expected_ps(adm, tuned, margin, direction="minimize"):
    """Raw one-sided p and TOST p straight from scipy / statsmodels (one baseline: Holm over
    its two tests)."""
    a, t = np.asarray(adm), np.asarray(tuned)
    better, worse = ("less", "greater") if direction == "minimize" else ("greater", "less")
    p_b = sps.ttest_rel(a, t, alternative=better).pvalue
    p_w = sps.ttest_rel(a, t, alternative=worse).pvalue
    holm = multipletests([p_b, p_w], alpha=0.05, method="holm")[1]
    return holm[0], holm[1], ttost_paired(a, t, -margin, margin)[0]


SMALL = [0.002, 0.0021, 0.0019, 0.0022, 0.0018, 0.002, 0.0021, 0.0019]  # tight, inside δ = 0.01


@pytest.mark.parametrize("sign", [+1, -1])
def test_significant_inside_margin_matches_with_direction(sign):
    """A detectable difference inside ±δ is a match; the reason says which way it leans."""
    adm = [b - sign * s for b, s in zip(BASE, SMALL, strict=True)]  # minimize: −= better
    p_b, p_w, p_tost = _expected_ps(adm, BASE, 0.01)
    assert (p_b if sign > 0 else p_w) < 0.05 and p_tost < 0.05  # both tests significant
    e = verdict_of(adm, BASE, margin=0.01)
    assert e["p_tost"] == pytest.approx(p_tost)
    assert e["p_better_holm"] == pytest.approx(p_b) and e["p_worse_holm"] == pytest.approx(p_w)
    assert e["verdict"] == "matches"
    words = "AdM slightly better" if sign > 0 else "AdM slightly worse, inside the margin δ"
    assert words in e["reason"]
    assert "also detectable" in e["reason"]
    assert "within the margin" not in e["reason"]  # the old beats / loses-within texts


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("sign", [+1, -1])
def test_significant_outside_margin_beats_or_loses(direction, sign):
    better = -1 if direction == "minimize" else 1
    adm = [b + better * sign * (0.02 + s) for b, s in zip(BASE, SMALL, strict=True)]
    p_b, p_w, p_tost = _expected_ps(adm, BASE, 0.01, direction)
    assert p_tost >= 0.05
    e = verdict_of(adm, BASE, margin=0.01, direction=direction)
    assert e["p_tost"] == pytest.approx(p_tost)
    assert e["verdict"] == ("beats" if sign > 0 else "loses")
    assert (e["p_better_holm"] if sign > 0 else e["p_worse_holm"]) == pytest.approx(
        p_b if sign > 0 else p_w)
    assert "equivalence within δ = 0.01 is not shown" in e["reason"].lower()


def test_cap_still_applies_inside_margin():
    """AdM diverged more often: neither a match nor a win, even inside ±δ; a loss stays a loss."""
    better = [None] + [b - s for b, s in zip(BASE[1:], SMALL[1:], strict=True)]
    _, _, p_tost = _expected_ps([v for v in better[1:]], BASE[1:], 0.01)
    e = verdict_of(better, BASE, margin=0.01)
    assert p_tost < 0.05 and e["p_tost"] == pytest.approx(p_tost)
    assert e["verdict"] == "inconclusive" and e["capped_by_divergence"]
    worse = [None] + [b + s for b, s in zip(BASE[1:], SMALL[1:], strict=True)]
    _, p_w, p_tost = _expected_ps(worse[1:], BASE[1:], 0.01)
    e = verdict_of(worse, BASE, margin=0.01)
    assert p_w < 0.05 and p_tost < 0.05
    assert e["verdict"] == "loses" and e["capped_by_divergence"]
    assert "inside the margin δ = 0.01" in e["reason"]
    assert "cannot be a win or a match" in e["reason"]


# ---------------------------------------------------------------------------------------------
# Degenerate samples


def test_single_seed_does_not_crash():
    e = verdict_of([0.3], [0.31])
    assert e["verdict"] == "inconclusive"
    assert e["p_better"] is None and e["p_tost"] is None and e["seeds_to_resolve"] is None
    assert e["adm"]["std"] is None and e["adm"]["ci"] == [None, None]
    assert e["adm"]["mean"] == 0.3
    assert "at least two" in e["reason"]


def test_all_adm_diverged():
    e = verdict_of([None, None, None], [0.3, 0.31, 0.29])
    assert e["verdict"] == "inconclusive"  # not loses: no complete pair to test
    assert e["adm"]["mean"] is None and e["adm"]["diverged"] == 3
    assert e["p_wilcoxon"] is not None  # the rank test still sees the divergences
    assert e["prob_improvement"] == 0.0


def test_failed_and_pruned_eval_runs_are_excluded_and_counted():
    r = results_from_values({"sgd": {"adm": [b - 0.05 for b in BASE], "tuned": BASE,
                                     "default": BASE}})
    adm_runs = [x for x in r.runs if x.arm == "adm"]
    adm_runs[0].status, adm_runs[0].value = "failed", None
    adm_runs[1].status = "pruned"
    e = analyse(r)["baselines"]["sgd"]
    assert e["adm"]["n"] == len(BASE) - 2 and e["adm"]["excluded"] == 2
    assert e["adm"]["diverged"] == 0 and e["diff"]["n"] == len(BASE) - 2
    assert e["verdict"] == "beats"


def test_baseline_without_runs_of_an_arm():
    r = results_from_values({"sgd": {"adm": BASE, "default": BASE}})
    e = analyse(r)["baselines"]["sgd"]
    assert e["verdict"] == "inconclusive"
    assert e["tuned"]["n"] == 0 and e["tuned"]["mean"] is None


# ---------------------------------------------------------------------------------------------
# Holm


def test_holm_matches_statsmodels_and_hand_values():
    assert stats.holm([0.01, 0.04, 0.03, 0.5], 0.05) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    out = stats.holm([0.01, math.nan, 0.02], 0.05)
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_holm_across_all_comparisons_of_the_report():
    rng = np.random.default_rng(3)
    base = list(0.3 + 0.01 * rng.standard_normal(6))
    values = {
        "sgd": {"adm": [b - 0.004 + 0.003 * rng.standard_normal() for b in base], "tuned": base,
                "default": base},
        "adamw": {"adm": [b + 0.002 + 0.003 * rng.standard_normal() for b in base],
                  "tuned": base, "default": base},
    }
    s = analyse(results_from_values(values))
    raw = [p for b in ("sgd", "adamw") for p in (s["baselines"][b]["p_better"],
                                                  s["baselines"][b]["p_worse"])]
    expected = multipletests(raw, alpha=0.05, method="holm")[1]
    got = [p for b in ("sgd", "adamw") for p in (s["baselines"][b]["p_better_holm"],
                                                  s["baselines"][b]["p_worse_holm"])]
    assert got == pytest.approx(list(expected))
    assert all(g >= r for g, r in zip(got, raw, strict=True))


# ---------------------------------------------------------------------------------------------
# Individual statistics against the libraries


def test_rank_statistics_rank_divergence_worst():
    a = np.array([-np.inf, 1.0, 2.0, 3.0, 4.0])  # oriented: −inf = diverged
    b = np.array([0.5, 0.9, 1.9, 2.9, 3.9])
    d = stats.paired_differences_ranked(a, b)
    assert d[0] < 0 and abs(d[0]) > np.max(np.abs(d[1:]))
    assert stats.wilcoxon(a, b) == pytest.approx(sps.wilcoxon(d).pvalue)
    assert stats.prob_improvement(np.array([-np.inf]), np.array([-1e9])).value == 0.0
    both = stats.paired_differences_ranked(np.array([-np.inf, 1.0]), np.array([-np.inf, 0.0]))
    assert both[0] == 0.0


def test_bootstrap_ci_is_scipy_bca_on_sorted_values_and_only_from_ten():
    x = np.array([0.3, 0.31, 0.29, 0.35, 0.28, 0.30, 0.33, 0.27, 0.32, 0.34, 0.26])
    lo, hi = stats.bootstrap_ci(x)
    s = np.sort(x)
    ref = sps.bootstrap((s / s.max(),), np.mean, method="BCa", n_resamples=stats.N_RESAMPLES,
                        rng=np.random.default_rng(stats.BOOTSTRAP_SEED)).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low * s.max(), ref.high * s.max()))
    assert stats.bootstrap_ci(x[::-1]) == (lo, hi)  # the seeds' order does not matter
    assert lo < x.mean() < hi
    assert all(math.isnan(v) for v in stats.bootstrap_ci(x[:9]))


def test_tost_and_t_agree_with_libraries():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, 7)
    b = a + rng.normal(0.1, 0.3, 7)
    assert stats.tost(a, b, 0.5) == pytest.approx(ttost_paired(a, b, -0.5, 0.5)[0])
    pb, pw = stats.paired_t(a, b)
    assert pb == pytest.approx(sps.ttest_rel(a, b, alternative="greater").pvalue)
    assert pw == pytest.approx(sps.ttest_rel(a, b, alternative="less").pvalue)


# ---------------------------------------------------------------------------------------------
# Tuning saved


def test_trials_to_match():
    values = {"sgd": {"adm": [0.3, 0.3, 0.3], "tuned": [0.3, 0.3, 0.3], "default": [0.3] * 3}}
    val = {"sgd": {"adm": [0.34, 0.35, 0.36]}}  # AdM's validation mean: 0.35
    r = results_from_values(values, val_values=val,
                            trial_values={"sgd": [0.5, None, 0.36, 0.35, 0.2]})
    t = analyse(r)["baselines"]["sgd"]
    assert t["trials_to_match"] == 4  # the diverged trial 2 counts
    assert t["tuning"]["trials"] == 5 and t["tuning"]["diverged"] == 1
    assert t["tuning"]["adm_val_mean"] == pytest.approx(0.35)
    r = results_from_values(values, val_values=val, trial_values={"sgd": [0.5, 0.4]})
    assert analyse(r)["baselines"]["sgd"]["trials_to_match"] is None


def test_trials_to_match_maximize():
    values = {"sgd": {"adm": [0.9, 0.9], "tuned": [0.9, 0.9], "default": [0.9, 0.9]}}
    r = results_from_values(values, direction="maximize", val_values={"sgd": {"adm": [0.8, 0.8]}},
                            trial_values={"sgd": [0.5, 0.79, 0.81]})
    assert analyse(r)["baselines"]["sgd"]["trials_to_match"] == 3


# ---------------------------------------------------------------------------------------------
# The summary's keys (relied on by the CI gate and users' scripts)

TOP_KEYS = {"study", "metric", "direction", "margin", "alpha", "fingerprint", "baselines",
            "versions", "device", "wall_s"}
BASELINE_KEYS = {"verdict", "adm", "tuned", "default", "diff", "p_better", "p_worse",
                 "p_better_holm", "p_worse_holm", "p_wilcoxon", "p_tost", "effect_size",
                 "prob_improvement", "trials_to_match", "seeds_to_resolve", "test",
                 "p_wilcoxon_min", "p_divergence", "p_divergence_holm", "win_rate",
                 "prob_improvement_ci", "power", "time_to_target",
                 "capped_by_baseline_divergence", "decided_by_divergence"}
ARM_KEYS = {"mean", "std", "ci", "n", "diverged", "diverged_rate", "diverged_ci"}


def test_summary_keys_and_json_safety():
    values = {"sgd": {"adm": BASE, "tuned": BASE, "default": BASE},
              "adamw": {"adm": [None] + BASE[1:], "tuned": BASE, "default": BASE}}
    s = analyse(results_from_values(values))
    assert TOP_KEYS <= set(s)
    assert s["direction"] == "minimize" and s["alpha"] == 0.05 and s["margin"] == 0.01
    assert list(s["baselines"]) == ["sgd", "adamw"]
    for e in s["baselines"].values():
        assert BASELINE_KEYS <= set(e)
        assert e["verdict"] in ("beats", "matches", "loses", "inconclusive")
        assert ARM_KEYS <= set(e["adm"])
        assert ARM_KEYS | {"beta"} <= set(e["tuned"]) and ARM_KEYS | {"beta"} <= set(e["default"])
        assert {"mean", "ci"} <= set(e["diff"]) and len(e["diff"]["ci"]) == 2
        assert e["default"]["beta"] == 0.9 and e["tuned"]["beta"] == 0.95
    text = json.dumps(s, allow_nan=False)
    assert json.loads(text) == s


# ---------------------------------------------------------------------------------------------
# The selection stage

SELECT = [(0.95, [0.300, 0.302, 0.298]), (0.8, [0.305, 0.303, 0.307]),
          (0.9, [0.310, None, 0.309])]


def _without(entry: dict, key: str) -> dict:
    return {k: v for k, v in entry.items() if k != key}


def test_select_runs_are_never_an_evaluation_arm():
    values = {"sgd": {"adm": BASE, "tuned": [b + 0.001 for b in BASE], "default": BASE}}
    plain = results_from_values(values, betas={"sgd": 0.95})
    selected = results_from_values(values, select_values={"sgd": SELECT})
    assert {r.arm for r in selected.runs} >= {"select"}
    from admtune.report.analysis import summarise

    typed = summarise(selected).baselines["sgd"]
    assert typed.eval_arms == ("adm", "tuned", "default")
    assert set(typed.per_seed) == {"adm", "tuned", "default"}
    assert all(s < 20_000 for s in typed.seeds)
    e = analyse(selected)["baselines"]["sgd"]
    assert "select" not in e and "adm_select" not in e and "select" not in e["vs_other_arms"]
    # every statistic of the comparison is what it is without the selection runs
    assert _without(e, "selection") == _without(analyse(plain)["baselines"]["sgd"], "selection")


def test_selection_summary():
    values = {"sgd": {"adm": BASE, "tuned": BASE, "default": BASE}}
    r = results_from_values(values, select_values={"sgd": SELECT},
                            trial_values={"sgd": [0.4, 0.3]})
    e = analyse(r)["baselines"]["sgd"]
    keys = list(e)
    assert keys.index("selection") == keys.index("tuning") + 1
    sel = e["selection"]
    assert sel["selection_seeds"] == r.spec.tune.selection_seeds == 3
    assert [f["beta"] for f in sel["finalists"]] == [0.95, 0.8, 0.9]
    assert list(sel["finalists"][0]) == ["beta", "lr", "origin", "mean", "std", "n", "diverged",
                                         "seeds", "chosen"]
    for f, (_, vals) in zip(sel["finalists"], SELECT, strict=True):
        done = np.array([v for v in vals if v is not None])
        assert f["mean"] == pytest.approx(done.mean()) and f["std"] == pytest.approx(done.std(ddof=1))
        assert f["n"] == done.size and f["diverged"] == len(vals) - done.size
        assert f["seeds"] == r.spec.tune.selection_seeds and f["lr"] == 0.1
    assert [f["chosen"] for f in sel["finalists"]] == [True, False, False]
    assert sel["finalists"][2]["origin"] == "β = 0.9"
    assert sel["adm_finalists"] == []
    assert e["tuned"]["beta"] == 0.95


def test_a_diverged_finalist_is_not_chosen_on_its_complete_runs():
    """0.9's complete runs are the best, but one diverged: the selection ranks it worst."""
    sel = [(0.95, [0.300, 0.302, 0.298]), (0.9, [0.290, None, 0.291])]
    values = {"sgd": {"adm": BASE, "tuned": BASE, "default": BASE}}
    f = analyse(results_from_values(values, select_values={"sgd": sel}))["baselines"]["sgd"]
    f = f["selection"]["finalists"]
    assert f[0]["chosen"] and not f[1]["chosen"]
    assert f[1]["mean"] < f[0]["mean"] and f[1]["diverged"] == 1


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("rng_seed", range(4))
def test_tuned_selection_mean_never_worse_than_beta_09(direction, rng_seed):
    """Where β = 0.9 and the tuned β are both finalists with complete selection runs, the tuned
    one's selection mean is at least as good: the selection picked it (read from the summary)."""
    from tests.report_fixtures import synthetic_study

    r = synthetic_study(baselines=("sgd", "adamw"), seeds=3, trials=8, traces=False,
                        direction=direction, rng_seed=rng_seed)
    for b, e in analyse(r)["baselines"].items():
        fins = e["selection"]["finalists"]
        chosen = [f for f in fins if f["chosen"]]
        default = [f for f in fins if f["beta"] == 0.9 and f["lr"] == r.spec.train.lr[b]]
        assert len(chosen) == 1 and len(default) == 1, b
        assert chosen[0]["beta"] == e["tuned"]["beta"]
        assert chosen[0]["diverged"] == 0 and default[0]["diverged"] == 0
        if direction == "minimize":
            assert chosen[0]["mean"] <= default[0]["mean"]
        else:
            assert chosen[0]["mean"] >= default[0]["mean"]


# ---------------------------------------------------------------------------------------------
# Budgets grown on resume


def test_budget_changes_in_summary():
    values = {"sgd": {"adm": BASE, "tuned": BASE, "default": BASE}}
    r = results_from_values(values)
    assert analyse(r)["budget_changes"] == []
    r.budget_changes = [{"key": "seeds", "from": 5, "to": 20, "at": "2026-12-01T10:00:00+00:00"},
                        {"key": "trials", "from": 20, "to": 40, "at": "2026-12-02T08:00:00+00:00"}]
    s = analyse(r)
    keys = list(s)
    assert keys.index("budget_changes") == keys.index("wall_s") + 1
    assert keys[-2:] == ["complete", "progress"]  # then how far the study got
    assert s["budget_changes"] == r.budget_changes
