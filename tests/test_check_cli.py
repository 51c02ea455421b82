"""`admtune check` through the command line: exit codes, JUnit, and `--from` never trains.

The invocation is the one the CLI promises: ``admtune check NAME --expect FILE [--junit FILE]
[--from DIR]``.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.test_check import BASE_SUMMARY, GOOD

REPO = Path(__file__).resolve().parents[1]


def _invoke(args: list[str]):
    from typer.testing import CliRunner

    from admtune.cli import app
    return CliRunner().invoke(app, args)


@pytest.fixture
def no_training(monkeypatch):
    """Any training would create an Optuna study or build an optimizer: make both fail loudly."""
    import optuna
    import optuna.study
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("admtune check --from must not train")

    for module in (optuna, optuna.study):
        monkeypatch.setattr(module, "create_study", refuse)
        monkeypatch.setattr(module, "load_study", refuse)
    monkeypatch.setattr(torch.optim.Optimizer, "__init__", refuse)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder (the repo's studies/ copied) with a finished out folder: summary only."""
    if (REPO / "studies").is_dir():
        shutil.copytree(REPO / "studies", tmp_path / "studies")
    out = tmp_path / "reports" / "quick"
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps(BASE_SUMMARY), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path, out


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_from_never_trains_and_passes(project, no_training):
    root, out = project
    expect = root / "good.expect.toml"
    expect.write_text(GOOD, encoding="utf-8")
    before = _files(out)
    result = _invoke(["check", "quick", "--expect", str(expect), "--from", str(out),
                      "--junit", str(root / "junit.xml")])
    assert result.exit_code == 0, result.output
    assert "sgd.verdict" in result.output and "adamw.verdict" in result.output
    assert _files(out) == before  # nothing trained, stored or rewritten
    assert not list(root.rglob("*.db"))
    suite = ET.parse(root / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "0"


def test_from_falls_short_exit_1(project, no_training):
    root, out = project
    expect = root / "strict.expect.toml"
    expect.write_text("[sgd]\nadm_at_most = -1.0\n", encoding="utf-8")
    result = _invoke(["check", "quick", "--expect", str(expect), "--from", str(out),
                      "--junit", str(root / "junit.xml")])
    assert result.exit_code == 1, result.output
    assert "sgd.adm_at_most" in result.output
    suite = ET.parse(root / "junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1"


@pytest.mark.parametrize("case", ["bad_key", "missing_expect", "missing_summary"])
def test_usage_errors_exit_2(project, no_training, case):
    root, out = project
    expect = root / "e.expect.toml"
    expect.write_text("[sgd]\nverdikt = ['beats']\n" if case == "bad_key" else GOOD)
    if case == "missing_expect":
        expect = root / "nope.toml"
    if case == "missing_summary":
        (out / "summary.json").unlink()
    result = _invoke(["check", "quick", "--expect", str(expect), "--from", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    needle = {"bad_key": "verdikt", "missing_expect": "nope.toml",
              "missing_summary": "summary.json"}[case]
    assert needle in result.output
