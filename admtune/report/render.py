"""HTML (Jinja2, autoescaped, self-contained) and PDF (WeasyPrint, from the same HTML)."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path
from typing import Any

import jinja2

from admtune.report.analysis import (
    CORE_ARMS,
    BaselineData,
    adm_name,
    adm_qualifier,
    arm_label,
    baseline_name,
    fmt,
    fmt_ci,
    fmt_p,
    is_complete,
    is_diverged,
    metric_decimals,
)
from admtune.report.figures import Figure, arm_colours, metric_label
from admtune.study.results import StudyResults

TEMPLATES = Path(__file__).parent / "templates"
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):[^@\s]*@")


def redact(text: str) -> str:
    """Hide passwords in URLs (``postgresql://user:secret@host`` → ``postgresql://user:***@host``)."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text or "")


def _spec_text(spec: dict[str, Any]) -> str:
    try:
        import tomli_w

        def plain(x: Any) -> Any:  # TOML has no null: drop None values
            if isinstance(x, dict):
                return {str(k): plain(v) for k, v in x.items() if v is not None}
            if isinstance(x, (list, tuple)):
                return [plain(v) for v in x if v is not None]
            return x

        return redact(tomli_w.dumps(plain(spec)))
    except Exception:  # an odd value TOML cannot hold: fall back to JSON
        import json

        return redact(json.dumps(spec, indent=2, default=str, ensure_ascii=False))


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


def _hms(seconds: Any) -> str:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(s):
        return "—"
    h, rem = divmod(int(round(s)), 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _tuning_sentence(b: str, e: dict[str, Any], summary: dict[str, Any]) -> str:
    t = e.get("tuning") or {}
    metric = summary["metric"]
    n = t.get("trials", 0)
    caveat = (" A single-seed best-so-far against a multi-seed mean is optimistic for the "
              "baseline: the tuning it replaces is, if anything, more than this.")
    if t.get("adm_val_mean") is None:
        return (f"Tuning saved: unknown, AdM's evaluation runs recorded no validation {metric}.")
    if not n:
        return "Tuning saved: unknown, no tuning trials were recorded."
    k = e.get("trials_to_match")
    target = fmt(t["adm_val_mean"])
    adm = e.get("adm") or {}
    if adm.get("diverged"):
        caveat += (f" AdM's mean is over its {adm.get('n')} complete runs; "
                   f"{adm['diverged']} diverged and are not in it.")
    qualifier = "β-free" if summary.get("beta_free") else "untuned"
    if k is None:
        return (f"Tuning saved: in all {n} trials, {baseline_name(b)}'s best validation {metric} "
                f"({fmt(t.get('best_value'))}) never reached AdM's mean of {target}: {qualifier} AdM "
                f"did better than the whole β search." + caveat)
    return (f"Tuning saved: {baseline_name(b)}'s best-so-far validation {metric} first reached "
            f"AdM's mean of {target} at trial {k} of {n}; AdM, {qualifier}, is worth about {k} "
            f"tuning trial{'s' if k != 1 else ''}." + caveat)


def _arm_rows(
    b: str, bd: BaselineData, e: dict[str, Any], spec: dict, colours, dec: int | None
) -> list[dict]:
    rows = []
    for arm in bd.arms if bd.arms else CORE_ARMS:
        st = e.get(arm)
        if not isinstance(st, dict) or "mean" not in st:
            continue
        beta = st.get("beta") if arm != "adm" else None
        wall = sum(r.wall_s for r in bd.arms[arm].runs.values()) if arm in bd.arms else 0.0
        rows.append({
            "arm": arm, "label": arm_label(b, arm, beta, spec), "colour": colours.get(arm, "#000"),
            "beta": "adaptive" if arm == "adm" else fmt(beta, 4), "n": st["n"],
            "diverged": st["diverged"], "excluded": st.get("excluded", 0),
            "mean": fmt(st["mean"], decimals=dec), "std": fmt(st["std"], 2),
            "ci": fmt_ci(st["ci"], dec), "wall": _hms(wall),
        })
    return rows


def _seed_table(bd: BaselineData, dec: int | None) -> dict[str, Any]:
    arms = list(bd.arms)
    rows = []
    for s in bd.seeds:
        cells = []
        for arm in arms:
            r = bd.arms[arm].runs.get(s)
            if r is None:
                cells.append({"text": "—", "cls": "missing"})
            elif is_complete(r):
                cells.append({"text": fmt(r.value, decimals=dec), "cls": ""})
            elif is_diverged(r):
                cells.append({"text": "diverged", "cls": "diverged"})
            else:
                cells.append({"text": r.status, "cls": "missing"})
        rows.append({"seed": s, "cells": cells})
    return {"arms": arms, "rows": rows}


def build_context(
    results: StudyResults,
    summary: dict[str, Any],
    data: dict[str, BaselineData],
    figures: dict[str, Any],
    extras: list[str],
) -> dict[str, Any]:
    spec = results.spec
    colours = arm_colours(extras)
    baselines = []
    for b, e in summary["baselines"].items():
        bd = data[b]
        dec = metric_decimals(e)
        fig = figures["baselines"][b]
        others = []
        for arm, o in (e.get("vs_other_arms") or {}).items():
            beta = (e.get(arm) or {}).get("beta")
            others.append({
                "label": arm_label(b, arm, beta, spec), "colour": colours.get(arm, "#000"),
                "diff": fmt(o["diff"]["mean"], decimals=dec), "ci": fmt_ci(o["diff"]["ci"], dec),
                "n": o["diff"].get("n"), "p": fmt_p(o["p_two_sided"]),
                "p_wilcoxon": fmt_p(o["p_wilcoxon"]), "pi": fmt(o["prob_improvement"], 2),
            })
        t = e.get("tuning") or {}
        baselines.append({
            "key": b,
            "name": baseline_name(b),
            "adm": f"{adm_name(b)} ({adm_qualifier(spec)})",
            "adm_short": adm_name(b),
            "verdict": e["verdict"],
            "reason": e["reason"],
            "e": e,
            "tuned_beta": fmt(e["tuned"].get("beta"), 4),
            "adm_mean": fmt(e["adm"]["mean"], decimals=dec),
            "adm_ci": fmt_ci(e["adm"]["ci"], dec),
            "tuned_mean": fmt(e["tuned"]["mean"], decimals=dec),
            "tuned_ci": fmt_ci(e["tuned"]["ci"], dec),
            "diff": fmt(e["diff"]["mean"], decimals=dec),
            "diff_ci": fmt_ci(e["diff"]["ci"], dec),
            "pairs": e["diff"].get("n", 0),
            "p": {k: fmt_p(e.get(k)) for k in ("p_better", "p_worse", "p_better_holm",
                                                 "p_worse_holm", "p_wilcoxon", "p_tost")},
            "g": fmt(e.get("hedges_g"), 3),
            "pi": fmt(e.get("prob_improvement"), 2),
            "div": f"{e['adm']['diverged']} / {e['tuned']['diverged']}",
            "trials_to_match": (f"{e['trials_to_match']} of {t.get('trials', 0)}"
                                if e.get("trials_to_match") is not None
                                else (f"never ({t.get('trials', 0)})" if t.get("trials")
                                      and t.get("adm_val_mean") is not None else "—")),
            "seeds_to_resolve": (str(e["seeds_to_resolve"])
                                 if e.get("seeds_to_resolve") is not None else "—"),
            "tuning": t,
            "tuning_text": _tuning_sentence(b, e, summary),
            "arms": _arm_rows(b, bd, e, spec, colours, dec),
            "others": others,
            "seed_table": _seed_table(bd, dec),
            "seed_labels": [arm_label(b, a, bd.arms[a].beta, spec) for a in bd.arms],
            "seed_colours": [colours.get(a, "#000") for a in bd.arms],
            "fig": {k: figure_ctx(v) for k, v in fig.items()},
            "colours": colours,
        })
    walls = []
    for b, bd in data.items():
        for arm, runs in [("trial", bd.trials), ("adm_trial", bd.adm_trials)] + [
                (a, list(ad.runs.values())) for a, ad in bd.arms.items()]:
            if runs:
                tot = sum(r.wall_s for r in runs)
                walls.append({"baseline": baseline_name(b), "arm": arm, "runs": len(runs),
                              "total": _hms(tot), "mean": fmt(tot / len(runs), 3)})
    train = spec.to_data()["train"]
    return {
        "s": summary,
        "study": results.name,
        "description": spec.description,
        "workload": spec.workload,
        "metric_label": metric_label(summary["metric"], "test"),
        "qualifier": adm_qualifier(spec),
        "direction_word": "lower" if summary["direction"] == "minimize" else "higher",
        "alpha": fmt(summary["alpha"]),
        "margin": fmt(summary["margin"]),
        "seeds": spec.seeds,
        "trials": spec.trials,
        "budget": (f"{train['steps']} steps" if train.get("steps") is not None else
                   f"{train['epochs']} epochs" if train.get("epochs") is not None else ""),
        "baselines": baselines,
        "forest": figure_ctx(figures["forest"]),
        "colours": colours,
        "command": redact(results.command),
        "rebuild": f"admtune report {results.name}",
        "fingerprint": results.fingerprint,
        "version": results.version,
        "versions": sorted((results.versions or {}).items()),
        "device": results.device,
        "wall": _hms(results.wall_s),
        "walls": walls,
        "spec_text": _spec_text(spec.to_data()),
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
