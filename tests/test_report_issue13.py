"""The statistics a reviewer signs off (issue 13), through the whole analysis on constructed studies:
divergence in both arms, degenerate samples, power, consistency rules, tuning over random orderings
and time to target. Every expected number is computed here with scipy / statsmodels directly."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from admtune.report import analyse, text
from admtune.report.analysis import summarise
from admtune.study.results import Run
from tests.report_fixtures import results_from_values

BASE5 = [0.30, 0.31, 0.29, 0.32, 0.30]


def entry(adm, tuned, **kw):
    values = {"sgd": {"adm": adm, "tuned": tuned, "default": [0.305] * len(tuned)}}
    s = analyse(results_from_values(values, **kw))
    json.dumps(s, allow_nan=False)  # whatever the case, the summary is valid JSON
    return s["baselines"]["sgd"]


# ---------------------------------------------------------------------------------------------
# 1. Divergence in both arms


def test_baseline_divergences_are_not_dropped_and_cannot_make_adm_lose():
    """The audit's case: the tuned arm diverged on 2 of 5 seeds, AdM never, AdM worse on the 3
    complete pairs. Dropping the two pairs read 'loses' (Holm p 0.0027); they count now."""
    tuned = [None, None, 0.29, 0.30, 0.31]
    adm = [0.35, 0.36, 0.33, 0.34, 0.35]  # worse than tuned on every complete pair
    e = entry(adm, tuned)
    assert e["verdict"] != "loses" and e["capped_by_baseline_divergence"]
    assert e["test"] == "wilcoxon, diverged worst" and e["test_n"] == 5
    # the two diverged seeds are AdM's best pairs (+big), the three complete ones its worst
    finite = np.array(tuned[2:]) - np.array(adm[2:])  # minimize: positive = AdM better
    d = np.r_[[2 * np.max(np.abs(finite)) + 1] * 2, finite]
    flips = sps.PermutationMethod(n_resamples=32)
    assert e["p_worse"] == pytest.approx(sps.wilcoxon(d, alternative="less", method=flips).pvalue)
    assert e["tuned"]["diverged"] == 2 and e["adm"]["diverged"] == 0
    ci = sps.binomtest(2, 5).proportion_ci(0.95, method="exact")
    assert e["tuned"]["diverged_ci"] == pytest.approx([ci.low, ci.high])
    assert e["p_divergence"] == pytest.approx(sps.fisher_exact([[0, 5], [2, 3]]).pvalue)
    assert "more often than AdM (2 of 5 runs against 0 of 5" in e["reason"]
    assert "AdM cannot lose" in e["reason"]


def test_adm_diverging_on_every_seed_loses():
    e = entry([None] * 5, BASE5)
    assert e["verdict"] == "loses" and e["decided_by_divergence"]
    p = sps.fisher_exact([[5, 0], [0, 5]]).pvalue  # 2/252
    # Holm family: two one-sided tests + the Fisher test of this baseline
    p_sided = [1.0, 1 / 32]
    assert e["p_better"] == pytest.approx(p_sided[0]) and e["p_worse"] == pytest.approx(p_sided[1])
    holm = multipletests(p_sided + [p], method="holm")[1]
    assert e["p_divergence_holm"] == pytest.approx(holm[2]) and holm[2] < 0.05
    assert "loses to" in e["reason"] and "diverged significantly less often" in e["reason"]
    assert e["adm"]["diverged_rate"] == 1.0


def test_tuned_diverging_on_every_seed_lets_adm_beat():
    e = entry(BASE5, [None] * 5)
    assert e["verdict"] == "beats" and e["decided_by_divergence"]


def test_fisher_test_only_joins_the_family_where_something_diverged():
    values = {"sgd": {"adm": [None] * 5, "tuned": BASE5, "default": BASE5},
              "adamw": {"adm": [b - 0.001 * k for k, b in enumerate(BASE5)], "tuned": BASE5,
                        "default": BASE5}}
    s = analyse(results_from_values(values))["baselines"]
    assert s["adamw"]["p_divergence"] is None and s["adamw"]["p_divergence_holm"] is None
    raw = [s[b][k] for b in ("sgd", "adamw") for k in ("p_better", "p_worse")]
    raw.append(s["sgd"]["p_divergence"])
    holm = multipletests(raw, method="holm")[1]
    got = [s[b][k] for b in ("sgd", "adamw") for k in ("p_better_holm", "p_worse_holm")]
    assert got + [s["sgd"]["p_divergence_holm"]] == pytest.approx(list(holm))
    assert s["sgd"]["power"]["alpha_directional"] == pytest.approx(0.05 / 5)


def test_reason_when_the_cap_applies_and_pairs_favour_adm():
    e = entry([None, None, 0.20, 0.21, 0.19], BASE5)
    assert e["capped_by_divergence"] and e["verdict"] in ("inconclusive", "loses")
    assert "The complete pairs favour AdM, but AdM diverged more often" in e["reason"]
    assert "so it cannot be a win." in e["reason"]


def test_reason_without_complete_pairs():
    e = entry([None, None, None], [0.3, 0.31, 0.29])
    assert e["diff"]["n"] == 0 and e["verdict"] == "inconclusive"
    assert "no seed on which both completed" in e["reason"]
    assert "AdM diverged more often than the tuned β (3 of 3 runs against 0 of 3" in e["reason"]


# ---------------------------------------------------------------------------------------------
# 2-4. Intervals, effect sizes, degenerate cases


def test_intervals_and_effect_sizes_are_the_paired_ones():
    rng = np.random.default_rng(11)
    tuned = 0.3 + 0.02 * rng.standard_normal(5)
    adm = tuned - 0.004 + 0.001 * rng.standard_normal(5)  # correlated: paired d_z large
    e = entry(list(adm), list(tuned), margin=0.001)
    d = tuned - adm  # minimize: positive = AdM better
    lo, hi = sps.ttest_1samp(d, 0).confidence_interval(0.95)
    assert e["diff"]["ci"] == pytest.approx([lo, hi]) and e["diff"]["bootstrap_ci"] == [None, None]
    lo, hi = sps.ttest_1samp(adm, 0).confidence_interval(0.95)
    assert e["adm"]["ci"] == pytest.approx([lo, hi])
    dz = d.mean() / d.std(ddof=1)
    j = math.gamma(2) / (math.sqrt(2) * math.gamma(1.5))
    assert e["effect_size"]["d_z"] == pytest.approx(dz) and e["effect_size"]["g_z"] == pytest.approx(j * dz)
    lo, hi = e["effect_size"]["d_z_ci"]
    t = dz * math.sqrt(5)
    assert sps.nct.cdf(t, 4, lo * math.sqrt(5)) == pytest.approx(0.975, abs=1e-6)
    assert sps.nct.cdf(t, 4, hi * math.sqrt(5)) == pytest.approx(0.025, abs=1e-6)
    assert "noncentral t" in e["effect_size"]["formula"]
    wins = int((d > 0).sum())
    assert e["win_rate"]["value"] == wins / 5
    ci = sps.binomtest(wins, 5).proportion_ci(0.95, method="exact")
    assert e["win_rate"]["ci"] == pytest.approx([ci.low, ci.high])
    u = sps.mannwhitneyu(-adm, -tuned).statistic / 25
    assert e["prob_improvement"] == pytest.approx(u)
    assert 0 <= e["prob_improvement_ci"][0] <= u <= e["prob_improvement_ci"][1] <= 1


def test_constant_tiny_difference_from_two_seeds_never_beats():
    e = entry([0.3 - 1e-9, 0.31 - 1e-9], [0.3, 0.31], margin=1e-12)
    assert e["test"] == "sign test" and e["p_better"] == pytest.approx(0.25)
    assert e["verdict"] == "inconclusive" and e["p_better_holm"] == pytest.approx(0.5)


@pytest.mark.parametrize("scale", [1e-13, 1e300])
def test_scale_does_not_change_the_tests(scale):
    tuned = np.array([3.0, 3.1, 2.9, 3.2, 3.05])
    adm = tuned - np.array([0.2, 0.1, 0.3, 0.15, 0.25])
    ref = entry(list(adm), list(tuned), margin=0.1)
    e = entry(list(adm * scale), list(tuned * scale), margin=0.1 * scale)
    p = sps.ttest_rel(adm, tuned, alternative="less").pvalue
    assert e["p_better"] == pytest.approx(p) and ref["p_better"] == pytest.approx(p)
    assert e["verdict"] == ref["verdict"] == "beats"
    assert e["effect_size"]["g_z"] == pytest.approx(ref["effect_size"]["g_z"])
    assert e["p_tost"] == pytest.approx(ref["p_tost"])


def test_numbers_print_with_significant_digits():
    assert text.fmt(1.234e-13, decimals=8) == "1.234e−13"
    assert text.fmt(1.5e300, decimals=2) == "1.5e+300"
    assert text.fmt(0.1234, decimals=2) == "0.12"
    assert text.fmt(0.0, decimals=3) == "0.000"


def test_margin_must_be_positive():
    r = results_from_values({"sgd": {"adm": BASE5, "tuned": BASE5, "default": BASE5}})
    for bad in (0.0, -0.1, None):
        spec = replace(r.spec, margin=bad)
        with pytest.raises(ValueError, match="margin"):
            summarise(replace(r, spec=spec))


# ---------------------------------------------------------------------------------------------
# 5-6. Power and what n cannot do


def test_power_and_minimum_wilcoxon_p():
    tuned = [0.30, 0.31, 0.29, 0.32, 0.30]
    adm = [0.305, 0.30, 0.297, 0.33, 0.296]
    e = entry(adm, tuned, margin=0.01)
    assert e["p_wilcoxon_min"] == pytest.approx(2 / 32)
    d = np.array(tuned) - np.array(adm)
    sd = d.std(ddof=1)
    mde_z = TTestPower().solve_power(effect_size=None, nobs=5, alpha=0.05 / 2, power=0.8,
                                     alternative="larger")
    pw = e["power"]
    assert pw["mde_z"] == pytest.approx(mde_z) and pw["mde"] == pytest.approx(mde_z * sd)
    m_z = 0.01 / sd
    bound = 2 * TTestPower().power(effect_size=m_z, nobs=5, alpha=0.05, alternative="larger") - 1
    assert pw["tost_power"] == pytest.approx(max(0.0, bound))
    assert pw["underpowered"] is True
    if e["verdict"] == "inconclusive":
        lo, hi = pw["seeds_to_resolve_range"]
        assert lo is not None and lo <= e["seeds_to_resolve"] and e["seeds_to_resolve"] >= 6
        assert hi is None or hi >= e["seeds_to_resolve"]
        assert "could detect, with 80 % power, only a difference of" in e["reason"]


def test_underpowered_study_says_so_on_page_one():
    r = results_from_values({"sgd": {"adm": [0.305, 0.30, 0.297, 0.33, 0.296],
                                      "tuned": [0.30, 0.31, 0.29, 0.32, 0.30],
                                      "default": BASE5}})
    e = summarise(r).baselines["sgd"]
    note = text.power_note(e, 0.01)
    assert e.power.tost_power < 0.8
    assert "underpowered for its own margin" in note
    assert f"with only {round(100 * e.power.tost_power)} % power" in note
    # enough TOST power, but the margin is below what the study detects: only that is said
    enough = replace(e, power=replace(e.power, tost_power=0.85, mde=0.02, underpowered=True))
    note = text.power_note(enough, 0.01)
    assert "power" in note and "with only" not in note and "larger than δ" in note


# ---------------------------------------------------------------------------------------------
# 7. Consistency


def _trials(results, values, betas):
    runs = [r for r in results.runs if r.arm != "trial"]
    for k, (v, beta) in enumerate(zip(values, betas, strict=True)):
        status = "failed" if v == "failed" else "complete"
        runs.append(Run(study=results.name, baseline="sgd", arm="trial", seed=10000 + k, beta=beta,
                        lr=0.1, metric="val_loss", value=None if status == "failed" else v,
                        status=status, steps=100, wall_s=1.0, trial_number=k))
    return replace(results, runs=runs)


def test_best_trial_ties_go_to_the_earliest_and_failed_and_nan_trials_count_right():
    r = results_from_values({"sgd": {"adm": BASE5, "tuned": BASE5, "default": BASE5}})
    r = _trials(r, [0.5, 0.2, 0.2, "failed", math.nan], [0.1, 0.7, 0.8, 0.5, 0.6])
    t = analyse(r)["baselines"]["sgd"]["tuning"]
    assert t["best_beta"] == 0.7  # the earlier of the two equal trials, as the engine picks
    assert t["failed"] == 1 and t["trials"] == 4  # the failed trial is retried, not counted
    assert t["complete"] == 3 and t["diverged"] == 1  # the NaN trial is diverged only


# ---------------------------------------------------------------------------------------------
# 8. Tuning saved over random orderings


def test_trials_to_match_over_orderings_is_exact():
    import itertools

    values = {"sgd": {"adm": [0.3] * 3, "tuned": [0.3] * 3, "default": [0.3] * 3}}
    val = {"sgd": {"adm": [0.34, 0.35, 0.36]}}  # AdM's validation mean: 0.35
    trials = [0.5, None, 0.36, 0.35, 0.2]
    r = results_from_values(values, val_values=val, trial_values={"sgd": trials})
    t = analyse(r)["baselines"]["sgd"]["tuning"]
    good = [v is not None and v <= 0.35 + 1e-9 for v in trials]
    firsts = sorted(next(i + 1 for i, k in enumerate(p) if good[k])
                    for p in itertools.permutations(range(5)))
    o = t["trials_to_match_orderings"]
    assert o["mean"] == pytest.approx(np.mean(firsts)) and o["good"] == 2
    assert o["median"] == int(np.quantile(firsts, 0.5, method="inverted_cdf"))
    assert o["ci"] == [int(np.quantile(firsts, 0.025, method="inverted_cdf")),
                       int(np.quantile(firsts, 0.975, method="inverted_cdf"))]
    bsf = t["best_so_far"]
    assert bsf["k"] == [1, 2, 3, 4, 5] and bsf["in_order"] == [0.5, 0.5, 0.36, 0.35, 0.2]
    assert bsf["median"][-1] == 0.2  # all five trials: the best of them


# ---------------------------------------------------------------------------------------------
# 9. Time to target


def test_time_to_target_from_the_validation_curves():
    r = results_from_values({"sgd": {"adm": BASE5[:4], "tuned": BASE5[:4], "default": BASE5[:4]}})
    steps = [0, 10, 20, 30, 40]
    tuned_final = [0.20, 0.22, 0.18, 0.20]  # mean 0.20: the target
    curves = {
        "tuned": [[1.0, 0.6, 0.4, 0.25, 0.20], [1.0, 0.6, 0.4, 0.30, 0.22],
                  [1.0, 0.5, 0.19, 0.18, 0.18], [1.0, 0.6, 0.4, 0.2, 0.20]],
        "adm": [[1.0, 0.3, 0.2, 0.19, 0.18], [1.0, 0.5, 0.3, 0.25, 0.24],
                [1.0, 0.2, 0.15, 0.15, 0.15], [1.0, 0.4, 0.19, 0.19, 0.19]],
    }
    runs = []
    for run in r.runs:
        if run.arm in curves:
            i = run.seed - 1000
            c = curves[run.arm][i]
            run = replace(run, val_curve={"step": steps, "value": c},
                          val_value=tuned_final[i] if run.arm == "tuned" else c[-1])
        runs.append(run)
    e = analyse(replace(r, runs=runs))["baselines"]["sgd"]
    ttt = e["time_to_target"]
    assert ttt["target"] == pytest.approx(0.20)
    assert ttt["adm_steps"] == [20, None, 10, 20] and ttt["tuned_steps"] == [40, None, 20, 30]
    assert ttt["adm_never"] == 0 and ttt["both_never"] == 1 and ttt["pairs"] == 3
    logs = np.log([20 / 40, 10 / 20, 20 / 30])
    lo, hi = sps.ttest_1samp(logs, 0).confidence_interval(0.95)
    assert ttt["ratio"] == pytest.approx(math.exp(logs.mean()))
    assert ttt["ratio_ci"] == pytest.approx([math.exp(lo), math.exp(hi)])
