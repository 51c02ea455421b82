"""The Optuna storage of a study: checking its URL, opening it safely (SQLite for several local
workers; a journal file or a storage proxy for a cluster, see ``backends``), and the layout of an
admtune study in it. Reading runs back is ``records``' job.

Layout of one admtune study NAME inside an Optuna storage (Optuna's own CLI lists them):

- ``NAME``                     the meta study: spec, fingerprint, versions (user attrs); no trials
- ``NAME/tune/<baseline>``     tuning trials of the baseline's β (and lr when tune.lr = true)
- ``NAME/tune/<baseline>/adm`` AdM's lr tuning (only when tune.lr = true; arm ``adm_trial``)
- ``NAME/select``               the selection runs: every finalist on its selection seeds (keyed)
- ``NAME/eval``                the evaluation runs, one enqueued trial per key (baseline, arm, seed)
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # optuna is imported when a storage is opened: `admtune list` needs none
    import optuna

from ..errors import StorageError
from ..util import mask

HEARTBEAT_INTERVAL = 10   # seconds between heartbeats of a running trial
GRACE_PERIOD = 30         # a running trial silent for this long belongs to a dead worker


def meta_name(name: str) -> str:
    return name


def tune_name(name: str, baseline: str, adm: bool = False) -> str:
    return f"{name}/tune/{baseline}" + ("/adm" if adm else "")


def select_name(name: str) -> str:
    return f"{name}/select"


def eval_name(name: str) -> str:
    return f"{name}/eval"


def default_url(out_dir: Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


JOURNAL = "journal://"
GRPC = "grpc://"
JOURNAL_LOCKS = ("symlink", "open")
GRPC_CONNECT_S = 30.0   # how long a worker waits for the storage proxy to answer when it starts


def journal_path(url: str) -> Path | None:
    """The file of a journal URL: ``journal:///abs/study.log`` or ``journal://rel/study.log``
    (relative to the current folder); None for other storages."""
    if not url.startswith(JOURNAL):
        return None
    path = url[len(JOURNAL):].partition("?")[0]
    return Path(path) if path else None


def _journal_lock(url: str) -> str:
    from urllib.parse import parse_qs

    query = parse_qs(url.partition("?")[2], keep_blank_values=True)
    unknown = sorted(set(query) - {"lock"})
    if unknown:
        raise StorageError(f"storage {url!r}: unknown option {unknown[0]!r} (a journal URL takes "
                           f"only ?lock=symlink or ?lock=open)")
    lock = query.get("lock", ["symlink"])[-1]
    if lock not in JOURNAL_LOCKS:
        raise StorageError(f"storage {url!r}: lock must be symlink (NFSv2 and later, the default) "
                           f"or open (NFSv3 and later), not {lock!r}")
    return lock


def _grpc_address(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    masked = mask(url)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None or parts.path not in ("", "/") or parts.query:
        raise StorageError(f"storage {masked!r} is not a storage proxy address (write grpc://HOST:PORT, "
                           f"e.g. grpc://login1:13000)")
    return host, port


def _check_journal(url: str) -> None:
    path = journal_path(url) if url.startswith(JOURNAL) else None
    if path is None:
        raise StorageError(f"storage {url!r} names no journal file (write journal:///shared/study.log "
                           f"for an absolute path, journal://study.log for a relative one)")
    _journal_lock(url)
    if path.is_dir():
        raise StorageError(f"storage {url!r} names a folder, not a journal file")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise StorageError(f"storage folder {folder} does not exist")
    if not os.access(folder, os.W_OK):  # the lock file is made beside the journal
        raise StorageError(f"storage folder {folder} is not writable")
    if path.is_file():
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as exc:
            raise StorageError(f"storage file {path} cannot be read: {exc.strerror}") from None
        if head and not head.startswith(b"{"):
            what = " (it is a SQLite database: use sqlite:///…)" if head.startswith(b"SQLite") else ""
            raise StorageError(f"storage file {path} is not an Optuna journal{what}")


def _check_grpc(url: str) -> None:
    import importlib.util

    _grpc_address(url)
    if any(importlib.util.find_spec(m) is None for m in ("grpc", "google.protobuf")):
        raise StorageError(f"storage {mask(url)!r} needs grpcio and protobuf: pip install 'admtune[grpc]'")


def check_url(url: str) -> None:
    """Fail early, in one sentence, on a URL that cannot work (scheme, driver, sqlite folder,
    journal file, storage proxy address)."""
    if url.startswith("journal:"):
        return _check_journal(url)
    if url.startswith("grpc:"):
        return _check_grpc(url)
    masked = mask(url)
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        raise StorageError(f"storage {masked!r} is not a database URL (e.g. sqlite:///study.db)") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = sqlite_path(url)
        if db is not None:
            folder = db.resolve().parent
            if not folder.is_dir():
                raise StorageError(f"storage folder {folder} does not exist")
            if not os.access(folder, os.W_OK):
                raise StorageError(f"storage folder {folder} is not writable")
    elif backend in ("postgresql", "postgres"):
        driver = parsed.drivername.partition("+")[2]
        if not driver:
            if _postgres_driver() is None:
                raise StorageError(f"storage {masked!r} needs a PostgreSQL driver (psycopg2 or "
                                   f"psycopg): pip install 'admtune[postgres]'") from None
            return
        module = {"psycopg2": "psycopg2", "psycopg": "psycopg", "pg8000": "pg8000"}.get(driver, driver)
        try:
            __import__(module)
        except ImportError:
            how = "pip install 'admtune[postgres]'" if module == "psycopg2" else f"pip install {module}"
            raise StorageError(f"storage {masked!r} needs the PostgreSQL driver {module}: {how}") from None
    else:
        from sqlalchemy.dialects import registry

        try:
            registry.load(backend)
        except Exception:
            raise StorageError(f"storage {masked!r} has an unknown database scheme {backend!r} "
                               "(e.g. sqlite:///study.db or postgresql://user@host/db)") from None


def _postgres_driver() -> str | None:
    """The PostgreSQL driver that is installed: psycopg2 (what ``admtune[postgres]`` installs)
    first, then psycopg 3; None when neither is."""
    for module in ("psycopg2", "psycopg"):
        try:
            __import__(module)
        except ImportError:
            continue
        return module
    return None


def engine_url(url: str) -> str:
    """The URL handed to SQLAlchemy. A bare ``postgresql://`` (or ``postgres://``) names no driver,
    and SQLAlchemy's default changed under it (psycopg2 up to 2.0, psycopg 3 from 2.1): it gets the
    driver that is installed, so the URL in the README works with ``admtune[postgres]`` whatever
    SQLAlchemy version pip picked. Every other URL is passed as it is."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            driver = _postgres_driver()
            return f"postgresql+{driver}://{url[len(scheme):]}" if driver else url
    return url


def open_storage(url: str, *, heartbeat_interval: int | None = HEARTBEAT_INTERVAL,
                 grace_period: int | None = GRACE_PERIOD) -> optuna.storages.BaseStorage:
    """The storage ``url`` names: an RDBStorage (SQLite, PostgreSQL, any SQLAlchemy URL), a
    journal file (``journal://PATH``) or a client of a storage proxy (``grpc://HOST:PORT``); the
    last two with admtune's heartbeats (``admtune.study.backends``). Close it with
    :func:`close_storage`."""
    import optuna

    check_url(url)
    _check_not_empty(url)
    if url.startswith(JOURNAL) or url.startswith(GRPC):
        return _open_cluster_storage(url, heartbeat_interval, grace_period)
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
                storage = optuna.storages.RDBStorage(engine_url(url), engine_kwargs=engine_kwargs,
                                                     **kwargs)
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
            raise StorageError(f"cannot open storage {mask(url)!r}: {reason}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _open_cluster_storage(url: str, heartbeat_interval: int | None,
                          grace_period: int | None) -> optuna.storages.BaseStorage:
    with warnings.catch_warnings():  # the gRPC proxy is "experimental" in Optuna's words
        warnings.simplefilter("ignore")
        from . import backends
    hb: dict[str, Any] = {"heartbeat_interval": heartbeat_interval or None,
                          "grace_period": grace_period or 3 * (heartbeat_interval or 0) or None}
    path = journal_path(url)
    if path is not None:
        try:
            return backends.JournalFile(str(path), lock=_journal_lock(url), **hb)
        except OSError as exc:
            raise StorageError(f"cannot open storage {url!r}: {exc.strerror or exc}") from None
        except ValueError as exc:  # a line that is not JSON
            raise StorageError(f"cannot open storage {url!r}: {str(exc)[:200]} (a line that is not "
                               f"valid JSON: not an Optuna journal, or a write cut short by a crash "
                               f"or a full disk; see README, Scale out)") from None
    host, port = _grpc_address(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proxy = backends.GrpcProxy(host, port, **hb)
    try:
        proxy.wait_server_ready(timeout=GRPC_CONNECT_S)
    except ConnectionError:
        proxy.close()
        raise StorageError(f"no storage proxy answers at {host}:{port} after {GRPC_CONNECT_S:.0f} s "
                           f"(start it with `admtune storage-proxy --storage URL --port {port}` on "
                           f"{host})") from None
    return proxy


def serve_proxy(url: str, *, host: str = "localhost", port: int = 13000,
                on_ready: Any = None) -> None:
    """Serve the database ``url`` to workers over gRPC (Optuna's storage proxy) until stopped:
    one process holds the database connections, the workers use ``grpc://HOST:PORT``."""
    if url.startswith(JOURNAL) or url.startswith(GRPC):
        raise StorageError("the storage proxy serves a database (sqlite:///… or postgresql://…); "
                           "Optuna does not support a journal behind it, and workers can share a "
                           "journal file directly")
    _check_grpc(f"grpc://{host}:{port}")
    from .backends import ServedCache  # Optuna's cache, less a race of the server's threads

    storage = ServedCache(open_storage(url, heartbeat_interval=None))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from optuna.storages._grpc.server import make_server

            server = make_server(storage, host, port)
            server.start()
    except RuntimeError as exc:  # the port is taken, or the host is not this machine's
        close_storage(storage)
        raise StorageError(f"cannot serve the storage proxy on {host}:{port}: "
                           f"{str(exc).splitlines()[0][:200]}") from None
    try:
        if on_ready is not None:
            on_ready()
        server.wait_for_termination()
    finally:
        server.stop(grace=None)
        close_storage(storage)


def close_storage(storage: Any) -> None:
    """Close a storage's connections: RDB's pool (SQLite folds its write-ahead log back into the
    file), the gRPC channel; a journal file holds none."""
    inner = getattr(storage, "_backend", None)
    if inner is not None and hasattr(inner, "engine"):  # Optuna's caching wrapper of an RDBStorage
        storage = inner
    if hasattr(storage, "engine"):
        storage.engine.dispose()
    elif hasattr(storage, "_channel"):
        storage.close()


def storage_file(url: str) -> Path | None:
    """The file of a SQLite or journal URL; None for a server (PostgreSQL, gRPC) and in-memory
    SQLite."""
    return journal_path(url) if url.startswith(JOURNAL) else sqlite_path(url)


def require_stored(url: str) -> None:
    """A study is to be read from ``url``: a SQLite or journal file that is not there is an error
    (opening it would create an empty one)."""
    path = storage_file(url)
    if path is not None and not path.is_file():
        raise StorageError(f"no stored study at {path}")


EMPTY_FILE_GRACE_S = 30.0  # a 0-byte storage file younger than this is one being created now


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other storages and in-memory SQLite."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    db = make_url(url).database
    return Path(db) if db and db != ":memory:" else None


def _check_not_empty(url: str) -> None:
    """A SQLite or journal file of 0 bytes that is not being created right now is not a new study:
    it is what a crash, a full disk or a bad copy leaves. Optuna would silently make a new study
    in it."""
    path = storage_file(url)
    if path is None or not path.is_file():
        return
    info = path.stat()
    if info.st_size == 0 and time.time() - info.st_mtime > EMPTY_FILE_GRACE_S:
        raise StorageError(
            f"storage file {path} is empty (0 bytes), so it holds no study: it was truncated or "
            f"copied while being written; restore it from a copy, or delete it to start a new study"
        )


class FileGuard:
    """Notices a SQLite or journal file deleted, replaced or truncated under a running study.

    SQLite keeps writing to a deleted file through the open connection, and a truncated one is
    read as a new, empty study, so neither fails by itself: the runs would silently go nowhere,
    or start again from scratch (a journal whose file is replaced would be read from the old
    file's offsets). The file's identity and size are taken when the study opens and compared
    before every run; SQLite never makes its main file smaller (no VACUUM here), and a journal
    is only ever appended to."""

    def __init__(self, url: str) -> None:
        self.path = storage_file(url)
        self._id: tuple[int, int] | None = None
        self._size = 0
        if self.path is not None and self.path.is_file():
            info = self.path.stat()
            self._id, self._size = (info.st_dev, info.st_ino), info.st_size

    def check(self) -> None:
        if self.path is None or self._id is None:
            return
        kept = ("the runs that ended before are in the file as it was; restore it from a copy to "
                "resume, or start afresh with another --out")
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise StorageError(f"storage file {self.path} was deleted while the study ran: "
                               f"stopped so that no run is lost with it; {kept}") from None
        if (info.st_dev, info.st_ino) != self._id:
            raise StorageError(f"storage file {self.path} was replaced by another file while the "
                               f"study ran: stopped; {kept}")
        if info.st_size < self._size:
            raise StorageError(f"storage file {self.path} shrank from {self._size} to "
                               f"{info.st_size} bytes while the study ran (truncated): stopped; "
                               f"{kept}")
        self._size = info.st_size


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


def fail_stale_trials(study: optuna.Study, grace_period: float) -> None:
    """Fail the RUNNING trials of dead workers.

    Optuna fails a trial whose last heartbeat is older than the grace period, but a trial with no
    heartbeat at all (its worker died between ``ask()`` and its first beat) stays RUNNING forever
    and every other worker would wait for it. Here the trial's start stands in for that first beat.
    """
    from datetime import datetime, timedelta

    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if _judges_silence(study._storage):
        return  # a journal or proxy: its heartbeat check also covers trials that never beat
    cutoff = datetime.now() - timedelta(seconds=grace_period)  # Optuna stamps starts in local time
    silent = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
              if t.datetime_start is not None and t.datetime_start < cutoff]
    if not silent:
        return
    storage = study._storage
    beating = _trials_with_heartbeats(storage, [t._trial_id for t in silent])
    for t in silent:
        if t._trial_id in beating:
            continue  # its heartbeat is fresh (Optuna's check above failed the stale ones)
        # Like Optuna's own stale failures, no "reason": a dead worker is not the run's crash
        # and does not count towards the retries of a run that crashes.
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # failed elsewhere
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)


def _judges_silence(storage: Any) -> bool:
    import sys

    backends = sys.modules.get(__package__ + ".backends")
    return backends is not None and isinstance(storage, backends.AttrHeartbeat)


def _trials_with_heartbeats(storage: Any, trial_ids: list[int]) -> set[int]:
    """Which of ``trial_ids`` have a heartbeat row (Optuna keeps them in its own table and has no
    public query for them; a storage without heartbeats has none)."""
    rdb = getattr(storage, "_backend", storage)  # the caching wrapper holds the RDB storage
    if not hasattr(rdb, "scoped_session"):
        return set()
    from optuna.storages._rdb import models

    session = rdb.scoped_session()
    try:
        rows = session.query(models.TrialHeartbeatModel.trial_id).filter(
            models.TrialHeartbeatModel.trial_id.in_(trial_ids)).all()
        return {r[0] for r in rows}
    finally:
        session.close()
