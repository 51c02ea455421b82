"""Build admtune's stats.Task objects from the copied stored studies (no training), save them to
tasks.npz, recompute admtune's aggregates and compare them to the committed suite.json.

Run from the repository root with the project's venv (see README.md in this folder):
    python tools/rliable_crosscheck/export.py [WORKDIR]      # default WORKDIR: rliable-crosscheck
The studies are copied into WORKDIR first, so the committed study.db files are only read.
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from admtune import api
from admtune.report import analysis as study_analysis
from admtune.report.suite import analysis as suite_analysis
from admtune.report.suite import stats

HERE = Path(sys.argv[1] if len(sys.argv) > 1 else "rliable-crosscheck")
EXAMPLES = Path("reports/examples")
STUDIES = ["quick", "convex-logreg", "convex-lsq", "convex-quad", "mlp"]  # suite.json's order
SUITE = json.loads((EXAMPLES / "suites" / "cpu" / "suite.json").read_text())
for name in STUDIES:
    shutil.copytree(EXAMPLES / name, HERE / "studies" / name, dirs_exist_ok=True)

tasks: list[stats.Task] = []
for name in STUDIES:
    d = HERE / "studies" / name
    stored = api._read_study(name, d, None, str(d))      # read-only: the study's SQLite storage
    summary = study_analysis.summarise(stored.results).to_dict()
    data = study_analysis.collect(stored.results)
    for b in summary["baselines"]:
        tasks.append(suite_analysis._task(summary, data[b], b))

print("tasks:", [(t.study, t.baseline, t.stacked().shape[1]) for t in tasks])
for t in tasks:
    s = t.stacked()
    print(f"  {t.study:14s} {t.baseline:6s} margin={t.margin:g} seeds={s.shape[1]} "
          f"nan={int(np.isnan(s).sum())} -inf={int(np.isneginf(s).sum())}")

# ---- save -------------------------------------------------------------------------------------
np.savez(HERE / "tasks.npz",
         study=np.array([t.study for t in tasks]), baseline=np.array([t.baseline for t in tasks]),
         margin=np.array([t.margin for t in tasks]),
         adm=np.stack([t.arm("adm") for t in tasks]), tuned=np.stack([t.arm("tuned") for t in tasks]),
         default=np.stack([t.arm("default") for t in tasks]))

# ---- admtune's numbers, recomputed, vs suite.json -----------------------------------------------
groups = {"sgd": [i for i, t in enumerate(tasks) if t.baseline == "sgd"],
          "adamw": [i for i, t in enumerate(tasks) if t.baseline == "adamw"],
          "all": list(range(len(tasks)))}
ours: dict = {"prob_improvement": {}, "scores": {}}
worst = 0.0


def cmp(label, mine: dict, theirs: dict):
    global worst
    a = [mine["value"], *mine["ci"]]
    b = [theirs["value"], *theirs["ci"]]
    rel = max(abs(x - y) / max(abs(y), 1e-300) if y != 0 else abs(x) for x, y in zip(a, b, strict=True))
    worst = max(worst, rel)
    print(f"  {label:34s} {a[0]: .12g} [{a[1]: .12g}, {a[2]: .12g}]  suite.json rel.diff {rel:.1e}")


print("admtune recomputed vs suite.json:")
for g, idx in groups.items():
    sub = [tasks[i] for i in idx]
    ours["prob_improvement"][g] = {}
    for a, b in (("adm", "tuned"), ("adm", "default"), ("tuned", "default")):
        e = stats.aggregate_poi(sub, a, b).to_dict()
        ours["prob_improvement"][g][f"{a}_vs_{b}"] = e
        cmp(f"{g} POI {a}>{b}", e, SUITE["prob_improvement"][g][f"{a}_vs_{b}"])
    ours["scores"][g] = {}
    for arm in ("adm", "default"):
        agg = stats.aggregate_scores([stats.normalised_scores(t, arm) for t in sub])
        ours["scores"][g][arm] = {k: v.to_dict() for k, v in agg.items()}
        for k, v in agg.items():
            cmp(f"{g} {arm} {k}", v.to_dict(), SUITE["scores"][g][arm][k])

# performance profile (point): gaps from each comparison in suite.json, recomputed from the runs
taus = np.array(SUITE["profiles"]["taus"])
gaps = []
for t in tasks:
    s = t.stacked()
    means = {a: float(np.mean(s[i][np.isfinite(s[i])])) for i, a in enumerate(stats.ARMS)}
    gaps.append(stats.gaps(means, t.margin))
prof = {a: stats.performance_profile([g[a] for g in gaps], taus) for a in stats.ARMS}
for a in stats.ARMS:
    d = np.max(np.abs(prof[a] - np.array(SUITE["profiles"][a])))
    print(f"  profile {a:8s} max |diff| vs suite.json {d:.1e}")
ours["profiles"] = {"taus": taus.tolist(), **{a: prof[a].tolist() for a in stats.ARMS},
                    "gaps": gaps}
ours["resamples"], ours["seed"] = stats.RESAMPLES, stats.SEED
json.dump(ours, open(HERE / "admtune_numbers.json", "w"), indent=1)
print(f"worst relative difference to suite.json: {worst:.1e} (suite.json rounds to 12 digits)")

# ---- admtune's own Monte Carlo spread: the same functions with 3 other bootstrap seeds --------
mc: dict = {}
base_seed = stats.SEED
for seed in (1, 2, 3):
    stats.SEED = seed   # _bootstrap / profile_bands read the module constant at call time
    for g, idx in groups.items():
        sub = [tasks[i] for i in idx]
        for a, b in (("adm", "tuned"), ("adm", "default"), ("tuned", "default")):
            mc.setdefault(f"{g}/poi/{a}_vs_{b}", []).append(stats.aggregate_poi(sub, a, b).to_dict())
        for arm in ("adm", "default"):
            agg = stats.aggregate_scores([stats.normalised_scores(t, arm) for t in sub])
            for k, v in agg.items():
                mc.setdefault(f"{g}/{arm}/{k}", []).append(v.to_dict())
stats.SEED = base_seed
ours["mc_seeds"] = mc

# the uncommitted profile_bands of the working tree, if present (not in the committed suite.json)
if hasattr(stats, "profile_bands"):
    bands = stats.profile_bands(tasks, taus)
    ours["profile_bands"] = {a: {"lo": lo.tolist(), "hi": hi.tolist()} for a, (lo, hi) in bands.items()}
json.dump(ours, open(HERE / "admtune_numbers.json", "w"), indent=1)
print("wrote", HERE / "tasks.npz", "and", HERE / "admtune_numbers.json")
