"""The statistical report of a study: summary.json, runs.csv, report.html and report.pdf.

Built from :class:`admtune.study.results.StudyResults` alone (what the Optuna storage holds), so
``admtune report NAME`` rebuilds it without training.

- :func:`analyse` → the summary dict (the content of summary.json, JSON-safe: NaN → None);
  :func:`admtune.report.analysis.summarise` gives it typed (:mod:`admtune.report.summary`);
- :func:`write_report` → writes the four files atomically into a folder and returns the summary;
- :func:`verdict_table` → a rich Table of the verdicts for the command line.

Layout: ``analysis`` computes every number (with ``stats`` and ``verdict``), ``summary`` holds
them typed, ``text`` words them, ``figures`` draws them, ``render`` lays them out in HTML / PDF.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from admtune.study.results import RUNS_COLUMNS, StudyResults
from admtune.util import atomic_write

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["analyse", "write_report", "verdict_lines", "verdict_table", "render_report"]


def __getattr__(name: str) -> Any:
    # analyse needs scipy and statsmodels: imported when first asked for, so that printing a
    # verdict table (the command line) does not pay for them.
    if name == "analyse":
        from admtune.report.analysis import analyse

        return analyse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


VERDICT_STYLES = {"beats": "bold green", "matches": "bold blue", "loses": "bold red",
                  "inconclusive": "bold"}


def _render(results: StudyResults, out_dir: Path | None = None,
            storage_url: str | None = None) -> tuple[Any, str]:
    from admtune.report import analysis, figures, render

    summary = analysis.summarise(results)
    html = render.render_html(render.build_context(results, summary, figures.all_figures(summary),
                                                   out_dir=out_dir, storage_url=storage_url))
    return summary, html


def render_report(results: StudyResults, out_dir: Path | None = None,
                  storage_url: str | None = None) -> tuple[dict[str, Any], str]:
    """(summary, report HTML) of a study, nothing written; ``out_dir`` and ``storage_url`` (where
    the report goes, where the study is stored) make its re-run and rebuild commands exact."""
    summary, html = _render(results, out_dir, storage_url)
    return summary.to_dict(), html


def runs_csv(results: StudyResults) -> str:
    """runs.csv: one row per run, RUNS_COLUMNS first (then val_value, trial_number, reason)."""
    frame = results.frame()
    cols = RUNS_COLUMNS + [c for c in frame.columns if c not in RUNS_COLUMNS]
    return frame[cols].to_csv(index=False, lineterminator="\n")


def write_report(results: StudyResults, out_dir: Path, pdf: bool = True,
                 storage_url: str | None = None) -> dict[str, Any]:
    """Write summary.json, runs.csv, spec.toml, report.html (and report.pdf) into ``out_dir``;
    return the summary. ``storage_url``: where the study is stored, when not ``out_dir/study.db``.

    Each file is written atomically. With ``pdf=False`` an existing report.pdf is left as it is.
    """
    from admtune.report import render

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary, html = _render(results, out_dir, storage_url)
    atomic_write(out_dir / "spec.toml", spec_toml(results))
    atomic_write(out_dir / "summary.json", summary.to_json())
    atomic_write(out_dir / "runs.csv", runs_csv(results))
    atomic_write(out_dir / "report.html", html)
    if pdf:
        atomic_write(out_dir / "report.pdf", render.render_pdf(html))
    return summary.to_dict()


def spec_toml(results: StudyResults) -> str:
    """spec.toml: the resolved spec in the input format; ``admtune study <out>/spec.toml --out
    <out>`` resumes the very study (same fingerprint)."""
    from admtune.util import mask

    return mask(results.spec.to_toml())  # a spec's URLs (a data source) may hold credentials


def _signed(x: Any, dec: int | None) -> str:
    """Δ or a CI end at the line's precision, signed: an end smaller than that precision reads
    +0.0000, not 1.677e−05 beside −0.0030 (where the precision is the cap, fmt decides)."""
    from admtune.report.text import fmt

    if isinstance(x, (int, float)) and dec is not None and dec < 8 and abs(x) < 1e6:
        s = f"{x:.{dec}f}".replace("-", "−")
        return s if s.startswith("−") else "+" + s
    s = fmt(x, decimals=dec)
    return s if s.startswith(("−", "—")) or s in ("0", "nan") else "+" + s


def verdict_lines(summary: dict[str, Any], width: int = 80) -> list[str]:
    """The answer in a few lines of at most ``width`` columns (Rich markup): a heading, then per
    baseline its verdict, AdM's mean against the tuned β's, and Δ (positive = AdM better) with its
    95 % CI at the report's precision; a line too long for ``width`` puts Δ on a line of its own.
    The verdict word is never cut."""
    from rich.markup import escape

    from admtune.report.text import (
        baseline_name,
        budget_change_text,
        fmt,
        fmt_beta,
        incomplete_text,
        metric_decimals,
    )

    direction = "lower" if summary.get("direction") == "minimize" else "higher"
    lines = [f"[bold]{escape(str(summary.get('study')))}[/]: AdM vs tuned β on test "
             f"{escape(str(summary.get('metric')))}, {direction} is better",
             f"[dim]Δ: AdM better by, with its 95 % CI; margin δ = {fmt(summary.get('margin'))}[/]"]
    entries = summary.get("baselines") or {}
    names = {b: baseline_name(b) for b in entries}
    pad = max((len(n) for n in names.values()), default=0)
    for b, e in entries.items():
        v = e.get("verdict", "inconclusive")
        dec = metric_decimals([(e.get(a) or {}).get("std") for a in ("adm", "tuned", "default")],
                              tuple((e["diff"].get("ci") or [None, None])[:2]))
        ci = e["diff"].get("ci") or [None, None]
        delta = (f"Δ {_signed(e['diff'].get('mean'), dec)} "
                 f"[{_signed(ci[0], dec)}, {_signed(ci[1], dec)}]" if ci[0] is not None
                 else f"Δ {_signed(e['diff'].get('mean'), dec)}")
        beta = e["tuned"].get("beta")
        means = (f"AdM {fmt(e['adm'].get('mean'), decimals=dec)} vs tuned "
                 f"{fmt(e['tuned'].get('mean'), decimals=dec)}")
        with_beta = means + (f" (β {fmt_beta(beta)})" if beta is not None else "")
        head = f"  {names[b]:<{pad}}  {v:<12}  "
        for body in (f"{with_beta}  {delta}", f"{means}  {delta}"):
            if len(head) + len(body) <= width:
                break
        else:
            body = f"{with_beta}\n{' ' * len(head)}{delta}" if len(head) + len(with_beta) <= width \
                else f"{means}\n{' ' * len(head)}{delta}"
        style = VERDICT_STYLES.get(v, "bold")
        lines.append(f"  {escape(names[b]):<{pad}}  [{style}]{v}[/]{' ' * (12 - len(v))}  "
                     f"{escape(body)}")
    lines += [f"Interim look: {budget_change_text(c)}" for c in summary.get("budget_changes") or []]
    if summary.get("complete") is False:
        lines.append(f"{incomplete_text(summary.get('progress'))}: interim verdicts")
    return lines


def verdict_table(summary: dict[str, Any]) -> Table:
    """The verdicts of a summary as a rich Table (one row per baseline)."""
    from rich.table import Table

    from admtune.report.text import (
        adm_name,
        baseline_name,
        budget_change_text,
        fmt,
        fmt_beta,
        fmt_ci,
        fmt_p,
        incomplete_text,
        metric_decimals,
        orderings_text,
    )

    direction = "lower" if summary.get("direction") == "minimize" else "higher"
    caption = (f"Δ: mean paired difference, positive = AdM better; α = {summary.get('alpha')}, "
               f"δ = {summary.get('margin')}; p Holm-adjusted.")
    # a grown budget is an interim look: the command line must not hide it either
    caption += "".join(f"\nInterim look: {budget_change_text(c)}"
                       for c in summary.get("budget_changes") or [])
    if summary.get("complete") is False:
        caption += f"\n{incomplete_text(summary.get('progress'))}: interim verdicts"
    table = Table(
        title=f"{summary.get('study')}: AdM vs tuned β on {summary.get('metric')} "
              f"({direction} is better)",
        caption=caption,
    )
    for col, kw in [("baseline", {}), ("verdict", {}), ("AdM mean", {"justify": "right"}),
                    ("tuned β", {"justify": "right"}), ("tuned mean", {"justify": "right"}),
                    ("Δ [95% CI]", {"justify": "right"}), ("p better/worse", {"justify": "right"}),
                    ("TOST p", {"justify": "right"}), ("diverged", {"justify": "right"}),
                    ("trials to match [95%]", {"justify": "right"}),
                    ("seeds to resolve", {"justify": "right"})]:
        table.add_column(col, **kw)
    for b, e in (summary.get("baselines") or {}).items():
        v = e.get("verdict", "inconclusive")
        tuning = e.get("tuning") or {}
        # one precision per baseline, as in the report: two significant digits of its spread
        dec = metric_decimals([(e.get(a) or {}).get("std") for a in ("adm", "tuned", "default")],
                              tuple((e["diff"].get("ci") or [None, None])[:2]))
        table.add_row(
            f"{adm_name(b)} vs {baseline_name(b)}",
            f"[{VERDICT_STYLES.get(v, 'bold')}]{v}[/]",
            fmt(e["adm"]["mean"], decimals=dec),
            fmt_beta(e["tuned"].get("beta")),
            fmt(e["tuned"]["mean"], decimals=dec),
            f"{fmt(e['diff']['mean'], decimals=dec)} {fmt_ci(e['diff']['ci'], dec)}",
            f"{fmt_p(e.get('p_better_holm'))} / {fmt_p(e.get('p_worse_holm'))}",
            fmt_p(e.get("p_tost")),
            f"{e['adm']['diverged']} / {e['tuned']['diverged']}",
            orderings_text(tuning.get("trials_to_match_orderings"), tuning.get("trials"),
                           tuning.get("adm_val_mean")),
            str(e["seeds_to_resolve"]) if e.get("seeds_to_resolve") is not None else "—",
        )
    return table
