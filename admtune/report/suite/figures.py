"""The suite report's figures: they draw what :mod:`admtune.report.suite.analysis` computed
(suite.json's numbers), in the study report's style (colours, fonts, SVG)."""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from admtune.report.figures import ARM_COLOURS, FULL_WIDTH, OKABE_ITO, RC, Figure, _svg
from admtune.report.suite import group_name
from admtune.report.text import baseline_name

VERDICT_COLOURS = {"beats": OKABE_ITO["green"], "matches": OKABE_ITO["blue"],
                   "loses": OKABE_ITO["vermillion"], "inconclusive": OKABE_ITO["grey"]}
ARM_WORDS = {"adm": "AdM (untuned)", "tuned": "tuned β", "default": "β = 0.9"}
POI_ROWS = (("adm_vs_tuned", "AdM vs tuned β", ARM_COLOURS["adm"]),
            ("adm_vs_default", "AdM vs β = 0.9", OKABE_ITO["orange"]),
            ("tuned_vs_default", "tuned β vs β = 0.9", ARM_COLOURS["tuned"]))


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def _interval_rows(ax, rows: list[tuple[str, dict[str, Any], str]]) -> None:
    """One point with its CI per row, top to bottom."""
    for y, (_, est, colour) in enumerate(rows):
        lo, hi = est["ci"]
        if _finite(lo) and _finite(hi):
            ax.plot([lo, hi], [y, y], color=colour, lw=2.2, solid_capstyle="butt", alpha=0.55)
        if _finite(est["value"]):
            ax.plot(est["value"], y, "o", color=colour, ms=4.5, zorder=3)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.grid(axis="x")


def probability_of_improvement(suite: dict[str, Any]) -> Figure:
    groups = list(suite["prob_improvement"])
    rows = []
    for g in groups:
        for key, label, colour in POI_ROWS:
            rows.append((f"{label}  ({group_name(g)})", suite["prob_improvement"][g][key], colour))
    with plt.rc_context(RC), sns.axes_style("ticks", RC):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH, 0.24 * len(rows) + 0.65))
        ax.axvline(0.5, color="#444", lw=0.8, ls="--")
        _interval_rows(ax, rows)
        for i in range(1, len(groups)):
            ax.axhline(3 * i - 0.5, color="#BBB", lw=0.6)
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability that a run of the first arm beats a run of the second "
                      "(averaged over comparisons)")
        svg = _svg(fig)
    return Figure(svg, "Probability of improvement, P(X > Y), averaged over the comparisons "
                       "of each family, with its 95 % stratified bootstrap CI. 0.5 (dashed): "
                       "neither arm tends to do better.")


def scores(suite: dict[str, Any]) -> Figure:
    groups = list(suite["scores"])
    stats = ("iqm", "median", "mean")
    titles = {"iqm": "IQM", "median": "median", "mean": "mean"}
    rows_of = [(f"{ARM_WORDS[arm]} ({group_name(g)})", g, arm)
               for g in groups for arm in ("adm", "default")]
    with plt.rc_context(RC), sns.axes_style("ticks", RC):
        fig, axes = plt.subplots(1, 3, figsize=(FULL_WIDTH, 0.26 * len(rows_of) + 0.75),
                                 sharey=True)
        for ax, st in zip(axes, stats, strict=True):
            rows = [(label, suite["scores"][g][arm][st],
                     ARM_COLOURS["adm"] if arm == "adm" else ARM_COLOURS["default"])
                    for label, g, arm in rows_of]
            ax.axvspan(-1, 1, color="#EEF3F8", zorder=0)
            ax.axvline(0, color="#444", lw=0.8, ls="--")
            _interval_rows(ax, rows)
            ax.set_title(titles[st])
            ax.set_xlabel("margins δ")
            ends = [v for _, e, _ in rows for v in (e["value"], *e["ci"]) if _finite(v)]
            if ends:
                lo, hi = min(min(ends), -1.2), max(max(ends), 1.2)
                pad = 0.06 * (hi - lo)
                ax.set_xlim(lo - pad, hi + pad)
        fig.tight_layout(w_pad=0.8)
        svg = _svg(fig)
    return Figure(svg, "Normalised score of AdM and of β = 0.9 against tuned β, in margins "
                       "δ (0 = tuned β; the shaded band is ±δ, inside which a study calls a "
                       "difference irrelevant): interquartile mean, median and mean over all runs "
                       "of the comparisons, with 95 % stratified bootstrap CIs. A mean is "
                       "undefined (not drawn) where a run diverged.")


def profiles(suite: dict[str, Any]) -> Figure:
    p = suite["profiles"]
    taus = np.asarray(p["taus"], dtype=float)
    n = len(suite["comparisons"])
    with plt.rc_context(RC), sns.axes_style("ticks", RC):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.62, 2.3))
        bands = p.get("ci") or {}
        for arm in ("adm", "tuned", "default"):
            if arm in bands:
                ax.fill_between(taus, bands[arm]["lo"], bands[arm]["hi"], step="post",
                                color=ARM_COLOURS[arm], alpha=0.16, lw=0)
            ax.step(taus, p[arm], where="post", color=ARM_COLOURS[arm], label=ARM_WORDS[arm],
                    lw=1.6 if arm == "adm" else 1.2, ls="-" if arm != "default" else "--")
        ax.axvline(1.0, color="#999", lw=0.6, ls=":")
        ax.set_xlim(0, float(taus[-1]) if taus.size else 1)
        ax.set_ylim(-0.02, 1.04)
        ax.set_xlabel("τ: distance below the best arm's mean (margins δ)")
        ax.set_ylabel(f"fraction of the {n} comparisons")
        ax.grid(True)
        ax.legend(loc="lower right")
        svg = _svg(fig)
    return Figure(svg, "Performance profiles: for each arm, the fraction of comparisons in "
                       "which its mean is within τ margins of the best of the three arms' means "
                       "(at τ = 0: how often it is the best). Higher and further left is better; "
                       "the dotted line marks one margin."
                       + (" Shaded: pointwise 95 % stratified bootstrap CI (seeds resampled "
                          "within each comparison)." if p.get("ci") else ""))


def deltas(suite: dict[str, Any]) -> Figure:
    rows = []
    for c in suite["comparisons"]:
        m = float(c["margin"])
        mean, (lo, hi) = c["diff"]["mean"], c["diff"]["ci"]
        if mean is None:
            continue
        rows.append((f"{c['study']} · {baseline_name(c['baseline'])}",
                     {"value": mean / m, "ci": [lo / m if lo is not None else None,
                                                hi / m if hi is not None else None]},
                     VERDICT_COLOURS.get(c["verdict"], OKABE_ITO["grey"])))
    if not rows:
        return Figure(None, "", note="no comparison has a mean difference")
    with plt.rc_context(RC), sns.axes_style("ticks", RC):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.75, 0.2 * len(rows) + 0.7))
        ax.axvspan(-1, 1, color="#EEF3F8", zorder=0)
        ax.axvline(0, color="#444", lw=0.8, ls="--")
        _interval_rows(ax, rows)
        ax.set_xlabel("Δ / δ: AdM better by, in margins (95 % CI)")
        handles = [plt.Line2D([], [], color=c, marker="o", ls="-", label=v)
                   for v, c in VERDICT_COLOURS.items()
                   if any(r[2] == c for r in rows)]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="study verdict")
        svg = _svg(fig)
    return Figure(svg, "AdM's advantage per comparison, Δ = AdM − tuned β (positive = AdM "
                       "better) in units of each study's margin δ, with its 95 % paired "
                       "t-interval; coloured by the study's own verdict; shaded: ±δ.")


def all_figures(suite: dict[str, Any]) -> dict[str, Figure]:
    return {"poi": probability_of_improvement(suite), "scores": scores(suite),
            "profiles": profiles(suite), "deltas": deltas(suite)}
