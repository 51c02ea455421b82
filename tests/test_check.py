"""The CI gate (admtune.check) on constructed summaries: exit codes, messages, JUnit XML."""

from __future__ import annotations

import copy
import io
import json
import math
import textwrap
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from admtune import check, families
from admtune.errors import SpecError

BASE_SUMMARY = {
    "study": "quick", "metric": "train_loss", "direction": "minimize", "margin": 0.01,
    "alpha": 0.05, "fingerprint": "abc123",
    "baselines": {
        "sgd": {
            "verdict": "matches",
            "reason": "AdM-SGD matches tuned SGD within the margin (TOST p = 0.01).",
            "adm": {"mean": 0.25, "std": 0.01, "ci": [0.24, 0.26], "n": 5, "diverged": 0},
            "tuned": {"beta": 0.87, "mean": 0.251, "std": 0.01, "ci": [0.24, 0.26], "n": 5,
                      "diverged": 0},
            "default": {"beta": 0.9, "mean": 0.26, "std": 0.01, "ci": [0.25, 0.27], "n": 5,
                        "diverged": 0},
            "diff": {"mean": 0.001, "ci": [-0.004, 0.006]},
            "p_better": 0.3, "p_worse": 0.7, "p_better_holm": 0.6, "p_worse_holm": 1.0,
            "p_wilcoxon": 0.5, "p_tost": 0.01, "hedges_g": 0.1, "prob_improvement": 0.55,
            "trials_to_match": 3, "seeds_to_resolve": None,
        },
        "adamw": {
            "verdict": "inconclusive",
            # n counts finished runs: 4 finished + 1 diverged of 5 seeds
            "adm": {"mean": 0.31, "std": 0.02, "ci": [0.29, 0.33], "n": 4, "diverged": 1,
                    "excluded": 0},
            "tuned": {"beta": 0.8, "mean": 0.30, "std": 0.02, "ci": [0.28, 0.32], "n": 5,
                      "diverged": 0},
            "default": {"beta": 0.9, "mean": 0.30, "std": 0.02, "ci": [0.28, 0.32], "n": 5,
                        "diverged": 0},
            "diff": {"mean": -0.01, "ci": [-0.03, 0.01]},
            "p_better": 0.9, "p_worse": 0.1, "p_better_holm": 1.0, "p_worse_holm": 0.2,
            "p_wilcoxon": 0.3, "p_tost": 0.2, "hedges_g": -0.4, "prob_improvement": 0.4,
            "trials_to_match": None, "seeds_to_resolve": 12,
        },
    },
    "versions": {}, "device": "cpu", "wall_s": 1.0,
}

GOOD = """
[sgd]
verdict = ["beats", "matches"]
adm_at_most = 0.30
max_diverged = 0
[adamw]
verdict = ["beats", "matches", "inconclusive"]
"""


@pytest.fixture
def summary():
    return copy.deepcopy(BASE_SUMMARY)


@pytest.fixture
def write(tmp_path):
    def _write(text: str, name: str = "expect.toml"):
        p = tmp_path / name
        p.write_text(textwrap.dedent(text), encoding="utf-8")
        return p
    return _write


def _console():
    buf = io.StringIO()
    return Console(file=buf, width=60, color_system=None), buf


def _run(summary, path, junit=None):
    console, buf = _console()
    code = check.run_check(summary, path, junit_path=junit, console=console)
    return code, buf.getvalue()


# ---------------------------------------------------------------------------- exit codes


def test_all_hold_exit_0(summary, write):
    code, out = _run(summary, write(GOOD))
    assert code == 0
    lines = out.strip().splitlines()
    # one line per expectation (4) + the summary line, none wrapped despite the narrow console
    assert len(lines) == 5
    assert all(line.startswith("✓ ") for line in lines[:4])
    assert "sgd.adm_at_most: observed AdM mean train_loss 0.25" in out
    assert "expected <= 0.3" in out
    assert lines[-1].startswith("OK all 4 expectations hold")


def test_verdict_falls_short_exit_1(summary, write):
    summary["baselines"]["sgd"]["verdict"] = "loses"
    code, out = _run(summary, write(GOOD))
    assert code == 1
    failing = [line for line in out.splitlines() if line.startswith("✗ ")]
    assert failing == [
        "✗ sgd.verdict: observed loses (AdM - tuned 0.001, 95% CI [-0.004, 0.006], "
        "positive = AdM better), expected beats or matches"
    ]
    assert "FAILED 1 of 4 expectations fall short" in out


def test_impossible_expectation_fails_naming_it(summary, write):
    code, out = _run(summary, write("[sgd]\nadm_at_most = -1.0\n"))
    assert code == 1
    assert "✗ sgd.adm_at_most: observed AdM mean train_loss 0.25" in out
    assert "expected <= -1" in out


def test_max_diverged(summary, write):
    code, out = _run(summary, write("[adamw]\nmax_diverged = 0\n"))
    assert code == 1
    assert "✗ adamw.max_diverged: observed 1 of 5 AdM runs diverged, expected at most 0" in out
    code, _ = _run(summary, write("[adamw]\nmax_diverged = 1\n"))
    assert code == 0


def test_diff_at_least(summary, write):
    code, out = _run(summary, write("[adamw]\ndiff_at_least = 0\n"))
    assert code == 1
    assert "✗ adamw.diff_at_least: observed mean AdM - tuned -0.01 (95% CI [-0.03, 0.01], " in out
    code, _ = _run(summary, write("[adamw]\ndiff_at_least = -0.02\n"))
    assert code == 0


def test_maximised_metric_uses_adm_at_least(summary, write):
    summary["metric"], summary["direction"] = "accuracy", "maximize"
    summary["baselines"]["sgd"]["adm"]["mean"] = 0.95
    assert _run(summary, write("[sgd]\nadm_at_least = 0.9\n"))[0] == 0
    code, out = _run(summary, write("[sgd]\nadm_at_least = 0.99\n"))
    assert code == 1 and "expected >= 0.99" in out


def test_near_bound_shown_with_enough_digits(summary, write):
    summary["baselines"]["sgd"]["adm"]["mean"] = 0.3000004
    code, out = _run(summary, write("[sgd]\nadm_at_most = 0.3\n"))
    assert code == 1
    assert "0.3000004" in out  # never "observed 0.3, expected <= 0.3"


@pytest.mark.parametrize("mean", [None, float("nan")])
def test_missing_mean_never_meets_a_bound(summary, write, mean):
    summary["baselines"]["sgd"]["adm"]["mean"] = mean
    code, out = _run(summary, write("[sgd]\nadm_at_most = 10\n"))
    assert code == 1
    assert "sgd.adm_at_most" in out


def test_single_verdict_string_accepted(summary, write):
    assert _run(summary, write('[sgd]\nverdict = "matches"\n'))[0] == 0


def test_accepts_loaded_expectations(summary, write):
    exp = check.load_expectations(write(GOOD))
    assert list(exp.baselines) == ["sgd", "adamw"]
    assert exp.baselines["sgd"].verdict == ("beats", "matches")
    assert _run(summary, exp)[0] == 0


def test_metric_key(summary, write):
    assert _run(summary, write('metric = "train_loss"\n[sgd]\nmax_diverged = 0\n'))[0] == 0
    code, out = _run(summary, write('metric = "test_loss"\n[sgd]\nmax_diverged = 0\n'))
    assert code == 2 and "'test_loss'" in out and "'train_loss'" in out


# ---------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[sgd]\nverdikt = ['beats']\n", "key 'verdikt' in [sgd] (did you mean 'verdict'?)"),
        ("[sdg]\nverdict = ['beats']\n", "unknown baseline [sdg] (did you mean 'sgd'?)"),
        ("[adam]\nmax_diverged = 0\n", "unknown baseline [adam]"),
        ("foo = 1\n[sgd]\nmax_diverged = 0\n", "unknown top-level key 'foo'"),
        ("sgd = 1\n", "sgd must be a table"),
        ("[sgd]\nverdict = ['wins']\n", "unknown verdict 'wins'"),
        ("[sgd]\nverdict = []\n", "[sgd].verdict is empty"),
        ("[sgd]\nverdict = 3\n", "[sgd].verdict must be a list"),
        ("[sgd]\nverdict = ['beats', 1]\n", "[sgd].verdict must be a list"),
        ("[sgd]\nadm_at_most = '0.3'\n", "[sgd].adm_at_most must be a number, not str"),
        ("[sgd]\nadm_at_most = true\n", "[sgd].adm_at_most must be a number, not bool"),
        ("[sgd]\nadm_at_most = nan\n", "[sgd].adm_at_most must be a finite number"),
        ("[sgd]\ndiff_at_least = inf\n", "[sgd].diff_at_least must be a finite number"),
        ("[sgd]\nmax_diverged = -1\n", "[sgd].max_diverged must be a whole number >= 0"),
        ("[sgd]\nmax_diverged = 0.0\n", "[sgd].max_diverged must be a whole number >= 0"),
        ("[sgd]\nmax_diverged = false\n", "[sgd].max_diverged must be a whole number >= 0"),
        ("[sgd]\nadm_at_most = 1\nadm_at_least = 0\n", "sets both adm_at_most and adm_at_least"),
        ("[sgd]\n[sgd.adm]\nmean = 1\n", "unknown key 'adm' in [sgd]"),
        ("[sgd]\n", "[sgd] sets no expectation"),
        ("# nothing\n", "sets no expectations"),
        ("[sgd\nverdict = 1\n", "is not valid TOML"),
        ("metric = 3\n[sgd]\nmax_diverged = 0\n", "metric must be a metric name"),
    ],
)
def test_bad_expectations_exit_2(summary, write, text, needle):
    path = write(text)
    with pytest.raises(SpecError) as info:
        check.load_expectations(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2
    code, out = _run(summary, path)
    assert code == 2
    assert out.startswith("error: ")


def test_missing_expectations_file_exit_2(summary, tmp_path):
    code, out = _run(summary, tmp_path / "nope.toml")
    assert code == 2 and "nope.toml does not exist" in out
    code, out = _run(summary, tmp_path)
    assert code == 2 and "is not a file" in out


def test_baseline_absent_from_summary_exit_2(summary, write):
    del summary["baselines"]["adamw"]
    code, out = _run(summary, write(GOOD))
    assert code == 2
    assert "baseline [adamw] is not in the summary of study 'quick' (it has sgd)" in out
    assert "✓" not in out  # nothing is evaluated when the file does not fit the summary


def test_bound_of_wrong_direction_exit_2(summary, write):
    code, out = _run(summary, write("[sgd]\nadm_at_least = 0.1\n"))
    assert code == 2 and "adm_at_least bounds a maximised metric" in out and "adm_at_most" in out
    summary["direction"] = "maximize"
    code, out = _run(summary, write("[sgd]\nadm_at_most = 0.1\n"))
    assert code == 2 and "adm_at_most bounds a minimised metric" in out


def test_summary_lacking_checked_field_exit_2(summary, write):
    del summary["baselines"]["sgd"]["adm"]["diverged"]
    code, out = _run(summary, write("[sgd]\nmax_diverged = 0\n"))
    assert code == 2 and "baselines.sgd.adm.diverged" in out


# ---------------------------------------------------------------------------- JUnit


def _parse(path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    return root, suite


def test_junit_counts_failures(summary, write, tmp_path):
    summary["baselines"]["sgd"]["verdict"] = "loses"
    summary["baselines"]["adamw"]["adm"].update(n=2, diverged=3)
    text = GOOD + "max_diverged = 0\n"   # appended to [adamw]
    junit = tmp_path / "out" / "junit.xml"  # parent folder is created
    code, _ = _run(summary, write(text), junit=junit)
    assert code == 1
    root, suite = _parse(junit)
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "sgd.verdict", "sgd.adm_at_most", "sgd.max_diverged", "adamw.verdict",
        "adamw.max_diverged",
    ]
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == {"sgd.verdict", "adamw.max_diverged"}
    assert suite.get("tests") == root.get("tests") == "5"
    assert suite.get("failures") == root.get("failures") == "2"
    assert suite.get("errors") == "0"
    assert suite.get("name") == "admtune.check.quick"
    assert "observed loses" in failed["sgd.verdict"].get("message")
    assert "TOST p = 0.01" in failed["sgd.verdict"].text  # the report's reason, in the body
    assert "observed 3 of 5 AdM runs diverged, expected at most 0" in (
        failed["adamw.max_diverged"].get("message")
    )
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["fingerprint"] == "abc123" and props["metric"] == "train_loss"
    assert sorted(p.name for p in junit.parent.iterdir()) == ["junit.xml"]  # no temp left over


def test_junit_all_pass(summary, write, tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text("stale")
    assert _run(summary, write(GOOD), junit=junit)[0] == 0
    _, suite = _parse(junit)
    assert suite.get("tests") == "4" and suite.get("failures") == "0"
    assert not list(suite.iter("failure"))


def test_junit_on_usage_error_replaces_stale_report(summary, write, tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text("stale")
    code, _ = _run(summary, write("[sgd]\nbogus = 1\n"), junit=junit)
    assert code == 2
    root, suite = _parse(junit)
    assert suite.get("errors") == "1" and suite.get("failures") == "0"
    (error,) = suite.iter("error")
    assert "unknown key 'bogus'" in error.get("message")


def test_write_junit_escapes_markup(tmp_path):
    o = check.Judgement("sgd", "sgd.verdict", False, "<&>", ("beats",), 'sgd.verdict: "<&>"')
    check.write_junit([o], tmp_path / "j.xml", "s")
    _, suite = _parse(tmp_path / "j.xml")
    assert suite.find("testcase/failure").get("message") == 'sgd.verdict: "<&>"'


# ---------------------------------------------------------------------------- load_summary


def test_load_summary(tmp_path, summary):
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert check.load_summary(tmp_path) == summary
    assert check.load_summary(tmp_path / "summary.json") == summary
    assert check.load_summary(tmp_path, expected_study="quick") == summary
    with pytest.raises(SpecError, match="summary of study 'quick', not 'mlp'"):
        check.load_summary(tmp_path, expected_study="mlp")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "summary.json does not exist"),
        ("{not json", "is not valid JSON (line 1"),
        ("[]", "is not an admtune summary"),
        ('{"direction": "minimize"}', "is not an admtune summary"),
        ('{"baselines": {}, "direction": "down"}', "is not an admtune summary"),
    ],
)
def test_load_summary_errors(tmp_path, content, needle):
    if content is not None:
        (tmp_path / "summary.json").write_text(content)
    with pytest.raises(SpecError, match=r".*") as info:
        check.load_summary(tmp_path)
    assert needle in str(info.value)
    assert str(tmp_path / "summary.json") in str(info.value)


def test_load_summary_missing_folder(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        check.load_summary(tmp_path / "nowhere")


# ---------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    mean=st.floats(allow_nan=False, allow_infinity=False, width=64),
    bound=st.floats(allow_nan=False, allow_infinity=False, width=64),
    maximize=st.booleans(),
)
def test_bound_semantics(mean, bound, maximize):
    s = copy.deepcopy(BASE_SUMMARY)
    s["direction"] = "maximize" if maximize else "minimize"
    s["baselines"]["sgd"]["adm"]["mean"] = mean
    key = "adm_at_least" if maximize else "adm_at_most"
    exp = check.Expectations(
        path=check.Path("e.toml"),
        baselines={"sgd": check.BaselineExpectation("sgd", **{key: bound})},
    )
    (o,) = check.judge(s, exp)
    assert o.passed == (mean >= bound if maximize else mean <= bound)
    assert o.name == f"sgd.{key}"
    if mean != bound:  # the line never shows the two as equal
        shown = o.message.split("observed AdM mean train_loss ")[1].split(" ")[0]
        assert math.isclose(float(shown), mean, rel_tol=1e-3) and float(shown) != bound


def test_project_expectations_file_is_valid():
    """studies/quick.expect.toml (what the project promises on quick) stays a valid file."""
    path = check.Path(__file__).resolve().parents[1] / "studies" / "quick.expect.toml"
    exp = check.load_expectations(path)
    assert set(exp.baselines) <= set(families.names())


def test_github_actions_example():
    """examples/github-actions.yml parses, runs the gate and always publishes the JUnit report."""
    yaml = pytest.importorskip("yaml")
    path = check.Path(__file__).resolve().parents[1] / "examples" / "github-actions.yml"
    steps = yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"]["gate"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "admtune check quick" in runs and "--expect studies/quick.expect.toml" in runs
    assert "--junit reports/junit.xml" in runs
    (publish,) = [s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report")]
    assert publish["if"].startswith("always()")
    assert publish["with"]["report_paths"] == "reports/junit.xml"
    assert any(s.get("uses", "").startswith("actions/cache") for s in steps)


def test_reads_the_summary_the_report_writes(tmp_path):
    """Contract with admtune.report: every field the gate checks is in a real summary."""
    analysis = pytest.importorskip("admtune.report.analysis")
    fixtures = pytest.importorskip("tests.report_fixtures")
    summary = json.loads(json.dumps(analysis.analyse(fixtures.synthetic_study())))
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    summary = check.load_summary(tmp_path)
    key = "adm_at_most" if summary["direction"] == "minimize" else "adm_at_least"
    tables = "".join(
        f"[{b}]\nverdict = {list(check.VERDICTS)!r}\n{key} = 0.0\n"
        f"diff_at_least = 0.0\nmax_diverged = 0\n"
        for b in summary["baselines"]
    )
    outcomes = check.judge(summary, check.load_expectations(_write_to(tmp_path, tables)))
    assert len(outcomes) == 4 * len(summary["baselines"])
    assert all(o.passed for o in outcomes if o.name.endswith(".verdict"))


def _write_to(folder, text):
    path = folder / "e.toml"
    path.write_text(text, encoding="utf-8")
    return path
