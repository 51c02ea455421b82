"""The Optuna storage of a study: opening it safely, its layout, and reading results back.

Layout of one admtune study NAME inside an Optuna storage (Optuna's own CLI lists them):

- ``NAME``                     the meta study: spec, fingerprint, versions (user attrs); no trials
- ``NAME/tune/<baseline>``     tuning trials of the baseline's β (and lr when tune.lr = true)
- ``NAME/tune/<baseline>/adm`` AdM's lr tuning (only when tune.lr = true; arm ``adm_trial``)
- ``NAME/eval``                the evaluation runs, one enqueued trial per key (baseline, arm, seed)
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import StorageError
from .results import Run, StudyResults

HEARTBEAT_INTERVAL = 10   # seconds between heartbeats of a running trial
GRACE_PERIOD = 30         # a running trial silent for this long belongs to a dead worker


def meta_name(name: str) -> str:
    return name


def tune_name(name: str, baseline: str, adm: bool = False) -> str:
    return f"{name}/tune/{baseline}" + ("/adm" if adm else "")


def eval_name(name: str) -> str:
    return f"{name}/eval"


def default_url(out_dir: Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for output, logs and reports."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: hide anything between :// and @
        if "://" in url and "@" in url:
            scheme, rest = url.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return url


def check_url(url: str) -> None:
    """Fail early, in one sentence, on a URL that cannot work (scheme, driver, sqlite folder)."""
    masked = mask_url(url)
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        raise StorageError(f"storage {masked!r} is not a database URL (e.g. sqlite:///study.db)") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            folder = Path(db).resolve().parent
            if not folder.is_dir():
                raise StorageError(f"storage folder {folder} does not exist")
            if not os.access(folder, os.W_OK):
                raise StorageError(f"storage folder {folder} is not writable")
    elif backend in ("postgresql", "postgres"):
        driver = parsed.drivername.partition("+")[2] or "psycopg2"  # SQLAlchemy's default
        module = {"psycopg2": "psycopg2", "psycopg": "psycopg", "pg8000": "pg8000"}.get(driver, driver)
        try:
            __import__(module)
        except ImportError:
            how = "pip install 'admtune[postgres]'" if module == "psycopg2" else f"pip install {module}"
            raise StorageError(f"storage {masked!r} needs the PostgreSQL driver {module}: {how}") from None


def open_storage(url: str, *, heartbeat_interval: int | None = HEARTBEAT_INTERVAL,
                 grace_period: int | None = GRACE_PERIOD) -> optuna.storages.RDBStorage:
    check_url(url)
    kwargs: dict[str, Any] = {}
    if heartbeat_interval:
        kwargs = {"heartbeat_interval": heartbeat_interval,
                  "grace_period": grace_period or 3 * heartbeat_interval}
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several local workers share one SQLite file: wait for the lock rather than fail.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgres"):
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
            if url.startswith("sqlite"):
                _use_wal(storage)
            return storage
        except Exception as exc:  # sqlalchemy's errors are long; keep the first line of the cause
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
            # Workers started together on a new database race to create its tables: the loser
            # finds them made by the winner on a second try.
            if attempt < 4 and any(m in reason for m in _SCHEMA_RACE):
                time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
                continue
            raise StorageError(f"cannot open storage {mask_url(url)!r}: {reason}") from None
    raise AssertionError("unreachable")  # pragma: no cover


SQLITE_LOCK_WAIT_S = 60.0   # how long a local worker waits for another's write to end


def _use_wal(storage: optuna.storages.RDBStorage) -> None:
    """SQLite for several local workers.

    - Write-ahead-log mode: readers do not block the writer, and a commit needs no fsync of the
      whole database.
    - Every transaction takes the write lock when it begins. pysqlite otherwise runs a
      transaction's reads outside it, so the read-check-write by which Optuna pops a waiting trial
      is not atomic: two workers popped the same trial.
    - The lock is waited for here, in steps of about a millisecond. SQLite's own busy handler
      sleeps 1, 2, 5, 10 … 100 ms between tries, and those sleeps stalled runs by up to 0.3 s
      whenever two workers wanted the lock at once.
    """
    import sqlite3

    import sqlalchemy

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite emits no BEGIN of its own: on_begin does
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    def on_begin(connection: Any) -> None:
        raw = connection.connection.driver_connection
        raw.execute("PRAGMA busy_timeout = 0")
        deadline = time.monotonic() + SQLITE_LOCK_WAIT_S
        try:
            while True:
                try:
                    raw.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise sqlalchemy.exc.OperationalError("BEGIN IMMEDIATE", None, exc) from None
                    time.sleep(random.uniform(0.0003, 0.0015))
        finally:
            raw.execute(f"PRAGMA busy_timeout = {int(SQLITE_LOCK_WAIT_S * 1000)}")

    sqlalchemy.event.listen(storage.engine, "connect", on_connect)
    sqlalchemy.event.listen(storage.engine, "begin", on_begin)
    storage.engine.dispose()  # pooled connections made before the listeners reconnect with them


_SCHEMA_RACE = ("UNIQUE constraint", "already exists", "duplicate key", "database is locked")


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
        return True
    except KeyError:
        return False


# --- reading results back ---------------------------------------------------------------------
def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def run_from_trial(t: FrozenTrial, study_name: str, position: int) -> Run:
    # Queried attributes are stored one per key; the rest of the run's record in one "record".
    a = {**t.user_attrs.get("record", {}), **t.user_attrs}
    if t.state == TrialState.PRUNED:
        status = "pruned"
    elif t.state == TrialState.FAIL:
        status = "failed"
    elif t.state == TrialState.COMPLETE:
        status = a.get("status", "complete")
    else:
        status = t.state.name.lower()
    value = a.get("value")
    if status == "pruned" and value is None and t.intermediate_values:
        value = t.intermediate_values[max(t.intermediate_values)]
    return Run(
        study=study_name, baseline=a.get("baseline", ""), arm=a.get("arm", ""),
        seed=int(a.get("seed", -1)), beta=a.get("beta"), lr=a.get("lr", float("nan")),
        metric=a.get("metric", ""), value=_clean(value) if status not in ("diverged", "failed") else None,
        status=status, steps=int(a.get("steps", 0)), wall_s=float(a.get("wall_s", 0.0)),
        val_value=_clean(a.get("val_value")), trial_number=position,
        curve=a.get("curve") or {}, val_curve=a.get("val_curve") or {},
        beta_trace=a.get("beta_trace"), reason=a.get("reason"), device=a.get("device"),
        worker=a.get("worker"),
    )


def counted_tuning_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count towards the tuning budget, in tuning order (complete, pruned,
    diverged and still-running ones; crashed and interrupted ones were retried and do not count)."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sorted((t for t in trials if t.state in live), key=lambda t: t.number)


def final_eval_attempts(trials: list[FrozenTrial]) -> dict[str, FrozenTrial]:
    """Per evaluation key, the attempt that counts: the complete one, else the latest failed one."""
    best: dict[str, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        key = t.user_attrs.get("key")
        if key is None or t.user_attrs.get("skipped"):
            continue
        cur = best.get(key)
        if cur is None or cur.state != TrialState.COMPLETE:
            if t.state in (TrialState.COMPLETE, TrialState.FAIL):
                best[key] = t
    return best


def load_results(storage: optuna.storages.BaseStorage | str, name: str) -> StudyResults:
    """Rebuild a study's results from its storage alone."""
    if isinstance(storage, str):
        storage = open_storage(storage, heartbeat_interval=None)
    if not study_exists(storage, meta_name(name)):
        raise StorageError(f"the storage holds no admtune study named {name!r}")
    meta = optuna.load_study(study_name=meta_name(name), storage=storage).user_attrs
    spec = json.loads(meta["spec"])
    runs: list[Run] = []
    for baseline in spec["baselines"]:
        for adm in (False, True):
            sname = tune_name(name, baseline, adm)
            if not study_exists(storage, sname):
                continue
            trials = optuna.load_study(study_name=sname, storage=storage).get_trials(deepcopy=False)
            for pos, t in enumerate(counted_tuning_trials(trials)):
                if t.state != TrialState.RUNNING:
                    runs.append(run_from_trial(t, name, pos))
    if study_exists(storage, eval_name(name)):
        trials = optuna.load_study(study_name=eval_name(name), storage=storage).get_trials(deepcopy=False)
        arm_order = {"adm": 0, "tuned": 1, "default": 2}
        evals = [run_from_trial(t, name, t.number) for t in final_eval_attempts(trials).values()]
        # A stable order (workers run evaluation keys in any order): baseline, arm, seed.
        order = {b: i for i, b in enumerate(spec["baselines"])}
        runs.extend(sorted(evals, key=lambda r: (order.get(r.baseline, 99),
                                                 arm_order.get(r.arm, 3), r.arm, r.seed)))
    return StudyResults(
        name=name, spec=spec, fingerprint=meta.get("fingerprint", ""),
        version=meta.get("version", ""), versions=meta.get("versions", {}),
        device=meta.get("device", ""), wall_s=float(sum(r.wall_s for r in runs)),
        command=meta.get("command", ""), runs=runs,
    )
