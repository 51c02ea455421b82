"""Suite specs: which studies one suite report answers across (``studies/suites/NAME.toml``).

A suite file::

    name = "cpu"                                 # default: the file's stem
    description = "Every bundled CPU study"
    alpha = 0.05                                 # the suite-level test level
    correction = "holm"                          # or "fdr_bh" (Benjamini–Hochberg)

    [[study]]
    spec = "quick"                               # a study name (./studies, then bundled) or a .toml path
    set = ["train.epochs=5", "name=quick-5ep"]   # --set overrides of this entry (optional)

Each entry resolves to a validated :class:`~admtune.study.spec.StudySpec`; two entries that resolve
to the same study name would share one storage study, so they are refused (rename one with
``set = ["name=…"]``). Suite names resolve like study names: ``./studies/suites/NAME.toml``, then
the suites shipped in the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from admtune.errors import SpecError
from admtune.study.spec import NAME_RE, StudySpec, did_you_mean, load, packaged_specs_dir

CORRECTIONS = {"holm": "Holm", "fdr_bh": "Benjamini–Hochberg"}
TOP_KEYS = {"name", "description", "alpha", "correction", "study"}
ENTRY_KEYS = {"spec", "set"}


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    description: str = ""
    alpha: float = 0.05
    correction: str = "holm"
    studies: tuple[StudySpec, ...] = ()
    source: str = ""
    entries: tuple[dict[str, Any], ...] = field(default=(), compare=False)  # as written


def suite_paths() -> dict[str, Path]:
    """Every suite visible by name: ./studies/suites/*.toml first, then the packaged ones."""
    found: dict[str, Path] = {}
    packaged = packaged_specs_dir()
    for d in (Path.cwd() / "studies" / "suites", packaged / "suites" if packaged else None):
        if d is None or not d.is_dir():
            continue
        for p in sorted(d.glob("*.toml")):
            if not p.name.endswith(".expect.toml"):
                found.setdefault(p.stem, p)
    return found


def resolve_suite(name_or_path: str) -> Path:
    """NAME → ./studies/suites/NAME.toml, then the packaged suite; a *.toml path is taken as is."""
    p = Path(name_or_path)
    if p.suffix == ".toml":
        if not p.is_file():
            raise SpecError(f"suite file {name_or_path!r} does not exist")
        return p
    if not NAME_RE.match(name_or_path) or ".." in name_or_path:
        raise SpecError(f"suite name {name_or_path!r} is not valid: use letters, digits, '-', '_' "
                        "or '.', or give a path to a .toml file")
    found = suite_paths().get(name_or_path)
    if found is None:
        known = ", ".join(sorted(suite_paths())) or "none"
        raise SpecError(f"unknown suite {name_or_path!r}{did_you_mean(name_or_path, suite_paths())}"
                        f" (known: {known}; or give out folders with --from)")
    return found


def load_suite(name_or_path: str) -> SuiteSpec:
    """Read and validate a suite file, resolving every entry to its study spec."""
    path = resolve_suite(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: malformed TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read suite file {path}: {exc}") from None
    return suite_from_dict(raw, source=str(path), default_name=path.stem)


def suite_from_dict(raw: dict[str, Any], *, source: str = "", default_name: str = "suite") -> SuiteSpec:
    where = source or "the suite"
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], TOP_KEYS)} "
                        f"(known: {', '.join(sorted(TOP_KEYS))})")
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError(f"{where}: name must be letters, digits, '-', '_' or '.', got {name!r}")
    alpha = raw.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        raise SpecError(f"{where}: alpha must be a number between 0 and 0.5, got {alpha!r}")
    correction = raw.get("correction", "holm")
    if correction not in CORRECTIONS:
        raise SpecError(f"{where}: correction must be one of {', '.join(CORRECTIONS)}, "
                        f"got {correction!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError(f"{where}: description must be a string")
    entries = raw.get("study")
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{where}: a suite lists its studies as [[study]] tables with a `spec` key; "
                        "none found")
    studies: list[StudySpec] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise SpecError(f"{where}: study entry {i} must be a table ([[study]])")
        bad = sorted(set(entry) - ENTRY_KEYS)
        if bad:
            raise SpecError(f"{where}: study entry {i} has an unknown key {bad[0]!r} "
                            f"(known: {', '.join(sorted(ENTRY_KEYS))})")
        ref = entry.get("spec")
        if not isinstance(ref, str) or not ref:
            raise SpecError(f"{where}: study entry {i} needs `spec`, a study name or a .toml path")
        overrides = entry.get("set", [])
        if isinstance(overrides, str):
            overrides = [overrides]
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise SpecError(f"{where}: `set` of study entry {i} ({ref}) must be a list of "
                            "\"KEY=VALUE\" strings")
        if ref.endswith(".toml") and source and not Path(ref).is_absolute():
            # a spec path is read relative to the suite file, as an include would be
            beside = Path(source).parent / ref
            ref = str(beside) if beside.is_file() else ref
        try:
            spec = load(ref, overrides)
        except SpecError as exc:
            raise SpecError(f"{where}, study entry {i} ({entry['spec']}): {exc}") from None
        if spec.name in seen:
            raise SpecError(f"{where}: study entries {seen[spec.name]} and {i} are both study "
                            f"{spec.name!r}; they would share one stored study: rename one "
                            f"(set = [\"name={spec.name}-2\"])")
        seen[spec.name] = i
        studies.append(spec)
    return SuiteSpec(name=name, description=description, alpha=float(alpha), correction=correction,
                     studies=tuple(studies), source=source, entries=tuple(entries))
