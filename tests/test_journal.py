"""Storages for clusters, past one database server: Optuna's journal file (``journal://PATH``)
and its gRPC storage proxy (``grpc://HOST:PORT``, served by ``admtune storage-proxy``), shared by
real worker processes, keep the engine's guarantees: each waiting trial popped once, exact tuning
counts, each key completed once, a killed worker's run failed and redone (admtune's heartbeats:
Optuna has none for either). The URLs work through the CLI, and a bad one is one sentence."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from admtune.study import storage as st
from admtune.study.backends import HEARTBEAT_ATTR
from tests.test_cli import invoke, one_sentence_error, project  # noqa: F401  (a fixture)
from tests.test_engine import REPO, check_exact, kill_inside, start_worker, toy_spec
from tests.test_storage import POPPER


def journal(tmp_path, name="study.log") -> str:
    return f"journal://{tmp_path / name}"  # tmp_path is absolute: journal:///tmp/...


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxy(tmp_path):
    """``admtune storage-proxy`` serving a SQLite file: the workers' URL."""
    pytest.importorskip("grpc")
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "admtune.cli", "storage-proxy", "--storage",
                          f"sqlite:///{tmp_path / 'served.db'}", "--port", str(port)],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = p.stdout.readline()
    assert "storage proxy for" in line, line + p.stdout.read()
    yield f"grpc://localhost:{port}"
    p.terminate()
    p.wait(timeout=30)


@pytest.fixture(params=["journal", "grpc"])
def url(request, tmp_path):
    return journal(tmp_path) if request.param == "journal" else request.getfixturevalue("proxy")


def test_two_workers_never_pop_the_same_waiting_trial(url):
    """Each worker enqueues a trial and pops the oldest waiting one, 80 times, at once. The journal
    orders the RUNNING records (a second one for a trial is rejected on replay); behind the proxy,
    the database does what it does for local workers."""
    optuna.create_study(study_name="pop", storage=st.open_storage(url, heartbeat_interval=None))
    code = POPPER.format(repo=str(REPO), url=url, name="pop", n=80)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    a, b = (json.loads(o) for o, _ in outs)
    assert len(set(a)) == len(a) == 80 and len(set(b)) == len(b) == 80
    assert not set(a) & set(b)
    trials = optuna.load_study(study_name="pop", storage=st.open_storage(url, heartbeat_interval=None)).trials
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 160
    # An ask that found no waiting trial left made a fresh one, so some enqueued ones still wait.
    assert not any(t.state == TrialState.RUNNING for t in trials)


def test_two_workers_share_a_study_exactly(url, tmp_path):
    workers = [start_worker("j", url, tmp_path, sets=["workload.sleep=0.005"], trials=4, seeds=2)
               for _ in range(2)]
    logs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    f = check_exact(url, "j", trials=4, seeds=2)  # exact counts; each key completed once
    assert len(f) == 2 * 4 + 2 * 3 * 2 + (f.arm == "select").sum()
    assert sum("WRITES_REPORT True" in log for log in logs) == 1, logs
    assert not list(tmp_path.glob("*.lock*"))  # the journal's lock file is released


def test_sigkilled_worker_on_a_journal_is_detected_and_its_run_redone(tmp_path):
    """Optuna has no heartbeats for a journal (nor for a proxy client): admtune's (a trial system
    attribute) let the next worker fail the killed worker's run and run it again. The proxy's
    heartbeats are the same code: the next test watches them on both."""
    from admtune import api

    url = journal(tmp_path)
    sets = ["workload.sleep=0.05", "tune.finalists=1", "tune.selection_seeds=1"]
    w = start_worker("k", url, tmp_path, sets=sets, trials=2, hb=1, grace=3)
    kill_inside(w, url, "k/eval")
    out = api.run_study(toy_spec("k", sets, trials=2), storage=url, out=tmp_path,
                        device="cpu", report=False, heartbeat_interval=1, grace_period=3)
    assert out.complete
    check_exact(url, "k", trials=2, seeds=2)
    ev = optuna.load_study(study_name="k/eval", storage=st.open_storage(url, heartbeat_interval=None)).trials
    assert sum(t.state == TrialState.FAIL for t in ev) == 1  # the killed attempt, failed as stale


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_live_run_longer_than_the_grace_period_is_never_failed(url):
    """Staleness is judged by the heartbeat changing, as another worker watches it on its own
    clock: a run that beats lives however long it lasts; once it stops beating it is failed."""
    mine = st.open_storage(url, heartbeat_interval=1, grace_period=2)
    other = st.open_storage(url, heartbeat_interval=1, grace_period=2)  # another worker's view
    study = optuna.create_study(study_name="s", storage=mine)
    trial = study.ask()
    stop = threading.Event()

    def beat() -> None:  # what the executor's heartbeat thread does, every 0.5 s here
        while True:
            mine.record_heartbeat(trial._trial_id)
            if stop.wait(0.5):
                return

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    watched = optuna.load_study(study_name="s", storage=other)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.5:  # longer than the grace period
        st.fail_stale_trials(watched, 2)
        time.sleep(0.25)
    assert other.get_trial(trial._trial_id).state == TrialState.RUNNING
    assert HEARTBEAT_ATTR in other.get_trial(trial._trial_id).system_attrs
    stop.set()
    beater.join()
    deadline = time.monotonic() + 6
    while other.get_trial(trial._trial_id).state == TrialState.RUNNING and time.monotonic() < deadline:
        st.fail_stale_trials(watched, 2)
        time.sleep(0.25)
    assert other.get_trial(trial._trial_id).state == TrialState.FAIL
    assert time.monotonic() - t0 > 3.5 + 2  # not before the grace period of silence


@pytest.mark.parametrize("cache", ["optuna", "admtune"])
def test_the_proxy_cache_never_keeps_a_stale_copy_of_a_new_trial(tmp_path, cache):
    """The race in Optuna's cache under the proxy's threads, made to happen: between the database
    insert of an enqueued trial and its entry into the cache, another thread reads it, a worker
    pops and tells it, and the thread reads it again. Optuna's cache then shows it WAITING for good
    (seen once with two real workers through the proxy); admtune's shows it COMPLETE."""
    from optuna.storages._cached_storage import _CachedStorage

    from admtune.study.backends import ServedCache

    rdb = st.open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=None)
    served = (_CachedStorage if cache == "optuna" else ServedCache)(rdb)
    sid = served.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    insert = rdb._create_new_trial

    def insert_then_others_meanwhile(study_id, template_trial=None):
        frozen = insert(study_id, template_trial)
        served.get_all_trials(sid)
        assert served.set_trial_state_values(frozen._trial_id, TrialState.RUNNING)  # popped
        served.set_trial_state_values(frozen._trial_id, TrialState.COMPLETE, [1.0])  # told
        served.get_all_trials(sid)
        return frozen

    rdb._create_new_trial = insert_then_others_meanwhile
    served.create_new_trial(sid, optuna.trial.create_trial(state=TrialState.WAITING))
    rdb._create_new_trial = insert
    served.create_new_trial(sid)  # later trials do not heal it
    states = [t.state for t in served.get_all_trials(sid)]
    if cache == "optuna":
        assert states[0] == TrialState.WAITING  # the bug this cache exists for
    else:
        assert states == [TrialState.COMPLETE, TrialState.RUNNING]


# --- the URLs: checked in one sentence, through the CLI -----------------------------------------
@pytest.mark.parametrize("url, needle", [
    ("journal://", "names no journal file"),
    ("journal:///no/such/folder/s.log", "does not exist"),
    ("journal:///tmp?lock=flock", "lock must be symlink"),
    ("journal:///tmp/x.log?mode=fast", "unknown option 'mode'"),
    ("grpc://login1", r"not a storage proxy address \(write grpc://HOST:PORT"),
    ("grpc://login1:99999", "not a storage proxy address"),
])
def test_a_bad_cluster_storage_url_is_one_sentence(url, needle):
    with pytest.raises(st.StorageError, match=needle):
        st.check_url(url)


def test_a_missing_grpcio_and_an_absent_proxy_are_one_sentence(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    with monkeypatch.context() as m:
        m.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a))
        with pytest.raises(st.StorageError, match=r"needs grpcio and protobuf: pip .*admtune\[grpc\]"):
            st.check_url("grpc://login1:13000")
    pytest.importorskip("grpc")
    monkeypatch.setattr(st, "GRPC_CONNECT_S", 0.5)
    port = _free_port()
    with pytest.raises(st.StorageError, match=rf"no storage proxy answers at localhost:{port} .*"
                                              "admtune storage-proxy"):
        st.open_storage(f"grpc://localhost:{port}")


def test_a_sqlite_file_named_as_a_journal_is_refused(tmp_path):
    db = tmp_path / "study.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    with pytest.raises(st.StorageError, match=r"not an Optuna journal \(it is a SQLite database"):
        st.open_storage(f"journal://{db}")


def test_an_old_empty_journal_is_refused_and_a_missing_one_is_no_study(tmp_path):
    log = tmp_path / "study.log"
    log.write_bytes(b"")
    old = log.stat().st_mtime - 3600
    os.utime(log, (old, old))
    with pytest.raises(st.StorageError, match=r"empty \(0 bytes\), so it holds no study"):
        st.open_storage(journal(tmp_path))
    with pytest.raises(st.StorageError, match="no stored study at"):
        st.require_stored(journal(tmp_path, "missing.log"))


def test_a_torn_journal_line_is_one_sentence_where_it_is_read(tmp_path):
    """A line written in part (a crash, a full disk) joins the next record: Optuna then fails on
    every later read. Opening it, and meeting it mid-study, say so in one sentence."""
    from admtune import api

    url = journal(tmp_path)
    storage = st.open_storage(url, heartbeat_interval=None)
    optuna.create_study(study_name="s", storage=storage)
    with open(tmp_path / "study.log", "ab") as f:
        f.write(b'{"op_code":8,"worker_id":"w","tri')  # cut short
    other = st.open_storage(url, heartbeat_interval=None)  # a torn last line is only unfinished
    other.set_study_user_attr(0, "a", 1)  # joins the torn line: lost
    with pytest.raises(ValueError):  # the next record is written, then its writer's read fails
        other.set_study_user_attr(0, "b", 2)
    with pytest.raises(st.StorageError, match=r"not valid JSON.*a write was cut short"):
        with api._storage_errors(url):
            storage.get_all_studies()
    with pytest.raises(st.StorageError, match=r"cannot open storage .*not valid JSON"):
        st.open_storage(url)
    with pytest.raises(ValueError):  # any other code's ValueError is left alone
        with api._storage_errors(url):
            raise ValueError("not from the journal")


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_a_journal_that_changes_under_a_study_is_noticed(tmp_path, how):
    url = journal(tmp_path)
    optuna.create_study(study_name="s", storage=st.open_storage(url, heartbeat_interval=None))
    guard = st.FileGuard(url)
    guard.check()
    log = tmp_path / "study.log"
    if how == "deleted":
        log.unlink()
    else:
        log.write_bytes(b"")
    with pytest.raises(st.StorageError, match={"deleted": "was deleted", "truncated": "shrank"}[how]):
        guard.check()


def test_a_journal_url_round_trips_through_study_and_report(project):  # noqa: F811
    url = f"journal://{project / 'shared' / 'toy.log'}"
    (project / "shared").mkdir()
    r = invoke("study", "toy", "--storage", url, "--device", "cpu", "--no-pdf", "--set", "trials=2")
    assert r.exit_code == 0, r.output
    first = json.loads((project / "reports" / "toy" / "summary.json").read_text())
    assert not (project / "reports" / "toy" / "study.db").exists()  # the journal holds the study
    r = invoke("report", "toy", "--storage", url, "--out", str(project / "again"), "--no-pdf")
    assert r.exit_code == 0, r.output
    second = json.loads((project / "again" / "summary.json").read_text())
    assert first["baselines"] == second["baselines"]
    # A relative journal URL names the same file from the folder it is given in.
    r = invoke("report", "toy", "--storage", "journal://shared/toy.log", "--out", "rel", "--no-pdf")
    assert r.exit_code == 0, r.output
    one_sentence_error(invoke("report", "toy", "--storage", "journal://shared/none.log", "--no-pdf"),
                       "no stored study at shared/none.log")
    one_sentence_error(invoke("study", "toy", "--storage", "journal:///no/such/dir/x.log"),
                       "storage folder /no/such/dir does not exist")
    one_sentence_error(invoke("storage-proxy", "--storage", url), "serves a database")


def test_the_slurm_script_builds_the_same_command_for_every_task(tmp_path):
    """examples/slurm/admtune-array.sbatch, run by bash with an `admtune` that prints its
    arguments: every task gets the same study command, on a journal URL admtune accepts."""
    script = REPO / "examples" / "slurm" / "admtune-array.sbatch"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "admtune").write_text('#!/bin/sh\necho ARGS "$@"\n')
    (tmp_path / "bin" / "admtune").chmod(0o755)
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "SHARED": str(tmp_path / "shared"), "CUDA_VISIBLE_DEVICES": "3"}
    commands = []
    for task in ("0", "1"):
        r = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": task},
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert f"task {task} " in r.stdout and "GPU 3" in r.stdout
        commands.append(r.stdout.split("ARGS ", 1)[1].split())
    assert commands[0] == commands[1] == [
        "study", "cifar", "--storage", f"journal://{tmp_path}/shared/cifar.log", "--device", "cuda",
        "--out", f"{tmp_path}/shared/reports/cifar"]
    st.check_url(commands[0][3])
    r = subprocess.run(["bash", str(script)], env={**env, "SHARED": "relative/dir"},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "SHARED must be an absolute path" in r.stderr
