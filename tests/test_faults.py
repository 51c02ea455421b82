"""Storage faults mid-study are one sentence and exit 2, with what was kept and how to resume;
never a traceback. Real faults on real storages: the PostgreSQL database dropped under a running
study."""

from __future__ import annotations

import os
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


def _dump(db: str) -> str:
    """Every value of every table of a PostgreSQL database, as text."""
    conn = psycopg2.connect(**{**ADMIN, "dbname": db})
    try:
        cur = conn.cursor()
        cur.execute("select tablename from pg_tables where schemaname = 'public'")
        out = []
        for (table,) in cur.fetchall():
            cur.execute(f'select * from "{table}"')
            out += [repr(row) for row in cur.fetchall()]
        return "\n".join(out)
    finally:
        conn.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_storage_credentials_appear_in_no_output_file_and_not_in_the_storage(tmp_path):
    """A password in the URL, as user:pass and as query parameters, is in no line printed, no file
    written (report.html, the PDF's bytes, summary.json, runs.csv) and no row of the storage."""
    db = f"admtune_cred_{uuid.uuid4().hex[:8]}"
    try:
        admin(f"create database {db}")
    except psycopg2.Error as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 cannot create databases here: {exc}")
    try:
        (tmp_path / "studies").mkdir()
        (tmp_path / "studies" / "toy.toml").write_text(TOY)
        secrets = ("Pw9userpass", "Pw9query", "Pw9sslkey")
        url = (f"postgresql://postgres:{secrets[0]}@127.0.0.1:5432/{db}"
               f"?password={secrets[1]}&sslpassword={secrets[2]}")
        cmd = [sys.executable, "-m", "admtune.cli", "study", "toy", "--device", "cpu",
               "--storage", url, "--out", str(tmp_path / "out")]
        env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
        p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        files = sorted((tmp_path / "out").rglob("*"))
        assert {"report.html", "report.pdf", "summary.json", "runs.csv"} <= {f.name for f in files}
        assert "***" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
        dump = _dump(db)
        assert "admtune study toy" in dump  # the stored command is there, masked
        for secret in secrets:
            assert secret not in p.stdout and secret not in p.stderr
            for f in files:
                if f.is_file():
                    assert secret.encode() not in f.read_bytes(), f
            assert secret not in dump
    finally:
        admin(f"drop database if exists {db} with (force)")


def _toy_project(tmp_path):
    (tmp_path / "studies").mkdir(exist_ok=True)
    (tmp_path / "studies" / "toy.toml").write_text(TOY)


def _cli(tmp_path, *args, timeout=180):
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "admtune.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _one_sentence(p, *words):
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_study_db_is_one_sentence_for_study_and_report(tmp_path, damage):
    _toy_project(tmp_path)
    out = tmp_path / "reports" / "toy"
    if damage == "garbage":
        out.mkdir(parents=True)
        (out / "study.db").write_bytes(os.urandom(64 * 1024))
    else:
        assert _cli(tmp_path, "study", "toy", "--device", "cpu", "--no-pdf").returncode == 0
        data = (out / "study.db").read_bytes()
        (out / "study.db").write_bytes(data[: len(data) // 2])
    before = (out / "study.db").read_bytes()
    _one_sentence(_cli(tmp_path, "study", "toy", "--device", "cpu", "--no-pdf"), "storage")
    _one_sentence(_cli(tmp_path, "report", "toy", "--no-pdf"), "storage")
    assert (out / "study.db").read_bytes() == before  # never "repaired" into a new study


def _start_toy(tmp_path, *extra):
    cmd = [sys.executable, "-m", "admtune.cli", "study", "toy", "--device", "cpu", "--no-pdf",
           "--set", "workload.sleep=0.05", *extra]
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_trials(db, n, p):
    deadline = time.time() + 120
    while _sqlite_trials(db) < n and time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert _sqlite_trials(db) >= n, "the study never started"


@pytest.mark.slow
def test_the_sqlite_file_made_immutable_mid_study_then_resumed(tmp_path):
    """chattr +i: no process, root included, may write it any more."""
    _toy_project(tmp_path)
    db = tmp_path / "reports" / "toy" / "study.db"
    p = _start_toy(tmp_path)
    _wait_trials(db, 2, p)
    # the write-ahead log too: with WAL, commits go there and the main file waits for a checkpoint
    files = [str(f) for f in (db, db.with_name("study.db-wal")) if f.exists()]
    if subprocess.run(["chattr", "+i", *files], capture_output=True).returncode != 0:
        p.kill()
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        _, err = p.communicate(timeout=120)
        p.stderr = err
        _one_sentence(p, "storage")
    finally:
        subprocess.run(["chattr", "-i", *files], check=True)
    resumed = _cli(tmp_path, "study", "toy", "--device", "cpu", "--no-pdf",
                   "--set", "workload.sleep=0.05")
    assert resumed.returncode == 0, resumed.stderr
    assert (db.parent / "summary.json").is_file()


@pytest.mark.slow
def test_the_disk_full_mid_study_then_freed_and_resumed(tmp_path):
    """The study's folder on a small tmpfs (admtune wants 64 MiB free to start), filled up while
    it runs."""
    _toy_project(tmp_path)
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=72m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        out = mnt / "toy"
        p = _start_toy(tmp_path, "--out", str(out))
        _wait_trials(out / "study.db", 2, p)
        filler = mnt / "filler"
        with open(filler, "wb") as f:  # fill every byte that is left
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        _, err = p.communicate(timeout=120)
        p.stderr = err
        _one_sentence(p, "full")
        filler.unlink()
        resumed = _cli(tmp_path, "study", "toy", "--device", "cpu", "--no-pdf", "--out", str(out),
                       "--set", "workload.sleep=0.05")
        assert resumed.returncode == 0, resumed.stderr
        assert (out / "summary.json").is_file()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
