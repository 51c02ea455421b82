"""The written report: files, runs.csv ↔ summary.json agreement with scipy, HTML, PDF pages."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import ttost_paired

from admtune.report import analyse, render_report, verdict_table, write_report
from admtune.report.render import render_pdf_document
from admtune.study.results import RUNS_COLUMNS
from admtune.util import mask, round_floats
from tests.report_fixtures import synthetic_study

EVIL = 'Tuning <script>alert("x")</script> & <b>bold</b> study'


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One full report of the reference synthetic study (2 baselines, 5 seeds, 20 trials each)."""
    out = tmp_path_factory.mktemp("report")
    results = synthetic_study(description=EVIL, adm_diverged={"adamw": 1})
    results.command = "admtune study synthetic --storage postgresql://alice:s3cret@db:5432/optuna"
    summary = write_report(results, out)
    return results, summary, out


def test_files_written_atomically(written):
    _, summary, out = written
    names = sorted(p.name for p in out.iterdir())
    assert names == ["report.html", "report.pdf", "runs.csv", "spec.toml", "summary.json"]  # no temp files
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == round_floats(summary)


def test_runs_csv_columns(written):
    results, _, out = written
    df = pd.read_csv(out / "runs.csv")
    assert list(df.columns[: len(RUNS_COLUMNS)]) == RUNS_COLUMNS
    assert {"val_value", "trial_number", "reason"} <= set(df.columns)
    assert len(df) == len(results.runs)


def test_statistics_agree_with_scipy_on_runs_csv(written):
    """Recompute every test of the summary straight from runs.csv with scipy / statsmodels."""
    _, summary, out = written
    df = pd.read_csv(out / "runs.csv")
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["direction"] == "minimize"
    for b, e in s["baselines"].items():
        ev = df[(df.baseline == b) & df.arm.isin(["adm", "tuned"])]
        wide = ev.pivot(index="seed", columns="arm", values="value")
        status = ev.pivot(index="seed", columns="arm", values="status")
        both = wide.dropna()
        adm, tuned = both["adm"].to_numpy(), both["tuned"].to_numpy()
        # minimize: AdM better = lower; oriented difference tuned − adm
        assert e["diff"]["mean"] == pytest.approx(np.mean(tuned - adm))
        lo, hi = sps.ttest_rel(tuned, adm).confidence_interval(0.95)
        assert e["diff"]["ci"] == pytest.approx([lo, hi])
        any_diverged = (status == "diverged").any().any()
        if not any_diverged:
            assert e["test"] == "paired t"
            assert e["p_better"] == pytest.approx(
                sps.ttest_rel(adm, tuned, alternative="less").pvalue)
            assert e["p_worse"] == pytest.approx(
                sps.ttest_rel(adm, tuned, alternative="greater").pvalue)
        m = s["margin"]
        assert e["p_tost"] == pytest.approx(ttost_paired(adm, tuned, -m, m)[0])
        for arm in ("adm", "tuned", "default"):
            vals = df[(df.baseline == b) & (df.arm == arm) & (df.status == "complete")]["value"]
            assert e[arm]["mean"] == pytest.approx(vals.mean())
            assert e[arm]["std"] == pytest.approx(vals.std(ddof=1))
            assert e[arm]["n"] == len(vals)
            assert e[arm]["diverged"] == int(((df.baseline == b) & (df.arm == arm)
                                              & (df.status == "diverged")).sum())
            lo, hi = e[arm]["ci"]
            assert lo <= e[arm]["mean"] <= hi
        # Wilcoxon: diverged runs are the worst outcome (a difference larger than any other)
        d = (wide["tuned"] - wide["adm"]).to_numpy().copy()
        finite = d[np.isfinite(d)]
        big = 2 * np.max(np.abs(finite)) + 1
        for i, seed in enumerate(wide.index):
            if status.loc[seed, "adm"] == "diverged" and status.loc[seed, "tuned"] != "diverged":
                d[i] = -big
        flips = sps.PermutationMethod(n_resamples=2 ** len(d))  # every sign flip: exact
        assert e["p_wilcoxon"] == pytest.approx(sps.wilcoxon(d, method=flips).pvalue)
        if any_diverged:  # a diverged seed is not dropped: the rank test decides
            assert e["test"] == "wilcoxon, diverged worst" and e["test_n"] == len(d)
            assert e["p_better"] == pytest.approx(
                sps.wilcoxon(d, alternative="greater", method=flips).pvalue)
            assert e["p_worse"] == pytest.approx(
                sps.wilcoxon(d, alternative="less", method=flips).pvalue)
        runs = e["adm"]["n"] + e["adm"]["diverged"]
        ci = sps.binomtest(e["adm"]["diverged"], runs).proportion_ci(0.95, method="exact")
        assert e["adm"]["diverged_ci"] == pytest.approx([ci.low, ci.high])
        table = [[e[a]["diverged"], e[a]["n"]] for a in ("adm", "tuned")]
        if any_diverged:
            assert e["p_divergence"] == pytest.approx(sps.fisher_exact(table).pvalue)
        else:
            assert e["p_divergence"] is None
    # the synthetic AdamW AdM diverged once, its tuned β never: the verdict is capped
    assert s["baselines"]["adamw"]["adm"]["diverged"] == 1
    assert s["baselines"]["adamw"]["verdict"] in ("loses", "inconclusive")
    assert s["baselines"]["sgd"]["verdict"] == "beats"


def test_html_is_self_contained_and_escaped(written):
    _, _, out = written
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert 'src="data:image/svg+xml;base64,' in html
    assert not re.search(r'(src|href)="(?!data:|#)', html)  # nothing fetched from outside
    assert "s3cret" not in html and "postgresql://alice:***@db" in html
    # the report's sections, verdict first
    order = [html.index(t) for t in ("Verdict:", "SGD: AdM-SGD", "AdamW: AdM-AdamW",
                                     "Reproducibility")]
    assert order == sorted(order)
    for text in ("β-sensitivity", "Learning curves", "over training", "Per-seed results",
                 "Package versions", "admtune report synthetic", "f1e2d3c4b5a6"):
        assert text in html


def test_pdf_opens_and_has_the_expected_pages(written):
    _, _, out = written
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    doc = render_pdf_document((out / "report.html").read_text(encoding="utf-8"))
    assert 5 <= len(doc.pages) <= 10
    starts = {}
    for i, page in enumerate(doc.pages):
        for level, label, *_ in page.bookmarks:
            if level <= 2:
                starts.setdefault(label.split(":")[0], i)
    # verdict on page 1, every baseline and the reproducibility section start a new page, in order
    assert starts["Verdict"] == 0
    assert 0 < starts["SGD"] < starts["AdamW"] < starts["Reproducibility"] == len(doc.pages) - 1
    for name in ("SGD", "AdamW", "Reproducibility"):
        assert doc.pages[starts[name]].bookmarks[0][1].startswith(name)
    for size in {(p.width, p.height) for p in doc.pages}:
        assert size == pytest.approx((793.7, 1122.5), abs=0.5)  # A4 in CSS px (210 × 297 mm)
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(out / "report.pdf")], capture_output=True,
                              text=True, check=True).stdout
        assert int(re.search(r"Pages:\s+(\d+)", info).group(1)) == len(doc.pages)


def test_verdict_table(written):
    from rich.console import Console

    _, summary, _ = written
    table = verdict_table(summary)
    assert table.row_count == 2
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "AdM-SGD vs SGD" in text and "beats" in text


def test_redact():
    assert mask("--storage postgresql://u:p@h/db x") == "--storage postgresql://u:***@h/db x"
    assert mask("sqlite:///a.db") == "sqlite:///a.db"


def test_edge_cases_render(tmp_path):
    """No β traces, empty curves, extra arm, β-free (tune.lr), maximize: renders, says so."""
    results = synthetic_study(baselines=("adamw",), seeds=3, trials=6, traces=False,
                              extra_arms=("nowarmup",), tune_lr=True, direction="maximize",
                              metric="accuracy", adm_diverged={"adamw": 1})
    for r in results.runs:
        if r.arm == "tuned":
            r.curve, r.val_curve = {}, {"step": [], "value": []}
        if r.arm == "default":
            r.val_value = None
    results.runs[0].curve = {"step": [0, 1], "train_loss": [None, None]}
    summary, html = render_report(results)
    e = summary["baselines"]["adamw"]
    assert "nowarmup" in e and e["nowarmup"]["n"] == 3
    assert "nowarmup" in e["vs_other_arms"]
    assert "β-free" in html and "β-free" in e["reason"]
    assert "No βₜ traces were recorded" in html
    assert "nowarmup" in html
    assert e["diff"]["mean"] is not None
    json.dumps(summary, allow_nan=False)


def test_report_without_curves_or_trials(tmp_path):
    from tests.report_fixtures import results_from_values

    values = {"sgd": {"adm": [0.3, None], "tuned": [0.31, 0.32], "default": [0.33, 0.34]}}
    results = results_from_values(values)
    summary = write_report(results, tmp_path, pdf=False)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert not (tmp_path / "report.pdf").exists()
    assert "No learning curves were recorded" in html
    assert "No tuning trials recorded" in html
    assert summary["baselines"]["sgd"]["verdict"] == "inconclusive"
    assert summary == analyse(results)
    assert math.isfinite(summary["wall_s"])


def test_selection_table_interim_look_and_protocol_text():
    """The selection table marks the chosen finalist; grown budgets are stated near the verdict
    as an interim look; the protocol says the tuned β is the best of N finalists on K seeds."""
    from tests.report_fixtures import results_from_values

    base = [0.30, 0.31, 0.29, 0.32, 0.30]
    values = {"sgd": {"adm": [b - 0.02 for b in base], "tuned": base, "default": base}}
    select = [(0.95, [0.300, 0.302, 0.298]), (0.8, [0.305, 0.303, 0.307]),
              (0.9, [0.310, None, 0.309])]
    results = results_from_values(values, select_values={"sgd": select},
                                  trial_values={"sgd": [0.4, 0.3, 0.35]})
    results.budget_changes = [{"key": "seeds", "from": 5, "to": 20,
                               "at": "2026-12-01T10:00:00+00:00"}]
    summary, html = render_report(results)
    assert summary["budget_changes"] == results.budget_changes
    interim = ("seeds extended from 5 to 20 on 2026-12-01: an interim look after a first report; "
               "p-values are not adjusted for it.")
    assert interim in html
    assert html.index(interim) < html.index("How to read this report")
    assert "Selection: finalists on 3 seeds of their own (validation loss)" in html
    assert html.count("✓ chosen: the tuned β") == 1
    assert "The tuned β is the best of 3 finalists" in html
    assert "re-run on 3 selection seeds of its own" in html
    assert "after 50% of a trial&#39;s steps (tune.prune_after)" in html
    assert "Verdict, margin first: <b>matches</b>" in html
    assert summary["baselines"]["sgd"]["selection"]["finalists"][0]["chosen"] is True
