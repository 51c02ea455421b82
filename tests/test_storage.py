"""The storage under several workers: popping a waiting trial is atomic on every backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
import uuid

import optuna
import pytest

from admtune.study import storage as st
from tests.test_engine import PG_URL, REPO

POPPER = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {repo!r})
    import optuna
    from admtune.study import storage as st
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.get_storage(st.open_storage({url!r}, heartbeat_interval=None))
    study = optuna.load_study(study_name={name!r}, storage=storage)
    popped = []
    for i in range({n}):
        study.enqueue_trial({{}}, user_attrs={{"worker": os.getpid(), "i": i}})
        trial = study.ask()  # pops the oldest waiting trial, whoever enqueued it
        popped.append(trial._trial_id)
        study.tell(trial, 1.0)
    print(json.dumps(popped))
""")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_workers_never_pop_the_same_waiting_trial(tmp_path, backend):
    """Optuna pops a waiting trial by read-check-write; on SQLite, pysqlite ran the read outside the
    transaction and two workers popped the same trial (tens in 150 pops before the fix)."""
    url = st.default_url(tmp_path) if backend == "sqlite" else PG_URL
    name = f"pop{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=st.open_storage(url, heartbeat_interval=None))
    code = POPPER.format(repo=str(REPO), url=url, name=name, n=120)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ})
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    a, b = (json.loads(o) for o, _ in outs)
    assert len(set(a)) == len(a) == 120 and len(set(b)) == len(b) == 120
    assert not set(a) & set(b)
    trials = optuna.load_study(study_name=name, storage=url).trials
    # An ask that finds no waiting trial left (the other worker popped it) makes a fresh one.
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # no number given twice
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 240


# ---------------------------------------------------------------------------------------------
# The README's PostgreSQL URL, and SQLite files that vanish, shrink or are empty


def _readme_postgres_url() -> str:
    """The `--storage postgresql://…` URL exactly as README's "Scale out" writes it, pointed at the
    test server (user, host and database swapped, scheme and form kept)."""
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    urls = re.findall(r"--storage (postgres\S*://\S+)", readme)
    assert urls, "README shows no PostgreSQL storage URL"
    scheme = urls[0].partition("://")[0]
    assert scheme == "postgresql"  # the bare form: no +driver for users to get wrong
    return f"{scheme}://postgres@127.0.0.1:5432/test"


@pytest.mark.postgres
def test_the_readme_postgres_url_works_with_the_postgres_extra():
    """SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, the extra installs psycopg2: the URL
    the README shows failed with "Failed to import DB access module"."""
    url = _readme_postgres_url()
    storage = st.open_storage(url, heartbeat_interval=None)
    name = f"readme-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=storage)
    assert name in [s.study_name for s in optuna.get_all_study_summaries(storage)]
    optuna.delete_study(study_name=name, storage=storage)


def test_a_bare_postgres_url_gets_the_installed_driver(monkeypatch):
    import builtins

    real = builtins.__import__

    def only(installed):
        def imp(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0 and name in ("psycopg2", "psycopg"):
                if name not in installed:
                    raise ImportError(f"No module named {name!r}")
                return types.ModuleType(name)  # installed, as far as the check can tell
            return real(name, globals, locals, fromlist, level)
        return imp

    for installed, expected in (({"psycopg2", "psycopg"}, "psycopg2"), ({"psycopg"}, "psycopg")):
        monkeypatch.setattr(builtins, "__import__", only(installed))
        assert st.engine_url("postgresql://u:p@h/db") == f"postgresql+{expected}://u:p@h/db"
        assert st.engine_url("postgres://h/db") == f"postgresql+{expected}://h/db"
    assert st.engine_url("postgresql+pg8000://h/db") == "postgresql+pg8000://h/db"
    assert st.engine_url("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.setattr(builtins, "__import__", only(set()))
    with pytest.raises(st.StorageError, match=r"needs a PostgreSQL driver .*admtune\[postgres\]"):
        st.check_url("postgresql://u:secret@h/db")


def test_an_old_empty_sqlite_file_is_refused_not_taken_for_a_new_study(tmp_path):
    db = tmp_path / "study.db"
    db.write_bytes(b"")
    old = db.stat().st_mtime - 3600
    os.utime(db, (old, old))
    with pytest.raises(st.StorageError, match=r"empty \(0 bytes\), so it holds no study"):
        st.open_storage(f"sqlite:///{db}", heartbeat_interval=None)
    assert db.stat().st_size == 0  # left as it was, for the user to restore
    fresh = tmp_path / "fresh.db"
    fresh.write_bytes(b"")  # being created by another worker right now: fine
    st.open_storage(f"sqlite:///{fresh}", heartbeat_interval=None)


@pytest.mark.parametrize("how", ["deleted", "replaced", "truncated"])
def test_a_storage_file_that_changes_under_a_study_is_noticed(tmp_path, how):
    db = tmp_path / "study.db"
    storage = st.open_storage(f"sqlite:///{db}", heartbeat_interval=None)
    optuna.create_study(study_name="s", storage=storage)
    guard = st.FileGuard(f"sqlite:///{db}")
    guard.check()  # unchanged: nothing to say
    if how == "deleted":
        db.unlink()
    elif how == "replaced":
        data = db.read_bytes()
        db.unlink()
        db.write_bytes(data)
    else:
        with open(db, "r+b") as f:
            f.truncate(0)
    with pytest.raises(st.StorageError, match={"deleted": "was deleted while the study ran",
                                               "replaced": "was replaced by another file",
                                               "truncated": "shrank from"}[how]):
        guard.check()
