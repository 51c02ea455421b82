"""HTML (Jinja2, autoescaped, self-contained) and PDF (WeasyPrint, from the same HTML)."""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path
from typing import Any

import jinja2

from admtune.report.figures import Figure, arm_colours
from admtune.report.summary import (
    CORE_ARMS,
    EFFECT_FORMULA,
    BaselineSummary,
    FinalistStats,
    Summary,
)
from admtune.report.text import (
    SELECTION_NOTE,
    adm_name,
    adm_qualifier,
    arm_label,
    baseline_decimals,
    baseline_name,
    budget_change_text,
    duration,
    fmt,
    fmt_beta,
    fmt_ci,
    fmt_p,
    fmt_rate_ci,
    incomplete_text,
    metric_decimals,
    metric_label,
    orderings_text,
    power_note,
    pruning_text,
    seeds_range_text,
    selection_heading,
    selection_how,
    test_name,
    time_to_target_text,
    trials_to_match_text,
    tuning_sentence,
)
from admtune.study.results import StudyResults
from admtune.study.spec import StudySpec
from admtune.util import mask

TEMPLATES = Path(__file__).parent / "templates"


def _spec_text(spec: StudySpec) -> str:
    """The resolved spec as spec.toml holds it (the input format)."""
    try:
        return mask(spec.to_toml())
    except Exception:  # an odd value TOML cannot hold: fall back to JSON
        import json

        return mask(json.dumps(spec.to_data(), indent=2, default=str, ensure_ascii=False))


def commands(results: StudyResults, out_dir: Path | None,
             storage_url: str | None) -> dict[str, str]:
    """The commands that reproduce *this* folder: re-run (resume) the study from the spec.toml
    written beside the report, and rebuild the report from its storage (``storage_url``: None
    for the default, ``out_dir/study.db``); credentials masked."""
    if out_dir is None:  # a report rendered for no folder: the study's defaults
        return {"rerun": f"admtune study {shlex.quote(results.name)}",
                "rebuild": f"admtune report {shlex.quote(results.name)}"}
    out = shlex.quote(str(out_dir))
    where = f" --out {out}"
    if storage_url:
        where += f" --storage {shlex.quote(mask(storage_url))}"
    spec_file = shlex.quote(str(Path(out_dir) / "spec.toml"))
    return {"rerun": f"admtune study {spec_file}{where}",
            "rebuild": f"admtune report {shlex.quote(results.name)}{where}"}


def resolved_with(spec: StudySpec, out_dir: Path | None) -> str:
    """What sets this report apart from another of the same spec: its overrides and out folder."""
    parts = []
    if spec.overrides:
        parts.append("overrides " + " ".join(f"--set {o}" for o in spec.overrides))
    if out_dir is not None:
        parts.append(f"out folder {out_dir}")
    return mask(" · ".join(parts))


def _svg_width_pt(svg: str) -> float | None:
    m = re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', svg)
    return float(m.group(1)) if m else None


def figure_ctx(fig: Figure) -> dict[str, Any]:
    if fig.svg is None:
        return {"src": None, "caption": fig.caption, "note": fig.note, "width": None}
    src = "data:image/svg+xml;base64," + base64.b64encode(fig.svg.encode()).decode()
    width = _svg_width_pt(fig.svg)
    return {"src": src, "caption": fig.caption, "note": fig.note,
            "width": f"{width:.1f}pt" if width else "100%"}


def _arm_rows(e: BaselineSummary, beta_free: bool, colours: dict[str, str],
              dec: int | None) -> list[dict]:
    rows = []
    for arm in e.eval_arms or CORE_ARMS:
        st = e.arms[arm]
        rows.append({
            "arm": arm, "label": arm_label(e.baseline, arm, st.beta, beta_free),
            "colour": colours.get(arm, "#000"),
            "beta": "adaptive" if arm == "adm" else fmt_beta(st.beta), "n": st.n,
            "diverged": st.diverged, "excluded": st.excluded,
            "diverged_ci": fmt_rate_ci(st.diverged_ci) if st.runs else "—",
            "mean": fmt(st.mean, decimals=dec), "std": fmt(st.std, 2),
            "ci": fmt_ci(st.ci, dec), "wall": duration(st.wall_median_s),
        })
    return rows


def _finalist_rows(finalists: tuple[FinalistStats, ...]) -> list[dict[str, Any]]:
    # one precision for the table: the finalists' own spread (validation, not test)
    dec = metric_decimals((f.std for f in finalists), (None, None))
    return [{
        "beta": "adaptive" if f.beta is None else fmt_beta(f.beta), "lr": fmt(f.lr, 3),
        "origin": f.origin or "—", "mean": fmt(f.mean, decimals=dec),
        "std": fmt(f.std, decimals=dec), "n": f"{f.n} of {f.seeds}", "diverged": f.diverged,
        "chosen": f.chosen,
    } for f in finalists]


def _seed_table(e: BaselineSummary, dec: int | None) -> dict[str, Any]:
    arms = list(e.eval_arms)
    rows = []
    for s in e.seeds:
        cells = []
        for arm in arms:
            r = e.per_seed[arm].get(s)
            if r is None:
                cells.append({"text": "—", "cls": "missing"})
            elif r.state == "complete":
                cells.append({"text": fmt(r.value, decimals=dec), "cls": ""})
            elif r.state == "diverged":
                cells.append({"text": "diverged", "cls": "diverged"})
            else:
                cells.append({"text": r.status, "cls": "missing"})
        rows.append({"seed": s, "cells": cells})
    return {"arms": arms, "rows": rows}


def _baseline_context(e: BaselineSummary, summary: Summary, figs: dict[str, Figure],
                      colours: dict[str, str]) -> dict[str, Any]:
    b, beta_free = e.baseline, summary.beta_free
    dec = baseline_decimals(e)
    others = []
    for arm, o in e.vs_other_arms.items():
        others.append({
            "label": arm_label(b, arm, e.arms[arm].beta, beta_free),
            "colour": colours.get(arm, "#000"),
            "diff": fmt(o.diff.mean, decimals=dec), "ci": fmt_ci(o.diff.ci, dec),
            "n": o.diff.n, "p": fmt_p(o.p_two_sided),
            "p_wilcoxon": fmt_p(o.p_wilcoxon), "pi": fmt(o.prob_improvement, 2),
            "pi_ci": fmt_ci(o.prob_improvement_ci, 2),
            "win": fmt(o.win_rate.value, 2) if o.win_rate else "—",
            "win_ci": fmt_ci(o.win_rate.ci, 2) if o.win_rate else "—",
        })
    eff, win, pw, ttt = e.effect, e.win_rate, e.power, e.time_to_target
    return {
        "key": b,
        "name": baseline_name(b),
        "adm": f"{adm_name(b)} ({adm_qualifier(beta_free)})",
        "adm_short": adm_name(b),
        "verdict": e.verdict,
        "reason": e.reason,
        "e": e,
        "tuned_beta": fmt_beta(e.tuned.beta),
        "adm_mean": fmt(e.adm.mean, decimals=dec),
        "adm_ci": fmt_ci(e.adm.ci, dec),
        "tuned_mean": fmt(e.tuned.mean, decimals=dec),
        "tuned_ci": fmt_ci(e.tuned.ci, dec),
        "diff": fmt(e.diff.mean, decimals=dec),
        "diff_ci": fmt_ci(e.diff.ci, dec),
        "diff_boot": fmt_ci(e.diff.bootstrap_ci, dec) if e.diff.bootstrap_ci[0] is not None
        else "",
        "pairs": e.diff.n,
        "p": {k: fmt_p(getattr(e, k)) for k in ("p_better", "p_worse", "p_better_holm",
                                                  "p_worse_holm", "p_wilcoxon", "p_tost")},
        "test": test_name(e.test),
        "p_wilcoxon_min": fmt_p(e.p_wilcoxon_min),
        "p_divergence": fmt_p(e.p_divergence),
        "p_divergence_holm": fmt_p(e.p_divergence_holm),
        "g": fmt(eff.g_z, 3) if eff else "—",
        "g_ci": fmt_ci(eff.g_z_ci, 2) if eff else "—",
        "d": fmt(eff.d_z, 3) if eff else "—",
        "d_ci": fmt_ci(eff.d_z_ci, 2) if eff else "—",
        "effect_formula": EFFECT_FORMULA,
        "pi": fmt(e.prob_improvement, 2),
        "pi_ci": fmt_ci(e.prob_improvement_ci, 2),
        "win": fmt(win.value, 2) if win else "—",
        "win_ci": fmt_ci(win.ci, 2) if win else "—",
        "win_n": win.n if win else 0,
        "mde": fmt(pw.mde, 2) if pw else "—",
        "mde_z": fmt(pw.mde_z, 3) if pw else "—",
        "tost_power": f"{round(100 * pw.tost_power)} %" if pw and pw.tost_power is not None
        else "—",
        "tost_seeds": str(pw.tost_seeds) if pw and pw.tost_seeds is not None else "—",
        "seeds_range": seeds_range_text(pw.seeds_range) if pw else "—",
        "power_note": power_note(e, summary.margin),
        "ttt": time_to_target_text(ttt, summary.metric),
        "to_match": orderings_text(e.tuning.to_match, e.tuning.trials, e.tuning.adm_val_mean),
        "div": f"{e.adm.diverged} / {e.tuned.diverged}",
        "trials_to_match": trials_to_match_text(e.trials_to_match, e.tuning.trials,
                                                e.tuning.adm_val_mean,
                                                never=f"never ({e.tuning.trials})"),
        "seeds_to_resolve": str(e.seeds_to_resolve) if e.seeds_to_resolve is not None else "—",
        "tuning": e.tuning,
        "tuning_text": tuning_sentence(e, summary.metric, beta_free),
        "selection_text": selection_how(e, summary.metric),
        "selection_heading": selection_heading(e.selection.selection_seeds, summary.metric),
        "finalists": _finalist_rows(e.selection.finalists),
        "adm_finalists": _finalist_rows(e.selection.adm_finalists),
        "arms": _arm_rows(e, beta_free, colours, dec),
        "others": others,
        "seed_table": _seed_table(e, dec),
        "seed_labels": [arm_label(b, a, e.arms[a].beta, beta_free) for a in e.eval_arms],
        "seed_colours": [colours.get(a, "#000") for a in e.eval_arms],
        "fig": {k: figure_ctx(v) for k, v in figs.items()},
        "colours": colours,
    }


def build_context(
    results: StudyResults, summary: Summary, figures: dict[str, Any], *,
    out_dir: Path | None = None, storage_url: str | None = None,
) -> dict[str, Any]:
    """The template's variables: every number already worded by :mod:`admtune.report.text`.
    ``out_dir`` / ``storage_url``: where this report is written and its study stored."""
    spec = results.spec
    cmds = commands(results, out_dir, storage_url)
    colours = arm_colours(list(summary.extra_arms))
    baselines = [_baseline_context(e, summary, figures["baselines"][b], colours)
                 for b, e in summary.baselines.items()]
    walls = [{"baseline": baseline_name(b), "arm": w.arm, "runs": w.runs,
              "total": duration(w.total_s), "median": duration(w.median_s)}
             for b, e in summary.baselines.items() for w in e.walls]
    versions = dict(results.versions or {})
    platform = versions.pop("platform", None)  # the machine, not a package: a row of its own
    train = spec.train
    return {
        "s": summary,
        "effect_formula": EFFECT_FORMULA,
        "study": results.name,
        "description": spec.description,
        "workload": spec.workload,
        "metric_label": metric_label(summary.metric, "test"),
        "qualifier": adm_qualifier(summary.beta_free),
        "direction_word": "lower" if summary.direction == "minimize" else "higher",
        "alpha": fmt(summary.alpha),
        "margin": fmt(summary.margin),
        "seeds": spec.seeds,
        "trials": spec.trials,
        "pruning": pruning_text(spec),
        "finalists": spec.tune.finalists,
        "candidates": len(spec.tune.candidates),
        "selection_seeds": spec.tune.selection_seeds,
        "selection_note": SELECTION_NOTE,
        "budget_changes": [budget_change_text(c) for c in summary.budget_changes],
        "incomplete": "" if summary.complete else incomplete_text(summary.progress),
        "budget": (f"{train.steps} steps" if train.steps is not None else
                   f"{train.epochs} epochs" if train.epochs is not None else ""),
        "baselines": baselines,
        "forest": figure_ctx(figures["forest"]),
        "colours": colours,
        "command": cmds["rerun"],
        "first_command": mask(results.command),
        "rebuild": cmds["rebuild"],
        "resolved_with": resolved_with(spec, out_dir),
        "notes": [mask(n) for n in spec.notes],
        "fingerprint": results.fingerprint,
        "version": results.version,
        "versions": sorted(versions.items()),
        "device": results.device,
        "wall": duration(results.wall_s),
        "platform": platform,
        "walls": walls,
        "spec_text": _spec_text(spec),
        "n_runs": len(results.runs),
    }


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every user string (description, names, spec) is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt
    env.filters["ci"] = fmt_ci
    return env


def render_html(context: dict[str, Any]) -> str:
    return environment().get_template("report.html.j2").render(**context)


def render_pdf_document(html: str):
    """The WeasyPrint document (pages, bookmarks) of the report's HTML."""
    import logging
    import warnings

    with warnings.catch_warnings():  # "HarfBuzz-Subset will be required by future versions"
        warnings.simplefilter("ignore", DeprecationWarning)
        from weasyprint import HTML

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return HTML(string=html, base_url=str(TEMPLATES)).render()


def render_pdf(html: str) -> bytes:
    return render_pdf_document(html).write_pdf()
