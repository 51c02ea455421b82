"""admtune suite: the aggregate statistics against scipy/statsmodels computed here, a suite of
planted-effect studies end to end, and a rebuild from storage that reproduces suite.json."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from admtune import api
from admtune.cli import app
from admtune.errors import AdmtuneError, SpecError
from admtune.report.suite import stats

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# the statistics, each against its library definition


@pytest.mark.parametrize("seed", range(5))
def test_pair_probability_is_mann_whitney_u_over_nm(seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=7), 1)  # rounded: ties
    y = np.round(rng.normal(0.3, size=9), 1)
    u = sps.mannwhitneyu(x, y, alternative="two-sided").statistic
    assert stats.pair_probability(x, y) == pytest.approx(u / (x.size * y.size), abs=1e-12)
    # NaN (excluded runs) are left out, as if absent
    assert stats.pair_probability(np.r_[x, np.nan], np.r_[np.nan, y]) == \
        pytest.approx(u / (x.size * y.size), abs=1e-12)


def test_aggregate_probability_is_the_mean_over_tasks_and_its_ci_covers_it():
    rng = np.random.default_rng(1)
    tasks = [stats.Task("s", f"b{i}", 1.0, rng.normal(d, 1, 10), rng.normal(0, 1, 10),
                        rng.normal(0, 1, 10)) for i, d in enumerate((-1.0, 0.0, 1.0, 2.0))]
    est = stats.aggregate_poi(tasks)
    per_task = [sps.mannwhitneyu(t.adm, t.tuned).statistic / 100 for t in tasks]
    assert est.value == pytest.approx(np.mean(per_task))
    assert est.lo < est.value < est.hi
    # stratified: resampling within tasks only, so a task's own spread bounds the interval width
    assert est.hi - est.lo < 0.35


def test_scores_iqm_is_scipy_trim_mean_of_the_pooled_runs():
    rng = np.random.default_rng(2)
    sets = [rng.normal(size=10), rng.normal(1, 2, size=8)]
    agg = stats.aggregate_scores(sets)
    pooled = np.concatenate(sets)
    assert agg["iqm"].value == pytest.approx(sps.trim_mean(pooled, 0.25))
    assert agg["median"].value == pytest.approx(np.median(pooled))
    assert agg["mean"].value == pytest.approx(np.mean(pooled))
    for e in agg.values():
        assert e.lo <= e.value <= e.hi


def test_normalised_scores_in_margins_with_divergence_and_exclusion():
    t = stats.Task("s", "b", 0.5, np.array([1.0, -np.inf, 2.0, np.nan, -np.inf]),
                   np.array([0.5, 1.0, -np.inf, 1.0, -np.inf]), np.zeros(5))
    s = stats.normalised_scores(t)
    assert s.tolist() == [1.0, -np.inf, np.inf, 0.0]  # the excluded seed left out


def test_adjust_is_statsmodels_and_keeps_missing_tests_out():
    p = [0.01, None, 0.04, 0.03, float("nan"), 0.2]
    ok = [0.01, 0.04, 0.03, 0.2]
    for method in ("holm", "fdr_bh"):
        want = multipletests(ok, method=method)[1]
        got = stats.adjust(p, method)
        assert got[1] is None and got[4] is None
        assert [got[i] for i in (0, 2, 3, 5)] == pytest.approx(list(want))


def test_summed_trials_to_match_is_the_exact_sum_distribution():
    counts = [(6, 2), (5, 1), (4, 0), (3, 3)]
    cost = stats.sum_trials_to_match(counts)
    assert cost.comparisons == 3 and cost.never == 1
    # mean of a sum = sum of means (n+1)/(g+1)
    assert cost.mean == pytest.approx(sum((n + 1) / (g + 1) for n, g in counts if g))
    rng = np.random.default_rng(0)
    sims = np.zeros(20000)
    for n, g in counts:
        if g:
            orders = rng.random((20000, n)).argsort(axis=1)
            sims += (orders < g).argmax(axis=1) + 1  # position of the first good trial
    assert abs(np.median(sims) - cost.median) <= 1
    assert np.mean(sims <= cost.hi) >= 0.97 and np.mean(sims < cost.lo) <= 0.03


def test_performance_profile_counts_tasks_within_tau():
    rho = stats.performance_profile([0.0, 0.5, 2.0, math.inf], np.array([0.0, 0.5, 1.0, 3.0]))
    assert rho.tolist() == [0.25, 0.5, 0.5, 0.75]


def _profile_of_means(tasks, taus):
    """The profile each arm gets from its tasks' arm means (finished runs only), via stats.gaps."""
    out = {}
    for arm in stats.ARMS:
        g = []
        for t in tasks:
            means = {a: (float(np.mean(t.arm(a)[np.isfinite(t.arm(a))]))
                         if np.isfinite(t.arm(a)).any() else None) for a in stats.ARMS}
            g.append(stats.gaps(means, t.margin)[arm])
        out[arm] = stats.performance_profile(g, taus)
    return out


def test_profile_bands_bracket_the_profile_and_collapse_without_noise():
    rng = np.random.default_rng(3)
    taus = np.linspace(0, 3, 31)
    tasks = [stats.Task("s", f"b{i}", 0.5, rng.normal(d, 0.4, 8), rng.normal(0, 0.4, 8),
                        np.r_[rng.normal(-0.5, 0.4, 7), -np.inf])  # a diverged β = 0.9 run
             for i, d in enumerate((-1.0, -0.1, 0.0, 0.6))]
    bands = stats.profile_bands(tasks, taus)
    for arm, rho in _profile_of_means(tasks, taus).items():
        lo, hi = bands[arm]
        assert np.all(lo <= rho + 1e-12) and np.all(rho <= hi + 1e-12), arm
        assert np.any(hi - lo > 0), arm  # seed noise does move the profile
    # identical seeds: every resample is the original, so the band is the profile itself
    flat = [stats.Task("s", "b", 1.0, np.full(5, 0.3), np.full(5, 0.0), np.full(5, -2.0))]
    flat_bands = stats.profile_bands(flat, taus)
    for arm, rho in _profile_of_means(flat, taus).items():
        assert flat_bands[arm][0].tolist() == rho.tolist() == flat_bands[arm][1].tolist()
    one_seed = [stats.Task("s", "b", 1.0, np.ones(1), np.zeros(1), np.zeros(1))]
    assert stats.profile_bands(one_seed, taus) is None


def test_profile_band_of_one_task_is_the_percentiles_of_its_seed_bootstrap():
    # One task: rho(tau) of an arm is 0 or 1 in each resample, so the band's ends are 1 exactly
    # where P_boot(gap <= tau) exceeds 2.5 % (upper end) or 97.5 % (lower end). That probability
    # is estimated here by resampling the seeds in a plain loop.
    rng = np.random.default_rng(4)
    task = stats.Task("s", "b", 0.25, rng.normal(0.1, 0.5, 10), rng.normal(0.0, 0.5, 10),
                      rng.normal(-0.2, 0.5, 10))
    taus = np.linspace(0, 2, 41)
    lo, hi = {}, {}
    for arm, (a, b) in stats.profile_bands([task], taus).items():
        lo[arm], hi[arm] = a, b
    x = task.stacked()
    boot = np.random.default_rng(5)
    within = {a: np.zeros(taus.size) for a in stats.ARMS}
    n = 4000
    for _ in range(n):
        m = x[:, boot.integers(0, x.shape[1], x.shape[1])].mean(axis=1)
        g = (m.max() - m) / task.margin
        for i, a in enumerate(stats.ARMS):
            within[a] += g[i] <= taus + 1e-12
    checked = 0
    for a in stats.ARMS:
        p = within[a] / n
        for k in range(taus.size):
            for level, end in ((0.025, hi[a][k]), (0.975, lo[a][k])):
                if abs(p[k] - level) > 0.012:  # clear of the threshold (Monte Carlo error ~0.004)
                    assert end == float(p[k] > level), (a, taus[k], p[k], level, end)
                    checked += 1
    assert checked > 150


# ---------------------------------------------------------------------------------------------
# a suite of planted effects, end to end

PLANTED = """
name = "{name}"
metric = "loss"
direction = "minimize"
margin = 0.2
baselines = ["sgd"]
trials = 4
seeds = 12
[train]
steps = 1
batch_size = 1
lr = {{ sgd = 0.1, adamw = 0.01 }}
[tune]
finalists = 2
selection_seeds = 2
[workload]
name = "tests.planted_workload:planted"
shift = {shift}
"""
SHIFTS = {"better": 0.5, "worse": -0.5, "equal": 0.0}


@pytest.fixture(scope="module")
def planted_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    import os
    import sys

    old = os.getcwd()
    os.chdir(root)
    sys.path.insert(0, str(REPO))
    try:
        (root / "studies" / "suites").mkdir(parents=True)
        for name, shift in SHIFTS.items():
            (root / "studies" / f"{name}.toml").write_text(PLANTED.format(name=name, shift=shift))
        (root / "studies" / "suites" / "planted.toml").write_text(
            'name = "planted"\n' + "".join(f'[[study]]\nspec = "{n}"\n' for n in SHIFTS))
        outcome = api.run_suite("planted", root=root / "reports", device="cpu", pdf=False)
        yield root, outcome
    finally:
        os.chdir(old)
        sys.path.remove(str(REPO))


def test_planted_effects_give_the_expected_matrix(planted_suite):
    _, outcome = planted_suite
    assert outcome.complete
    verdicts = {c["study"]: (c["verdict"], c["suite_verdict"]) for c in outcome.suite["comparisons"]}
    assert verdicts == {"better": ("beats", "beats"), "worse": ("loses", "loses"),
                        "equal": ("matches", "matches")}


def test_aggregate_probability_ci_contains_the_planted_value(planted_suite):
    _, outcome = planted_suite
    planted = np.mean([sps.norm.cdf(s / (0.1 * math.sqrt(2))) for s in SHIFTS.values()])
    poi = outcome.suite["prob_improvement"]["sgd"]["adm_vs_tuned"]
    assert poi["ci"][0] <= planted <= poi["ci"][1], poi
    for c in outcome.suite["comparisons"]:
        truth = sps.norm.cdf(SHIFTS[c["study"]] / (0.1 * math.sqrt(2)))
        lo, hi = c["prob_improvement"]["ci"]
        assert lo - 0.05 <= truth <= hi + 0.05


def test_suite_holm_is_statsmodels_over_every_comparison(planted_suite):
    _, outcome = planted_suite
    cs = outcome.suite["comparisons"]
    raw = [p for c in cs for p in (c["p_better"], c["p_worse"], c["p_divergence"]) if p is not None]
    adj = iter(multipletests(raw, method="holm")[1])
    for c in cs:
        for key in ("p_better", "p_worse", "p_divergence"):
            if c[key] is not None:
                assert c[key + "_suite"] == pytest.approx(next(adj), rel=1e-9)
    assert outcome.suite["multiplicity"]["tests"] == len(raw)


# The committed cpu suite's byte-for-byte rebuild (below) and test_check_suite's "--from never
# trains" cover the same in CI; this planted one, a minute on its own, runs with nox -s slow.
@pytest.mark.slow
def test_a_rebuild_from_storage_reproduces_suite_json_and_never_trains(planted_suite):
    root, outcome = planted_suite
    before = (outcome.out_dir / "suite.json").read_bytes()
    dbs = {p: p.stat().st_mtime_ns for p in (root / "reports").glob("*/study.db")}
    out, _ = api.rebuild_suite(api.load_suite(str(root / "studies/suites/planted.toml")),
                               root=root / "reports", pdf=False)
    assert (out / "suite.json").read_bytes() == before
    folders = [str(root / "reports" / n) for n in SHIFTS]
    result = CliRunner().invoke(app, ["suite", "--from", *folders, "--name", "planted",
                                      "--out", str(root / "from"), "--no-pdf"])
    assert result.exit_code == 0, result.output
    a = json.loads((root / "from" / "suite.json").read_text())
    b = json.loads(before)
    for key in ("comparisons", "prob_improvement", "scores", "profiles", "tuning_cost"):
        assert a[key] == b[key]
    assert {p: p.stat().st_mtime_ns for p in dbs} == dbs  # --from read the storages only


def test_suite_from_refuses_what_is_not_a_finished_study(tmp_path, planted_suite):
    root, _ = planted_suite
    with pytest.raises(SpecError, match="not a folder"):
        api.suite_from_folders([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="spec.toml"):
        api.suite_from_folders([tmp_path / "empty"])
    with pytest.raises(SpecError, match="both hold study"):
        api.suite_from_folders([root / "reports" / "better", root / "reports" / "better"])
    result = CliRunner().invoke(app, ["suite", "nosuch"])
    assert result.exit_code == 2 and "unknown suite 'nosuch'" in result.output


def test_a_suite_entry_that_cannot_run_stops_before_any_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies" / "suites").mkdir(parents=True)
    (tmp_path / "studies" / "suites" / "mixed.toml").write_text(
        '[[study]]\nspec = "quick"\n[[study]]\nspec = "quick"\n')
    with pytest.raises(SpecError, match="both study 'quick'"):
        api.load_suite("mixed")
    (tmp_path / "studies" / "suites" / "mixed.toml").write_text(
        '[[study]]\nspec = "quick"\n[[study]]\nspec = "cifar"\n')
    with pytest.raises(AdmtuneError):
        api.run_suite("mixed", root=tmp_path / "reports", device="cpu")
    assert not (tmp_path / "reports").exists()


def test_the_bundled_suites_resolve():
    assert [s.name for s in api.load_suite("cpu").studies] == \
        ["quick", "convex-logreg", "convex-lsq", "convex-quad", "mlp"]
    assert [s.name for s in api.load_suite("gpu").studies] == ["cifar", "cifar100", "lm"]


def test_the_committed_cpu_suite_rebuilds_from_the_committed_studies(tmp_path, monkeypatch):
    # Rebuilt from a copy in another place: suite.json must not depend on where the checkout lives
    # (CI clones elsewhere; an absolute storage path once broke this).
    names = ("quick", "convex-logreg", "convex-lsq", "convex-quad", "mlp")
    elsewhere = tmp_path / "elsewhere"
    for n in names:
        shutil.copytree(REPO / "reports" / "examples" / n, elsewhere / "reports" / "examples" / n)
    monkeypatch.chdir(elsewhere)  # the committed suite.json records the folders as given, relative
    committed = REPO / "reports" / "examples" / "suites" / "cpu" / "suite.json"
    out, _ = api.suite_from_folders([f"reports/examples/{n}" for n in names], name="cpu",
                                    root="reports/examples", out=tmp_path / "cpu", pdf=False)
    assert (out / "suite.json").read_bytes() == committed.read_bytes()
    assert (out / "suite.md").read_bytes() == (committed.parent / "suite.md").read_bytes()


def test_readme_holds_the_committed_suite_md_unchanged():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    md = (REPO / "reports" / "examples" / "suites" / "cpu" / "suite.md").read_text(encoding="utf-8")
    start = readme.index("<!-- suite.md of reports/examples/suites/cpu: generated, do not edit by hand -->\n")
    block = readme[readme.index("\n", start) + 1:readme.index("<!-- end of suite.md -->")]
    assert block == md


def test_suite_md_tables_hold_every_comparison_and_group():
    suite = json.loads((REPO / "reports" / "examples" / "suites" / "cpu" / "suite.json").read_text())
    md = (REPO / "reports" / "examples" / "suites" / "cpu" / "suite.md").read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    matrix = rows[1:1 + len(suite["comparisons"])]
    for line, c in zip(matrix, suite["comparisons"], strict=True):
        cells = [x.strip() for x in line.strip("|").split("|")]
        assert cells[0].split(" ")[0] == c["study"]
        assert c["suite_verdict"] in cells[2]
        assert cells[5].endswith(f"({c['tuned_beta']:.3f})")
    groups = rows[2 + len(suite["comparisons"]):]
    assert [g.split("|")[1].split("(")[1].strip(" )") for g in groups] == \
        [str(p["comparisons"]) for p in suite["prob_improvement"].values()]


def test_check_resumes_the_suite_and_gates_on_its_aggregate(planted_suite, tmp_path):
    import optuna

    root, outcome = planted_suite

    def trials() -> dict[str, int]:
        counts = {}
        for db in (root / "reports").glob("*/study.db"):
            url = f"sqlite:///{db}"
            for s in optuna.get_all_study_summaries(url):
                counts[f"{db.parent.name}/{s.study_name}"] = s.n_trials
        return counts

    before = trials()
    assert sum(before.values()) >= 3 * (4 + 36)  # tuning and evaluation runs of 3 studies
    suite_file = str(root / "studies" / "suites" / "planted.toml")
    holds = tmp_path / "holds.toml"
    holds.write_text('[suite]\nprob_improvement_ci_low_at_least = 0.2\nmax_loses = 1\n'
                     '[studies.better]\nsgd = ["beats"]\n[studies.worse]\nsgd = ["loses"]\n')
    args = ["check", suite_file, "--root", str(root / "reports"), "--device", "cpu", "--no-pdf",
            "--out", str(tmp_path / "suite")]
    result = CliRunner().invoke(app, [*args, "--expect", str(holds)])
    assert result.exit_code == 0, result.output
    assert "OK all 4 expectations hold (suite planted" in result.output
    short = tmp_path / "short.toml"
    short.write_text("[suite]\nmax_loses = 0\n")
    # the suite.json the first check wrote (resuming the studies again would only take time)
    result = CliRunner().invoke(app, ["check", suite_file, "--from", str(tmp_path / "suite"),
                                      "--expect", str(short)])
    assert result.exit_code == 1, result.output
    assert "observed 1 suite-level 'loses' verdicts (worse/sgd)" in result.output
    assert trials() == before  # the finished studies were resumed: no new trial, no training
