"""The report's figures: seaborn/matplotlib (Agg) → SVG text, sized for an A4 page.

One colour per arm everywhere (Okabe–Ito, colour-blind safe): AdM vermillion, tuned β blue,
β = 0.9 grey, workload extras from the rest of the palette; tuning trials sky blue. Each figure
function returns a :class:`Figure`; when its data are missing it returns one with ``svg=None`` and a
note saying why, and the report shows the note instead.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from admtune.report import stats  # noqa: E402
from admtune.report.analysis import (  # noqa: E402
    BaselineData,
    adm_name,
    adm_qualifier,
    baseline_name,
    is_complete,
    is_diverged,
)

OKABE_ITO = {
    "vermillion": "#D55E00", "blue": "#0072B2", "grey": "#7A7A7A", "sky": "#56B4E9",
    "orange": "#E69F00", "green": "#009E73", "purple": "#CC79A7", "yellow": "#F0E442",
    "black": "#000000",
}
ARM_COLOURS = {"adm": OKABE_ITO["vermillion"], "tuned": OKABE_ITO["blue"], "default": OKABE_ITO["grey"]}
EXTRA_COLOURS = [OKABE_ITO[c] for c in ("purple", "orange", "green", "black")]
TRIAL_COLOUR = OKABE_ITO["sky"]
DIVERGED_COLOUR = OKABE_ITO["black"]

FULL_WIDTH = 6.7  # inches: A4 minus the page margins
UNITS = {
    "loss": "nats", "train_loss": "nats", "val_loss": "nats", "test_loss": "nats", "nll": "nats",
    "cross_entropy": "nats", "accuracy": "fraction", "acc": "fraction", "error": "fraction",
    "top1": "fraction", "error_rate": "fraction", "log10_subopt": "decades, log₁₀(f − f*)",
    "bpb": "bits/byte", "bits_per_byte": "bits/byte", "val_bpb": "bits/byte", "ppl": "perplexity",
    "perplexity": "perplexity",
}

RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8.5, "axes.titleweight": "bold",
    "legend.fontsize": 7, "legend.title_fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "axes.linewidth": 0.7, "grid.linewidth": 0.5, "grid.color": "#E3E3E3", "lines.linewidth": 1.4,
    "xtick.major.width": 0.7, "ytick.major.width": 0.7, "xtick.minor.width": 0.5,
    "ytick.minor.width": 0.5, "legend.frameon": False, "svg.fonttype": "path",
    "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100, "savefig.dpi": 200,
    "image.interpolation": "nearest", "svg.hashsalt": "admtune",
}


@dataclass
class Figure:
    svg: str | None
    caption: str
    note: str | None = None  # why the figure is missing, or a caveat


def arm_colours(extras: list[str]) -> dict[str, str]:
    colours = dict(ARM_COLOURS)
    for i, arm in enumerate(extras):
        colours[arm] = EXTRA_COLOURS[i % len(EXTRA_COLOURS)]
    return colours


def metric_label(metric: str, split: str = "test") -> str:
    """An axis label with units, e.g. 'test loss (nats)'."""
    unit = UNITS.get(metric) or UNITS.get(metric.removeprefix("val_").removeprefix("test_"))
    name = metric.replace("_", " ")
    label = f"{split} {name}" if split else name
    return f"{label} ({unit})" if unit else label


def short_label(baseline: str, arm: str, beta: float | None, spec: dict) -> str:
    """A two-line tick label for an arm."""
    if arm == "adm":
        return f"{adm_name(baseline)}\n({adm_qualifier(spec)})"
    if arm == "tuned":
        return f"tuned β\n= {beta:.3g}" if beta is not None else "tuned β"
    if arm == "default":
        return f"β = {beta:.3g}" if beta is not None else "β = 0.9"
    return f"{arm.replace('_', ' ')}\n" + (f"β = {beta:.3g}" if beta is not None else "")


def legend_label(baseline: str, arm: str, beta: float | None, spec: dict) -> str:
    return short_label(baseline, arm, beta, spec).replace("\n", " ").replace("β\n=", "β =")


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.03, metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def _positive_spread(y: np.ndarray) -> bool:
    y = y[np.isfinite(y)]
    return y.size > 0 and float(np.min(y)) > 0 and float(np.max(y)) / float(np.min(y)) > 20


# ----------------------------------------------------------------------------------------------
# Overview: AdM's advantage per baseline, with the equivalence margin


def forest(summary: dict[str, Any], colours: dict[str, str]) -> Figure:
    bl = summary["baselines"]
    rows = []
    for b, e in bl.items():
        rows.append((b, "tuned", e["diff"], e["verdict"]))
        d = e.get("vs_other_arms", {}).get("default")
        if d is not None:
            rows.append((b, "default", d["diff"], None))
    usable = [r for r in rows if r[2]["mean"] is not None]
    caption = (f"AdM's advantage Δ in test {summary['metric']} (mean paired difference over seeds, "
               f"positive = AdM better) with its 95 % bootstrap CI, against the tuned β (filled) and "
               f"β = 0.9 (open). Shaded: the equivalence margin ±δ = ±{summary['margin']:g}.")
    if not usable:
        return Figure(None, caption, "No complete AdM / baseline pairs: nothing to plot.")
    with matplotlib.rc_context(RC), sns.axes_style("ticks"):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH, 0.55 + 0.36 * len(rows)), layout="constrained")
        margin = summary["margin"]
        ax.axvspan(-margin, margin, color="#E8E8E8", zorder=0, lw=0)
        ax.axvline(0, color="#555555", lw=0.8, zorder=1)
        labels = []
        for i, (b, arm, d, verdict) in enumerate(rows):
            y = len(rows) - 1 - i
            vs = "tuned β" if arm == "tuned" else "β = 0.9"
            labels.append((y, f"{adm_name(b)} vs {baseline_name(b)} {vs}"))
            if d["mean"] is None:
                continue
            lo, hi = d["ci"]
            c = colours[arm]
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [y, y], color=c, lw=1.6, solid_capstyle="butt", zorder=2)
            ax.plot([d["mean"]], [y], "o", ms=6, color=c, mfc=c if arm == "tuned" else "white",
                    mew=1.4, zorder=3)
            if verdict:
                ax.annotate(verdict, xy=(1.0, y), xycoords=("axes fraction", "data"),
                            xytext=(6, 0), textcoords="offset points", va="center", fontsize=7.5,
                            fontweight="bold", annotation_clip=False)
        ax.set_yticks([y for y, _ in labels], [t for _, t in labels])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel(f"Δ, AdM better by: {metric_label(summary['metric'], 'test')}")
        ax.grid(axis="x", color="#E3E3E3", lw=0.5)
        sns.despine(ax=ax, left=True)
        ax.tick_params(axis="y", length=0)
        xs = [v for r in usable for v in [r[2]["mean"], *r[2]["ci"]] if v is not None]
        span = max(max(abs(v) for v in xs), margin) * 1.15 or 1.0
        ax.set_xlim(-span, span)
        return Figure(_svg(fig), caption)


# ----------------------------------------------------------------------------------------------
# β-sensitivity


def beta_sensitivity(
    bd: BaselineData, entry: dict[str, Any], summary: dict[str, Any], spec: dict[str, Any],
    colours: dict[str, str],
) -> Figure:
    b = bd.baseline
    metric = summary["metric"]
    minimize = summary["direction"] == "minimize"
    trials = [r for r in bd.trials if r.beta is not None and r.status != "failed"]
    caption = (f"β-sensitivity of {baseline_name(b)}: every tuning trial's validation {metric} "
               f"against 1 − β (log scale; β on the top axis). Band: {adm_name(b)}'s "
               f"validation mean with 95 % CI over its evaluation seeds. One look tells how "
               f"much tuning AdM replaces.")
    if spec.tune.lr:
        caption += " Trials also tuned the learning rate, so points mix learning rates."
    if not trials:
        return Figure(None, caption, "No tuning trials recorded for this baseline.")
    q = np.array([max(1.0 - float(r.beta), 1e-6) for r in trials])
    v = np.array([float(r.value) if r.value is not None else np.nan for r in trials])
    status = np.array(["diverged" if is_diverged(r) else r.status for r in trials])
    ok = (status == "complete") & np.isfinite(v)
    pruned = (status == "pruned") & np.isfinite(v)
    div = (status == "diverged") | ((status == "complete") & ~np.isfinite(v))

    adm = bd.arms.get("adm")
    adm_val = adm.values(sorted(adm.runs), "val_value") if adm is not None else np.array([])
    adm_mean, _ = stats.mean_std(adm_val)
    lo, hi = stats.bootstrap_ci(adm_val)
    with matplotlib.rc_context(RC), sns.axes_style("ticks", {"axes.grid": True}):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH, 2.9), layout="constrained")
        handles = []
        if math.isfinite(adm_mean):
            if math.isfinite(lo) and math.isfinite(hi):
                ax.axhspan(lo, hi, color=colours["adm"], alpha=0.18, lw=0, zorder=1)
            ax.axhline(adm_mean, color=colours["adm"], lw=1.5, zorder=2)
            n_adm = int(np.isfinite(adm_val).sum())
            handles.append((Patch(facecolor=colours["adm"], alpha=0.35, edgecolor=colours["adm"]),
                            f"{adm_name(b)} ({adm_qualifier(spec)}): mean ± 95 % CI, "
                            f"{n_adm} seeds"))
        df = pd.DataFrame({"q": q[ok], "v": v[ok]})
        sns.scatterplot(data=df, x="q", y="v", ax=ax, color=TRIAL_COLOUR, edgecolor="#1F4E79",
                        linewidth=0.5, s=26, zorder=4, legend=False)
        handles.append((Line2D([], [], ls="", marker="o", color=TRIAL_COLOUR, mec="#1F4E79",
                               mew=0.5), f"trial, complete ({int(ok.sum())})"))
        if pruned.any():
            ax.scatter(q[pruned], v[pruned], s=22, facecolors="white", edgecolors=TRIAL_COLOUR,
                       linewidths=1.0, zorder=3)
            handles.append((Line2D([], [], ls="", marker="o", mfc="white", mec=TRIAL_COLOUR),
                            f"trial, pruned ({int(pruned.sum())}; last value)"))
        finite = v[np.isfinite(v)]
        if adm_mean is not None and math.isfinite(adm_mean):
            finite = np.r_[finite, adm_mean]
        log_y = _positive_spread(finite)
        if log_y:
            ax.set_yscale("log")
        if finite.size:
            y0, y1 = float(np.min(finite)), float(np.max(finite))
        else:
            y0, y1 = 0.0, 1.0
        if div.any():
            # diverged trials have no value: drawn on the worst edge, in their own strip
            if log_y:
                ratio = (y1 / y0) if y0 > 0 else 10.0
                ydiv = y1 * ratio ** 0.12 if minimize else y0 / ratio ** 0.12
            else:
                span = (y1 - y0) or max(abs(y1), 1.0) * 0.1
                ydiv = y1 + 0.14 * span if minimize else y0 - 0.14 * span
            ax.scatter(q[div], np.full(div.sum(), ydiv), marker="x", s=30, color=DIVERGED_COLOUR,
                       linewidths=1.2, zorder=4, clip_on=False)
            ax.axhline(ydiv, color="#BBBBBB", lw=0.6, ls=":", zorder=0)
            ax.annotate("diverged", xy=(0.0, ydiv), xycoords=("axes fraction", "data"),
                        xytext=(3, -9 if minimize else 4), textcoords="offset points",
                        fontsize=6.5, color="#444444")
            handles.append((Line2D([], [], ls="", marker="x", color=DIVERGED_COLOUR),
                            f"trial, diverged ({int(div.sum())})"))
        ax.axvline(0.1, color=colours["default"], ls="--", lw=1.0, zorder=2)
        handles.append((Line2D([], [], color=colours["default"], ls="--", lw=1.0), "β = 0.9"))
        tuned_beta = entry["tuned"].get("beta")
        if tuned_beta is not None:
            ax.axvline(max(1 - tuned_beta, 1e-6), color=colours["tuned"], ls="-.", lw=1.1, zorder=2)
            handles.append((Line2D([], [], color=colours["tuned"], ls="-.", lw=1.1),
                            f"tuned β = {tuned_beta:.3g}"))
        ax.set_xscale("log")
        qmin = min(float(q.min()), 1 - (tuned_beta or 0.9), 0.1)
        qmax = max(float(q.max()), 0.1)
        ax.set_xlim(qmax * 1.5, qmin / 1.5)  # reversed: β grows to the right
        ax.set_xlabel("1 − β (log scale; dimensionless)")
        ax.set_ylabel(metric_label(metric, "validation"))
        top = ax.secondary_xaxis("top")
        ticks = [t for t in (1.0, 0.5, 0.1, 0.01, 0.001, 0.0001) if qmin / 1.5 <= t <= qmax * 1.5]
        top.set_xticks(ticks, [f"{1 - t:g}" for t in ticks])
        top.set_xticks([], minor=True)
        top.set_xlabel("β")
        ax.legend([h for h, _ in handles], [t for _, t in handles], loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, handlelength=1.8)
        return Figure(_svg(fig), caption)


# ----------------------------------------------------------------------------------------------
# Learning curves


def _curve_key(curve: dict[str, list]) -> str | None:
    if not curve or not curve.get("step"):
        return None
    if "train_loss" in curve:
        return "train_loss"
    keys = [k for k in curve if k != "step"]
    return keys[0] if keys else None


def _aligned(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Curves interpolated onto the grid of the longest one (NaN outside each run's range)."""
    grid = max(curves, key=lambda c: (c[0][-1] if c[0].size else 0, c[0].size))[0]
    rows = []
    for x, y in curves:
        ok = np.isfinite(y)
        row = np.full(grid.size, np.nan)
        if ok.sum() >= 1:
            inside = (grid >= x[ok].min()) & (grid <= x[ok].max())
            row[inside] = np.interp(grid[inside], x[ok], y[ok])
        rows.append(row)
    return grid, np.vstack(rows)


def _panel_curves(ax, bd: BaselineData, colours, spec, kind: str) -> tuple[list, bool]:
    """Draw one panel (kind 'train' or 'val'); returns (drawn series, any positive-spread data)."""
    series = []
    allv = []
    for arm, ad in bd.arms.items():
        complete, diverged = [], []
        for r in ad.runs.values():
            c = r.curve if kind == "train" else r.val_curve
            key = _curve_key(c) if kind == "train" else ("value" if c and c.get("step") else None)
            if key is None or not c.get(key):
                continue
            x = np.asarray(c["step"], dtype=float)
            y = np.asarray(c[key], dtype=float)
            if x.size != y.size or x.size == 0:
                continue
            (complete if is_complete(r) else diverged if is_diverged(r) else []).append((x, y))
        colour = colours.get(arm, OKABE_ITO["black"])
        for x, y in diverged:
            ax.plot(x, y, color=colour, lw=0.7, ls=":", alpha=0.9, zorder=2)
            allv.append(y)
        if not complete:
            continue
        grid, ys = _aligned(complete)
        allv.append(ys.ravel())
        mean, lo, hi = stats.bootstrap_band(ys)
        ax.fill_between(grid, lo, hi, color=colour, alpha=0.2, lw=0, zorder=2)
        sns.lineplot(x=grid, y=mean, ax=ax, color=colour, lw=1.3, zorder=3, legend=False)
        series.append((grid, mean, lo, hi, colour))
    values = np.concatenate(allv) if allv else np.array([])
    return series, _positive_spread(values)


def _zoom(ax, series: list, log_y: bool) -> None:
    """An inset on the last 40 % of training when the arms' end values are too close to tell apart."""
    if len(series) < 2:
        return
    x0 = min(float(np.nanmin(g)) for g, *_ in series)
    x1 = max(float(np.nanmax(g)) for g, *_ in series)
    if not x1 > x0:
        return
    start = x0 + 0.6 * (x1 - x0)
    tail, full, first, last = [], [], [], []
    for g, mean, lo, hi, _ in series:
        sel = g >= start
        for arr in (mean, lo, hi):
            tail.append(arr[sel])
            full.append(arr)
        fin = mean[np.isfinite(mean)]
        if fin.size:
            first.append(fin[0])
            last.append(fin[-1])
    tail_v = np.concatenate(tail)
    tail_v = tail_v[np.isfinite(tail_v)]
    full_v = np.concatenate(full)
    full_v = full_v[np.isfinite(full_v)]
    if tail_v.size == 0 or full_v.size == 0:
        return
    t0, t1 = float(tail_v.min()), float(tail_v.max())
    f0, f1 = float(full_v.min()), float(full_v.max())
    if log_y or not (f1 > f0) or (t1 - t0) > 0.25 * (f1 - f0):
        return
    decreasing = bool(np.mean(first) > np.mean(last)) if first else True
    box = [0.40, 0.40, 0.57, 0.55] if decreasing else [0.40, 0.06, 0.57, 0.55]
    ins = ax.inset_axes(box)
    for g, mean, lo, hi, colour in series:
        sel = g >= start
        ins.fill_between(g[sel], lo[sel], hi[sel], color=colour, alpha=0.2, lw=0)
        ins.plot(g[sel], mean[sel], color=colour, lw=1.2)
    pad = 0.08 * ((t1 - t0) or abs(t1) * 0.01 or 1.0)
    ins.set_xlim(start, x1)
    ins.set_ylim(t0 - pad, t1 + pad)
    ins.tick_params(labelsize=6, length=2, pad=1)
    ins.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    ins.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    ins.grid(True, color="#E3E3E3", lw=0.5)
    for sp in ins.spines.values():
        sp.set_visible(True)
        sp.set_linewidth(0.6)
        sp.set_color("#888888")
    ins.set_facecolor("white")
    ax.indicate_inset_zoom(ins, edgecolor="#888888", alpha=0.9, lw=0.6)


def learning_curves(
    bd: BaselineData, entry: dict[str, Any], summary: dict[str, Any], spec: dict[str, Any],
    colours: dict[str, str],
) -> Figure:
    b = bd.baseline
    metric = summary["metric"]
    caption = (f"Learning curves on {baseline_name(b)}'s evaluation seeds: mean over seeds with a "
               f"95 % bootstrap band, per arm; insets zoom on the last 40 % of training. Dotted: "
               f"diverged runs, up to where they stopped.")
    has_train = any(_curve_key(r.curve) for a in bd.arms.values() for r in a.runs.values())
    has_val = any(r.val_curve and r.val_curve.get("step") for a in bd.arms.values()
                  for r in a.runs.values())
    if not has_train and not has_val:
        return Figure(None, caption, "No learning curves were recorded for these runs.")
    panels = [k for k, ok in (("train", has_train), ("val", has_val)) if ok]
    with matplotlib.rc_context(RC), sns.axes_style("ticks", {"axes.grid": True}):
        fig, axes = plt.subplots(1, len(panels), figsize=(FULL_WIDTH, 2.55), layout="constrained",
                                 squeeze=False)
        for ax, kind in zip(axes[0], panels, strict=True):
            series, log_y = _panel_curves(ax, bd, colours, spec, kind)
            if log_y:
                ax.set_yscale("log")
            _zoom(ax, series, log_y)
            ax.set_xlabel("training step (optimizer steps)")
            if kind == "train":
                key = next(_curve_key(r.curve) for a in bd.arms.values() for r in a.runs.values()
                           if _curve_key(r.curve))
                ax.set_ylabel(metric_label(key, ""))
                ax.set_title("Training loss", loc="left")
            else:
                ax.set_ylabel(metric_label(metric, "validation"))
                ax.set_title(f"Validation {metric.replace('_', ' ')}", loc="left")
        handles = []
        for arm, ad in bd.arms.items():
            n = sum(is_complete(r) for r in ad.runs.values())
            nd = sum(is_diverged(r) for r in ad.runs.values())
            extra = f", {nd} diverged" if nd else ""
            handles.append((Line2D([], [], color=colours.get(arm, "black"), lw=1.6),
                            f"{legend_label(b, arm, ad.beta, spec)} (n = {n}{extra})"))
        fig.legend([h for h, _ in handles], [t for _, t in handles], loc="outside lower center",
                   ncol=min(len(handles), 4), handlelength=1.8)
        return Figure(_svg(fig), caption)


# ----------------------------------------------------------------------------------------------
# AdM's β_t


def _traces(bd: BaselineData) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(names, steps, values[seed, step, tensor]) of AdM's β traces, aligned; None if none usable."""
    adm = bd.arms.get("adm")
    if adm is None:
        return None
    traces = []
    for r in adm.runs.values():
        t = r.beta_trace
        if not t or not t.get("step") or not t.get("values"):
            continue
        x = np.asarray(t["step"], dtype=float)
        y = np.asarray(t["values"], dtype=float)
        if y.ndim == 1:
            y = y[:, None]
        if y.shape[0] != x.size:
            continue
        names = list(t.get("names") or [f"β{i}" for i in range(y.shape[1])])
        if len(names) != y.shape[1]:
            names = [f"β{i}" for i in range(y.shape[1])]
        traces.append((names, x, y))
    if not traces:
        return None
    names = max(traces, key=lambda t: t[2].shape[1])[0]
    traces = [t for t in traces if t[0] == names]
    grid = max(traces, key=lambda t: (t[1][-1], t[1].size))[1]  # the longest run's steps
    out = np.full((len(traces), grid.size, len(names)), np.nan)
    for s, (_, x, y) in enumerate(traces):
        for j in range(len(names)):
            ok = np.isfinite(y[:, j])
            if ok.sum() >= 1:
                inside = (grid >= x[ok].min()) & (grid <= x[ok].max())
                out[s, inside, j] = np.interp(grid[inside], x[ok], y[ok, j])
    return names, grid, out


def beta_traces(
    bd: BaselineData, entry: dict[str, Any], summary: dict[str, Any], spec: dict[str, Any],
    colours: dict[str, str],
) -> Figure:
    b = bd.baseline
    caption = f"{adm_name(b)}'s adaptive βₜ over training, on its evaluation seeds."
    got = _traces(bd)
    if got is None:
        return Figure(None, caption, "No βₜ traces were recorded for AdM's runs.")
    names, grid, vals = got
    seeds, k = vals.shape[0], len(names)
    with np.errstate(all="ignore"):
        mean_seed = np.nanmean(vals, axis=0)  # step × tensor
    tuned_beta = entry["tuned"].get("beta")

    def refs(ax):
        ax.axhline(0.9, color=colours["default"], ls="--", lw=1.0, zorder=1)
        if tuned_beta is not None:
            ax.axhline(tuned_beta, color=colours["tuned"], ls="-.", lw=1.0, zorder=1)
        ax.set_ylim(-0.02, 1.0)

    ref_handles = [(Line2D([], [], color=colours["default"], ls="--"), "β = 0.9")]
    if tuned_beta is not None:
        ref_handles.append((Line2D([], [], color=colours["tuned"], ls="-."),
                            f"tuned β = {tuned_beta:.3g}"))
    with matplotlib.rc_context(RC), sns.axes_style("ticks", {"axes.grid": True}):
        if k <= 6:
            fig, ax = plt.subplots(figsize=(FULL_WIDTH, 2.4), layout="constrained")
            palette = ([colours["adm"]] if k == 1 else
                       sns.color_palette("rocket", n_colors=k + 1)[:k])
            handles = []
            for j in range(k):
                with np.errstate(all="ignore"):
                    lo, hi = np.nanmin(vals[:, :, j], axis=0), np.nanmax(vals[:, :, j], axis=0)
                ax.fill_between(grid, lo, hi, color=palette[j], alpha=0.18, lw=0)
                sns.lineplot(x=grid, y=mean_seed[:, j], ax=ax, color=palette[j], lw=1.1,
                             legend=False)
                handles.append((Line2D([], [], color=palette[j]),
                                names[j] if k > 1 else rf"{adm_name(b)} $\beta_t$"))
            refs(ax)
            ax.set_xlabel("training step (optimizer steps)")
            ax.set_ylabel(r"$\beta_t$ (dimensionless)")
            handles += ref_handles
            ax.legend([h for h, _ in handles], [t for _, t in handles], loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
            caption += (" Line: mean over seeds; band: range over seeds"
                        + (" (one β per parameter group)." if k == 1 else ", per tensor."))
        else:
            fig, (ax, hm) = plt.subplots(
                2, 1, figsize=(FULL_WIDTH, 2.2 + min(0.09 * k, 3.2)), layout="constrained",
                sharex=True, height_ratios=[1.0, 0.9 + min(0.05 * k, 1.8)],
            )
            with np.errstate(all="ignore"):
                q = np.nanpercentile(mean_seed, [5, 25, 50, 75, 95], axis=1)
            c = colours["adm"]
            ax.fill_between(grid, q[0], q[4], color=c, alpha=0.13, lw=0)
            ax.fill_between(grid, q[1], q[3], color=c, alpha=0.3, lw=0)
            ax.plot(grid, q[2], color=c, lw=1.3)
            refs(ax)
            ax.set_ylabel(r"$\beta_t$ (dimensionless)")
            handles = [(Line2D([], [], color=c), f"median over the {k} tensors"),
                       (Patch(color=c, alpha=0.45), "25–75 %"),
                       (Patch(color=c, alpha=0.18), "5–95 %")] + ref_handles
            ax.legend([h for h, _ in handles], [t for _, t in handles], loc="lower left",
                      bbox_to_anchor=(0.0, 1.03), borderaxespad=0.0, ncol=len(handles),
                      handlelength=1.6, columnspacing=1.2)
            edges = np.r_[grid[0], (grid[1:] + grid[:-1]) / 2, grid[-1]] if grid.size > 1 \
                else np.array([grid[0] - 0.5, grid[0] + 0.5])
            mesh = hm.pcolormesh(edges, np.arange(k + 1), mean_seed.T, cmap="viridis",
                                 vmin=0.0, vmax=max(0.9, float(np.nanmax(mean_seed))),
                                 shading="flat", rasterized=True)
            hm.set_ylim(k, 0)
            every = max(1, math.ceil(k / 22))
            hm.set_yticks(np.arange(k)[::every] + 0.5, [names[j] for j in range(0, k, every)],
                          fontsize=5.5 if k > 12 else 6.5)
            hm.tick_params(axis="y", length=0)
            hm.grid(False)
            hm.set_xlabel("training step (optimizer steps)")
            hm.set_title("Per tensor (mean over seeds)", loc="left")
            cb = fig.colorbar(mesh, ax=hm, pad=0.01, fraction=0.03, aspect=14)
            cb.ax.set_title(r"$\beta_t$", fontsize=7, pad=3)
            cb.ax.tick_params(labelsize=6)
            cb.outline.set_linewidth(0.5)
            caption += (f" Top: distribution over the {k} parameter tensors of the seed-mean βₜ; "
                        f"bottom: every tensor's βₜ (mean over seeds).")
        if seeds:
            caption += f" {seeds} seed(s)."
        return Figure(_svg(fig), caption)


# ----------------------------------------------------------------------------------------------
# Per-seed values


def per_seed(
    bd: BaselineData, entry: dict[str, Any], summary: dict[str, Any], spec: dict[str, Any],
    colours: dict[str, str],
) -> Figure:
    b = bd.baseline
    metric = summary["metric"]
    minimize = summary["direction"] == "minimize"
    caption = (f"Test {metric} of every evaluation run, per arm; grey lines join the runs of one "
               f"seed (the pairing). Bar: mean with 95 % bootstrap CI over complete runs. "
               f"Diverged runs are drawn in the strip at the {'top' if minimize else 'bottom'} "
               f"(the worst outcome).")
    arms = list(bd.arms)
    seeds = bd.seeds
    if not arms or not seeds:
        return Figure(None, caption, "No evaluation runs.")
    rows = []
    for i, arm in enumerate(arms):
        ad = bd.arms[arm]
        for s in seeds:
            r = ad.runs.get(s)
            if r is None:
                continue
            state = "complete" if is_complete(r) else "diverged" if is_diverged(r) else "excluded"
            rows.append({"arm": arm, "x": i, "seed": s, "state": state,
                         "value": float(r.value) if state == "complete" else np.nan})
    df = pd.DataFrame(rows)
    finite = df.loc[df.state == "complete", "value"].to_numpy()
    if finite.size == 0:
        y0, y1 = 0.0, 1.0
    else:
        y0, y1 = float(finite.min()), float(finite.max())
    span = (y1 - y0) or max(abs(y1), 1.0) * 0.05
    ydiv = y1 + 0.16 * span if minimize else y0 - 0.16 * span
    df["y"] = np.where(df.state == "diverged", ydiv, df["value"])
    with matplotlib.rc_context(RC), sns.axes_style("ticks", {"axes.grid": True}):
        width = min(FULL_WIDTH, 1.3 + 0.8 * len(arms))
        fig, ax = plt.subplots(figsize=(width, 2.6), layout="constrained")
        for _, g in df[df.state != "excluded"].groupby("seed"):
            g = g.sort_values("x")
            ax.plot(g["x"], g["y"], color="#B5B5B5", lw=0.7, zorder=1)
        comp = df[df.state == "complete"]
        sns.stripplot(data=comp, x="x", y="y", hue="arm", palette=colours, jitter=False, size=5,
                      ax=ax, legend=False, zorder=3, native_scale=True, linewidth=0.4,
                      edgecolor="white")
        dv = df[df.state == "diverged"]
        if len(dv):
            # several diverged runs of one arm: spread sideways so each one is seen
            dv = dv.assign(x=dv["x"] + (dv.groupby("x").cumcount()
                                        - (dv.groupby("x")["x"].transform("size") - 1) / 2) * 0.09)
            ax.scatter(dv["x"], dv["y"], marker="x", s=34, color=DIVERGED_COLOUR, lw=1.3, zorder=4)
            ax.axhline(ydiv, color="#BBBBBB", lw=0.6, ls=":", zorder=0)
            ax.annotate("diverged", xy=(1.0, ydiv), xycoords=("axes fraction", "data"),
                        xytext=(2, 0), textcoords="offset points", fontsize=6.5, va="center",
                        color="#444444", annotation_clip=False)
        for i, arm in enumerate(arms):
            e = entry.get(arm) or {}
            if e.get("mean") is None:
                continue
            lo, hi = e.get("ci") or [None, None]
            x = i + 0.24
            if lo is not None and hi is not None:
                ax.plot([x, x], [lo, hi], color=colours.get(arm, "black"), lw=2.2,
                        solid_capstyle="butt", zorder=2)
            ax.plot([x - 0.07, x + 0.07], [e["mean"], e["mean"]], color=colours.get(arm, "black"),
                    lw=1.6, zorder=2)
        ax.set_xticks(range(len(arms)),
                      [short_label(b, a, bd.arms[a].beta, spec) for a in arms])
        for tick, arm in zip(ax.get_xticklabels(), arms, strict=True):
            tick.set_color(colours.get(arm, "black"))
        ax.set_xlim(-0.5, len(arms) - 0.3)
        ax.set_xlabel("")
        ax.set_ylabel(metric_label(metric, "test"))
        ax.grid(axis="x", visible=False)
        return Figure(_svg(fig), caption)


_PER_BASELINE = (("sensitivity", "beta_sensitivity"), ("curves", "learning_curves"),
                 ("traces", "beta_traces"), ("per_seed", "per_seed"))


def _draw(fn_name: str, args: tuple) -> Any:
    return globals()[fn_name](*args)


def all_figures(
    data: dict[str, BaselineData], summary: dict[str, Any], spec: dict[str, Any],
    extras: list[str],
) -> dict[str, Any]:
    """Every figure of the report. Figures are independent, so on a machine with several cores they
    are drawn in forked worker processes (matplotlib spends its time laying out text, in Python)."""
    colours = arm_colours(extras)
    jobs: list[tuple[tuple[str, ...], str, tuple]] = [(("forest",), "forest", (summary, colours))]
    for b, bd in data.items():
        entry = summary["baselines"][b]
        for name, fn_name in _PER_BASELINE:
            jobs.append((("baselines", b, name), fn_name, (bd, entry, summary, spec, colours)))
    results = _run_jobs(jobs)
    out: dict[str, Any] = {"baselines": {b: {} for b in data}}
    for (path, _, _), value in zip(jobs, results, strict=True):
        if path == ("forest",):
            out["forest"] = value
        else:
            out["baselines"][path[1]][path[2]] = value
    return out


def _run_jobs(jobs: list[tuple[tuple[str, ...], str, tuple]]) -> list[Any]:
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = min(len(jobs), os.cpu_count() or 1)
    if workers > 1 and "fork" in mp.get_all_start_methods():
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
                futures = [pool.submit(_draw, fn, args) for _, fn, args in jobs]
                return [f.result() for f in futures]
        except Exception:  # a pool that cannot start (sandbox, pickling): draw here instead
            pass
    return [_draw(fn, args) for _, fn, args in jobs]
