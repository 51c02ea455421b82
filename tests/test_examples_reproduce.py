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


def _close(fresh, committed, path: str = "") -> list[str]:
    """Where a fresh summary differs from the committed one by more than floating-point rounding:
    numbers to 1e-9 relative, the ends of the BCa bootstrap intervals (a resampling of values that
    moved in their last digits) to 1 % of the interval's width, everything else exactly."""
    import math

    if isinstance(committed, dict) and isinstance(fresh, dict):
        if set(fresh) != set(committed):
            return [f"{path}: keys {sorted(set(fresh) ^ set(committed))}"]
        return [d for k in committed for d in _close(fresh[k], committed[k], f"{path}.{k}")]
    if path.endswith("bootstrap_ci") and None not in (*committed, *fresh):
        width = abs(committed[1] - committed[0])
        return [] if all(abs(a - b) <= 0.01 * width for a, b in zip(fresh, committed, strict=True)) \
            else [f"{path}: {fresh!r} vs {committed!r}"]
    if isinstance(committed, list) and isinstance(fresh, list):
        if len(fresh) != len(committed):
            return [f"{path}: length {len(fresh)} vs {len(committed)}"]
        return [d for i, (a, b) in enumerate(zip(fresh, committed, strict=True))
                for d in _close(a, b, f"{path}[{i}]")]
    if isinstance(committed, float) and isinstance(fresh, float):
        return [] if math.isclose(fresh, committed, rel_tol=1e-9, abs_tol=1e-12) else \
            [f"{path}: {fresh!r} vs {committed!r}"]
    return [] if fresh == committed else [f"{path}: {fresh!r} vs {committed!r}"]


def test_a_fresh_quick_study_reproduces_the_committed_summary(tmp_path):
    """Training is deterministic on the CPU: the quick study run anew gives the committed runs,
    β and verdicts; its numbers agree up to floating-point rounding (the sums of another machine
    or library build differ in their last digits, which moves the bootstrap intervals a little)."""
    import json

    out = tmp_path / "quick"
    result = CliRunner().invoke(app, ["study", "quick", "--device", "cpu", "--out", str(out), "--no-pdf"])
    assert result.exit_code == 0, result.output
    fresh = json.loads((out / "summary.json").read_text())
    committed = json.loads((EXAMPLES / "quick" / "summary.json").read_text())
    assert _close(_without_machine_facts(fresh), _without_machine_facts(committed)) == []
