"""The committed example reports are reproducible: rebuilding each from its study.db alone gives its
summary.json byte for byte. A refactor that changes a number, a word of a verdict's
reason or the order of a key fails here; a change meant to alter results regenerates the examples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admtune.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "reports" / "examples"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "study.db").is_file())


def test_every_example_is_checked():
    assert {"quick", "convex-logreg", "convex-lsq", "convex-quad", "mlp"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_report_rebuilt_from_the_storage_matches_the_committed_files(tmp_path, name):
    src = EXAMPLES / name
    out = tmp_path / name
    out.mkdir()
    shutil.copy(src / "study.db", out / "study.db")  # the committed storage is never written to
    result = CliRunner().invoke(app, ["report", name, "--out", str(out), "--no-pdf"])
    assert result.exit_code == 0, result.output
    # runs.csv is not compared: the committed ones predate its device and worker columns.
    assert (out / "summary.json").read_bytes() == (src / "summary.json").read_bytes()


def _without_machine_facts(summary: dict) -> dict:
    """The summary less what depends on the machine and the moment: wall time, versions, device."""
    return {k: v for k, v in summary.items() if k not in ("wall_s", "versions", "device")}


def test_a_fresh_quick_study_reproduces_the_committed_summary(tmp_path):
    """Training is deterministic on the CPU: the quick study run anew gives the committed numbers."""
    import json

    out = tmp_path / "quick"
    result = CliRunner().invoke(app, ["study", "quick", "--device", "cpu", "--out", str(out), "--no-pdf"])
    assert result.exit_code == 0, result.output
    fresh = json.loads((out / "summary.json").read_text())
    committed = json.loads((EXAMPLES / "quick" / "summary.json").read_text())
    assert _without_machine_facts(fresh) == _without_machine_facts(committed)
