"""Bad input through the real command line: one sentence naming the bad key or flag, exit code 2,
no traceback, nothing written.

Each case starts from studies/quick.toml (copied to ./studies/fz.toml and edited) and runs
``python -m admtune.cli study ... --device cpu --out ./out`` in a subprocess. It must end with
exit code 2 and exactly one non-empty stderr line, "error: ...", naming the offending key or flag;
afterwards ./out must not exist and no study.db may be anywhere under the test's folder.

Study names: spec.py accepts ASCII letters, digits, '-', '_' and '.' (no '..'), up to 64
characters, because the name becomes a folder (reports/NAME) and an Optuna study name. So
'../x' and 'a/b' (path escapes) are rejected, and so are 'has space' and a unicode name
('étude'): not a filesystem hazard, but the rule is deliberately narrow (a name is typed in
shells and URLs), and loosening it is out of scope here. Each is checked both as the spec's
``name`` key and as the command's NAME argument.

``--workers``: admtune caps it at ``_workers.MAX_WORKERS`` (64); 0, -1 and 1000 are refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "studies" / "quick.toml"


# --- a tiny TOML writer (what the cases need: tables, lists, str, int, float, bool) -------------
def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def _dumps(data: dict) -> str:
    top = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = "\n".join(top) + "\n"
    for k, v in data.items():
        if isinstance(v, dict):
            out += f"\n[{k}]\n" + "".join(f"{kk} = {_value(vv)}\n" for kk, vv in v.items())
    return out


# --- the cases: (id, edit of the spec data or None, extra CLI args, substring of the error) ------
def _set(path: str, value):
    def edit(d):
        *parents, last = path.split(".")
        node = d
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return edit


def _steps(value):
    def edit(d):
        d["train"].pop("epochs", None)
        d["train"]["steps"] = value
    return edit


def _lr_range(value):
    def edit(d):
        d["tune"]["lr"] = True
        d["tune"]["lr_range"] = value
    return edit


NAN, INF = float("nan"), float("inf")
CASES = [
    # NaN and inf in float keys
    ("margin-nan", _set("margin", NAN), [], "margin"),
    ("margin-inf", _set("margin", INF), [], "margin"),
    ("alpha-nan", _set("alpha", NAN), [], "alpha"),
    ("alpha-inf", _set("alpha", INF), [], "alpha"),
    ("lr-nan", _set("train.lr", NAN), [], "train.lr"),
    ("lr-sgd-inf", _set("train.lr.sgd", INF), [], "train.lr.sgd"),
    ("weight-decay-nan", _set("train.weight_decay.adamw", NAN), [], "train.weight_decay.adamw"),
    ("epochs-nan", _set("train.epochs", NAN), [], "train.epochs"),
    ("beta-low-nan", _set("tune.beta_low", NAN), [], "tune.beta_low"),
    ("beta-high-inf", _set("tune.beta_high", INF), [], "tune.beta_high"),
    ("prune-after-nan", _set("tune.prune_after", NAN), [], "tune.prune_after"),
    ("candidates-nan", _set("tune.candidates", [0.9, NAN]), [], "tune.candidates[1]"),
    ("lr-range-nan", _lr_range({"sgd": [NAN, 1.0], "adamw": [1e-4, 0.1]}), [], "tune.lr_range.sgd"),
    ("lr-range-inf", _lr_range({"sgd": [0.01, 1.0], "adamw": [1e-4, INF]}), [], "tune.lr_range.adamw"),
    ("workload-l2-nan", _set("workload.l2", NAN), [], "workload.l2"),
    ("wait-timeout-nan", None, ["--wait-timeout", "nan"], "--wait-timeout"),
    ("wait-timeout-negative", None, ["--wait-timeout", "-5"], "--wait-timeout"),
    # huge values
    ("trials-1e308", _set("trials", 1e308), [], "trials"),
    ("trials-huge-int", _set("trials", 10**18), [], "trials"),
    ("steps-huge", _steps(10**18), [], "train.steps"),
    ("epochs-huge", _set("train.epochs", 1e300), [], "train.epochs"),
    ("finalists-huge", _set("tune.finalists", 10**9), [], "tune.finalists"),
    ("seeds-flag-huge", None, ["--seeds", "1000000"], "seeds"),
    ("trials-flag-huge", None, ["--trials", "100000000000000000000000"], "trials"),
    # out of range / wrong shape
    ("batch-size-negative", _set("train.batch_size", -1), [], "train.batch_size"),
    ("baselines-empty", _set("baselines", []), [], "baselines"),
    ("baselines-duplicate", _set("baselines", ["sgd", "sgd"]), [], "baselines"),
    ("margin-zero", _set("margin", 0.0), [], "margin"),
    ("margin-negative", _set("margin", -0.1), [], "margin"),
    ("alpha-zero", _set("alpha", 0.0), [], "alpha"),
    ("alpha-one", _set("alpha", 1.0), [], "alpha"),
    ("beta-reversed", lambda d: d["tune"].update(beta_low=0.9, beta_high=0.5), [], "tune.beta_"),
    ("beta-equal", lambda d: d["tune"].update(beta_low=0.5, beta_high=0.5), [], "tune.beta_"),
    ("description-10MB", _set("description", "x" * 10_000_000), [], "description"),
    # study names (see the module docstring)
    ("name-dotdot", _set("name", "../x"), [], "name"),
    ("name-slash", _set("name", "a/b"), [], "name"),
    ("name-space", _set("name", "has space"), [], "name"),
    ("name-unicode", _set("name", "étude"), [], "name"),
    ("arg-dotdot", None, ["@../x"], "study name"),
    ("arg-slash", None, ["@a/b"], "study name"),
    ("arg-space", None, ["@has space"], "study name"),
    ("arg-unicode", None, ["@étude"], "study name"),
    # flags
    ("out-is-a-file", None, ["--out", "{tmp}/outfile"], "outfile is a file"),
    ("storage-bad-scheme", None, ["--storage", "foo://x"], "'foo://x' has an unknown database scheme"),
    ("workers-0", None, ["--workers", "0"], "--workers"),
    ("workers-negative", None, ["--workers", "-1"], "--workers"),
    ("workers-1000", None, ["--workers", "1000"], "--workers"),
    ("workers-2-bad-storage", None, ["--workers", "2", "--storage", "foo://x"], "foo://x"),
    ("workers-2-storage-no-driver", None, ["--workers", "2", "--storage", "mysql+nosuchdriver://u@h/db"],
     "mysql+nosuchdriver://u@h/db"),
    ("workers-2-bad-option", _set("workload.eval_points", {"a": 1}), ["--workers", "2"],
     "workload.eval_points"),
    ("workers-2-out-is-a-file", None, ["--workers", "2", "--out", "{tmp}/outfile"], "outfile is a file"),
    # wrong types
    ("workload-option-table", _set("workload.eval_points", {"a": 1}), [], "workload.eval_points"),
    ("trials-string", _set("trials", "many"), [], "trials"),
    ("train-not-a-table", _set("train", 3), [], "train"),
]


@pytest.mark.parametrize("edit, args, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, edit, args, needle):
    studies = tmp_path / "studies"
    studies.mkdir()
    spec_file = studies / "fz.toml"
    data = tomllib.loads(QUICK.read_text(encoding="utf-8"))
    if edit is None:
        spec_file.write_text(QUICK.read_text(encoding="utf-8"), encoding="utf-8")
    else:
        edit(data)
        spec_file.write_text(_dumps(data), encoding="utf-8")
        assert "name" in tomllib.loads(spec_file.read_text(encoding="utf-8"))  # the writer is sound
    target = str(spec_file)
    flags = ["--device", "cpu", "--out", str(tmp_path / "out")]
    extra = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if extra and extra[0].startswith("@"):  # the NAME argument itself is the bad input
        target = extra.pop(0)[1:]
    if "--out" in extra:
        (tmp_path / "outfile").write_text("keep me\n")
        flags = flags[:2]
    cmd = [sys.executable, "-m", "admtune.cli", "study", target, *flags, *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("error: "), lines[0][:500]
    assert needle in lines[0], lines[0][:500]
    assert len(lines[0]) < 1000, lines[0][:500]  # a sentence, not the 10 MB description
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.rglob("study.db*"))
    if "--out" in extra:
        assert (tmp_path / "outfile").read_text() == "keep me\n"
