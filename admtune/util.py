"""Small helpers every layer shares, each in one place: atomic writes, JSON-safe numbers, masking
credentials. Nothing here imports torch, Optuna or the rest of admtune."""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``: a
    reader sees the old file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


SIGNIFICANT = 12  # the digits of the floats in summary.json and suite.json


def round_floats(x: Any, significant: int = SIGNIFICANT) -> Any:
    """Plain data with every float rounded to ``significant`` significant digits (NaN and ±inf
    to None). The files a rebuild must reproduce byte for byte go through this: numpy's log and
    exp take other SIMD paths on another CPU (AVX-512 against AVX2), which moves the last bits
    of a float64, never the 12th digit."""
    if isinstance(x, dict):
        return {k: round_floats(v, significant) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [round_floats(v, significant) for v in x]
    if hasattr(x, "item") and hasattr(x, "dtype") and getattr(x, "ndim", None) == 0:
        x = x.item()  # a numpy scalar
    if isinstance(x, float):
        return float(f"{x:.{significant}g}") if math.isfinite(x) else None
    return x


def json_safe(x: Any) -> Any:
    """Plain JSON data: numpy scalars and arrays to Python, NaN and ±inf to None, tuples to lists,
    dict keys to str. JSON has no NaN, and a missing number reads better as null than as a string."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if hasattr(x, "tolist") and hasattr(x, "dtype"):  # a numpy array or scalar
        return json_safe(x.tolist())
    if isinstance(x, bool):
        return x
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return x


# scheme://user:password@host — the password may itself hold '@' (the last '@' before the host ends it).
# The scheme starts where no scheme character precedes it: each run of letters is tried once, so
# masking stays linear in the text (a 10 MB description is masked in milliseconds, not hours).
_URL_PASSWORD = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):[^\s/]*@")
# ?password=… / &sslpassword=… in a database URL's query.
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|sslpassword|passfile|sslkey)=)[^&\s]*", re.I)


def mask(text: str) -> str:
    """``text`` with every credential of a URL in it replaced by ``***``: the password of
    ``scheme://user:password@host`` and password-like query parameters. Used for everything admtune
    prints, stores or writes into a report (the command, storage URLs, error messages, the spec)."""
    if not text:
        return text or ""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}***", text)


__all__ = ["atomic_write", "json_safe", "mask"]
