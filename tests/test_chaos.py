"""Chaos: workers die at random moments and at known instants, and the study still ends exact.

Three workers share one storage (SQLite and PostgreSQL); every cycle one of them, chosen at random,
is SIGKILLed, SIGTERMed or given a double Ctrl-C at a random moment, then started again. After the
cycles, the live workers are stopped and one clean resume must finish the study within the grace
period and a few seconds of work. Then: exact tuning counts, each (baseline, arm, seed) key complete
exactly once, no trial number given twice, summary.json agreeing with runs.csv.

The kill points inside a run's end (while its attributes are written, inside Optuna's ``tell``
before and after the commit) are made deterministic by a worker that SIGKILLs itself there.

More cycles than CI runs: ``ADMTUNE_CHAOS_CYCLES=50 python -m pytest tests/test_chaos.py``; the
figures in README come from that.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from admtune import api
from admtune.study import records
from admtune.study import storage as st
from tests.test_engine import PG_URL, REPO, toy_spec

CYCLES = int(os.environ.get("ADMTUNE_CHAOS_CYCLES", "10"))
SETS = ["tune.finalists=1", "tune.selection_seeds=2", "workload.sleep=0.02"]
TRIALS, SEEDS = 4, 3
FAST = dict(heartbeat_interval=1, grace_period=2)

WORKER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    {patch}
    from admtune import api
    from tests.test_engine import toy_spec
    stop = api.StopFlag()
    signal.signal(signal.SIGINT, lambda signum, frame: stop.request())  # as the CLI does
    spec = toy_spec({name!r}, {sets!r}, trials={trials}, seeds={seeds})
    try:
        out = api.run_study(spec, storage={url!r}, out={out!r}, device="cpu", report=False,
                            stop=stop, heartbeat_interval=1, grace_period=2, wait_timeout=120)
    except api.Interrupted:
        sys.exit(130)
    sys.exit(0 if out.complete else 130)
""")


def unique(name: str) -> str:
    import uuid

    return f"{name}{uuid.uuid4().hex[:6]}"


def start(name: str, url: str, out, patch: str = "") -> subprocess.Popen:
    code = WORKER.format(repo=str(REPO), patch=patch, name=name, sets=SETS, trials=TRIALS,
                         seeds=SEEDS, url=url, out=str(out))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def check_exact(name: str, url: str, out) -> None:
    """The invariants of a finished study, read straight from the storage."""
    storage = st.open_storage(url, heartbeat_interval=None)
    spec = toy_spec(name, SETS, trials=TRIALS, seeds=SEEDS)
    for baseline, adm in records.tuning_studies(spec):
        sname = st.tune_name(name, baseline, adm)
        trials = optuna.load_study(study_name=sname, storage=storage).get_trials(deepcopy=False)
        assert len(records.counted_tuning_trials(trials)) == TRIALS, sname
        numbers = [t.number for t in trials]
        assert len(numbers) == len(set(numbers)), f"a trial number given twice in {sname}"
        assert not [t for t in trials if t.state == TrialState.RUNNING]
    for sname in (st.select_name(name), st.eval_name(name)):
        trials = optuna.load_study(study_name=sname, storage=storage).get_trials(deepcopy=False)
        complete = Counter(t.user_attrs.get("key") for t in trials if t.state == TrialState.COMPLETE)
        assert complete and max(complete.values()) == 1, f"a key completed twice in {sname}"
        numbers = [t.number for t in trials]
        assert len(numbers) == len(set(numbers))
    planned = len(spec.baselines) * 3 * SEEDS  # adm, tuned, default on every seed
    evaluation = optuna.load_study(study_name=st.eval_name(name), storage=storage)
    done = {t.user_attrs["key"] for t in evaluation.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE}
    assert len(done) == planned
    # the report agrees with the runs it was built from
    api.rebuild_report(name, out=out, storage=url, pdf=False)
    summary = json.loads((out / "summary.json").read_text())
    runs = pd.read_csv(out / "runs.csv")
    assert summary["complete"] is True
    for b, e in summary["baselines"].items():
        for arm in ("adm", "tuned", "default"):
            rows = runs[(runs.baseline == b) & (runs.arm == arm)]
            assert len(rows) == SEEDS and rows.seed.is_unique
            assert e[arm]["n"] == int((rows.status == "complete").sum())


def hit(p: subprocess.Popen, how: str) -> None:
    if p.poll() is not None:
        return
    if how == "kill":
        p.send_signal(signal.SIGKILL)
    elif how == "term":
        p.send_signal(signal.SIGTERM)
    else:  # a double Ctrl-C: stop after the run, then abort it
        p.send_signal(signal.SIGINT)
        time.sleep(0.1)
        if p.poll() is None:
            p.send_signal(signal.SIGINT)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_random_kills_of_three_workers_then_a_clean_resume_is_exact(tmp_path, backend):
    rng = random.Random(20261202 + (backend == "postgres"))
    name = unique("chaos")
    url = st.default_url(tmp_path) if backend == "sqlite" else PG_URL
    workers = [start(name, url, tmp_path) for _ in range(3)]
    hits = Counter()
    try:
        for _ in range(CYCLES):
            time.sleep(rng.uniform(0.5, 3.0))
            i = rng.randrange(len(workers))
            how = rng.choice(["kill", "kill", "term", "int2"])
            hit(workers[i], how)
            hits[how] += 1
            workers[i].wait(timeout=60)
            workers[i] = start(name, url, tmp_path)
    finally:
        for p in workers:
            hit(p, "kill")
            p.wait(timeout=60)
    t0 = time.monotonic()
    out = api.run_study(toy_spec(name, SETS, trials=TRIALS, seeds=SEEDS), storage=url,
                        out=tmp_path, device="cpu", report=False, wait_timeout=60, **FAST)
    resume_s = time.monotonic() - t0
    assert out.complete
    check_exact(name, url, tmp_path)
    print(f"\nchaos {backend}: {dict(hits)} in {CYCLES} cycles; clean resume {resume_s:.1f} s")


def _in_tell(after_commit: bool) -> str:
    """A patch that SIGKILLs the worker inside Optuna's tell of its third run, just before or just
    after the storage commits the trial's end."""
    commit = "    out = _real(self, trial_id, state, values)\n"
    return (
        "import optuna, os, signal\n"
        "_real = optuna.storages.RDBStorage.set_trial_state_values\n"
        "_seen = [0]\n"
        "def _tell(self, trial_id, state, values=None):\n"
        + (commit if after_commit else "")
        + "    _seen[0] += 1\n"
        "    if _seen[0] == 3:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        + ("" if after_commit else commit)
        + "    return out\n"
        "optuna.storages.RDBStorage.set_trial_state_values = _tell\n"
    )


# (where, what the patched worker does): SIGKILL itself at a known instant of a run's end
KILL_POINTS = {
    "while its attributes are written": """
import optuna, os, signal
_real = optuna.storages.RDBStorage.set_trial_user_attr
_seen = [0]
def _attr(self, trial_id, key, value):
    if key == "record":  # the run's record: written after its queried attributes
        _seen[0] += 1
        if _seen[0] == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    return _real(self, trial_id, key, value)
optuna.storages.RDBStorage.set_trial_user_attr = _attr
""",
    "in tell, before the commit": _in_tell(after_commit=False),
    "in tell, after the commit": _in_tell(after_commit=True),
}


@pytest.mark.slow
@pytest.mark.parametrize("where", list(KILL_POINTS))
def test_a_worker_killed_at_the_end_of_a_run_loses_nothing(tmp_path, where):
    name = unique("tell")
    url = st.default_url(tmp_path)
    p = start(name, url, tmp_path, patch=KILL_POINTS[where])
    _, err = p.communicate(timeout=180)
    assert p.returncode == -signal.SIGKILL, err  # it died where it was made to
    t0 = time.monotonic()
    out = api.run_study(toy_spec(name, SETS, trials=TRIALS, seeds=SEEDS), storage=url,
                        out=tmp_path, device="cpu", report=False, wait_timeout=60, **FAST)
    assert out.complete
    assert time.monotonic() - t0 < 2 + 60  # the grace period, then the rest of the study
    check_exact(name, url, tmp_path)
