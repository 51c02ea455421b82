"""`admtune check` with a suite's expectations: parsing, judging the committed cpu suite's
suite.json (bounds placed around the values read from the file, so each can fail), exit codes
and JUnit through the command line, and `--from` never trains."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admtune import check
from admtune.cli import app
from admtune.errors import SpecError

REPO = Path(__file__).resolve().parents[1]
CPU_SUITE = REPO / "reports" / "examples" / "suites" / "cpu"
SUITE = json.loads((CPU_SUITE / "suite.json").read_text(encoding="utf-8"))


def _file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "suite.expect.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _judge(tmp_path: Path, text: str) -> list[check.Judgement]:
    return check.judge_suite(SUITE, check.load_expectations(_file(tmp_path, text)))


# ---------------------------------------------------------------------------------------------
# the file


def test_a_suite_file_is_recognised_and_parsed(tmp_path):
    exp = check.load_expectations(_file(tmp_path, """
[suite]
prob_improvement_at_least = 0.3
max_loses = 2
[suite.sgd]
iqm_ci_low_at_least = -1.5
[studies.convex-quad]
adamw = ["beats", "beats"]
"""))
    assert isinstance(exp, check.SuiteExpectations)
    assert list(exp.aggregates) == ["all", "sgd"]
    assert exp.aggregates["all"].prob_improvement_at_least == 0.3
    assert exp.aggregates["all"].max_loses == 2
    assert exp.aggregates["sgd"].iqm_ci_low_at_least == -1.5
    assert exp.studies == {"convex-quad": {"adamw": ("beats",)}}


def test_only_a_family_table_under_suite_makes_no_overall_expectation(tmp_path):
    exp = check.load_expectations(_file(tmp_path, "[suite.adamw]\nmax_loses = 1\n"))
    assert list(exp.aggregates) == ["adamw"]


@pytest.mark.parametrize("text, words", [
    ("[suite]\nprob_improvment_at_least = 0.3\n", "did you mean 'prob_improvement_at_least'"),
    ("[suite]\nprob_improvement_at_least = 1.5\n", "is a probability"),
    ("[suite]\niqm_at_least = 'high'\n", "must be a number"),
    ("[suite]\nmax_loses = -1\n", "whole number >= 0"),
    ("[suite.sdg]\nmax_loses = 1\n", "did you mean 'sgd'"),
    ("[suite]\n", "sets no expectation"),
    ("[studies.quick]\nsgd = ['winning']\n", "unknown verdict 'winning'"),
    ("[studies.quick]\nsgdd = ['beats']\n", "unknown baseline 'sgdd'"),
    ("[studies.quick]\n", "sets no expectation"),
    ("studies = 3\n", "must be tables"),
    ("[suite]\nmax_loses = 1\n[sgd]\nverdict = 'beats'\n", "mixes a study's expectations"),
    ("[suite]\nmax_loses = 1\n[sweet]\nx = 1\n", "unknown top-level key 'sweet'"),
])
def test_a_bad_suite_file_is_one_sentence(tmp_path, text, words):
    with pytest.raises(SpecError, match="suite.expect.toml") as err:
        check.load_expectations(_file(tmp_path, text))
    assert words in str(err.value)


# ---------------------------------------------------------------------------------------------
# judging the committed suite


def test_aggregate_bounds_pass_at_the_value_and_fail_just_above_it(tmp_path):
    poi = SUITE["prob_improvement"]["all"]["adm_vs_tuned"]
    iqm = SUITE["scores"]["sgd"]["adm"]["iqm"]
    for nudge, passed in ((0.0, True), (1e-9, False)):
        outcomes = _judge(tmp_path, f"""
[suite]
prob_improvement_at_least = {poi["value"] + nudge!r}
prob_improvement_ci_low_at_least = {poi["ci"][0] + nudge!r}
[suite.sgd]
iqm_at_least = {iqm["value"] + nudge!r}
iqm_ci_low_at_least = {iqm["ci"][0] + nudge!r}
""")
        assert [o.name for o in outcomes] == [
            "suite.prob_improvement_at_least", "suite.prob_improvement_ci_low_at_least",
            "suite.sgd.iqm_at_least", "suite.sgd.iqm_ci_low_at_least"]
        assert [o.passed for o in outcomes] == [passed] * 4
        assert outcomes[0].observed == poi["value"] and outcomes[1].observed == poi["ci"][0]
        assert outcomes[2].observed == iqm["value"] and outcomes[3].observed == iqm["ci"][0]


def test_max_loses_counts_the_suite_level_loses_of_its_scope(tmp_path):
    losing = [c for c in SUITE["comparisons"] if c["suite_verdict"] == "loses"]
    by_sgd = [c for c in losing if c["baseline"] == "sgd"]
    assert losing, "the committed suite has losing comparisons: this test needs one"
    outcomes = _judge(tmp_path, f"""
[suite]
max_loses = {len(losing)}
[suite.sgd]
max_loses = {len(by_sgd) - 1}
""")
    assert [(o.observed, o.passed) for o in outcomes] == [(len(losing), True),
                                                          (len(by_sgd), False)]
    for c in by_sgd:
        assert f"{c['study']}/sgd" in outcomes[1].message


def test_study_verdicts_are_judged_at_the_suite_level(tmp_path):
    c = SUITE["comparisons"][0]
    others = [v for v in check.VERDICTS if v != c["suite_verdict"]]
    ok, bad = _judge(tmp_path, f"""
[studies.{c['study']}]
{c['baseline']} = ["{c['suite_verdict']}"]
""") + _judge(tmp_path, f"""
[studies.{c['study']}]
{c['baseline']} = {json.dumps(others)}
""")
    assert ok.passed and not bad.passed
    assert ok.observed == c["suite_verdict"]
    assert f"study's own: {c['verdict']}" in bad.message


def test_what_the_suite_does_not_hold_is_a_usage_error(tmp_path):
    with pytest.raises(SpecError, match=r"study \[studies.quik\] is not in suite 'cpu'.*quick"):
        _judge(tmp_path, "[studies.quik]\nsgd = ['beats']\n")
    one = dict(SUITE, comparisons=[c for c in SUITE["comparisons"] if c["baseline"] == "sgd"])
    exp = check.load_expectations(_file(tmp_path, "[suite.adamw]\nmax_loses = 1\n"))
    with pytest.raises(SpecError, match=r"\[suite.adamw\] is not in suite 'cpu'"):
        check.judge_suite(one, exp)


def test_a_study_file_on_a_suite_and_a_suite_file_on_a_study_are_refused(tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    study_file = _file(tmp_path, "[sgd]\nverdict = 'beats'\n")
    assert check.run_check(SUITE, study_file, console=console) == 2
    assert "holds a study's expectations, but 'cpu' is a suite" in console.export_text()
    suite_file = tmp_path / "s.toml"
    suite_file.write_text("[suite]\nmax_loses = 1\n")
    summary = json.loads((REPO / "reports" / "examples" / "quick" / "summary.json").read_text())
    assert check.run_check(summary, suite_file, console=console) == 2
    assert "holds a suite's expectations, but 'quick' is a study" in console.export_text()


def test_an_incomplete_suite_is_not_judged(tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    exp = _file(tmp_path, "[suite]\nmax_loses = 10\n")
    assert check.run_check(dict(SUITE, complete=False), exp, console=console) == 3
    assert "not complete" in console.export_text()


# ---------------------------------------------------------------------------------------------
# the command line


@pytest.fixture
def no_training(monkeypatch):
    import optuna
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("admtune check --from must not train")

    monkeypatch.setattr(optuna, "create_study", refuse)
    monkeypatch.setattr(optuna, "load_study", refuse)
    monkeypatch.setattr(torch.optim.Optimizer, "__init__", refuse)


def test_the_bundled_cpu_suite_expectations_hold_on_the_committed_suite(tmp_path, no_training):
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(app, [
        "check", "cpu", "--expect", str(REPO / "studies" / "suites" / "cpu.expect.toml"),
        "--from", str(CPU_SUITE), "--junit", str(junit)])
    assert result.exit_code == 0, result.output
    assert "OK all" in result.output and "suite cpu" in result.output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) >= 5


def test_a_falling_short_suite_exits_1_with_a_junit_failure(tmp_path, no_training):
    poi = SUITE["prob_improvement"]["all"]["adm_vs_tuned"]["value"]
    exp = _file(tmp_path, f"[suite]\nprob_improvement_at_least = {min(1.0, poi + 0.1)!r}\n")
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(app, ["check", "cpu", "--expect", str(exp), "--from",
                                      str(CPU_SUITE), "--junit", str(junit)])
    assert result.exit_code == 1, result.output
    assert "FAILED 1 of 1" in result.output
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and f">= {min(1.0, poi + 0.1)!r}" in failure.text


def test_study_flags_with_a_suite_file_are_one_sentence(tmp_path):
    exp = _file(tmp_path, "[suite]\nmax_loses = 1\n")
    result = CliRunner().invoke(app, ["check", "cpu", "--expect", str(exp), "--trials", "3"])
    assert result.exit_code == 2
    assert "--trials does not apply to a suite" in result.output
    assert "Traceback" not in result.output


def test_a_folder_without_suite_json_is_one_sentence(tmp_path):
    exp = _file(tmp_path, "[suite]\nmax_loses = 1\n")
    result = CliRunner().invoke(app, ["check", "cpu", "--expect", str(exp), "--from",
                                      str(tmp_path)])
    assert result.exit_code == 2
    assert "suite.json does not exist" in result.output
