"""The suite report: one answer across many studies (suite.json, suite.md, suite.html, suite.pdf).

Layout as for a study: :mod:`.stats` (pure aggregate statistics), :mod:`.analysis` (from the stored
studies to suite.json), :mod:`.figures` (draw only), and here the wording, the HTML (the study
report's template style) and the PDF (the same WeasyPrint path).
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from admtune.report import _signed
from admtune.report.text import baseline_name, fmt, fmt_beta, fmt_p
from admtune.util import atomic_write

__all__ = ["write_suite", "render_suite", "headline", "suite_lines", "suite_markdown"]


def _ci(ci: Any, dec: int | None = None, signed: bool = False) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    f = (lambda v: _signed(v, dec)) if signed else (lambda v: fmt(v, decimals=dec))
    return f"[{f(ci[0])}, {f(ci[1])}]"


def _est(e: dict[str, Any], digits: int = 2, signed: bool = False) -> str:
    if e.get("value") is None:
        return "—"
    value = _signed(e["value"], digits) if signed else f"{e['value']:.{digits}f}"
    return f"{value} {_ci(e['ci'], digits, signed)}".strip().replace("-", "−")


def counts_text(counts: dict[str, int]) -> str:
    words = [f"{v} {n}" for v, n in (("beats", counts.get("beats", 0)),
                                      ("matches", counts.get("matches", 0)),
                                      ("loses", counts.get("loses", 0)),
                                      ("inconclusive", counts.get("inconclusive", 0))) if n]
    return ", ".join(words) if words else "no comparison"


def headline(suite: dict[str, Any]) -> str:
    """The answer in one sentence."""
    n = len(suite["comparisons"])
    k = len(suite["studies"])
    poi = suite["prob_improvement"]["all" if "all" in suite["prob_improvement"]
                                    else next(iter(suite["prob_improvement"]))]["adm_vs_tuned"]
    score = suite["scores"]["all" if "all" in suite["scores"] else next(iter(suite["scores"]))]
    iqm = score["adm"]["iqm"]
    return (f"Across {n} comparisons in {k} {'study' if k == 1 else 'studies'}, untuned AdM "
            f"against tuned momentum: {counts_text(suite['verdict_counts']['suite'])} "
            f"(verdicts with {suite['correction_name']} over the whole suite). A run of AdM beats "
            f"a run of tuned momentum with probability {_est(poi)}; the interquartile mean of "
            f"AdM's score is {_est(iqm, signed=True)} margins (0 = tuned β).")


def suite_lines(suite: dict[str, Any], width: int = 80) -> list[str]:
    """The answer for the command line, in lines of at most ``width`` columns (Rich markup)."""
    from rich.markup import escape

    from admtune.report import VERDICT_STYLES

    lines = [f"[bold]suite {escape(suite['suite'])}[/]: AdM vs tuned β across "
             f"{len(suite['studies'])} studies, {len(suite['comparisons'])} comparisons",
             f"[dim]verdicts with {suite['correction_name']} over all "
             f"{suite['multiplicity']['tests']} tests; study's own verdict in ( ) when it differs[/]"]
    pad = max((len(f"{c['study']} {baseline_name(c['baseline'])}") for c in suite["comparisons"]),
              default=0)
    for c in suite["comparisons"]:
        label = f"{c['study']} {baseline_name(c['baseline'])}"
        v = c["suite_verdict"]
        own = f" ({c['verdict']})" if c["verdict"] != v else ""
        dec = c["decimals"]
        delta = f"Δ {_signed(c['diff']['mean'], dec)} {_ci(c['diff']['ci'], dec, True)}"
        line = f"  {escape(label):<{pad}}  [{VERDICT_STYLES.get(v, 'bold')}]{v}[/]{own}"
        plain = f"  {label:<{pad}}  {v}{own}"
        if len(plain) + 2 + len(delta) <= width:
            line += " " * (max(2, pad + 18 - len(plain) + 4)) + escape(delta)
        else:
            line += "\n" + " " * (pad + 4) + escape(delta)
        lines.append(line)
    for g, p in suite["prob_improvement"].items():
        lines.append(f"P(AdM beats tuned), {_group(g)}: {_est(p['adm_vs_tuned'])}")
    for g, s in suite["scores"].items():
        lines.append(f"IQM of AdM's score, {_group(g)}: {_est(s['adm']['iqm'], signed=True)} δ")
    return lines


def group_name(g: str) -> str:
    """A comparison group's title: a baseline family, or all comparisons."""
    return "all comparisons" if g == "all" else f"{baseline_name(g)} family"


def _group(g: str) -> str:
    return "all" if g == "all" else baseline_name(g)


def _cell(c: dict[str, Any]) -> dict[str, Any]:
    dec = c["decimals"]
    return {"verdict": c["verdict"], "suite_verdict": c["suite_verdict"],
            "delta": _signed(c["diff"]["mean"], dec), "ci": _ci(c["diff"]["ci"], dec, True),
            "adm": fmt(c["means"]["adm"], decimals=dec), "tuned": fmt(c["means"]["tuned"], decimals=dec),
            "default": fmt(c["means"]["default"], decimals=dec),
            "beta": fmt_beta(c["tuned_beta"]), "poi": _est(c["prob_improvement"]),
            "diverged": c["diverged"]}


def _matrix(suite: dict[str, Any]) -> dict[str, Any]:
    baselines: list[str] = []
    for c in suite["comparisons"]:
        if c["baseline"] not in baselines:
            baselines.append(c["baseline"])
    rows = []
    for s in suite["studies"]:
        cells = {c["baseline"]: _cell(c) for c in suite["comparisons"] if c["study"] == s["study"]}
        rows.append({"study": s["study"], "metric": s["metric"],
                     "direction": "lower" if s["direction"] == "minimize" else "higher",
                     "margin": fmt(s["margin"]), "cells": [cells.get(b) for b in baselines]})
    return {"baselines": [baseline_name(b) for b in baselines], "rows": rows}


def _cost_text(cost: dict[str, Any]) -> str:
    if not cost["comparisons"] and not cost["never"]:
        return "no comparison"
    parts = []
    if cost["comparisons"]:
        lo, hi = cost["ci"]
        parts.append(f"{cost['median']} trials [{lo}, {hi}] (mean {fmt(cost['mean'], 3)}) over "
                     f"{cost['comparisons']} comparison{'s' if cost['comparisons'] != 1 else ''}")
    if cost["never"]:
        parts.append(f"plus {cost['never']} comparison{'s' if cost['never'] != 1 else ''} where no "
                     "tuning trial reached AdM (more than the whole tuning budget each)")
    return "; ".join(parts)


def commands(suite: dict[str, Any], out_dir: Path | None = None) -> list[str]:
    src = suite.get("source") or ""
    where = f" --out {shlex.quote(str(out_dir))}" if out_dir is not None else ""
    if src.startswith("--from "):
        return [f"admtune suite --from {src[len('--from '):]} --name "
                f"{shlex.quote(suite['suite'])}{where}"]
    return [f"admtune suite {shlex.quote(suite['suite'])}{where}"]


def build_context(suite: dict[str, Any], figs: dict[str, Any],
                  out_dir: Path | None = None) -> dict[str, Any]:
    from admtune.report.render import figure_ctx

    comparisons = []
    for c in suite["comparisons"]:
        comparisons.append({
            "label": f"{c['study']} · {baseline_name(c['baseline'])}",
            "verdict": c["verdict"], "suite_verdict": c["suite_verdict"],
            "p_better": fmt_p(c["p_better"]), "p_worse": fmt_p(c["p_worse"]),
            "p_better_study": fmt_p(c["p_better_study"]), "p_worse_study": fmt_p(c["p_worse_study"]),
            "p_better_suite": fmt_p(c["p_better_suite"]), "p_worse_suite": fmt_p(c["p_worse_suite"]),
            "p_div": fmt_p(c["p_divergence"]), "p_div_suite": fmt_p(c["p_divergence_suite"]),
            "p_tost": fmt_p(c["p_tost"]),
            "ttm": _ttm(c),
            "trials": c["tuning"].get("trials"),
            "gap": {a: ("∞" if v is None or not math.isfinite(v) else f"{v:.2f}")
                    for a, v in c["gap"].items()},
            "poi": _est(c["prob_improvement"]),
        })
    poi_rows = [{"group": group_name(g), "adm_tuned": _est(p["adm_vs_tuned"]),
                 "adm_default": _est(p["adm_vs_default"]),
                 "tuned_default": _est(p["tuned_vs_default"]), "n": p["comparisons"]}
                for g, p in suite["prob_improvement"].items()]
    score_rows = [{"group": group_name(g), "arm": arm_word,
                   **{k: _est(s[arm][k], signed=True) for k in ("iqm", "median", "mean")}}
                  for g, s in suite["scores"].items()
                  for arm, arm_word in (("adm", "AdM (untuned)"), ("default", "β = 0.9"))]
    studies = [{**s, "wall": fmt(s["wall_s"], 3) if s["wall_s"] is not None else "—",
                "direction": "lower" if s["direction"] == "minimize" else "higher"}
               for s in suite["studies"]]
    return {
        "suite": suite, "headline": headline(suite), "matrix": _matrix(suite),
        "comparisons": comparisons, "poi_rows": poi_rows, "score_rows": score_rows,
        "cost_all": _cost_text(suite["tuning_cost"]["all"]),
        "cost_saved": _cost_text(suite["tuning_cost"]["not_losing"]),
        "study_counts": counts_text(suite["verdict_counts"]["study"]),
        "suite_counts": counts_text(suite["verdict_counts"]["suite"]),
        "figs": {k: figure_ctx(f) for k, f in figs.items()},
        "studies": studies, "commands": commands(suite, out_dir),
        "alphas": sorted({s["alpha"] for s in suite["studies"]}),
    }


def render_suite(suite: dict[str, Any], out_dir: Path | None = None) -> str:
    """The suite report's HTML from the content of suite.json (``out_dir``: where it goes, for
    its rebuild command)."""
    from admtune.report.render import environment
    from admtune.report.suite.figures import all_figures

    return environment().get_template("suite.html.j2").render(
        **build_context(suite, all_figures(suite), out_dir))


def _md_verdict(c: dict[str, Any]) -> str:
    v = c["suite_verdict"]
    text = v if v == "inconclusive" else f"**{v}**"
    return text + (f" (study: {c['verdict']})" if c["verdict"] != v else "")


def _ttm(c: dict[str, Any]) -> str:
    t = c["tuning"]
    if t.get("median") is not None:
        return f"{t['median']} [{t['ci'][0]}, {t['ci'][1]}]"
    return "never" if t.get("trials") else "—"


def suite_markdown(suite: dict[str, Any]) -> str:
    """suite.md: the verdict matrix and the aggregates as Markdown tables, for a README or a
    paper's appendix (the numbers of suite.json, worded as in suite.html)."""
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    lines = [f"Suite `{suite['suite']}`: {headline(suite)}", "",
             row(["study (metric, δ)", "baseline", "verdict", "Δ [95 % CI]", "AdM",
                  "tuned (β)", "β = 0.9", "P(AdM beats tuned)", "trials to match"]),
             row(["---"] * 9)]
    studies = {s["study"]: s for s in suite["studies"]}
    seen: set[str] = set()
    for c in suite["comparisons"]:
        s = studies[c["study"]]
        label = c["study"] if c["study"] in seen else (
            f"{c['study']} ({s['metric']}, {'lower' if s['direction'] == 'minimize' else 'higher'} "
            f"is better, δ = {fmt(s['margin'])})")
        seen.add(c["study"])
        cell = _cell(c)
        numbers = [f"{cell['delta']} {cell['ci']}", cell["adm"],
                   f"{cell['tuned']} ({cell['beta']})", cell["default"]]
        lines.append(row([label, baseline_name(c["baseline"]), _md_verdict(c),
                          *(n.replace("-", "−") for n in numbers), cell["poi"], _ttm(c)]))
    lines += ["", f"Verdicts with {suite['correction_name']} over all "
              f"{suite['multiplicity']['tests']} tests of the suite (the study's own verdict in "
              "parentheses where it differs). Δ = AdM − tuned, positive = AdM better.", "",
              row(["comparisons", "P(AdM beats tuned β)", "P(AdM beats β = 0.9)",
                   "P(tuned β beats β = 0.9)", "IQM of AdM's score (δ)",
                   "IQM of β = 0.9's score (δ)"]), row(["---"] * 6)]
    for g, p in suite["prob_improvement"].items():
        sc = suite["scores"][g]
        lines.append(row([f"{_group(g)} ({p['comparisons']})", _est(p["adm_vs_tuned"]),
                          _est(p["adm_vs_default"]), _est(p["tuned_vs_default"]),
                          _est(sc["adm"]["iqm"], signed=True),
                          _est(sc["default"]["iqm"], signed=True)]))
    b = suite["bootstrap"]
    lines += ["", f"95 % percentile bootstrap intervals, stratified (seeds resampled within each "
              f"study × baseline), {b['resamples']} resamples, seed {b['seed']}. Tuning trials to "
              f"match AdM where it beats or matches, summed: "
              f"{_cost_text(suite['tuning_cost']['not_losing'])}.", ""]
    return "\n".join(lines)


def write_suite(name: str, studies: list[Any], out_dir: Path, *, alpha: float = 0.05,
                correction: str = "holm", description: str = "", source: str = "",
                pdf: bool = True) -> dict[str, Any]:
    """Compute the suite from its stored studies and write suite.json, suite.md, suite.html and
    suite.pdf into ``out_dir``, each atomically; return the content of suite.json."""
    from admtune.report.render import render_pdf
    from admtune.report.suite.analysis import analyse_suite, to_json

    suite = analyse_suite(name, studies, alpha=alpha, correction=correction,
                          description=description, source=source)
    html = render_suite(suite, out_dir)
    document = render_pdf(html) if pdf else None  # rendered before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "suite.json", to_json(suite))
    atomic_write(out_dir / "suite.md", suite_markdown(suite))
    atomic_write(out_dir / "suite.html", html)
    if document is not None:
        atomic_write(out_dir / "suite.pdf", document)
    return suite
