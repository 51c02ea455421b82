"""The CI regression gate behind ``admtune check``.

Compare a study's ``summary.json`` with what a team expects of AdM, print one line per
expectation, optionally write JUnit XML, and return the exit code.

Expectations file (TOML), one table per baseline::

    # metric = "train_loss"           # optional: the metric the numbers below were written for

    [sgd]
    verdict = ["beats", "matches"]    # allowed verdicts (a single string is also accepted)
    adm_at_most = 0.30                # AdM's mean metric must be <= this (minimised metrics only)
    max_diverged = 0                  # diverged AdM evaluation runs allowed
    diff_at_least = -0.01             # mean paired difference AdM - tuned >= this

    [adamw]
    verdict = ["beats", "matches", "inconclusive"]

Keys of a baseline table (each optional, at least one required):

``verdict``
    Allowed verdicts, among ``beats``, ``matches``, ``loses``, ``inconclusive``.
``adm_at_most`` / ``adm_at_least``
    Bound on AdM's mean test metric over its evaluation seeds (``adm.mean``). ``adm_at_most`` is
    only valid when the study minimises its metric, ``adm_at_least`` only when it maximises it;
    using the other one is a usage error (it would hold trivially or never). The mean is over
    the runs that finished, so pair it with ``max_diverged``; a mean of ``null`` (no finished
    run) never meets a bound.
``max_diverged``
    A whole number >= 0: how many of AdM's evaluation runs may diverge (``adm.diverged``).
``diff_at_least``
    Bound on the mean paired difference AdM - tuned (``diff.mean``), in the metric's units and
    oriented so that positive = AdM better whatever the direction. ``diff_at_least = 0`` demands
    that AdM is on average no worse than tuned momentum; ``-0.01`` tolerates 0.01 worse. Unlike
    ``adm_at_most`` it keeps meaning the same when the whole problem gets easier or harder.

Top level, besides the tables, only ``metric`` is allowed: when set, the study's metric must be
that one, so the numeric bounds are never compared with a different quantity after a spec change.

Suite expectations (for ``admtune check SUITE``, judged on its ``suite.json``) use their own tables
instead of baseline ones; a file holds either kind, never both::

    [suite]                              # aggregates over every study x baseline of the suite
    prob_improvement_at_least = 0.30     # P(AdM beats tuned momentum), point estimate
    iqm_at_least = -1.0                  # IQM of AdM's normalised score, in margins delta

    [suite.sgd]                          # the same keys, over the SGD comparisons only
    prob_improvement_ci_low_at_least = 0.2

    [studies.quick]                      # allowed suite-level verdicts per baseline
    sgd = ["beats", "matches", "inconclusive"]
    adamw = ["beats", "matches"]

Keys of ``[suite]`` and ``[suite.BASELINE]``: ``prob_improvement_at_least`` and
``prob_improvement_ci_low_at_least`` (the point estimate, or the lower end of its stratified
bootstrap interval, of the probability that AdM's run beats tuned momentum's on a seed);
``iqm_at_least`` and ``iqm_ci_low_at_least`` (the interquartile mean of AdM's normalised score
(x_AdM - x_tuned) / delta, higher = better, 0 = as good as tuned); ``max_loses`` (how many
suite-level "loses" verdicts are allowed). The verdicts of ``[studies.NAME]`` are the suite-level
ones (recomputed with the suite's multiplicity correction); each line shows the study's own too.
A study or baseline that the suite does not hold is a usage error.

Unknown baselines (not sgd/adamw, or absent from the summary), unknown keys, wrong types and
out-of-range values are usage errors (:class:`~admtune.errors.SpecError`, exit code 2), never
ignored. Exit codes of :func:`run_check`: 0 when every expectation holds, 1 when any falls short,
2 for usage errors.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from admtune import families
from admtune.errors import AdmtuneError, SpecError
from admtune.util import atomic_write


class IncompleteStudy(AdmtuneError):
    """The summary is of a study whose planned runs have not all ended."""

    exit_code = 3


__all__ = [
    "IncompleteStudy",
    "VERDICTS",
    "KEYS",
    "BaselineExpectation",
    "Expectations",
    "AggregateExpectation",
    "SuiteExpectations",
    "load_suite_summary",
    "judge_suite",
    "Judgement",
    "load_expectations",
    "load_summary",
    "judge",
    "write_junit",
    "write_junit_error",
    "run_check",
]

VERDICTS = ("beats", "matches", "loses", "inconclusive")
# Keys of a baseline table, in the order their outcomes are reported.
KEYS = ("verdict", "adm_at_most", "adm_at_least", "diff_at_least", "max_diverged")
TOP_LEVEL_KEYS = ("metric",)
# Keys of a suite's [suite] and [suite.BASELINE] tables, in the order their outcomes are reported.
AGGREGATE_KEYS = ("prob_improvement_at_least", "prob_improvement_ci_low_at_least",
                  "iqm_at_least", "iqm_ci_low_at_least", "max_loses")
SUITE_TOP_LEVEL = ("suite", "studies")
DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class BaselineExpectation:
    """What is expected of AdM against one baseline; ``None`` means "not checked"."""

    baseline: str
    verdict: tuple[str, ...] | None = None
    adm_at_most: float | None = None
    adm_at_least: float | None = None
    diff_at_least: float | None = None
    max_diverged: int | None = None


@dataclass(frozen=True)
class Expectations:
    """A validated expectations file (baselines in file order)."""

    path: Path
    baselines: dict[str, BaselineExpectation] = field(default_factory=dict)
    metric: str | None = None


@dataclass(frozen=True)
class AggregateExpectation:
    """What is expected of a suite's aggregate over ``scope`` ("all" or one baseline)."""

    scope: str
    prob_improvement_at_least: float | None = None
    prob_improvement_ci_low_at_least: float | None = None
    iqm_at_least: float | None = None
    iqm_ci_low_at_least: float | None = None
    max_loses: int | None = None


@dataclass(frozen=True)
class SuiteExpectations:
    """A validated suite expectations file: aggregates by scope, allowed verdicts by study."""

    path: Path
    aggregates: dict[str, AggregateExpectation] = field(default_factory=dict)
    studies: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    """The result of one expectation, e.g. ``sgd.verdict``.

    ``observed`` is the raw value read from the summary (str, float, int or None); ``expected``
    the raw requirement (a tuple of verdicts or a bound); ``message`` the line shown to the user,
    with observed against expected.
    """

    baseline: str
    name: str
    passed: bool
    observed: Any
    expected: Any
    message: str
    detail: str = ""   # more context for the JUnit report (e.g. the report's verdict reason)


# --------------------------------------------------------------------------------------------
# Loading and validating the expectations file


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(path: Path, where: str, key: str, value: Any) -> float:
    if not _is_number(value):
        raise SpecError(
            f"{path}: {where}.{key} must be a number, not {type(value).__name__} {value!r}."
        )
    if not math.isfinite(value):
        raise SpecError(f"{path}: {where}.{key} must be a finite number, not {value!r}.")
    return float(value)


def _verdicts(path: Path, where: str, raw: Any) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise SpecError(
            f"{path}: {where} must be a list of verdicts such as "
            f'["beats", "matches"], not {raw!r}.'
        )
    if not items:
        raise SpecError(f"{path}: {where} is empty; allow at least one verdict.")
    for v in items:
        if v not in VERDICTS:
            raise SpecError(
                f"{path}: {where} has unknown verdict {v!r}{_suggest(v, VERDICTS)}; "
                f"verdicts are {', '.join(VERDICTS)}."
            )
    return tuple(dict.fromkeys(items))  # drop duplicates, keep order


def _whole(path: Path, where: str, raw: Any) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        raise SpecError(f"{path}: {where} must be a whole number >= 0, not {raw!r}.")
    return raw


def _baseline(path: Path, name: str, table: dict[str, Any]) -> BaselineExpectation:
    where = f"[{name}]"
    unknown = [k for k in table if k not in KEYS]
    if unknown:
        key = unknown[0]
        raise SpecError(
            f"{path}: unknown key {key!r} in {where}{_suggest(key, KEYS)}; "
            f"known keys: {', '.join(KEYS)}."
        )
    if not table:
        raise SpecError(f"{path}: {where} sets no expectation; known keys: {', '.join(KEYS)}.")
    values: dict[str, Any] = {}

    if "verdict" in table:
        values["verdict"] = _verdicts(path, f"{where}.verdict", table["verdict"])

    for key in ("adm_at_most", "adm_at_least", "diff_at_least"):
        if key in table:
            values[key] = _number(path, where, key, table[key])
    if "adm_at_most" in values and "adm_at_least" in values:
        raise SpecError(
            f"{path}: {where} sets both adm_at_most and adm_at_least; use adm_at_most for a "
            "minimised metric, adm_at_least for a maximised one."
        )

    if "max_diverged" in table:
        values["max_diverged"] = _whole(path, f"{where}.max_diverged", table["max_diverged"])

    return BaselineExpectation(baseline=name, **values)


def load_expectations(path: str | os.PathLike[str]) -> Expectations | SuiteExpectations:
    """Read and validate an expectations file; raise :class:`SpecError` naming any problem.

    A file with ``[suite]`` or ``[studies.NAME]`` tables is a suite's (:class:`SuiteExpectations`),
    any other a study's (:class:`Expectations`).

    Checks that need the summary (baselines present in it, bound direction, metric) are done by
    :func:`evaluate`; call this first so that a bad file is reported before any training.
    """
    path = Path(path)
    if not path.exists():
        raise SpecError(f"Expectations file {path} does not exist.")
    if not path.is_file():
        raise SpecError(f"Expectations file {path} is not a file.")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"Expectations file {path} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise SpecError(f"Expectations file {path} is not UTF-8 text.") from None
    except OSError as exc:
        raise SpecError(f"Expectations file {path} cannot be read: {exc.strerror}.") from None

    if any(k in data for k in SUITE_TOP_LEVEL):
        return _suite_expectations(path, data)
    metric = None
    baselines: dict[str, BaselineExpectation] = {}
    known = families.names()
    for key, value in data.items():
        if not isinstance(value, dict):
            if key == "metric":
                if not isinstance(value, str) or not value:
                    raise SpecError(f"{path}: metric must be a metric name, not {value!r}.")
                metric = value
                continue
            if key in known:
                raise SpecError(f"{path}: {key} must be a table ([{key}]), not a value.")
            raise SpecError(
                f"{path}: unknown top-level key {key!r}{_suggest(key, TOP_LEVEL_KEYS)}; "
                f"expected [baseline] tables ({', '.join(known)}) and optionally metric."
            )
        if key not in known:
            raise SpecError(
                f"{path}: unknown baseline [{key}]{_suggest(key, known)}; "
                f"baselines are {', '.join(known)}."
            )
        baselines[key] = _baseline(path, key, value)
    if not baselines:
        raise SpecError(
            f"{path} sets no expectations; add a [sgd] or [adamw] table, e.g. "
            'verdict = ["beats", "matches"].'
        )
    return Expectations(path=path, baselines=baselines, metric=metric)


def _aggregate(path: Path, where: str, scope: str, table: dict[str, Any]) -> AggregateExpectation:
    unknown = [k for k in table if k not in AGGREGATE_KEYS]
    if unknown:
        key = unknown[0]
        raise SpecError(
            f"{path}: unknown key {key!r} in {where}{_suggest(key, AGGREGATE_KEYS)}; "
            f"known keys: {', '.join(AGGREGATE_KEYS)}."
        )
    if not table:
        raise SpecError(f"{path}: {where} sets no expectation; known keys: "
                        f"{', '.join(AGGREGATE_KEYS)}.")
    values: dict[str, Any] = {}
    for key in AGGREGATE_KEYS[:4]:
        if key in table:
            values[key] = _number(path, where, key, table[key])
            if key.startswith("prob_") and not 0.0 <= values[key] <= 1.0:
                raise SpecError(f"{path}: {where}.{key} is a probability: give a number in "
                                f"[0, 1], not {table[key]!r}.")
    if "max_loses" in table:
        values["max_loses"] = _whole(path, f"{where}.max_loses", table["max_loses"])
    return AggregateExpectation(scope=scope, **values)


def _suite_expectations(path: Path, data: dict[str, Any]) -> SuiteExpectations:
    known = families.names()
    for key in data:
        if key not in SUITE_TOP_LEVEL:
            if key in known or key == "metric":
                raise SpecError(
                    f"{path} mixes a study's expectations ({key}) with a suite's ([suite], "
                    "[studies.NAME]); a file holds one kind: put each study's in its own file."
                )
            raise SpecError(f"{path}: unknown top-level key {key!r}"
                            f"{_suggest(key, SUITE_TOP_LEVEL)}; a suite's expectations file holds "
                            "[suite], [suite.BASELINE] and [studies.NAME] tables.")
    aggregates: dict[str, AggregateExpectation] = {}
    table = data.get("suite", {})
    if not isinstance(table, dict):
        raise SpecError(f"{path}: suite must be a table ([suite]), not a value.")
    own = {k: v for k, v in table.items() if not isinstance(v, dict)}
    for key, sub in table.items():
        if isinstance(sub, dict):
            if key not in known:
                raise SpecError(f"{path}: unknown baseline [suite.{key}]{_suggest(key, known)}; "
                                f"baselines are {', '.join(known)}.")
            aggregates[key] = _aggregate(path, f"[suite.{key}]", key, sub)
    if own or (not aggregates and "suite" in data):  # an empty [suite] is refused below
        aggregates = {"all": _aggregate(path, "[suite]", "all", own), **aggregates}
    studies: dict[str, dict[str, tuple[str, ...]]] = {}
    table = data.get("studies", {})
    if not isinstance(table, dict):
        raise SpecError(f"{path}: studies must be tables ([studies.NAME]), not a value.")
    for study, verdicts in table.items():
        where = f"[studies.{study}]"
        if not isinstance(verdicts, dict):
            raise SpecError(f"{path}: {where} must be a table of baseline = [verdicts], "
                            f"not {verdicts!r}.")
        if not verdicts:
            raise SpecError(f"{path}: {where} sets no expectation; give allowed verdicts per "
                            'baseline, e.g. sgd = ["beats", "matches"].')
        for b in verdicts:
            if b not in known:
                raise SpecError(f"{path}: unknown baseline {b!r} in {where}{_suggest(b, known)}; "
                                f"baselines are {', '.join(known)}.")
        studies[study] = {b: _verdicts(path, f"{where}.{b}", v) for b, v in verdicts.items()}
    if not aggregates and not studies:
        raise SpecError(f"{path} sets no expectations; add [suite] bounds such as "
                        "prob_improvement_at_least, or [studies.NAME] verdicts.")
    return SuiteExpectations(path=path, aggregates=aggregates, studies=studies)


# --------------------------------------------------------------------------------------------
# Reading the summary


def _read_json(out_dir: str | os.PathLike[str], name: str, folder: str,
               hint: str) -> tuple[Path, Any]:
    """``name`` in ``out_dir`` (or ``out_dir`` itself when it is a file), parsed; a missing,
    unreadable or malformed file raises :class:`SpecError` naming the path."""
    out = Path(out_dir)
    if not out.exists():
        raise SpecError(f"{out} does not exist; give {folder}.")
    path = out if out.is_file() else out / name
    if not path.is_file():
        raise SpecError(f"{path} does not exist; {hint}.")
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}."
        ) from None
    except UnicodeDecodeError:
        raise SpecError(f"{path} is not UTF-8 text.") from None
    except OSError as exc:
        raise SpecError(f"{path} cannot be read: {exc.strerror}.") from None


def load_summary(
    out_dir: str | os.PathLike[str], expected_study: str | None = None
) -> dict[str, Any]:
    """Read ``summary.json`` from a study's out folder (or that file given directly).

    A missing, unreadable or malformed summary raises :class:`SpecError` naming the path. When
    ``expected_study`` is given, a summary of another study is refused too.
    """
    path, data = _read_json(out_dir, "summary.json", "the out folder of a finished study",
                            "run `admtune study` (or `admtune report`) to write it first")
    if not isinstance(data, dict) or not isinstance(data.get("baselines"), dict):
        raise SpecError(f"{path} is not an admtune summary (it has no 'baselines' object).")
    if data.get("direction") not in DIRECTIONS:
        raise SpecError(
            f"{path} is not an admtune summary (direction is {data.get('direction')!r}, "
            "not minimize or maximize)."
        )
    if expected_study is not None and data.get("study") != expected_study:
        raise SpecError(
            f"{path} is the summary of study {data.get('study')!r}, not {expected_study!r}."
        )
    return data


def load_suite_summary(
    out_dir: str | os.PathLike[str], expected_suite: str | None = None
) -> dict[str, Any]:
    """Read ``suite.json`` from a suite's out folder (or that file given directly); a missing or
    malformed one, or (with ``expected_suite``) another suite's, raises :class:`SpecError`."""
    path, data = _read_json(out_dir, "suite.json", "the out folder of a suite (reports/suites/NAME)",
                            "run `admtune suite` to write it first")
    if not isinstance(data, dict) or not isinstance(data.get("comparisons"), list):
        raise SpecError(f"{path} is not an admtune suite summary (it has no 'comparisons' list).")
    if expected_suite is not None and data.get("suite") != expected_suite:
        raise SpecError(f"{path} is the summary of suite {data.get('suite')!r}, "
                        f"not {expected_suite!r}.")
    return data


# --------------------------------------------------------------------------------------------
# Evaluating


def _dig(root: dict[str, Any], keys: Sequence[str], whose: str, rebuild: str) -> Any:
    """``root[k0][k1]…``; a missing key is a :class:`SpecError` naming the dotted path."""
    node: Any = root
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            raise SpecError(f"The summary of {whose} lacks {'.'.join(keys)}; rebuild it with "
                            f"`{rebuild}`.")
        node = node[k]
    return node


def _field(summary: dict[str, Any], baseline: str, *keys: str) -> Any:
    return _dig(summary, ("baselines", baseline, *keys), f"study {summary.get('study')!r}",
                "admtune report")


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "none"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    if isinstance(x, (list, tuple)) and len(x) == 2:
        return f"[{_fmt(x[0], digits)}, {_fmt(x[1], digits)}]"
    return str(x)


def _fmt_bound(b: float) -> str:
    return str(int(b)) if b.is_integer() and abs(b) < 1e15 else repr(b)


def _fmt_against(observed: Any, bound: float) -> str:
    """``observed`` with enough digits that it never looks equal to ``bound`` unless it is."""
    if not _is_number(observed) or not math.isfinite(observed) or observed == bound:
        return _fmt(observed)
    for digits in (4, 6, 9, 17):
        text = f"{observed:.{digits}g}"
        if float(text) != bound and math.isfinite(float(text)):
            return text
    return repr(observed)


def _meets(observed: Any, bound: float, at_most: bool) -> bool:
    if not _is_number(observed) or math.isnan(observed):
        return False
    return observed <= bound if at_most else observed >= bound


def _list_verdicts(verdicts: Sequence[str]) -> str:
    if len(verdicts) == 1:
        return verdicts[0]
    return ", ".join(verdicts[:-1]) + " or " + verdicts[-1]


def _validate_against(summary: dict[str, Any], expectations: Expectations) -> None:
    """Usage errors that need the summary: raised before any outcome is computed."""
    src = expectations.path
    if not isinstance(summary, dict) or not isinstance(summary.get("baselines"), dict):
        raise SpecError("The summary is not an admtune summary (it has no 'baselines' object).")
    direction = summary.get("direction")
    if direction not in DIRECTIONS:
        raise SpecError(f"The summary's direction is {direction!r}, not minimize or maximize.")
    metric = summary.get("metric")
    if expectations.metric is not None and expectations.metric != metric:
        raise SpecError(
            f"{src} was written for metric {expectations.metric!r}, but study "
            f"{summary.get('study')!r} reports {metric!r}; update the expectations."
        )
    present = list(summary["baselines"])
    for name, exp in expectations.baselines.items():
        if name not in summary["baselines"]:
            raise SpecError(
                f"{src}: baseline [{name}] is not in the summary of study "
                f"{summary.get('study')!r} (it has {', '.join(present) or 'no baselines'})."
            )
        if exp.adm_at_most is not None and direction == "maximize":
            raise SpecError(
                f"{src}: [{name}].adm_at_most bounds a minimised metric, but {metric!r} is "
                "maximised; use adm_at_least."
            )
        if exp.adm_at_least is not None and direction == "minimize":
            raise SpecError(
                f"{src}: [{name}].adm_at_least bounds a maximised metric, but {metric!r} is "
                "minimised; use adm_at_most."
            )


def judge(summary: dict[str, Any], expectations: Expectations) -> list[Judgement]:
    """One :class:`Judgement` per expectation, in file order of baselines and :data:`KEYS` order.

    Raises :class:`SpecError` for usage errors: a baseline absent from the summary, a bound of
    the wrong direction, a metric mismatch, or a summary lacking a field that is checked.
    """
    _validate_against(summary, expectations)
    metric = summary.get("metric", "metric")
    outcomes: list[Judgement] = []

    def add(exp: BaselineExpectation, key: str, passed: bool, observed: Any, expected: Any,
            text: str, detail: str = "") -> None:
        name = f"{exp.baseline}.{key}"
        outcomes.append(
            Judgement(exp.baseline, name, passed, observed, expected, f"{name}: {text}", detail)
        )

    for b, exp in expectations.baselines.items():
        if exp.verdict is not None:
            verdict = _field(summary, b, "verdict")
            diff = summary["baselines"][b].get("diff") or {}
            context = ""
            if isinstance(diff, dict) and "mean" in diff:
                context = (
                    f" (AdM - tuned {_fmt(diff.get('mean'))}, 95% CI {_fmt(diff.get('ci'))}, "
                    "positive = AdM better)"
                )
            reason = summary["baselines"][b].get("reason")
            add(exp, "verdict", verdict in exp.verdict, verdict, exp.verdict,
                f"observed {verdict}{context}, expected {_list_verdicts(exp.verdict)}",
                reason if isinstance(reason, str) else "")

        for key, at_most in (("adm_at_most", True), ("adm_at_least", False)):
            bound = getattr(exp, key)
            if bound is None:
                continue
            mean = _field(summary, b, "adm", "mean")
            adm = summary["baselines"][b]["adm"]
            extra = []
            if adm.get("ci") is not None:
                extra.append(f"95% CI {_fmt(adm['ci'])}")
            if adm.get("n") is not None:
                extra.append(f"n={_fmt(adm['n'])}")
            context = f" ({', '.join(extra)})" if extra else ""
            add(exp, key, _meets(mean, bound, at_most), mean, bound,
                f"observed AdM mean {metric} {_fmt_against(mean, bound)}{context}, "
                f"expected {'<=' if at_most else '>='} {_fmt_bound(bound)}")

        if exp.diff_at_least is not None:
            bound = exp.diff_at_least
            dmean = _field(summary, b, "diff", "mean")
            ci = summary["baselines"][b]["diff"].get("ci")
            context = f"95% CI {_fmt(ci)}, " if ci is not None else ""
            add(exp, "diff_at_least", _meets(dmean, bound, False), dmean, bound,
                f"observed mean AdM - tuned {_fmt_against(dmean, bound)} ({context}"
                f"positive = AdM better), expected >= {_fmt_bound(bound)}")

        if exp.max_diverged is not None:
            diverged = _field(summary, b, "adm", "diverged")
            adm = summary["baselines"][b]["adm"]
            # n counts the finished runs; diverged (and excluded) ones come on top
            parts = [adm.get("n"), diverged, adm.get("excluded", 0)]
            total = sum(parts) if all(_is_number(x) for x in parts) else None
            of = f" of {_fmt(total)}" if total is not None else ""
            ok = _is_number(diverged) and diverged <= exp.max_diverged
            add(exp, "max_diverged", ok, diverged, exp.max_diverged,
                f"observed {_fmt(diverged)}{of} AdM runs diverged, "
                f"expected at most {exp.max_diverged}")
    return outcomes


def _suite_field(suite: dict[str, Any], *keys: str) -> Any:
    return _dig(suite, keys, f"suite {suite.get('suite')!r}", "admtune suite")


def judge_suite(suite: dict[str, Any], expectations: SuiteExpectations) -> list[Judgement]:
    """One :class:`Judgement` per suite expectation: aggregates (file order of scopes, then
    :data:`AGGREGATE_KEYS` order), then each study's verdicts. A scope, study or baseline the
    suite does not hold is a :class:`SpecError`."""
    src = expectations.path
    comparisons = [c for c in suite.get("comparisons", []) if isinstance(c, dict)]
    held = {c.get("study"): {} for c in comparisons}
    for c in comparisons:
        held[c.get("study")][c.get("baseline")] = c
    scopes = sorted({c.get("baseline") for c in comparisons})
    for scope in expectations.aggregates:
        if scope != "all" and scope not in scopes:
            raise SpecError(f"{src}: baseline [suite.{scope}] is not in suite "
                            f"{suite.get('suite')!r} (it has {', '.join(scopes) or 'none'}).")
    for study, verdicts in expectations.studies.items():
        if study not in held:
            raise SpecError(f"{src}: study [studies.{study}] is not in suite {suite.get('suite')!r} "
                            f"(it has {', '.join(held) or 'no studies'}){_suggest(study, held)}.")
        for b in verdicts:
            if b not in held[study]:
                raise SpecError(f"{src}: study {study!r} of suite {suite.get('suite')!r} has no "
                                f"{b} comparison (it has {', '.join(held[study])}).")

    outcomes: list[Judgement] = []
    for scope, exp in expectations.aggregates.items():
        group = f"suite.{scope}" if scope != "all" else "suite"
        over = "every comparison" if scope == "all" else f"the {scope} comparisons"

        def add(key: str, passed: bool, observed: Any, bound: Any, text: str,
                group: str = group) -> None:
            outcomes.append(Judgement(group, f"{group}.{key}", passed, observed, bound,
                                      f"{group}.{key}: {text}"))

        for kind, label in (("prob_improvement", "P(AdM beats tuned)"), ("iqm", "IQM of AdM's score")):
            point = getattr(exp, f"{kind}_at_least")
            low = getattr(exp, f"{kind}_ci_low_at_least")
            if point is None and low is None:
                continue
            # a suite of one baseline family writes that family only: it is also "all"
            key = scope if scope != "all" or len(scopes) != 1 else scopes[0]
            est = (_suite_field(suite, "prob_improvement", key, "adm_vs_tuned")
                   if kind == "prob_improvement"
                   else _suite_field(suite, "scores", key, "adm", "iqm"))
            value, ci = est.get("value"), est.get("ci")
            unit = "" if kind == "prob_improvement" else " δ"
            ci_text = f"95% CI {_fmt(ci)}" if ci is not None else "no CI"
            if point is not None:
                add(f"{kind}_at_least", _meets(value, point, False), value, point,
                    f"observed {label} {_fmt_against(value, point)}{unit} ({ci_text}, over "
                    f"{over}), expected >= {_fmt_bound(point)}")
            if low is not None:
                lo = ci[0] if isinstance(ci, list) and ci else None
                add(f"{kind}_ci_low_at_least", _meets(lo, low, False), lo, low,
                    f"observed lower end of the 95% CI of {label} {_fmt_against(lo, low)}{unit} "
                    f"(estimate {_fmt(value)}, over {over}), expected >= {_fmt_bound(low)}")
        if exp.max_loses is not None:
            losing = [f"{c.get('study')}/{c.get('baseline')}" for c in comparisons
                      if (scope == "all" or c.get("baseline") == scope)
                      and c.get("suite_verdict") == "loses"]
            shown = f" ({', '.join(losing)})" if losing else ""
            add("max_loses", len(losing) <= exp.max_loses, len(losing), exp.max_loses,
                f"observed {len(losing)} suite-level 'loses' verdicts{shown}, expected at most "
                f"{exp.max_loses}")

    for study, verdicts in expectations.studies.items():
        for b, allowed in verdicts.items():
            c = held[study][b]
            verdict = c.get("suite_verdict")
            own = c.get("verdict")
            diff = c.get("diff") or {}
            context = (f" (study's own: {own}; AdM - tuned {_fmt(diff.get('mean'))}, 95% CI "
                       f"{_fmt(diff.get('ci'))}, positive = AdM better)")
            name = f"{study}.{b}"
            outcomes.append(Judgement(study, name, verdict in allowed, verdict, allowed,
                                      f"{name}: observed {verdict} at the suite level{context}, "
                                      f"expected {_list_verdicts(allowed)}"))
    return outcomes


# --------------------------------------------------------------------------------------------
# JUnit XML


def _atomic_write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")


def _suite(root: ET.Element, suite_name: str, tests: int, failures: int, errors: int,
           properties: dict[str, Any] | None) -> ET.Element:
    for key, value in (("name", suite_name), ("tests", tests), ("failures", failures),
                       ("errors", errors), ("time", 0)):
        root.set(key, str(value))
    suite = ET.SubElement(root, "testsuite", {
        "name": suite_name, "tests": str(tests), "failures": str(failures),
        "errors": str(errors), "skipped": "0", "time": "0",
        "timestamp": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
    })
    if properties:
        props = ET.SubElement(suite, "properties")
        for k, v in properties.items():
            ET.SubElement(props, "property", {"name": str(k), "value": _fmt(v)})
    return suite


def write_junit(
    outcomes: Sequence[Judgement],
    path: str | os.PathLike[str],
    suite_name: str,
    properties: dict[str, Any] | None = None,
) -> None:
    """Write JUnit XML, one test case per expectation; failures carry the observed figures.

    Written atomically (temporary file in the same folder, then rename); parent folders are
    created. ``properties`` (e.g. study, metric, fingerprint) become the suite's properties.
    """
    root = ET.Element("testsuites")
    failures = sum(not o.passed for o in outcomes)
    suite = _suite(root, suite_name, len(outcomes), failures, 0, properties)
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"{suite_name}.{o.baseline}", "name": o.name, "time": "0",
        })
        if not o.passed:
            failure = ET.SubElement(case, "failure", {
                "message": o.message, "type": "ExpectationNotMet",
            })
            failure.text = (
                f"{o.message}\nobserved: {_fmt(o.observed, 17)}\nexpected: {_fmt_expected(o)}"
                + (f"\n{o.detail}" if o.detail else "")
            )
        ET.SubElement(case, "system-out").text = o.message
    _atomic_write_xml(root, Path(path))


def _fmt_expected(o: Judgement) -> str:
    if isinstance(o.expected, tuple):
        return "one of " + ", ".join(o.expected)
    key = o.name.rsplit(".", 1)[1]
    op = "<=" if key in ("adm_at_most", "max_diverged", "max_loses") else ">="
    return f"{op} {_fmt_bound(float(o.expected)) if _is_number(o.expected) else o.expected}"


def write_junit_error(path: str | os.PathLike[str], suite_name: str, message: str) -> None:
    """Write JUnit XML with one errored test case carrying ``message`` (a usage error).

    So that a CI system shows why the gate could not run instead of a stale report.
    """
    root = ET.Element("testsuites")
    suite = _suite(root, suite_name, 1, 0, 1, None)
    case = ET.SubElement(suite, "testcase", {
        "classname": suite_name, "name": "expectations", "time": "0",
    })
    ET.SubElement(case, "error", {"message": message, "type": "UsageError"}).text = message
    _atomic_write_xml(root, Path(path))


# --------------------------------------------------------------------------------------------
# The gate


def run_check(
    summary: dict[str, Any],
    expect_path: str | os.PathLike[str] | Expectations | SuiteExpectations,
    junit_path: str | os.PathLike[str] | None = None,
    console: Any = None,
) -> int:
    """Check ``summary`` (a study's summary.json or a suite's suite.json) against the
    expectations; print one line per expectation; return 0/1/2/3.

    ``expect_path`` is a file or an already loaded :class:`Expectations` (the CLI loads it before
    training so that a bad file fails fast). 0: every expectation holds; 1: any falls short; 2: a
    usage error, printed as one sentence (and, with ``junit_path``, written as an errored test
    case); 3: the study is incomplete, so its verdicts are interim and nothing is judged (also an
    errored test case). ``console`` is a rich Console (default: a new one on stdout).
    """
    from rich.console import Console
    from rich.text import Text

    console = console if console is not None else Console()
    is_suite = isinstance(summary, dict) and "comparisons" in summary
    study = (summary.get("suite" if is_suite else "study", "suite" if is_suite else "study")
             if isinstance(summary, dict) else "study")
    suite_name = f"admtune.check.{study}"
    try:
        expectations = (
            expect_path if isinstance(expect_path, (Expectations, SuiteExpectations))
            else load_expectations(expect_path)
        )
        if is_suite != isinstance(expectations, SuiteExpectations):
            raise SpecError(
                f"{expectations.path} holds a {'suite' if not is_suite else 'study'}'s "
                f"expectations, but {study!r} is a {'suite' if is_suite else 'study'}: give "
                + ("[suite] and [studies.NAME] tables for a suite" if is_suite
                   else "[sgd]/[adamw] tables for a study")
            )
        if isinstance(summary, dict) and summary.get("complete") is False:
            from admtune.report.text import incomplete_text

            if is_suite:
                raise IncompleteStudy(f"suite {study} is not complete: some of its studies have "
                                      "not finished, so nothing is checked")
            raise IncompleteStudy(f"study {study} is {incomplete_text(summary.get('progress'))}; "
                                  "its verdicts are interim and are not checked: finish the study first")
        outcomes = (judge_suite(summary, expectations) if is_suite
                    else judge(summary, expectations))
    except AdmtuneError as exc:
        console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        if junit_path is not None:
            try:
                write_junit_error(junit_path, suite_name, str(exc))
            except OSError:
                pass
        return exc.exit_code

    for o in outcomes:
        mark = ("✓ ", "bold green") if o.passed else ("✗ ", "bold red")
        console.print(Text.assemble(mark, o.message), soft_wrap=True)
    failed = sum(not o.passed for o in outcomes)
    total = len(outcomes)
    where = f"{'suite' if is_suite else 'study'} {study}, {expectations.path}"
    if failed:
        console.print(
            Text.assemble(("FAILED ", "bold red"),
                          f"{failed} of {total} expectations fall short ({where})"),
            soft_wrap=True,
        )
    else:
        console.print(
            Text.assemble(("OK ", "bold green"), f"all {total} expectations hold ({where})"),
            soft_wrap=True,
        )
    if junit_path is not None:
        props = {k: summary[k] for k in ("study", "suite", "metric", "direction", "fingerprint",
                                          "correction_name") if k in summary}
        try:
            write_junit(outcomes, junit_path, suite_name, properties=props)
        except OSError as exc:
            console.print(
                Text.assemble(("error: ", "bold red"),
                              f"cannot write JUnit report {junit_path}: {exc.strerror}."),
                soft_wrap=True,
            )
            return 2
    return 1 if failed else 0
