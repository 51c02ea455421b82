"""Study specs: parse a TOML file, apply ``--set`` overrides, validate, fingerprint.

Every check names the offending key in one sentence (``SpecError``) before anything runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .. import families
from ..errors import SpecError

EXTRA_ARMS = ("nowarmup",)
NOT_DATA = ("source", "overrides", "notes")  # StudySpec fields outside its canonical data
# Two keys of which a spec sets exactly one: an override of one replaces the other.
EXCLUSIVE = {"train.epochs": "train.steps", "train.steps": "train.epochs"}
MAX_DESCRIPTION = 10_000
# Budgets beyond these are typos, not studies: they would run until killed, or crash every run.
LIMITS = {"trials": 100_000, "seeds": 10_000, "train.epochs": 1e6, "train.steps": 10**10,
          "tune.finalists": 1_000, "tune.selection_seeds": 1_000}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# --- the schema -------------------------------------------------------------------------------
# key -> (kind, default, required). Kinds are checked by `_check`; `...` marks "no default".
TOP = {
    "name": ("name", ..., True),
    "description": ("description", "", False),
    "workload": ("str", ..., True),
    "metric": ("str", ..., True),
    # None: the workload's own declaration for the metric (filled in by from_dict)
    "direction": (("minimize", "maximize"), None, False),
    "margin": ("pos_float", ..., True),
    "alpha": ("prob", 0.05, False),
    "baselines": ("baselines", ["sgd", "adamw"], False),
    "trials": ("pos_int", 20, False),
    "seeds": ("seeds", 5, False),
    "extra_arms": ("extra_arms", [], False),
    "train": ("table", {}, True),
    "tune": ("table", {}, False),
    "workload_options": ("table", {}, False),  # the [workload] table's options (all but name)
}
TRAIN = {
    "epochs": ("pos_float", None, False),
    "steps": ("pos_int", None, False),
    "batch_size": ("nonneg_int", ..., True),
    "lr": ("family_pos_float", ..., True),
    "weight_decay": ("family_nonneg_float", {"sgd": 0.0, "adamw": 0.0}, False),
    "schedule": (("constant", "cosine", "linear"), "constant", False),
    "warmup_steps": ("nonneg_int", 0, False),
    "adm_warmup_steps": ("nonneg_int", None, False),
}
TUNE = {
    "beta_low": ("beta", 0.0, False),
    "beta_high": ("beta", 0.999, False),
    "lr": ("bool", False, False),
    "lr_range": ("family_range", None, False),
    "sampler": (("tpe", "random"), "tpe", False),
    "pruner": (("median", "none"), "median", False),
    "prune_after": ("fraction", 0.5, False),       # the median pruner waits this share of a run
    "finalists": ("pos_int", 3, False),            # best distinct β of tuning re-run in selection
    "selection_seeds": ("pos_int", 3, False),      # seeds each finalist runs on in selection
    "candidates": ("betas", [], False),            # β always among the finalists (β = 0.9 is)
}
TABLES = {"train": TRAIN, "tune": TUNE}


@dataclass(frozen=True)
class TrainSpec:
    """The validated ``[train]`` table. ``lr`` and ``weight_decay`` hold one value per family."""

    batch_size: int
    lr: dict[str, float]
    weight_decay: dict[str, float]
    epochs: float | None = None
    steps: int | None = None
    schedule: str = "constant"
    warmup_steps: int = 0
    adm_warmup_steps: int | None = None  # AdM's own warmup; None: the same as warmup_steps


@dataclass(frozen=True)
class TuneSpec:
    """The validated ``[tune]`` table."""

    beta_low: float = 0.0
    beta_high: float = 0.999
    lr: bool = False
    lr_range: dict[str, list[float]] | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    prune_after: float = 0.5
    finalists: int = 3
    selection_seeds: int = 3
    candidates: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class StudySpec:
    """A validated study spec, typed. :meth:`to_data` is its canonical plain-data form: what is
    fingerprinted and stored, and what :meth:`from_data` reads back (a report rebuilt from a
    storage reads the same typed fields as the engine that trained)."""

    name: str
    workload: str
    metric: str
    direction: str                     # "minimize" | "maximize"
    margin: float                      # equivalence margin δ, in metric units
    train: TrainSpec
    description: str = ""
    alpha: float = 0.05
    baselines: list[str] = field(default_factory=lambda: ["sgd", "adamw"])  # admtune.families names
    trials: int = 20
    seeds: int = 5
    extra_arms: list[str] = field(default_factory=list)
    tune: TuneSpec = field(default_factory=TuneSpec)
    workload_options: dict[str, Any] = field(default_factory=dict)
    source: str = field(default="", compare=False)  # where it came from (path or packaged name)
    # How it was resolved, for the report (neither is part of the canonical data): the overrides
    # as `--set` takes them ("train.epochs=1", "trials=10"), and what an override replaced.
    overrides: tuple[str, ...] = field(default=(), compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def warmup_for(self, adm: bool) -> int:
        if adm and self.train.adm_warmup_steps is not None:
            return int(self.train.adm_warmup_steps)
        return int(self.train.warmup_steps)

    @property
    def beta_free(self) -> bool:
        """With tune.lr = true AdM tunes its lr too: "β-free" rather than "untuned"."""
        return bool(self.tune.lr)

    def to_data(self) -> dict[str, Any]:
        """The canonical plain-data spec (defaults filled in; lists, dicts, numbers, strings)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in NOT_DATA}
        data["baselines"] = list(self.baselines)
        data["extra_arms"] = list(self.extra_arms)
        data["train"] = asdict(self.train)
        data["tune"] = asdict(self.tune)
        return copy.deepcopy(data)

    @classmethod
    def from_data(cls, data: dict[str, Any], source: str = "") -> StudySpec:
        """A spec from its canonical data (as :meth:`to_data` wrote it, or as an older admtune
        stored it), without validation: a stored study is read back as it was run, even when a
        family it used is not registered in this process."""
        data = copy.deepcopy(dict(data))
        top = {f.name for f in fields(cls)} - {*NOT_DATA, "train", "tune"}
        kwargs = {k: v for k, v in data.items() if k in top}
        for key in ("baselines", "extra_arms"):
            if key in kwargs:
                kwargs[key] = list(kwargs[key])
        train = dict(data.get("train") or {})
        train.setdefault("batch_size", 0)
        train.setdefault("lr", {})
        train.setdefault("weight_decay", {b: 0.0 for b in kwargs.get("baselines", ())})
        known_train = {f.name for f in fields(TrainSpec)}
        known_tune = {f.name for f in fields(TuneSpec)}
        return cls(
            train=TrainSpec(**{k: v for k, v in train.items() if k in known_train}),
            tune=TuneSpec(**{k: v for k, v in (data.get("tune") or {}).items() if k in known_tune}),
            source=source, **kwargs,
        )

    def fingerprint(self, version: str) -> str:
        return fingerprint(self.to_data(), version)

    def to_toml_dict(self) -> dict[str, Any]:
        """The spec in its file layout ([workload] table, None values dropped): what
        :func:`load` reads back to the same canonical data."""
        data = self.to_data()
        out = {k: data[k] for k in TOP  # the file's own order: name, description, metric, …
               if k not in ("workload", "workload_options", "train", "tune")
               and data.get(k) is not None}
        out["train"] = {k: v for k, v in data["train"].items() if v is not None}
        out["tune"] = {k: v for k, v in data["tune"].items() if v is not None}
        out["workload"] = {"name": self.workload, **data["workload_options"]}
        return out

    def to_toml(self) -> str:
        """The resolved spec as a TOML file in the input format (``admtune study FILE`` runs it),
        headed by the overrides it was resolved with and what they replaced, as comments; the
        per-family tables inline (``lr = { sgd = 0.3, adamw = 0.03 }``), as a spec is written."""
        head = [f"# admtune study spec {self.name!r}, resolved"
                + (f" from {self.source}" if self.source else "")]
        if self.overrides:
            head.append("# with " + " ".join(f"--set {o}" for o in self.overrides))
        head += [f"# {n}" for n in self.notes]
        data = _plain(self.to_toml_dict())
        lines = [f"{_key(k)} = {_inline(v)}" for k, v in data.items() if not isinstance(v, dict)]
        for table in ("train", "tune", "workload"):
            lines += ["", f"[{table}]"]
            lines += [f"{_key(k)} = {_inline(v)}" for k, v in data.get(table, {}).items()]
        text = "\n".join(head + lines) + "\n"
        tomllib.loads(text)  # what is written must read back (a key TOML cannot hold raises here)
        return text


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


def _inline(v: Any) -> str:
    """A value on one line: inline tables and arrays, scalars as TOML writes them."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {_inline(x)}" for k, x in v.items()
                                if x is not None) + " }" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_inline(x) for x in v if x is not None) + "]"
    return _toml_value(v)


def _plain(x: Any) -> Any:
    """TOML has no null: None values dropped (lists and tables)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items() if v is not None}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x if v is not None]
    return x


# --- public functions -------------------------------------------------------------------------
def packaged_specs_dir() -> Path | None:
    """Where the specs shipped with the package live (wheel), or the source tree's studies/."""
    try:
        d = resources.files("admtune") / "_studies"
        if d.is_dir():
            return Path(str(d))
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover
        pass
    src = Path(__file__).resolve().parents[2] / "studies"
    return src if src.is_dir() else None


def spec_paths() -> dict[str, Path]:
    """Every study visible by name: ./studies/*.toml first, then the packaged ones."""
    found: dict[str, Path] = {}
    for d in (Path.cwd() / "studies", packaged_specs_dir()):
        if d is None or not d.is_dir():
            continue
        for p in sorted(d.glob("*.toml")):
            if p.name.endswith(".expect.toml"):
                continue
            found.setdefault(p.stem, p)
    return found


def resolve(name_or_path: str) -> Path:
    """NAME → ./studies/NAME.toml, then the packaged spec; an existing *.toml path is taken as is."""
    p = Path(name_or_path)
    if name_or_path.endswith(".toml") or p.suffix == ".toml":
        if not p.is_file():
            raise SpecError(f"study file {name_or_path!r} does not exist")
        return p
    if not NAME_RE.match(name_or_path) or ".." in name_or_path:
        raise SpecError(
            f"study name {name_or_path!r} is not valid: use letters, digits, '-', '_' or '.', "
            "or give a path to a .toml file"
        )
    found = spec_paths().get(name_or_path)
    if found is None:
        known = ", ".join(sorted(spec_paths())) or "none"
        raise SpecError(f"unknown study {name_or_path!r}{did_you_mean(name_or_path)} "
                        f"(known: {known})")
    return found


def closest(name: str, candidates: Any = None) -> str | None:
    """The near miss of ``name`` among ``candidates`` (default: the visible studies): a typo's
    intended name, or None."""
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates if candidates is not None
                                                   else spec_paths()), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, candidates: Any = None) -> str:
    """``"; did you mean 'quick'?"`` for a near miss (see :func:`closest`), else ``""``."""
    close = closest(name, candidates)
    return f"; did you mean {close!r}?" if close else ""


def load(name_or_path: str, overrides: list[str] | dict[str, Any] | None = None,
         **top_overrides: Any) -> StudySpec:
    """Read, override and validate a spec. ``top_overrides`` (trials=…, seeds=…) apply last."""
    path = resolve(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: malformed TOML ({exc})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path} is not a UTF-8 text file (a study spec is TOML text)") from None
    except OSError as exc:
        raise SpecError(f"cannot read study file {path}: {exc.strerror}") from None
    return from_dict(raw, overrides, source=str(path), **top_overrides)


def from_dict(raw: dict[str, Any], overrides: list[str] | dict[str, Any] | None = None,
              source: str = "", **top_overrides: Any) -> StudySpec:
    data = _normalise(copy.deepcopy(raw))
    items = parse_overrides(overrides) if not isinstance(overrides, dict) else dict(overrides)
    notes = []
    for key, value in items.items():
        _apply_override(data, key, value)
    for key, other in EXCLUSIVE.items():
        # `--set train.epochs=1` on a spec with train.steps means "this budget instead"
        section, _, leaf = other.partition(".")
        table = data.get(section)
        if key in items and other not in items and isinstance(table, dict) and leaf in table:
            notes.append(f"{other} = {_toml_value(table.pop(leaf))} of the spec file was "
                         f"replaced by --set {key}={_toml_value(items[key])}")
    for key, value in top_overrides.items():
        if value is not None:
            data[key] = value
    done = validate(data)
    if done["direction"] is None:
        done["direction"] = _declared_direction(done)
    shown = tuple(f"{k}={_toml_value(v)}" for k, v in items.items()) + tuple(
        f"{k}={_toml_value(v)}" for k, v in top_overrides.items() if v is not None)
    return replace(StudySpec.from_data(done, source=source), overrides=shown, notes=tuple(notes))


def _toml_value(v: Any) -> str:
    """A value on one line as `--set` takes it (TOML), e.g. 1, 0.5, "cosine", [0.9, 0.99]."""
    import tomli_w

    if isinstance(v, (dict, list, tuple)):
        return _inline(v)
    return tomli_w.dumps({"v": v}).strip()[len("v = "):]


def _declared_direction(data: dict[str, Any]) -> str:
    """The direction the workload declares for the spec's metric (the spec left it out)."""
    from ..workloads import get_workload

    metrics = get_workload(data["workload"], data["workload_options"]).metrics
    if data["metric"] not in metrics:
        raise SpecError(f"metric {data['metric']!r} is not reported by workload "
                        f"{data['workload']!r} (it reports: {', '.join(metrics)})")
    return str(metrics[data["metric"]])


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.epochs=1", "workload.data_dir=/d"]`` → ``{"train.epochs": 1, ...}`` (TOML values;
    a value that is not valid TOML is taken as a string)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=1")
        out[key] = _parse_value(text.strip())
    return out


# Budgets a study may grow on resume (never shrink): the fingerprint leaves them out, the storage
# records each change (see admtune.study.engine).
GROWABLE = ("trials", "seeds", "tune.finalists", "tune.selection_seeds")


def budget(data: dict[str, Any]) -> dict[str, int]:
    """The growable budgets of a canonical spec, by dotted key."""
    out = {}
    for key in GROWABLE:
        node: Any = data
        for part in key.split("."):
            node = (node or {}).get(part)
        out[key] = int(node) if node is not None else 0
    return out


def without_budget(data: dict[str, Any]) -> dict[str, Any]:
    """The canonical spec less its growable budgets (what must not change on resume)."""
    data = copy.deepcopy(data)
    for key in GROWABLE:
        *path, last = key.split(".")
        node = data
        for part in path:
            node = node.get(part, {})
        node.pop(last, None)
    return data


def fingerprint(data: dict[str, Any], version: str) -> str:
    """sha256 of the canonical spec (without its description and growable budgets) and the
    package version."""
    payload = {k: v for k, v in without_budget(data).items() if k != "description"}
    blob = json.dumps({"spec": payload, "version": version}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two canonical specs: ``["train.epochs: 10 → 1"]``."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(diff(a, b, path + "."))
        elif a != b:
            out.append(f"{path}: {a!r} → {b!r}")
    return out


# --- internals --------------------------------------------------------------------------------
def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    """``[workload]`` with ``name = …`` and options → ``workload`` (the name) + ``workload_options``.

    TOML cannot hold ``workload = "name"`` and a ``[workload]`` table at once, so a spec either
    names a workload without options (``workload = "quick"``) or writes the table with a ``name``.
    """
    if not isinstance(data, dict):
        raise SpecError("a study spec must be a TOML table")
    if "workload_options" in data:
        _fail("workload_options", "is not a known key (put workload options under [workload])")
    w = data.get("workload")
    if isinstance(w, dict):
        w = dict(w)
        if "name" not in w:
            _fail("workload.name", "is required (the bundled workload or 'package.module:factory')")
        data["workload"] = w.pop("name")
        data["workload_options"] = w
    return data


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if parts == ["workload", "name"]:
        parts = ["workload"]
    elif parts[0] == "workload" and len(parts) > 1:
        parts[0] = "workload_options"
        data.setdefault("workload_options", {})
    schema: dict[str, Any] | None = TOP
    node = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if schema is not None and part not in schema:
            raise SpecError(f"--set {key}: unknown key {part!r}")
        if last:
            node[part] = value
            return
        sub = node.setdefault(part, {})
        if not isinstance(sub, dict):
            raise SpecError(f"--set {key}: {'.'.join(parts[:depth + 1])} is not a table")
        node = sub
        if part in TABLES and schema is TOP:
            schema = TABLES[part]
        elif part == "workload_options":
            schema = None  # validated by the workload's factory
        elif schema is not None and schema.get(part, ("",))[0].startswith("family"):
            schema = {f: None for f in families.names()}
        else:
            schema = None


def _fail(key: str, msg: str) -> None:
    raise SpecError(f"{key} {msg}")


def _num(key: str, v: Any, *, integer: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        _fail(key, f"must be {'an integer' if integer else 'a number'}, got {v!r}")
    if not math.isfinite(v):
        _fail(key, f"must be finite, got {v!r}")
    return v


def _check(key: str, kind: Any, v: Any, baselines: list[str]) -> Any:
    if isinstance(kind, tuple):
        if v not in kind:
            _fail(key, f"must be one of {', '.join(kind)}, got {v!r}")
        return v
    if kind == "name":
        if not isinstance(v, str) or not NAME_RE.match(v) or ".." in v:
            _fail(key, f"must be a short name of letters, digits, '-', '_' or '.', got {v!r}")
        return v
    if kind == "description":
        if not isinstance(v, str):
            _fail(key, f"must be a string, got {v!r}")
        if len(v) > MAX_DESCRIPTION:
            _fail(key, f"is {len(v):,} characters long; a report's title page takes at most "
                       f"{MAX_DESCRIPTION:,}")
        return v
    if kind == "str":
        if not isinstance(v, str):
            _fail(key, f"must be a string, got {v!r}")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            _fail(key, f"must be true or false, got {v!r}")
        return v
    if kind == "table":
        if not isinstance(v, dict):
            _fail(key, f"must be a table, got {v!r}")
        return v
    if kind == "pos_float":
        if _num(key, v) <= 0:
            _fail(key, f"must be > 0, got {v!r}")
        return float(v)
    if kind == "prob":
        if not 0 < _num(key, v) < 1:
            _fail(key, f"must be in (0, 1), got {v!r}")
        return float(v)
    if kind == "fraction":
        if not 0 <= _num(key, v) <= 1:
            _fail(key, f"must be in [0, 1], got {v!r}")
        return float(v)
    if kind == "betas":
        if not isinstance(v, list):
            _fail(key, f"must be a list of β values in [0, 1), got {v!r}")
        return [_check(f"{key}[{i}]", "beta", x, baselines) for i, x in enumerate(v)]
    if kind == "beta":
        if not 0 <= _num(key, v) < 1:
            _fail(key, f"must be in [0, 1), got {v!r}")
        return float(v)
    if kind == "pos_int":
        if _num(key, v, integer=True) < 1:
            _fail(key, f"must be an integer ≥ 1, got {v!r}")
        return int(v)
    if kind == "nonneg_int":
        if _num(key, v, integer=True) < 0:
            _fail(key, f"must be an integer ≥ 0, got {v!r}")
        return int(v)
    if kind == "seeds":
        if _num(key, v, integer=True) < 2:
            _fail(key, f"must be an integer ≥ 2 (paired tests need at least two seeds), got {v!r}")
        return int(v)
    if kind == "baselines":
        known = families.names()
        if (not isinstance(v, list) or not v or any(b not in known for b in v)
                or len(set(v)) != len(v)):
            _fail(key, f"must be a non-empty list of distinct values from {list(known)}, got {v!r}")
        return list(v)
    if kind == "extra_arms":
        if not isinstance(v, list) or any(a not in EXTRA_ARMS for a in v) or len(set(v)) != len(v):
            _fail(key, f"must be a list of distinct values from {list(EXTRA_ARMS)}, got {v!r}")
        return list(v)
    if kind.startswith("family"):
        if not isinstance(v, dict):
            if kind == "family_range":
                _fail(key, f"must be a table like {{ sgd = [0.01, 1.0], adamw = [1e-4, 0.1] }}, got {v!r}")
            v = {b: v for b in baselines}  # a single number applies to every family
        out = {}
        for fam, x in v.items():
            if fam not in families.names():
                _fail(f"{key}.{fam}", f"is not an optimizer family (use {' or '.join(families.names())})")
            sub = f"{key}.{fam}"
            if kind == "family_pos_float":
                if _num(sub, x) <= 0:
                    _fail(sub, f"must be > 0, got {x!r}")
                out[fam] = float(x)
            elif kind == "family_nonneg_float":
                if _num(sub, x) < 0:
                    _fail(sub, f"must be ≥ 0, got {x!r}")
                out[fam] = float(x)
            else:
                if not (isinstance(x, list) and len(x) == 2):
                    _fail(sub, f"must be [low, high], got {x!r}")
                lo, hi = _num(sub, x[0]), _num(sub, x[1])
                if not 0 < lo < hi:
                    _fail(sub, f"must satisfy 0 < low < high, got {x!r}")
                out[fam] = [float(lo), float(hi)]
        for b in baselines:
            if kind != "family_nonneg_float" and b not in out:
                _fail(key, f"has no value for baseline {b!r}")
            out.setdefault(b, 0.0)
        return out
    raise AssertionError(kind)  # pragma: no cover


def _validate_table(prefix: str, raw: dict[str, Any], schema: dict[str, Any],
                    baselines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in raw:
        if key not in schema:
            _fail(f"{prefix}{key}", f"is not a known key (known: {', '.join(schema)})")
    for key, (kind, default, required) in schema.items():
        if key in raw:
            out[key] = _check(f"{prefix}{key}", kind, raw[key], baselines)
        elif required:
            _fail(f"{prefix}{key}", "is required")
        else:
            out[key] = copy.deepcopy(default) if default is not ... else None
    return out


def _check_limits(data: dict[str, Any]) -> None:
    for key, limit in LIMITS.items():
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and node > limit:
            _fail(key, f"is {node:g}; more than {limit:g} is surely a typo (it would run for ever)")


def validate(raw: dict[str, Any]) -> dict[str, Any]:
    """The canonical spec (defaults filled in) or a SpecError naming the first bad key."""
    if not isinstance(raw, dict):
        raise SpecError("a study spec must be a TOML table")
    baselines = raw.get("baselines", TOP["baselines"][1])
    baselines = _check("baselines", "baselines", baselines, [])
    data = _validate_table("", raw, TOP, baselines)
    data["train"] = _validate_table("train.", data["train"], TRAIN, baselines)
    data["tune"] = _validate_table("tune.", data["tune"], TUNE, baselines)
    t, u = data["train"], data["tune"]
    _check_limits(data)
    for b in baselines:  # a family outside the default table (a plug-in) decays by 0 unless told
        t["weight_decay"].setdefault(b, 0.0)
    if (t["epochs"] is None) == (t["steps"] is None):
        _fail("train.epochs", "or train.steps must be set (exactly one of them)")
    if not u["beta_low"] < u["beta_high"]:
        _fail("tune.beta_high", f"must be greater than tune.beta_low, got {u['beta_high']!r}")
    if u["lr"] and u["lr_range"] is None:
        _fail("tune.lr_range", "is required when tune.lr = true")
    if not u["lr"] and u["lr_range"] is not None:
        _fail("tune.lr_range", "is only used when tune.lr = true")
    if "nowarmup" in data["extra_arms"] and t["warmup_steps"] == 0:
        _fail("extra_arms", "contains 'nowarmup' but train.warmup_steps is 0")
    return data
