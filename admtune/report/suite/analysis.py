"""From the stored studies of a suite to the content of suite.json: every number of the suite
report, computed from each study's :class:`~admtune.study.results.StudyResults` alone (what its
Optuna storage holds), so a rebuild needs no training and gives the same file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from admtune import __version__
from admtune.report import analysis as study_analysis
from admtune.report.suite import stats
from admtune.report.verdict import VERDICTS, decide
from admtune.study.results import StudyResults
from admtune.study.suite import CORRECTIONS
from admtune.util import mask, round_floats

TAUS = 201        # points of the performance profiles

NORMALISATION = (
    "A run's normalised score is (x_AdM − x_tuned) / δ on its seed, oriented so that higher is "
    "better: 0 = as good as tuned momentum on that seed, +1 = better by one margin δ, −1 = worse by "
    "one. δ is each study's own equivalence margin, the smallest difference its author declared "
    "relevant and the one scale every study defines in its own units (cross-entropy, decades of "
    "f − f*), so scores of different metrics are comparable. Not the tuned arm at 1 and β = 0.9 at "
    "0: where the selection kept β = 0.9 that scale is 0/0, and where tuning gained little it "
    "blows a small difference up; not ranks: they discard how much better or worse."
)

BOOTSTRAP = (
    "percentile bootstrap stratified by comparison: the evaluation seeds of each study × baseline "
    "are resampled within it (a seed's AdM, tuned-β and β = 0.9 runs together), never across "
    "comparisons (scipy.stats.bootstrap, one sample per comparison)"
)


@dataclass
class StoredStudy:
    """One study of the suite as read back: its results and where they live. ``storage`` is the
    storage as the user would name it: a study's own study.db as its path under the out folder
    given (so suite.json does not depend on where the checkout lives), any other URL as given."""

    results: StudyResults
    out_dir: Path
    storage: str


def _oriented_mean(mean: Any, direction: str) -> float | None:
    if mean is None or not math.isfinite(float(mean)):
        return None
    return float(mean) if direction == "maximize" else -float(mean)


def _task(summary: dict[str, Any], data: study_analysis.BaselineData, baseline: str) -> stats.Task:
    seeds = data.seeds
    direction = summary["direction"]

    def arm(a: str) -> np.ndarray:
        ad = data.arms.get(a)
        return ad.oriented(seeds, direction) if ad is not None else np.full(len(seeds), np.nan)

    return stats.Task(summary["study"], baseline, float(summary["margin"]), arm("adm"),
                      arm("tuned"), arm("default"))


def _comparison(summary: dict[str, Any], b: str, e: dict[str, Any], task: stats.Task) -> dict[str, Any]:
    from admtune.report.text import metric_decimals

    direction = summary["direction"]
    means = {a: (e.get(a) or {}).get("mean") for a in stats.ARMS}
    gap = stats.gaps({a: _oriented_mean(m, direction) for a, m in means.items()},
                     float(summary["margin"]))
    tuning = e.get("tuning") or {}
    orderings = tuning.get("trials_to_match_orderings") or {}
    poi = stats.aggregate_poi([task])
    return {
        "study": summary["study"], "baseline": b, "metric": summary["metric"],
        "direction": direction, "margin": summary["margin"],
        "verdict": e.get("verdict"),
        "decimals": metric_decimals([(e.get(a) or {}).get("std") for a in stats.ARMS],
                                    tuple((e["diff"].get("ci") or [None, None])[:2])),
        "diff": {"mean": e["diff"].get("mean"), "ci": list(e["diff"].get("ci") or [None, None])},
        "means": means,
        "diverged": {a: (e.get(a) or {}).get("diverged") for a in stats.ARMS},
        "n": {a: (e.get(a) or {}).get("n") for a in stats.ARMS},
        "tuned_beta": (e.get("tuned") or {}).get("beta"),
        "p_better": e.get("p_better"), "p_worse": e.get("p_worse"),
        "p_divergence": e.get("p_divergence"), "p_tost": e.get("p_tost"),
        "p_better_study": e.get("p_better_holm"), "p_worse_study": e.get("p_worse_holm"),
        "p_divergence_study": e.get("p_divergence_holm"),
        "prob_improvement": poi.to_dict(),
        "gap": gap,
        "tuning": {"trials": tuning.get("trials"), "good": orderings.get("good"),
                   "median": orderings.get("median"), "ci": orderings.get("ci")},
    }


def _suite_verdicts(comparisons: list[dict[str, Any]], method: str, alpha: float) -> int:
    """Each comparison's verdict with its tests adjusted over the whole suite (same rules as a
    study's, :func:`admtune.report.verdict.decide`); returns the size of the family."""
    family: list[float | None] = []
    for c in comparisons:
        family += [c["p_better"], c["p_worse"], c["p_divergence"]]
    adjusted = stats.adjust(family, method, alpha)
    for i, c in enumerate(comparisons):
        pb, pw, pd = adjusted[3 * i: 3 * i + 3]
        c["p_better_suite"], c["p_worse_suite"], c["p_divergence_suite"] = pb, pw, pd
        n_adm, n_tuned = c["n"]["adm"] or 0, c["n"]["tuned"] or 0
        k_adm, k_tuned = c["diverged"]["adm"] or 0, c["diverged"]["tuned"] or 0
        d = decide(p_better_holm=pb, p_worse_holm=pw, p_tost=c["p_tost"], alpha=alpha,
                   adm_diverged=k_adm, baseline_diverged=k_tuned, p_divergence_holm=pd,
                   adm_rate=k_adm / (n_adm + k_adm) if n_adm + k_adm else None,
                   baseline_rate=k_tuned / (n_tuned + k_tuned) if n_tuned + k_tuned else None)
        c["suite_verdict"] = d.verdict
    return sum(p is not None for p in family)


def _groups(comparisons: list[dict[str, Any]], tasks: list[stats.Task]) -> dict[str, list[int]]:
    """Comparison indices per baseline family, then all of them."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(comparisons):
        groups.setdefault(c["baseline"], []).append(i)
    if len(groups) > 1 or not groups:
        groups["all"] = list(range(len(tasks)))
    return groups


def analyse_suite(name: str, studies: list[StoredStudy], *, alpha: float = 0.05,
                  correction: str = "holm", description: str = "",
                  source: str = "") -> dict[str, Any]:
    """The content of suite.json (plain JSON data, floats to 12 significant digits)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, not {correction!r}")
    comparisons: list[dict[str, Any]] = []
    tasks: list[stats.Task] = []
    entries: list[dict[str, Any]] = []
    for s in studies:
        summary = study_analysis.summarise(s.results).to_dict()
        data = study_analysis.collect(s.results)
        entries.append({
            "study": summary["study"], "metric": summary["metric"],
            "direction": summary["direction"], "margin": summary["margin"],
            "alpha": summary["alpha"], "description": summary["description"],
            "fingerprint": summary["fingerprint"], "out": str(s.out_dir),
            "storage": mask(s.storage), "complete": summary["complete"],
            "device": summary["device"], "wall_s": summary["wall_s"],
            "version": summary["version"],
            "seeds": max((len(d.seeds) for d in data.values()), default=0),
            "trials": s.results.spec.trials,
        })
        for b, e in summary["baselines"].items():
            task = _task(summary, data[b], b)
            tasks.append(task)
            comparisons.append(_comparison(summary, b, e, task))

    family_size = _suite_verdicts(comparisons, correction, alpha)
    groups = _groups(comparisons, tasks)

    poi = {g: {"adm_vs_tuned": stats.aggregate_poi([tasks[i] for i in idx]).to_dict(),
               "adm_vs_default": stats.aggregate_poi([tasks[i] for i in idx], "adm",
                                                     "default").to_dict(),
               "tuned_vs_default": stats.aggregate_poi([tasks[i] for i in idx], "tuned",
                                                       "default").to_dict(),
               "comparisons": len(idx)}
           for g, idx in groups.items()}
    scores = {g: {arm: {k: v.to_dict() for k, v in stats.aggregate_scores(
                  [stats.normalised_scores(tasks[i], arm) for i in idx]).items()}
                  for arm in ("adm", "default")}
              for g, idx in groups.items()}

    finite = [v for c in comparisons for v in c["gap"].values() if math.isfinite(v)]
    tau_max = max(2.0, 1.05 * max(finite, default=0.0))
    taus = np.linspace(0.0, tau_max, TAUS)
    profiles = {"taus": taus.tolist()}
    for arm in stats.ARMS:
        profiles[arm] = stats.performance_profile([c["gap"][arm] for c in comparisons],
                                                  taus).tolist()
    bands = stats.profile_bands(tasks, taus)
    profiles["ci"] = None if bands is None else {
        arm: {"lo": lo.tolist(), "hi": hi.tolist()} for arm, (lo, hi) in bands.items()}

    def cost(rows: list[dict[str, Any]]) -> dict[str, Any]:
        counts = [(int(c["tuning"]["trials"]), int(c["tuning"]["good"] or 0)) for c in rows
                  if c["tuning"]["trials"]]
        return stats.sum_trials_to_match(counts).to_dict()

    counts = {kind: {v: sum(c[key] == v for c in comparisons) for v in VERDICTS}
              for kind, key in (("study", "verdict"), ("suite", "suite_verdict"))}
    out = {
        "suite": name, "description": description, "source": source,
        "alpha": alpha, "correction": correction, "correction_name": CORRECTIONS[correction],
        "confidence": stats.CONFIDENCE,
        "bootstrap": {"method": BOOTSTRAP, "resamples": stats.RESAMPLES, "seed": stats.SEED},
        "normalisation": NORMALISATION,
        "complete": all(e["complete"] for e in entries),
        "studies": entries,
        "comparisons": comparisons,
        "prob_improvement": poi,
        "scores": scores,
        "profiles": profiles,
        "multiplicity": {"method": CORRECTIONS[correction], "tests": family_size,
                         "family": "p(AdM better) and p(AdM worse) of every comparison, and the "
                                   "divergence-rate test of every comparison where a run diverged, "
                                   "over all studies of the suite (each study's own family, "
                                   "pooled); the TOST p of 'matches' is not adjusted, as in each "
                                   "study",
                         "changed": [f"{c['study']} {c['baseline']}" for c in comparisons
                                     if c["suite_verdict"] != c["verdict"]]},
        "tuning_cost": {"all": cost(comparisons),
                        "not_losing": cost([c for c in comparisons
                                            if c["suite_verdict"] in ("beats", "matches")])},
        "verdict_counts": counts,
        "version": __version__,
    }
    return round_floats(out)


def to_json(suite: dict[str, Any]) -> str:
    return json.dumps(suite, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
