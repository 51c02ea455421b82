"""Imports run one way: optim ← workloads ← study ← report ← api ← cli. Read from the source (every
import, module-level or inside a function), so a shortcut back up the layers fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "admtune"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every admtune module ``path`` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("admtune"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("admtune"):
                out.add(mod)
                # "from admtune.study import records" imports the module admtune.study.records
                out.update(f"{mod}.{a.name}" for a in node.names if (PACKAGE.parent / (
                    f"{mod}.{a.name}".replace(".", "/") + ".py")).is_file())
    return out


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def within(mod: str, *prefixes: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


# module prefix → prefixes it must never import
FORBIDDEN = {
    "admtune.optim": ("admtune.workloads", "admtune.study", "admtune.report", "admtune.api",
                      "admtune.cli", "admtune.check", "admtune.bench", "admtune._workers"),
    "admtune.workloads": ("admtune.study", "admtune.report", "admtune.api", "admtune.cli",
                          "admtune.check", "admtune.bench", "admtune._workers"),
    "admtune.study": ("admtune.report", "admtune.api", "admtune.cli", "admtune.check",
                      "admtune.bench", "admtune._workers"),
    "admtune.report": ("admtune.api", "admtune.cli", "admtune.bench", "admtune._workers",
                       "admtune.workloads", "admtune.optim", "admtune.study.engine",
                       "admtune.study.execute", "admtune.study.storage", "admtune.study.records"),
    "admtune.util": ("admtune",),
    "admtune.families": ("admtune.study", "admtune.workloads", "admtune.report", "admtune.api",
                         "admtune.cli"),
    # The CLI is a thin layer over api: it never reaches past it into the engine or the workloads.
    "admtune.cli": ("admtune.study", "admtune.workloads", "admtune.optim", "admtune.report.analysis",
                    "admtune.report.figures", "admtune.report.render", "admtune._workers"),
}
# Layers may import admtune's shared leaves.
LEAVES = ("admtune.errors", "admtune.util", "admtune.families", "admtune.devices", "admtune._gc")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_run_one_way(layer):
    bad = []
    for mod, path in MODULES.items():
        if not within(mod, layer):
            continue
        for dep in imported(path):
            if dep == "admtune" or within(dep, layer):
                continue
            allowed_leaf = within(dep, *LEAVES) and layer != "admtune.util"
            if within(dep, *FORBIDDEN[layer]) and not allowed_leaf:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "\n".join(bad)


def test_the_reader_finds_imports():
    """The check above would pass vacuously if the reader found nothing."""
    assert "admtune.api" in imported(MODULES["admtune.cli"])
    assert "admtune.study.records" in imported(MODULES["admtune.study.engine"])
    assert "admtune.optim.twoplane" in imported(MODULES["admtune.optim.sgd"])
