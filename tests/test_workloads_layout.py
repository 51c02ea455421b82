"""The workloads package stands on its own: no workload module imports the engine or the report."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import admtune.workloads as W

PACKAGE = Path(W.__file__).parent
# the benchmark script drives workloads through the engine's recorder; it is moving to admtune.bench
EXEMPT = {"bench_workloads.py"}
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name not in EXEMPT)


def imported(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = ["admtune", *path.relative_to(PACKAGE.parent).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add(".".join([*base, *([node.module] if node.module else [])]))
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_workload_modules_do_not_import_the_engine_or_the_report(path):
    bad = {n for n in imported(path) if n.split(".")[:2] in (["admtune", "study"], ["admtune", "report"])}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_check_sees_the_exempt_script():
    assert "admtune.study.spec" in imported(PACKAGE / "bench_workloads.py")
