"""Storage faults mid-study are one sentence and exit 2, with what was kept and how to resume;
never a traceback. Real faults on real storages: the PostgreSQL database dropped under a running
study."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from tests.test_cli import REPO, TOY

psycopg2 = pytest.importorskip("psycopg2")
ADMIN = dict(host="127.0.0.1", port=5432, user="postgres", dbname="test")


def admin(sql: str) -> None:
    conn = psycopg2.connect(**ADMIN)
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def trials_in(db: str) -> int:
    try:
        conn = psycopg2.connect(**{**ADMIN, "dbname": db})
    except psycopg2.Error:
        return 0
    try:
        cur = conn.cursor()
        cur.execute("select count(*) from trials")
        return int(cur.fetchone()[0])
    except psycopg2.Error:
        return 0
    finally:
        conn.close()


@pytest.mark.postgres
def test_the_database_dropped_mid_study_is_one_sentence(tmp_path):
    db = f"admtune_fault_{uuid.uuid4().hex[:8]}"
    try:
        admin(f"create database {db}")
    except psycopg2.Error as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 cannot create databases here: {exc}")
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "toy.toml").write_text(TOY)
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
    cmd = [sys.executable, "-m", "admtune.cli", "study", "toy", "--device", "cpu", "--no-pdf",
           "--storage", url, "--set", "workload.sleep=0.05"]
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.time() + 120
        while trials_in(db) < 2 and time.time() < deadline:
            time.sleep(0.2)
        assert trials_in(db) >= 2, "the study never started"
    finally:
        admin(f"drop database if exists {db} with (force)")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2, (out, err)
    assert "Traceback" not in err and "StorageInternalError" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and "error:" in lines[-1] and "run the same command to resume" in " ".join(lines[-3:])


def _sqlite_trials(db) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("select count(*) from trials").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_study_db_deleted_or_truncated_mid_study_stops_with_one_sentence(tmp_path, how):
    """SQLite keeps writing to a deleted file, and a truncated one reads as a new study: either
    way the runs went nowhere, silently. The worker notices before its next run and stops."""
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "toy.toml").write_text(TOY)
    out = tmp_path / "reports" / "toy"
    db = out / "study.db"
    cmd = [sys.executable, "-m", "admtune.cli", "study", "toy", "--device", "cpu", "--no-pdf",
           "--set", "workload.sleep=0.05"]
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 120
    while _sqlite_trials(db) < 2 and time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert _sqlite_trials(db) >= 2, "the study never started"
    if how == "deleted":
        db.unlink()
    else:
        with open(db, "r+b") as f:
            f.truncate(0)
    stdout, err = p.communicate(timeout=120)
    assert p.returncode == 2, (stdout, err)
    assert "Traceback" not in err
    words = "was deleted while the study ran" if how == "deleted" else "shrank from"
    assert words in err and "restore it from a copy" in err
