"""The report's layers: text is light and words units right, figures only draw, the summary is
typed and its JSON is what analyse returns."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from admtune.report import analyse, text
from admtune.report.summary import BaselineSummary, CurveBand, Summary
from admtune.util import round_floats
from tests.report_fixtures import synthetic_study

REPORT = Path(__file__).resolve().parents[1] / "admtune" / "report"


def test_text_imports_no_heavy_library():
    """The command line prints verdict tables through text: it must not pull in scipy & co."""
    heavy = ("scipy", "statsmodels", "matplotlib", "pandas", "seaborn", "torch")
    code = ("import sys, admtune.report.text, admtune.report.summary; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_accuracy_is_labelled_in_percent():
    for split in ("test", "validation"):
        for metric in ("accuracy", "val_accuracy", "test_accuracy"):
            label = text.metric_label(metric, split)
            assert label.endswith("(%)") and "fraction" not in label
    assert text.metric_label("loss", "test") == "test loss (nats)"


def test_a_cifar_like_accuracy_axis_says_percent(monkeypatch):
    """Accuracy ~94 % (CIFAR): the figures' value axes say %, never fraction."""
    import matplotlib.axes

    from admtune.report import analysis, figures

    results = synthetic_study(baselines=("sgd",), seeds=3, trials=4, traces=False,
                              direction="maximize", metric="accuracy")
    for r in results.runs:
        if r.value is not None:
            r.value = 94.0 - r.value  # a loss-like synthetic value turned into a percent accuracy
    summary = analysis.summarise(results)
    entry = summary.baselines["sgd"]
    labels: list[str] = []
    for setter in ("set_xlabel", "set_ylabel"):
        original = getattr(matplotlib.axes.Axes, setter)

        def record(self, label, *a, _original=original, **kw):
            labels.append(str(label))
            return _original(self, label, *a, **kw)

        monkeypatch.setattr(matplotlib.axes.Axes, setter, record)
    colours = figures.arm_colours(list(summary.extra_arms))
    figures.per_seed(entry, summary, colours)
    figures.beta_sensitivity(entry, summary, colours)
    figures.forest(summary, colours)
    accuracy = [t for t in labels if "accuracy" in t]
    assert "test accuracy (%)" in accuracy and "validation accuracy (%)" in accuracy
    assert not any("fraction" in t for t in labels)


def test_summary_is_typed_and_its_json_is_analyse():
    from admtune.report.analysis import summarise

    results = synthetic_study(adm_diverged={"adamw": 1})
    summary = summarise(results)
    assert isinstance(summary, Summary)
    assert all(isinstance(e, BaselineSummary) for e in summary.baselines.values())
    sgd = summary.baselines["sgd"]
    assert sgd.adm is sgd.arms["adm"] and sgd.tuned.beta is not None
    assert sgd.curves and all(isinstance(a.band, CurveBand) for a in sgd.curves[0].arms if a.band)
    assert sgd.sensitivity.adm_val_mean == pytest.approx(sgd.tuning.adm_val_mean)
    assert analyse(results) == summary.to_dict()
    assert json.loads(summary.to_json()) == round_floats(summary.to_dict())
    # every float of the file is its value to 12 significant digits, not a cruder one
    floats = []

    def walk(a, b):
        if isinstance(a, dict):
            for k in a:
                walk(a[k], b[k])
        elif isinstance(a, list):
            for x, y in zip(a, b, strict=True):
                walk(x, y)
        elif isinstance(a, float):
            floats.append((a, b))

    walk(json.loads(summary.to_json()), summary.to_dict())
    assert floats and all(math.isclose(a, b, rel_tol=5e-12, abs_tol=0) for a, b in floats)
    assert any(a != b for a, b in floats)  # some were rounded
    assert list(summary.to_dict()["baselines"]["sgd"])[:5] == [
        "verdict", "reason", "adm", "tuned", "default"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_figures_compute_no_statistics():
    imported = _imports(REPORT / "figures.py")
    assert not {"admtune.report.stats", "admtune.report.analysis"} & imported
    assert not any(n.split(".")[0] in ("scipy", "statsmodels") for n in imported)


def test_budget_change_text_names_each_budget():
    at = "2026-12-01T10:00:00+00:00"
    assert text.budget_change_text({"key": "trials", "from": 20, "to": 40, "at": at}) == (
        "tuning trials extended from 20 to 40 on 2026-12-01: an interim look after a first "
        "report; p-values are not adjusted for it.")
    assert text.budget_change_text({"key": "tune.selection_seeds", "from": 3, "to": 5,
                                    "at": at}).startswith("selection seeds (tune.selection_seeds)")
