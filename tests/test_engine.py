"""The study engine end to end on a tiny plug-in workload: budgets, resume, divergence, crashes,
interruption, fingerprints, and several workers on SQLite and PostgreSQL (real storages)."""

from __future__ import annotations

import datetime
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_h
from optuna.trial import TrialState

from admtune import api
from admtune.errors import AdmtuneError
from admtune.study import records, spec
from admtune.study import storage as st
from admtune.study.results import RUNS_COLUMNS

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("ADMTUNE_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def toy_spec(name: str = "toy", sets: list[str] | None = None, **top) -> spec.StudySpec:
    raw = {
        "name": name, "workload": {"name": "tests.toy_workload:toy"}, "metric": "loss",
        "direction": "minimize", "margin": 0.05, "trials": 4, "seeds": 2,
        "train": {"steps": 16, "batch_size": 8, "lr": {"sgd": 0.1, "adamw": 0.05},
                  "schedule": "cosine"},
    }
    return spec.from_dict(raw, sets or [], **top)


def run(s, out, **kw):
    kw.setdefault("report", False)
    return api.run_study(s, out=out, device="cpu", **kw)


def eval_keys(frame: pd.DataFrame) -> list[str]:
    ev = frame[frame.arm.isin(["adm", "tuned", "default"])]
    return sorted(f"{b}/{a}/{s}" for b, a, s in zip(ev.baseline, ev.arm, ev.seed, strict=True))


EXPECTED_KEYS = sorted(f"{b}/{a}/{s}" for b in ("sgd", "adamw")
                       for a in ("adm", "tuned", "default") for s in (0, 1))


def test_full_study_has_the_planned_runs(tmp_path):
    out = run(toy_spec(), tmp_path / "o", report=True, pdf=False)
    assert out.complete
    f = out.results.frame()
    assert list(f.columns[: len(RUNS_COLUMNS)]) == RUNS_COLUMNS
    for b in ("sgd", "adamw"):
        trials = f[(f.baseline == b) & (f.arm == "trial")]
        assert len(trials) == 4
        assert set(trials.seed) == {10_000, 10_001, 10_002, 10_003}  # tuning seeds: own range
        assert (trials.metric == "val_loss").all()
        # selection: the 3 best distinct β and β = 0.9, each on seeds 20000-20002 (validation)
        sel = f[(f.baseline == b) & (f.arm == "select")]
        top = trials[trials.status == "complete"].sort_values(["value", "trial_number"]).beta[:3]
        assert list(dict.fromkeys(sel.beta)) == list(dict.fromkeys([*top, 0.9]))
        assert set(sel.seed) == {20_000, 20_001, 20_002} and (sel.metric == "val_loss").all()
        means = sel.groupby("beta", sort=False).value.mean()
        tuned = f[(f.baseline == b) & (f.arm == "tuned")]
        assert (tuned.beta == means.idxmin()).all()  # the best selection mean, not the best trial
        assert means[tuned.beta.iloc[0]] <= means[0.9]
        assert (f[(f.baseline == b) & (f.arm == "default")].beta == 0.9).all()
        assert f[(f.baseline == b) & (f.arm == "adm")].beta.isna().all()
    assert eval_keys(f) == EXPECTED_KEYS
    ev = f[f.arm.isin(["adm", "tuned", "default"])]
    assert (ev.status == "complete").all() and (ev.metric == "loss").all()
    assert (ev.steps == 16).all() and (ev.wall_s > 0).all()
    csv = pd.read_csv(tmp_path / "o" / "runs.csv")
    assert list(csv.columns[: len(RUNS_COLUMNS)]) == RUNS_COLUMNS and len(csv) == len(f)
    # Optuna's own tools see the studies.
    names = {s.study_name for s in optuna.get_all_study_summaries(st.default_url(tmp_path / "o"))}
    assert names == {"toy", "toy/tune/sgd", "toy/tune/adamw", "toy/select", "toy/eval"}
    # AdM runs carry their β_t trace; baselines do not.
    adm = [r for r in out.results.runs if r.arm == "adm"]
    assert all(r.beta_trace and len(r.beta_trace["step"]) > 0 for r in adm)
    assert all(0.0 <= v <= 0.9 for r in adm for row in r.beta_trace["values"] for v in row
               if v is not None)
    assert all(r.beta_trace is None for r in out.results.runs if r.arm == "default")
    assert all(len(r.curve["step"]) == 16 for r in out.results.runs if r.arm == "tuned")


def test_same_seeds_same_results(tmp_path):
    a = run(toy_spec(), tmp_path / "a").results.frame()
    b = run(toy_spec(), tmp_path / "b").results.frame()
    cols = ["baseline", "arm", "seed", "beta", "value", "status"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


class StopAfter(api.Events):
    def __init__(self, stop: api.StopFlag, n: int, now: bool = False):
        self.stop, self.n, self.now, self.started = stop, n, now, 0

    def run_started(self, label: str) -> None:
        self.started += 1
        if self.started == self.n:
            self.stop.after_run = True
            self.stop.now = self.now


@pytest.mark.parametrize("n", [3, 7])
def test_stop_and_resume_gives_the_uninterrupted_result(tmp_path, n):
    reference = run(toy_spec(), tmp_path / "ref").results.frame()
    stop = api.StopFlag()
    first = run(toy_spec(), tmp_path / "o", stop=stop, events=StopAfter(stop, n))
    assert not first.complete
    assert len(first.results.runs) == n  # the run in flight was finished, nothing more
    second = run(toy_spec(), tmp_path / "o")
    assert second.complete
    cols = ["baseline", "arm", "seed", "beta", "value", "status"]
    pd.testing.assert_frame_equal(second.results.frame()[cols], reference[cols])


def test_abort_records_interrupted_and_resume_reruns_it(tmp_path):
    stop = api.StopFlag()
    with pytest.raises(api.Interrupted):
        run(toy_spec(), tmp_path / "o", stop=stop, events=StopAfter(stop, 10, now=True))
    storage = st.open_storage(st.default_url(tmp_path / "o"), heartbeat_interval=None)
    failed = [t for name in ("toy/tune/sgd", "toy/tune/adamw", "toy/select", "toy/eval")
              for t in optuna.load_study(study_name=name, storage=storage).trials
              if t.state == TrialState.FAIL]
    assert [t.user_attrs["reason"] for t in failed] == ["interrupted"]
    out = run(toy_spec(), tmp_path / "o")
    assert out.complete
    f = out.results.frame()
    assert (f.status != "failed").all()
    assert (f.groupby(["baseline"]).apply(lambda g: (g.arm == "trial").sum()) == 4).all()
    assert eval_keys(f) == EXPECTED_KEYS


def test_diverged_runs_are_marked_and_told_as_worst(tmp_path):
    s = toy_spec(sets=["workload.nan_seeds=[10001, 1]"])
    out = run(s, tmp_path / "o")
    assert out.complete
    f = out.results.frame()
    div = f[f.status == "diverged"]
    assert set(div[div.arm == "trial"].seed) == {10_001}
    assert set(div[div.arm != "trial"].seed) == {1}
    assert div.value.isna().all()
    assert len(f[(f.arm == "trial")]) == 8  # diverged trials count towards the budget
    storage = st.open_storage(st.default_url(tmp_path / "o"), heartbeat_interval=None)
    t1 = optuna.load_study(study_name="toy/tune/sgd", storage=storage).trials[1]
    assert t1.state == TrialState.COMPLETE and t1.value == math.inf
    assert t1.user_attrs["status"] == "diverged"


def test_every_trial_diverging_leaves_beta_09_the_tuned_arm(tmp_path):
    """β = 0.9 is always a finalist: when every tuning trial diverged, selection keeps it."""
    out = run(toy_spec(sets=["workload.nan_seeds=[10000, 10001, 10002, 10003]"]), tmp_path / "o")
    f = out.results.frame()
    assert out.complete and (f[f.arm == "tuned"].beta == 0.9).all()


def test_every_finalist_diverging_is_one_clear_error(tmp_path):
    seeds = [10000, 10001, 10002, 10003, 20000, 20001, 20002]
    with pytest.raises(AdmtuneError, match="every finalist of sgd .* diverged"):
        run(toy_spec(sets=[f"workload.nan_seeds={seeds}"]), tmp_path / "o")


def test_crashing_runs_are_retried_then_recorded_failed(tmp_path):
    out = run(toy_spec(sets=["workload.crash_seeds=[1]"]), tmp_path / "o")
    assert out.complete
    f = out.results.frame()
    failed = f[f.status == "failed"]
    assert sorted(failed.arm + "/" + failed.baseline) == sorted(
        f"{a}/{b}" for a in ("adm", "tuned", "default") for b in ("sgd", "adamw"))
    assert failed.reason.str.contains("toy crash for seed 1").all()
    storage = st.open_storage(st.default_url(tmp_path / "o"), heartbeat_interval=None)
    attempts = [t for t in optuna.load_study(study_name="toy/eval", storage=storage).trials
                if t.user_attrs.get("key") == "sgd/adm/1"]
    assert len(attempts) == records.MAX_ATTEMPTS


def test_resume_with_a_different_spec_is_refused_naming_the_change(tmp_path):
    run(toy_spec(), tmp_path / "o")
    with pytest.raises(AdmtuneError, match=r"train\.steps: 16 → 17.*another --out or --storage"):
        run(toy_spec(sets=["train.steps=17"]), tmp_path / "o")


# --- several workers ----------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from admtune import api
    from admtune.study import spec
    from tests.test_engine import toy_spec
    s = toy_spec({name!r}, {sets!r}, trials={trials}, seeds={seeds})
    engine, _ = api.prepare_engine(s, storage={url!r}, out={out!r}, device="cpu",
                                      heartbeat_interval={hb}, grace_period={grace})
    complete = engine.run()
    print("WRITES_REPORT", complete and engine.writes_report)
""")


def start_worker(name, url, out, sets=(), trials=4, seeds=2, hb=2, grace=60):
    code = WORKER.format(repo=str(REPO), name=name, sets=list(sets), trials=trials, seeds=seeds,
                         url=url, out=str(out), hb=hb, grace=grace)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def check_exact(url: str, name: str, trials: int, seeds: int) -> pd.DataFrame:
    results = records.load_results(url, name)
    f = results.frame()
    storage = st.open_storage(url, heartbeat_interval=None)
    for b in ("sgd", "adamw"):
        trs = optuna.load_study(study_name=f"{name}/tune/{b}", storage=storage).trials
        assert len(records.counted_tuning_trials(trs)) == trials
        assert all(t.state != TrialState.RUNNING for t in trs)
    keys = eval_keys(f)
    assert len(keys) == len(set(keys)) == 2 * 3 * seeds
    ev = optuna.load_study(study_name=f"{name}/eval", storage=storage).trials
    # a tuned run's key also names its selected β and lr: baseline/arm/seed is what it is
    complete = ["/".join(t.user_attrs["key"].split("/")[:3]) for t in ev if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(set(complete)) == keys  # each run completed exactly once
    sel = optuna.load_study(study_name=f"{name}/select", storage=storage).trials
    done = [t.user_attrs["key"] for t in sel if t.state == TrialState.COMPLETE]
    assert len(done) == len(set(done)) == (f.arm == "select").sum() > 0  # and each selection run
    return f


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_workers_share_the_study_exactly(tmp_path, backend):
    name = f"w{uuid.uuid4().hex[:8]}"
    url = st.default_url(tmp_path) if backend == "sqlite" else PG_URL
    workers = [start_worker(name, url, tmp_path, sets=["workload.sleep=0.005"], trials=6, seeds=3)
               for _ in range(2)]
    logs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    f = check_exact(url, name, trials=6, seeds=3)
    assert len(f) == 2 * 6 + 2 * 3 * 3 + (f.arm == "select").sum()
    # The report is left to exactly one of them: the one that ended the last run.
    assert sum("WRITES_REPORT True" in log for log in logs) == 1, logs


def kill_inside(worker: subprocess.Popen, url: str, study: str, timeout: float = 180) -> None:
    """SIGKILL ``worker`` while it is inside a run of ``study``, then wait past the grace period
    (3 s in these tests) so that its run is stale."""
    storage = st.open_storage(url, heartbeat_interval=None)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if st.study_exists(storage, study):
            trials = optuna.load_study(study_name=study, storage=storage).trials
            if any(t.state == TrialState.RUNNING for t in trials):
                break
        time.sleep(0.2)
    else:
        pytest.fail(f"the worker never started a run of {study}")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(3.5)


def test_sigkilled_worker_is_detected_and_its_run_redone(tmp_path):
    name = "killed"
    url = st.default_url(tmp_path)
    w = start_worker(name, url, tmp_path, sets=["workload.sleep=0.05"], hb=1, grace=3)
    kill_inside(w, url, f"{name}/eval")
    storage = st.open_storage(url, heartbeat_interval=None)
    out = api.run_study(toy_spec(name, ["workload.sleep=0.05"]), storage=url, out=tmp_path,
                     device="cpu", report=False, heartbeat_interval=1, grace_period=3)
    assert out.complete
    check_exact(url, name, trials=4, seeds=2)
    ev = optuna.load_study(study_name=f"{name}/eval", storage=storage).trials
    assert sum(t.state == TrialState.FAIL for t in ev) == 1  # the killed attempt, failed as stale


# --- who writes the report ------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st_h.lists(st_h.tuples(st_h.integers(0, 5), st_h.sampled_from(["complete", "fail", "running",
                                                                     "skipped"]),
                              st_h.integers(0, 2)), min_size=1, max_size=12))
def test_exactly_one_worker_ended_the_last_run(runs):
    """Each worker asks whether the last ended run is one of its own; whatever the timing (ties
    included), exactly one says yes when any run ended, and none otherwise."""
    base = datetime.datetime(2026, 1, 1)
    states = {"complete": TrialState.COMPLETE, "fail": TrialState.FAIL,
              "running": TrialState.RUNNING, "skipped": TrialState.FAIL}
    trials, owner = [], {}
    for number, (second, kind, worker) in enumerate(runs):
        attrs = {"key": f"sgd/adm/{number}"}
        if kind == "skipped":
            attrs["skipped"] = "duplicate of another attempt"
        ended = kind != "running"
        trials.append(optuna.trial.FrozenTrial(
            number=number, state=states[kind], value=1.0 if kind == "complete" else None,
            datetime_start=base, datetime_complete=base + datetime.timedelta(seconds=second)
            if ended else None, params={}, distributions={}, user_attrs=attrs, system_attrs={},
            intermediate_values={}, trial_id=number))
        owner.setdefault(worker, set()).add(number)
    last = records.last_ended_run(trials)
    writers = [w for w, mine in owner.items() if last in mine]
    counted = [t for t in trials if t.state != TrialState.RUNNING and "skipped" not in t.user_attrs]
    assert len(writers) == (1 if counted else 0)
    if counted:
        latest = max(t.datetime_complete for t in counted)
        assert trials[last].datetime_complete == latest
        assert last == max(t.number for t in counted if t.datetime_complete == latest)


# --- garbage collection around the imports --------------------------------------------------------
def test_collection_paused_by_the_cli_resumes_after_the_first_run(tmp_path):
    import gc

    from admtune import _gc

    assert gc.isenabled()
    _gc.pause()
    try:
        assert not gc.isenabled()
        run(toy_spec(trials=2, seeds=2), tmp_path / "o")
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.enable()
        gc.unfreeze()


def test_a_library_user_s_collector_is_left_as_it_was(tmp_path):
    import gc

    from admtune import _gc

    frozen = gc.get_freeze_count()
    run(toy_spec(trials=2, seeds=2), tmp_path / "o")  # no pause: nothing frozen
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()
    try:
        _gc.pause()  # nothing to pause: the user's choice stands
        _gc.settle()
        _gc.resume()
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def test_a_study_that_fails_before_its_first_run_resumes_collection_unfrozen(tmp_path):
    """The CLI pauses collection for a study; bad input ends it before any run."""
    import gc

    from admtune import cli

    frozen = gc.get_freeze_count()
    with pytest.raises(AdmtuneError):
        cli._run_study("quick", None, None, None, "cpu", tmp_path / "o", ["seeds=1"], False)
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_the_python_api_runs_local_workers(tmp_path, monkeypatch):
    """api.run_study(workers=2) is what `--workers 2` runs: a second process shares the study."""
    monkeypatch.chdir(REPO)  # the worker imports the plug-in workload from here, as the CLI's do
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    out = api.run_study(toy_spec("apiw", ["workload.sleep=0.03"], trials=3, seeds=2), workers=2,
                        out=tmp_path, device="cpu", pdf=False)
    assert out.complete and not out.failed_workers
    frame = out.results.frame()
    assert frame.worker.nunique() == 2  # both processes ran some of it
    assert (frame.arm == "trial").sum() == 2 * 3 and (tmp_path / "summary.json").is_file()


def _meta_attr(url: str, name: str, key: str, value) -> None:
    storage = st.open_storage(url, heartbeat_interval=None)
    sid = storage.get_study_id_from_name(st.meta_name(name))
    storage.set_study_user_attr(sid, key, value)
    storage.engine.dispose()


def test_a_worker_joining_a_finished_study_leaves_the_report_to_the_one_writing_it(tmp_path):
    """Issue 19: a worker that joined a finished study while the worker that ended its last run
    was still writing the report wrote it a second time. The writer's claim is in the storage."""
    import time as _time

    s = toy_spec(trials=2, seeds=2)
    out = tmp_path / "o"
    first = run(s, out, report=True, pdf=False)
    assert first.complete and first.reported
    url = st.default_url(out)
    # another worker (another host:pid) began writing it a moment ago and has not finished
    _meta_attr(url, s.name, "report_writing", {"worker": "elsewhere:1", "at": _time.time()})
    joined = run(s, out, report=True, pdf=False)
    assert joined.complete and not joined.reported
    # it finished: a later resume rewrites the report as usual
    _meta_attr(url, s.name, "report_written", {"worker": "elsewhere:1", "at": _time.time()})
    assert run(s, out, report=True, pdf=False).reported
    # a claim left by a worker that died while writing does not block the report for ever
    _meta_attr(url, s.name, "report_writing", {"worker": "dead:2", "at": _time.time() - 3600})
    assert run(s, out, report=True, pdf=False).reported
