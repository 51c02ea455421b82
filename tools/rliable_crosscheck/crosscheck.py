"""Recompute admtune's suite aggregates with rliable 1.2.0 and compare them to admtune's numbers.

Run with the side venv (rliable, no torch):
    python tools/rliable_crosscheck/crosscheck.py [REPS] [WORKDIR]   # default WORKDIR: rliable-crosscheck
Inputs: tasks.npz and admtune_numbers.json written by export.py (project venv).

Notes on rliable 1.2.0 found by reading its source:
* StratifiedBootstrap / StratifiedIndependentBootstrap draw their indices with the *global*
  np.random.choice; the random_state argument is ignored. So each run is seeded by np.random.seed.
* metrics.aggregate_median is the median of per-task MEANS (not of pooled runs);
  aggregate_mean is the mean of per-task means (= pooled mean when every task has equal runs);
  aggregate_iqm is trim_mean(.., 0.25, axis=None) over all runs pooled.
* probability_of_improvement(X, Y) is mean over tasks of MannWhitneyU(X_m, Y_m)/(n m) (ties 1/2);
  through get_interval_estimates with [X, Y] it uses StratifiedIndependentBootstrap: X and Y are
  resampled INDEPENDENTLY (no seed pairing).
To separate definition from resampling, rliable's own StratifiedBootstrap is also run on a
(runs x tasks) matrix of seed indices, with the statistic gathering every arm at the resampled
seeds: that is a paired, within-task resampling done by rliable's machinery.
"""
import json
import sys
import warnings

import numpy as np
from rliable import library as rly
from rliable import metrics

warnings.filterwarnings("ignore")
HERE = sys.argv[2] if len(sys.argv) > 2 else "rliable-crosscheck"
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
SEEDS = (0, 1, 2)

z = np.load(f"{HERE}/tasks.npz")
ours = json.load(open(f"{HERE}/admtune_numbers.json"))
baseline, margin = z["baseline"], z["margin"]
X = {a: z[a].T.astype(float) for a in ("adm", "tuned", "default")}     # (runs, tasks)
n_runs, n_tasks = X["adm"].shape
for a, v in X.items():
    assert np.isfinite(v).all(), f"{a}: non-finite runs: the handling below would need care"
print(f"{n_tasks} tasks, {n_runs} seeds each (every task the same: a plain runs x tasks matrix); "
      "no NaN/-inf run, so no run is dropped and admtune's NaN/-inf rules never fire")
groups = {"sgd": np.flatnonzero(baseline == "sgd"), "adamw": np.flatnonzero(baseline == "adamw"),
          "all": np.arange(n_tasks)}
S = {a: (X[a] - X["tuned"]) / margin[None, :] for a in ("adm", "default")}  # normalised scores

rows = []  # (label, admtune value, admtune ci, rliable value, [ci per seed])


def run(score_dict, func):
    vals, cis = None, []
    for s in SEEDS:
        np.random.seed(s)
        p, ci = rly.get_interval_estimates(score_dict, func, reps=REPS)
        k = next(iter(score_dict))
        vals, cis = p[k], cis + [ci[k]]
    return np.asarray(vals), np.asarray(cis)  # (q,), (seeds, 2, q)


# ---- IQM, mean, median of normalised scores ------------------------------------------------------
def score_func(x):
    return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x),
                     metrics.aggregate_median(x),                  # rliable: median of task means
                     np.median(x, axis=None)])                     # admtune: median of pooled runs


SCORE_NAMES = ["iqm", "mean", "median (rliable: of task means)", "median (pooled runs, rliable bs)"]
for g, idx in groups.items():
    for arm in ("adm", "default"):
        v, ci = run({arm: S[arm][:, idx]}, score_func)
        for q, name in enumerate(SCORE_NAMES):
            key = name.split()[0] if q < 3 else "median"
            a = ours["scores"][g][arm][key]
            rows.append((f"{g:5s} {arm} {name}", a, v[q], ci[:, :, q],
                         ours["mc_seeds"][f"{g}/{arm}/{key}"]))


# ---- probability of improvement -------------------------------------------------------------------
def poi_fast(x, y):
    """= metrics.probability_of_improvement (U/(n m), ties 1/2, mean over tasks), as a pair count:
    rliable's own function calls scipy's mannwhitneyu per task (~19 ms per resample); it is run
    once per group below (seed 0, adm>tuned) on the same resamples to show the CIs are identical."""
    w = (x[:, None, :] > y[None, :, :]) + 0.5 * (x[:, None, :] == y[None, :, :])
    return np.array([w.mean((0, 1)).mean()])


def paired_poi(xa, xb):
    def f(ix):  # ix: resampled seed indices per task (runs, tasks)
        cols = np.arange(ix.shape[1])[None, :]
        a, b = xa[ix, cols], xb[ix, cols]
        p = ((a[:, None, :] > b[None, :, :]) + 0.5 * (a[:, None, :] == b[None, :, :])).mean((0, 1))
        return np.array([p.mean()])
    return f


for g, idx in groups.items():
    for a, b in (("adm", "tuned"), ("adm", "default"), ("tuned", "default")):
        xa, xb = X[a][:, idx], X[b][:, idx]
        ref = ours["prob_improvement"][g][f"{a}_vs_{b}"]
        mc = ours["mc_seeds"][f"{g}/poi/{a}_vs_{b}"]
        v, ci = run({"poi": [xa, xb]}, poi_fast)
        assert abs(metrics.probability_of_improvement(xa, xb) - v[0]) < 1e-15
        if (a, b) == ("adm", "tuned"):  # rliable's own (slow, Mann-Whitney) function, seed 0
            np.random.seed(SEEDS[0])
            pe, ce = rly.get_interval_estimates(
                {"poi": [xa, xb]}, lambda x, y: np.array([metrics.probability_of_improvement(x, y)]),
                reps=REPS)
            exact = float(np.max(np.abs(ce["poi"][:, 0] - ci[0, :, 0])))
            print(f"{g}: rliable metrics.probability_of_improvement vs the pair-count function on "
                  f"the same resamples (seed {SEEDS[0]}): max |dCI| = {exact:.1e}")
            assert exact < 1e-12
        rows.append((f"{g:5s} POI {a}>{b} (rliable, unpaired)", ref, v[0], ci[:, :, 0], mc))
        ix = np.tile(np.arange(n_runs)[:, None], (1, len(idx)))
        v, ci = run({"poi": ix}, paired_poi(xa, xb))
        rows.append((f"{g:5s} POI {a}>{b} (rliable bs, paired)", ref, v[0], ci[:, :, 0], mc))


# ---- print ----------------------------------------------------------------------------------------
def f(x):
    return f"{x: .5f}"


print(f"\nreps={REPS}; rliable seeds {SEEDS} (np.random.seed); admtune: seed 20211206, 5000 "
      "resamples (MC: its CI with seeds 1,2,3)")
hdr = (f"{'quantity':48s} {'admtune value':>14s} {'admtune 95% CI':>22s} {'rliable value':>14s} "
       f"{'rliable 95% CI (seed 0)':>22s} {'|dv|':>8s} {'max|dCI|':>8s} {'MC rl':>7s} {'MC adm':>7s}")
print(hdr)
out = []
for label, a, v, ci, mc in rows:
    lo, hi = a["ci"]
    mcr = float(np.max(ci.max(0) - ci.min(0)))                    # spread over rliable seeds
    allm = np.array([[m["ci"][0], m["ci"][1]] for m in mc] + [[lo, hi]])
    mca = float(np.max(allm.max(0) - allm.min(0)))               # spread over admtune seeds
    dci = float(np.max(np.abs(ci.mean(0) - np.array([lo, hi]))))  # rliable (3-seed mean) vs admtune
    dv = abs(v - a["value"])
    print(f"{label:48s} {f(a['value']):>14s} [{f(lo)},{f(hi)}] {f(v):>14s} "
          f"[{f(ci[0, 0])},{f(ci[0, 1])}] {dv:8.1e} {dci:8.4f} {mcr:7.4f} {mca:7.4f}")
    out.append({"quantity": label, "admtune": a, "rliable_value": float(v),
                "rliable_ci_per_seed": ci.tolist(), "abs_diff_value": dv,
                "max_abs_diff_ci_vs_rliable_seed_mean": dci, "mc_spread_rliable": mcr,
                "mc_spread_admtune": mca})


# ---- performance profiles -------------------------------------------------------------------------
# admtune's profile: fraction of TASKS whose arm mean is within tau margins of the best arm's mean
# (Dolan-More style, across arms). rliable's create_performance_profile: per algorithm, fraction of
# RUNS (or task means) whose score exceeds tau. Different quantities; the closest rliable analogue is
# run with a custom profile function on seed indices (paired, within-task), and compared to
# admtune's point profile and to the working tree's (uncommitted) profile_bands if exported.
taus = np.array(ours["profiles"]["taus"])
ARMS = ("adm", "tuned", "default")


def profile(ix, taus=taus):
    cols = np.arange(ix.shape[1])[None, :]
    means = np.stack([X[a][ix, cols].mean(0) for a in ARMS])      # (arms, tasks)
    g = (means.max(0, keepdims=True) - means) / margin[None, :]
    return ((g[:, None, :] <= taus[None, :, None] + 1e-12).mean(-1)).ravel()   # (arms*taus,)


ix = np.tile(np.arange(n_runs)[:, None], (1, n_tasks))
pt = profile(ix).reshape(3, -1)
print("\nperformance profile (admtune definition) recomputed vs admtune:",
      {a: float(np.max(np.abs(pt[i] - np.array(ours["profiles"][a])))) for i, a in enumerate(ARMS)})
np.random.seed(0)
_, pci = rly.get_interval_estimates({"p": ix}, lambda i: profile(i), reps=REPS)
pci = pci["p"].reshape(2, 3, -1)
np.random.seed(1)
_, pci1 = rly.get_interval_estimates({"p": ix}, lambda i: profile(i), reps=REPS)
pci1 = pci1["p"].reshape(2, 3, -1)
prof_out = {"point_max_abs_diff": {a: float(np.max(np.abs(pt[i] - np.array(ours["profiles"][a]))))
                                   for i, a in enumerate(ARMS)}}
if "profile_bands" in ours:
    for i, a in enumerate(ARMS):
        lo, hi = np.array(ours["profile_bands"][a]["lo"]), np.array(ours["profile_bands"][a]["hi"])
        d = np.abs(np.stack([pci[0, i] - lo, pci[1, i] - hi]))
        d01 = np.abs(pci[:, i] - pci1[:, i])
        # profile values are multiples of 1/10 (10 tasks): a band end differs by whole steps
        print(f"  bands {a:8s}: taus where a band end differs from admtune's profile_bands: "
              f"{int((d.max(0) > 1e-9).sum())}/{taus.size} (max {d.max():.2f}); "
              f"rliable seed 0 vs seed 1: {int((d01.max(0) > 1e-9).sum())}/{taus.size} "
              f"(max {d01.max():.2f})")
        prof_out[f"bands_{a}"] = {"differs_vs_admtune": int((d.max(0) > 1e-9).sum()),
                                  "differs_rliable_seed0_vs_1": int((d01.max(0) > 1e-9).sum()),
                                  "max": float(d.max()), "max_seed": float(d01.max())}
# rliable's own (score-distribution) profile of AdM's normalised scores, for the record
sd, _ = rly.create_performance_profile({"adm": S["adm"]}, np.array([-1.0, 0.0, 1.0]), reps=200)
print("rliable score distribution of AdM normalised scores, P(score > tau) at tau=-1,0,1:",
      np.round(sd["adm"], 4).tolist(), "(a different quantity from admtune's profile)")

json.dump({"reps": REPS, "seeds": SEEDS, "rows": out, "profile": prof_out},
          open(f"{HERE}/crosscheck_results.json", "w"), indent=1)
print(f"wrote {HERE}/crosscheck_results.json")
