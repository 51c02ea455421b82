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
