"""The report's figures: seaborn/matplotlib (Agg) → SVG text, sized for an A4 page.

They draw what :mod:`admtune.report.analysis` computed (bands, CIs, aligned curves) and take their
words from :mod:`admtune.report.text`; nothing here computes a statistic.

One colour per arm everywhere (Okabe–Ito, colour-blind safe): AdM vermillion, tuned β blue,
β = 0.9 grey, workload extras from the rest of the palette; tuning trials sky blue. Each figure
function returns a :class:`Figure`; when its data are missing it returns one with ``svg=None`` and a
note saying why, and the report shows the note instead.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, replace
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

from admtune.report import text  # noqa: E402
from admtune.report.summary import BaselineSummary, CurvePanel, Summary  # noqa: E402
from admtune.report.text import adm_name, adm_qualifier, baseline_name, metric_label  # noqa: E402

OKABE_ITO = {
    "vermillion": "#D55E00", "blue": "#0072B2", "grey": "#7A7A7A", "sky": "#56B4E9",
    "orange": "#E69F00", "green": "#009E73", "purple": "#CC79A7", "yellow": "#F0E442",
    "black": "#000000",
}
ARM_COLOURS = {"adm": OKABE_ITO["vermillion"], "tuned": OKABE_ITO["blue"], "default": OKABE_ITO["grey"]}
EXTRA_COLOURS = [OKABE_ITO[c] for c in ("purple", "orange", "green", "black")]
TRIAL_COLOUR = OKABE_ITO["sky"]
DIVERGED_COLOUR = OKABE_ITO["black"]
FINALIST_COLOUR = "#1F4E79"  # the trials' edge colour, darker: a finalist is a trial re-run

FULL_WIDTH = 6.7  # inches: A4 minus the page margins
# 1 − β of the β-sensitivity figure's top axis: β = 0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, …
BETA_TICKS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0001, 0.00001)

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


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.03, metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def _plain_log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Plain tick labels (0.2, 0.5, 1, 2) on a log axis spanning under two decades, where
    matplotlib would write 2×10⁻¹ or label only one power of ten."""
    if not (lo > 0 and hi / lo < 100):
        return
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _positive_spread(y: np.ndarray) -> bool:
    y = y[np.isfinite(y)]
    return y.size > 0 and float(np.min(y)) > 0 and float(np.max(y)) / float(np.min(y)) > 20


# ----------------------------------------------------------------------------------------------
# Overview: AdM's advantage per baseline, with the equivalence margin


def forest(summary: Summary, colours: dict[str, str]) -> Figure:
    rows = []
    for b, e in summary.baselines.items():
        rows.append((b, "tuned", e.diff, e.verdict))
        d = e.vs_other_arms.get("default")
        if d is not None:
            rows.append((b, "default", d.diff, None))
    usable = [r for r in rows if r[2].mean is not None]
    caption = text.forest_caption(summary.metric, summary.margin)
    if not usable:
        return Figure(None, caption, text.NO_PAIRS)
    with matplotlib.rc_context(RC), sns.axes_style("ticks"):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH, 0.55 + 0.36 * len(rows)), layout="constrained")
        margin = summary.margin
        ax.axvspan(-margin, margin, color="#E8E8E8", zorder=0, lw=0)
        ax.axvline(0, color="#555555", lw=0.8, zorder=1)
        labels = []
        for i, (b, arm, d, verdict) in enumerate(rows):
            y = len(rows) - 1 - i
            vs = "tuned β" if arm == "tuned" else "β = 0.9"
            labels.append((y, f"{adm_name(b)} vs {baseline_name(b)} {vs}"))
            if d.mean is None:
                continue
            lo, hi = d.ci
            c = colours[arm]
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [y, y], color=c, lw=1.6, solid_capstyle="butt", zorder=2)
            ax.plot([d.mean], [y], "o", ms=6, color=c, mfc=c if arm == "tuned" else "white",
                    mew=1.4, zorder=3)
            if verdict:
                ax.annotate(verdict, xy=(1.0, y), xycoords=("axes fraction", "data"),
                            xytext=(6, 0), textcoords="offset points", va="center", fontsize=7.5,
                            fontweight="bold", annotation_clip=False)
        ax.set_yticks([y for y, _ in labels], [t for _, t in labels])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel(f"Δ, AdM better by: {metric_label(summary.metric, 'test')}")
        ax.grid(axis="x", color="#E3E3E3", lw=0.5)
        sns.despine(ax=ax, left=True)
        ax.tick_params(axis="y", length=0)
        xs = [v for r in usable for v in [r[2].mean, *r[2].ci] if v is not None]
        span = max(max(abs(v) for v in xs), margin) * 1.15 or 1.0
        ax.set_xlim(-span, span)
        return Figure(_svg(fig), caption)


# ----------------------------------------------------------------------------------------------
# β-sensitivity


def beta_sensitivity(entry: BaselineSummary, summary: Summary, colours: dict[str, str]) -> Figure:
    b = entry.baseline
    metric = summary.metric
    minimize = summary.direction == "minimize"
    sens = entry.sensitivity
    trials = sens.trials
    caption = text.sensitivity_caption(
        b, metric, summary.beta_free,
        entry.selection.selection_seeds if entry.selection.finalists else None)
    if not trials:
        return Figure(None, caption, text.NO_TRIALS)
    q = np.array([max(1.0 - t.beta, 1e-6) for t in trials])
    v = np.array([t.value if t.value is not None else np.nan for t in trials])
    status = np.array([t.state for t in trials])
    ok = (status == "complete") & np.isfinite(v)
    pruned = (status == "pruned") & np.isfinite(v)
    div = (status == "diverged") | ((status == "complete") & ~np.isfinite(v))

    adm_mean = sens.adm_val_mean
    lo, hi = sens.adm_val_ci
    with matplotlib.rc_context(RC), sns.axes_style("ticks", {"axes.grid": True}):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH, 2.9), layout="constrained")
        handles = []
        if adm_mean is not None:
            if lo is not None and hi is not None:
                ax.axhspan(lo, hi, color=colours["adm"], alpha=0.18, lw=0, zorder=1)
            ax.axhline(adm_mean, color=colours["adm"], lw=1.5, zorder=2)
            handles.append((Patch(facecolor=colours["adm"], alpha=0.35, edgecolor=colours["adm"]),
                            f"{adm_name(b)} ({adm_qualifier(summary.beta_free)}): mean ± 95 % CI, "
                            f"{sens.adm_val_n} seeds"))
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
        # The finalists' selection means: what actually chose the tuned β, several seeds each
        fins = [f for f in entry.selection.finalists if f.beta is not None and f.mean is not None]
        fq = np.array([max(1.0 - f.beta, 1e-6) for f in fins])
        fm = np.array([f.mean for f in fins])
        fs = np.array([f.std if f.std is not None else 0.0 for f in fins])
        if fins:
            chosen = np.array([f.chosen for f in fins])
            k = entry.selection.selection_seeds
            ax.errorbar(fq, fm, yerr=fs, fmt="none", ecolor=FINALIST_COLOUR, elinewidth=1.0,
                        capsize=2.5, zorder=5)
            ax.scatter(fq[~chosen], fm[~chosen], marker="D", s=30, facecolors="white",
                       edgecolors=FINALIST_COLOUR, linewidths=1.2, zorder=6)
            ax.scatter(fq[chosen], fm[chosen], marker="D", s=34, color=colours["tuned"],
                       edgecolors=FINALIST_COLOUR, linewidths=1.0, zorder=6)
            handles.append((Line2D([], [], ls="", marker="D", mfc="white", mec=FINALIST_COLOUR),
                            f"finalist: selection mean ± sd, {k} seeds"))
            if chosen.any():
                handles.append((Line2D([], [], ls="", marker="D", color=colours["tuned"],
                                       mec=FINALIST_COLOUR), "finalist chosen (tuned β)"))
        finite = v[np.isfinite(v)]
        if fins:
            finite = np.r_[finite, fm - fs, fm + fs]
        if adm_mean is not None:
            finite = np.r_[finite, adm_mean]
        log_y = _positive_spread(finite)
        if finite.size:
            y0, y1 = float(np.min(finite)), float(np.max(finite))
        else:
            y0, y1 = 0.0, 1.0
        if log_y:
            ax.set_yscale("log")
            _plain_log_ticks(ax.yaxis, y0, y1)
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
        tuned_beta = entry.tuned.beta
        qt = max(1 - tuned_beta, 1e-6) if tuned_beta is not None else None
        # a tuned β within 3 % of β = 0.9 in 1 − β draws on the same line: say which is which
        near = qt is not None and abs(math.log10(qt / 0.1)) < 0.013
        ax.axvline(0.1, color=colours["default"], ls="--", lw=1.0, zorder=3)
        handles.append((Line2D([], [], color=colours["default"], ls="--", lw=1.0), "β = 0.9"))
        if qt is not None:
            # beneath and wider when it coincides with β = 0.9, so both stay visible
            ax.axvline(qt, color=colours["tuned"], ls="-" if near else "-.",
                       lw=3.2 if near else 1.1, alpha=0.45 if near else 1.0, zorder=2)
            handles.append((Line2D([], [], color=colours["tuned"], ls="-" if near else "-.",
                                   lw=3.2 if near else 1.1, alpha=0.45 if near else 1.0),
                            f"tuned β = {text.fmt_beta(tuned_beta)}"
                            + (" (on β = 0.9's line)" if near and tuned_beta != 0.9 else
                               " (= β = 0.9)" if near else "")))
        ax.set_xscale("log")
        qmin = min(float(q.min()), qt or 0.1, 0.1, *fq.tolist())
        qmax = max(float(q.max()), 0.1, *fq.tolist())
        if qmax / qmin < 10:  # few trials close together: at least a decade, for β ticks to read
            mid = math.sqrt(qmax * qmin)
            qmin, qmax = min(qmin, mid / math.sqrt(10)), max(qmax, mid * math.sqrt(10))
        ax.set_xlim(qmax * 1.5, qmin / 1.5)  # reversed: β grows to the right
        ax.set_xlabel("1 − β (log scale; dimensionless)")
        ax.set_ylabel(metric_label(metric, "validation"))
        top = ax.secondary_xaxis("top")
        ticks = [t for t in BETA_TICKS if qmin / 1.5 <= t <= qmax * 1.5]
        while len(ticks) > 7:  # many decades: every other one, keeping β = 0.9 (1 − β = 0.1)
            ticks = [t for i, t in enumerate(ticks) if i % 2 == ticks.index(0.1) % 2] \
                if 0.1 in ticks else ticks[::2]
        top.set_xticks(ticks, [f"{1 - t:.6g}" for t in ticks])
        top.set_xticks([], minor=True)
        top.set_xlabel("β")
        ax.legend([h for h, _ in handles], [t for _, t in handles], loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, handlelength=1.8)
        return Figure(_svg(fig), caption)


# ----------------------------------------------------------------------------------------------
# Learning curves


def _panel_curves(ax, panel: CurvePanel, colours: dict[str, str]) -> list:
    """Draw one panel; returns the drawn bands (for the inset)."""
    series = []
    for ac in panel.arms:
        colour = colours.get(ac.arm, OKABE_ITO["black"])
        for x, y in ac.diverged:
            ax.plot(x, y, color=colour, lw=0.7, ls=":", alpha=0.9, zorder=2)
        band = ac.band
        if band is None:
            continue
        ax.fill_between(band.step, band.lo, band.hi, color=colour, alpha=0.2, lw=0, zorder=2)
        sns.lineplot(x=band.step, y=band.mean, ax=ax, color=colour, lw=1.3, zorder=3, legend=False)
        series.append((band.step, band.mean, band.lo, band.hi, colour))
    return series


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
    # sparse validation (every 100 steps, say) leaves a point or two in the tail: an inset of
    # them is an empty box
    if any(int(np.isfinite(mean[g >= start]).sum()) < 3 for g, mean, *_ in series):
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


def learning_curves(entry: BaselineSummary, summary: Summary, colours: dict[str, str]) -> Figure:
    b = entry.baseline
    metric = summary.metric
    caption = text.curves_caption(b)
    if not entry.curves:
        return Figure(None, caption, text.NO_CURVES)
    with matplotlib.rc_context(RC), sns.axes_style("ticks", {"axes.grid": True}):
        fig, axes = plt.subplots(1, len(entry.curves), figsize=(FULL_WIDTH, 2.55),
                                 layout="constrained", squeeze=False)
        for ax, panel in zip(axes[0], entry.curves, strict=True):
            series = _panel_curves(ax, panel, colours)
            lo, hi = panel.value_range
            log_y = lo is not None and lo > 0 and hi / lo > 20
            if log_y:
                ax.set_yscale("log")
                _plain_log_ticks(ax.yaxis, lo, hi)
            _zoom(ax, series, log_y)
            ax.set_xlabel("training step (optimizer steps)")
            if panel.kind == "train":
                ax.set_ylabel(metric_label(panel.key, ""))
                ax.set_title("Training loss", loc="left")
            else:
                ax.set_ylabel(metric_label(metric, "validation"))
                ax.set_title(f"Validation {metric.replace('_', ' ')}", loc="left")
        handles = []
        for arm in entry.eval_arms:
            st = entry.arms[arm]
            extra = f", {st.diverged} diverged" if st.diverged else ""
            handles.append((Line2D([], [], color=colours.get(arm, "black"), lw=1.6),
                            f"{text.legend_label(b, arm, st.beta, summary.beta_free)} "
                            f"(n = {st.n}{extra})"))
        fig.legend([h for h, _ in handles], [t for _, t in handles], loc="outside lower center",
                   ncol=min(len(handles), 4), handlelength=1.8)
        return Figure(_svg(fig), caption)


# ----------------------------------------------------------------------------------------------
# AdM's β_t

HEATMAP_ABOVE = 4  # tensors: more lines than this are a tangle; a quantile band and heat map are not


_STORED_ID = re.compile(r"^g(\d+)\.p(\d+) \((.*)\)$")


def _tensor_label(name: str) -> str:
    """A β_t trace's tensor: its parameter name; studies run before workloads passed names
    stored ``g0.p1 (128,)``, shown as ``group 1, tensor 2 (128)``."""
    m = _STORED_ID.match(name)
    if not m:
        return name
    shape = " × ".join(d.strip() for d in m[3].split(",") if d.strip())
    return f"group {int(m[1]) + 1}, tensor {int(m[2]) + 1} ({shape})"


def beta_traces(entry: BaselineSummary, summary: Summary, colours: dict[str, str]) -> Figure:
    b = entry.baseline
    tr = entry.traces
    if tr is None:
        return Figure(None, text.traces_caption(b), text.NO_TRACES)
    names, grid, mean_seed = [_tensor_label(n) for n in tr.names], tr.step, tr.mean
    k = len(names)
    caption = text.traces_caption(b, k, tr.seeds, heatmap=k > HEATMAP_ABOVE)
    tuned_beta = entry.tuned.beta

    med = np.nanmedian(mean_seed, axis=1) if mean_seed.size else np.array([])
    # AdM at its cap β_max = 0.9 most of the time, and the tuned β there too: three lines in one
    on_cap = bool(med.size) and float(np.mean(np.abs(med - 0.9) < 0.01)) > 0.5
    tuned_on = tuned_beta is not None and abs(tuned_beta - 0.9) < 0.005

    def refs(ax):
        # wide and translucent beneath AdM's line where they coincide, so each one shows
        wide = 4.0 if on_cap else 1.0
        ax.axhline(0.9, color=colours["default"], ls="-" if on_cap else "--", lw=wide,
                   alpha=0.35 if on_cap else 1.0, zorder=1)
        if tuned_beta is not None:
            ax.axhline(tuned_beta, color=colours["tuned"], ls="-." if not (on_cap and tuned_on)
                       else (0, (1, 2)), lw=1.6 if on_cap and tuned_on else 1.0, zorder=4)
        if on_cap:
            # in the empty lower right, where no trace is: the three lines at 0.9 read as one
            ax.text(0.99, 0.3, r"AdM's $\beta_t$ sits at its cap $\beta_{\max}$ = 0.9 most of the "
                    "time, on the β = 0.9 line" + (f"\nand the tuned β = "
                                                  f"{text.fmt_beta(tuned_beta)}" if tuned_on else ""),
                    transform=ax.transAxes, ha="right", va="center", fontsize=6.5,
                    color="#333333", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
        ax.set_ylim(-0.02, 1.0)

    ref_handles = [(Line2D([], [], color=colours["default"], ls="-" if on_cap else "--",
                           lw=4.0 if on_cap else 1.0, alpha=0.35 if on_cap else 1.0), "β = 0.9")]
    if tuned_beta is not None:
        ref_handles.append((Line2D([], [], color=colours["tuned"],
                                   ls=(0, (1, 2)) if on_cap and tuned_on else "-."),
                            f"tuned β = {text.fmt_beta(tuned_beta)}"))
    with matplotlib.rc_context(RC), sns.axes_style("ticks", {"axes.grid": True}):
        if k <= HEATMAP_ABOVE:
            fig, ax = plt.subplots(figsize=(FULL_WIDTH, 2.4), layout="constrained")
            palette = ([colours["adm"]] if k == 1 else
                       sns.color_palette("rocket", n_colors=k + 1)[:k])
            handles = []
            for j in range(k):
                ax.fill_between(grid, tr.lo[:, j], tr.hi[:, j], color=palette[j], alpha=0.18, lw=0)
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
        else:
            fig, (ax, hm) = plt.subplots(
                2, 1, figsize=(FULL_WIDTH, 2.2 + min(0.09 * k, 3.2)), layout="constrained",
                sharex=True, height_ratios=[1.0, 0.9 + min(0.05 * k, 1.8)],
            )
            q = tr.quantiles
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
        return Figure(_svg(fig), caption)


# ----------------------------------------------------------------------------------------------
# Per-seed values


def per_seed(entry: BaselineSummary, summary: Summary, colours: dict[str, str]) -> Figure:
    b = entry.baseline
    metric = summary.metric
    minimize = summary.direction == "minimize"
    caption = text.per_seed_caption(metric, minimize)
    arms = list(entry.eval_arms)
    seeds = entry.seeds
    if not arms or not seeds:
        return Figure(None, caption, text.NO_EVAL_RUNS)
    rows = []
    for i, arm in enumerate(arms):
        for s, r in entry.per_seed[arm].items():
            rows.append({"arm": arm, "x": i, "seed": s, "state": r.state,
                         "value": r.value if r.state == "complete" else np.nan})
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
            st = entry.arms[arm]
            if st.mean is None:
                continue
            lo, hi = st.ci
            x = i + 0.24
            if lo is not None and hi is not None:
                ax.plot([x, x], [lo, hi], color=colours.get(arm, "black"), lw=2.2,
                        solid_capstyle="butt", zorder=2)
            ax.plot([x - 0.07, x + 0.07], [st.mean, st.mean], color=colours.get(arm, "black"),
                    lw=1.6, zorder=2)
        ax.set_xticks(range(len(arms)),
                      [text.short_label(b, a, entry.arms[a].beta, summary.beta_free)
                       for a in arms])
        for tick, arm in zip(ax.get_xticklabels(), arms, strict=True):
            tick.set_color(colours.get(arm, "black"))
        ax.set_xlim(-0.5, len(arms) - 0.3)
        ax.set_xlabel("")
        ax.set_ylabel(metric_label(metric, "test"))
        ax.grid(axis="x", visible=False)
        return Figure(_svg(fig), caption)


def best_so_far(entry: BaselineSummary, summary: Summary, colours: dict[str, str]) -> Figure:
    """The baseline's best validation value against the number of tuning trials: over every random
    ordering of its trials (median, 95 % band) and in the study's own order, with AdM's mean."""
    b = entry.baseline
    bsf = entry.tuning.best_so_far
    caption = text.best_so_far_caption(b, summary.metric, entry.tuning)
    if bsf is None or not bsf.k:
        return Figure(None, caption, text.NO_TRIALS)
    k = np.asarray(bsf.k, dtype=float)

    def arr(t: tuple) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in t], dtype=float)

    med, lo, hi, own = arr(bsf.median), arr(bsf.lo), arr(bsf.hi), arr(bsf.in_order)
    t = entry.tuning
    minimize = summary.direction == "minimize"
    shown = np.r_[med, lo, hi, own]
    shown = shown[np.isfinite(shown)]
    if t.adm_val_mean is not None:
        shown = np.r_[shown, t.adm_val_mean]
    log_y = _positive_spread(shown)
    with matplotlib.rc_context(RC), sns.axes_style("ticks", {"axes.grid": True}):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH, 2.3), layout="constrained")
        if log_y:
            ax.set_yscale("log")
            _plain_log_ticks(ax.yaxis, float(shown.min()), float(shown.max()))
        if shown.size:
            y0, y1 = float(shown.min()), float(shown.max())
            if log_y:
                pad = (y1 / y0) ** 0.06
                ax.set_ylim(y0 / pad, y1 * pad)
            else:
                pad = 0.06 * ((y1 - y0) or max(abs(y1), 1.0))
                ax.set_ylim(y0 - pad, y1 + pad)
        # where too few orderings have a complete trial yet, the band's worse end is undefined:
        # it runs off the worse edge of the plot rather than stopping at a made-up value
        edge = ax.get_ylim()[1] if minimize else ax.get_ylim()[0]
        worse = np.where(np.isnan(lo), edge * (10.0 if log_y and minimize else 1.0), lo)
        ax.fill_between(k, worse, hi, step="post", color=colours["tuned"], alpha=0.16, lw=0,
                        label="95 % of orderings")
        ax.step(k, med, where="post", color=colours["tuned"], lw=1.5,
                label=f"{baseline_name(b)}: median over random orderings")
        ax.step(k, own, where="post", color=colours["tuned"], lw=1.0, ls=":",
                label=f"{baseline_name(b)}: this study's order")
        if t.adm_val_mean is not None:
            ax.axhline(t.adm_val_mean, color=colours["adm"], lw=1.4,
                       label=f"{adm_name(b)}: mean validation {summary.metric}")
        o = t.to_match
        if o is not None and t.adm_val_mean is not None:
            ax.errorbar([o.median], [t.adm_val_mean],
                        xerr=[[o.median - o.ci[0]], [o.ci[1] - o.median]], fmt="o",
                        color=colours["adm"], mfc="white", ms=5, capsize=3, lw=1.2, zorder=5,
                        label=f"trials to match: median {o.median} [{o.ci[0]}, {o.ci[1]}]")
        ax.set_xlim(0.5, max(k[-1], 1) + 0.5)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("tuning trials")
        ax.set_ylabel(f"best {metric_label(summary.metric, 'validation')}")
        ax.legend(loc="upper right" if minimize else "lower right", fontsize=6.5)
        return Figure(_svg(fig), caption)


_PER_BASELINE = (("sensitivity", "beta_sensitivity"), ("orderings", "best_so_far"),
                 ("curves", "learning_curves"),
                 ("traces", "beta_traces"), ("per_seed", "per_seed"))


def _draw(fn_name: str, args: tuple) -> Any:
    return globals()[fn_name](*args)


def all_figures(summary: Summary) -> dict[str, Any]:
    """Every figure of the report. Figures are independent, so on a machine with several cores they
    are drawn in forked worker processes (matplotlib spends its time laying out text, in Python)."""
    colours = arm_colours(list(summary.extra_arms))
    head = replace(summary, baselines={})  # what a baseline's figures need of the rest: little
    jobs: list[tuple[tuple[str, ...], str, tuple]] = [(("forest",), "forest", (summary, colours))]
    for b, entry in summary.baselines.items():
        for name, fn_name in _PER_BASELINE:
            jobs.append((("baselines", b, name), fn_name, (entry, head, colours)))
    results = _run_jobs(jobs)
    out: dict[str, Any] = {"baselines": {b: {} for b in summary.baselines}}
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
