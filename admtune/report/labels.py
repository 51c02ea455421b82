"""How the report names arms and writes numbers, shared by tables, figures and text so that an arm
is named the same everywhere. Light on purpose (no scipy or statsmodels): the command line prints
verdict tables with it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from admtune import families


def baseline_name(baseline: str) -> str:
    return families.display(baseline)


def adm_name(baseline: str) -> str:
    return f"AdM-{baseline_name(baseline)}"


def beta_free(spec: Any) -> bool:
    return bool(spec is not None and spec.tune.lr)


def adm_qualifier(spec: Any) -> str:
    return "β-free" if beta_free(spec) else "untuned"


def arm_label(baseline: str, arm: str, beta: float | None = None, spec: Any = None) -> str:
    """Human name of an evaluation arm, e.g. 'AdM-SGD (untuned)', 'SGD, tuned β = 0.873'."""
    b = baseline_name(baseline)
    if arm == "adm":
        return f"{adm_name(baseline)} ({adm_qualifier(spec)})"
    if arm == "tuned":
        return f"{b}, tuned β = {beta:.3g}" if beta is not None else f"{b}, tuned β"
    if arm == "default":
        return f"{b}, β = {beta:.3g}" if beta is not None else f"{b}, β = 0.9"
    extra = arm.replace("_", " ")
    return f"{b}, {extra} (β = {beta:.3g})" if beta is not None else f"{b}, {extra}"


def fmt(x: Any, digits: int = 4, decimals: int | None = None) -> str:
    """A number for text: ``decimals`` fixed decimals or else ``digits`` significant digits;
    '—' for missing."""
    if x is None:
        return "—"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "—"
    s = f"{x:.{decimals}f}" if decimals is not None else f"{x:.{digits}g}"
    if decimals is None and "e" not in s and abs(x) >= 1e5:
        s = f"{x:.{digits}g}"
    return s.replace("-", "−")


def fmt_p(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "—"
    p = float(p)
    if p < 1e-4:
        return "< 0.0001"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}".rstrip("0").rstrip(".") if p < 1 else "1"


def p_is(p: Any) -> str:
    """'p = 0.012' or 'p < 0.0001' for running text."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def fmt_ci(ci: Any, decimals: int | None = None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "—"
    return f"[{fmt(ci[0], decimals=decimals)}, {fmt(ci[1], decimals=decimals)}]"
