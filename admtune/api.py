"""admtune from Python: the composition of spec, engine, storage and report. The CLI calls this
layer only; a notebook or a script can too.

Example::

    from admtune import api

    spec = api.load_spec("quick", ["train.epochs=2"], trials=6)
    outcome = api.run_study(spec, device="cpu", out="reports/quick2")
    print(outcome.results.frame().groupby(["baseline", "arm"]).value.mean())
    api.rebuild_report("quick", out="reports/quick2")      # from the storage alone
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AdmtuneError, SpecError, StorageError
from .study import storage as st
from .study.events import Events, Interrupted, LineEvents, StopFlag
from .study.results import StudyResults
from .study.spec import StudySpec, load, resolve, spec_paths
from .util import atomic_write, mask

MIN_FREE_BYTES = 64 * 2**20   # refuse to start a study on a (nearly) full disk


@dataclass
class Outcome:
    """How a call of :func:`run_study` ended."""

    complete: bool                    # every planned run has ended
    results: StudyResults | None      # everything the storage holds now
    out_dir: Path
    storage_url: str
    reported: bool = False            # this process wrote the report (it ended the last run)
    # Local workers (workers > 1) that failed: (index, device, exit code, last line of output).
    failed_workers: list[tuple[int, str, int, str]] = field(default_factory=list)


def load_spec(name_or_path: str, overrides: list[str] | dict[str, Any] | None = None,
              **top_overrides: Any) -> StudySpec:
    """A validated spec: a bundled or local study name, or a path to a .toml file; ``overrides``
    as ``--set`` takes them (``["train.epochs=2"]``), ``trials=…, seeds=…`` last."""
    return load(name_or_path, overrides, **top_overrides)


def list_studies() -> dict[str, Path]:
    """Every study visible by name: ./studies/*.toml first, then the packaged ones."""
    return spec_paths()


def check_device(device: str) -> str:
    """The torch device ``device`` names (auto | cpu | cuda | cuda:N | mps), or one sentence saying
    why it is not available here."""
    from .devices import resolve_device

    return str(resolve_device(device))


def prepare_engine(spec: StudySpec, *, storage: str | None = None, out: str | Path | None = None,
                   device: str = "auto", events: Events | None = None, stop: StopFlag | None = None,
                   command: str = "", heartbeat_interval: int | None = st.HEARTBEAT_INTERVAL,
                   grace_period: int | None = st.GRACE_PERIOD, wait_timeout: float | None = 3600.0):
    """Check everything that can be known before training (workload, metric, device, out folder,
    disk, storage) and return ``(engine, out_dir)``."""
    from .devices import resolve_device
    from .study.engine import Engine

    dev = resolve_device(device)
    workload = _check_inputs(spec, storage, dev)
    created = _missing_folders(out, spec.name)  # what _out_folder makes
    out_dir = _out_folder(out, spec.name)
    url = storage or st.default_url(out_dir)
    try:
        engine = Engine(spec=spec, storage_url=url, device=dev, workload=workload, command=command,
                        events=events or Events(), stop=stop or StopFlag(),
                        heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                        wait_timeout=wait_timeout)
    except AdmtuneError:
        _remove_empty(created)  # a storage that cannot be opened leaves no folder behind
        raise
    return engine, out_dir


def _check_inputs(spec: StudySpec, storage: str | None, device: Any = None):
    """The workload, once its options, the spec's metric and direction, its data on ``device``
    and ``storage`` are checked: what is refused before the out folder is made."""
    from .workloads import check_workload, get_workload

    workload = get_workload(spec.workload, spec.workload_options)
    if spec.metric not in workload.metrics:
        raise SpecError(
            f"metric {spec.metric!r} is not reported by workload {spec.workload!r} "
            f"(it reports: {', '.join(workload.metrics)})"
        )
    if workload.metrics[spec.metric] != spec.direction:
        raise SpecError(
            f"direction must be {workload.metrics[spec.metric]!r} for metric {spec.metric!r}, "
            f"got {spec.direction!r}"
        )
    if device is not None:
        check_workload(workload, device)  # e.g. data that is not there: no study.db for it
    if storage is not None:
        st.check_url(storage)
    return workload


def out_path(out: str | Path | None, name: str) -> Path:
    """A study's out folder: ``out``, or reports/NAME."""
    return Path(out) if out is not None else Path("reports") / name


def _missing_folders(out: str | Path | None, name: str) -> list[Path]:
    """The out folder and its parents that do not exist yet, deepest first."""
    wanted = out_path(out, name).absolute()
    return [p for p in (wanted, *wanted.parents) if not p.exists()]


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _out_folder(out: str | Path | None, name: str) -> Path:
    out_dir = out_path(out, name)
    if out_dir.exists() and not out_dir.is_dir():
        raise AdmtuneError(f"the out folder {out_dir} is a file, not a folder: give --out a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AdmtuneError(f"cannot create the out folder {out_dir}: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK):
        raise AdmtuneError(f"the out folder {out_dir} is not writable")
    free = shutil.disk_usage(out_dir).free
    if free < MIN_FREE_BYTES:
        raise AdmtuneError(
            f"the disk holding {out_dir} has {free / 2**20:.0f} MiB free; admtune needs at least "
            f"{MIN_FREE_BYTES // 2**20} MiB for the storage and the report"
        )
    return out_dir


def run_study(spec: StudySpec, *, workers: int = 1, storage: str | None = None,
              out: str | Path | None = None, device: str = "auto", events: Events | None = None,
              stop: StopFlag | None = None, command: str = "", report: bool = True, pdf: bool = True,
              heartbeat_interval: int | None = st.HEARTBEAT_INTERVAL,
              grace_period: int | None = st.GRACE_PERIOD, wait_timeout: float | None = 3600.0,
              progress: Callable[[str], None] | None = None) -> Outcome:
    """Run or resume a study; when every run has ended, write its report into the out folder.

    Progress: ``progress=print`` (any callable taking a line) gets one line per finished run;
    without it, nor ``events``, the same lines go to the ``admtune`` logger at INFO.

    ``workers > 1`` starts that many worker processes on this machine in all (this one is
    worker 0), sharing the study through its storage; ``device="cuda"`` spreads them over the
    GPUs. ``stop.request()`` (the CLI's Ctrl-C) reaches every worker; a SIGTERM to this process
    terminates the others too. Raises ``Interrupted`` after a second stop request aborted a run.
    A worker with nothing to do waits for the others' runs, and gives up with one sentence after
    ``wait_timeout`` seconds in which no run ended anywhere (None: wait as long as it takes).
    """
    group = None
    if events is None:
        events = LineEvents(progress)
    if workers != 1:
        from . import _workers
        from .devices import resolve_device

        devices, threads = _workers.plan_devices(device, workers)
        # bad input starts no worker and makes no out folder
        _check_inputs(spec, storage, resolve_device(devices[0]))
        device = devices[0]
        if device == "cpu":
            os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(threads)
        created = _missing_folders(out, spec.name)
        out_dir = _out_folder(out, spec.name)
        job = {"spec": spec.to_data(), "source": spec.source, "overrides": list(spec.overrides),
               "notes": list(spec.notes), "out": str(out_dir),
               "storage": storage or st.default_url(out_dir), "command": command, "pdf": pdf,
               "wait_timeout": wait_timeout}
        group = _workers.WorkerGroup.start(job, devices[1:], threads)
        out = out_dir
    stop = stop or StopFlag()
    with _worker_signals(group, stop):
        try:
            outcome = _run_here(spec, storage=storage, out=out, device=device, events=events,
                                stop=stop, command=command, report=report, pdf=pdf,
                                heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                wait_timeout=wait_timeout)
            # The other workers may still be running: stop requests keep reaching them meanwhile.
            if group is not None:
                outcome.failed_workers = group.wait()
        except BaseException as exc:
            if group is not None:
                group.stop()
                if isinstance(exc, AdmtuneError):  # e.g. a storage that cannot be opened
                    _remove_empty(created)
            raise
    return outcome


@contextlib.contextmanager
def _worker_signals(group: Any, stop: StopFlag) -> Iterator[None]:
    """While local workers run: stop requests are passed on to them, and a SIGTERM (kill, a job
    scheduler) takes them along before ending this process as SIGTERM would have."""
    if group is None:
        yield
        return
    stop.listeners.append(group.interrupt)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_sigterm(signum: int, frame: Any) -> None:
            group.terminate()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        stop.listeners.remove(group.interrupt)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run_here(spec: StudySpec, *, storage: str | None, out: str | Path | None, device: str,
              events: Events | None, stop: StopFlag, command: str, report: bool, pdf: bool,
              heartbeat_interval: int | None, grace_period: int | None,
              wait_timeout: float | None) -> Outcome:
    engine, out_dir = prepare_engine(
        spec, storage=storage, out=out, device=device, events=events, stop=stop, command=command,
        heartbeat_interval=heartbeat_interval, grace_period=grace_period, wait_timeout=wait_timeout,
    )
    with _storage_errors(engine.storage_url):
        try:
            # the resolved spec beside the storage from the start: the re-run command's input
            atomic_write(out_dir / "spec.toml", mask(spec.to_toml()))
            complete = engine.run()
            results = engine.results()
            reported = complete and report and engine.writes_report and engine.claim_report()
            if reported:
                engine.events.phase("report", 1, 0)
                write_report(results, out_dir, pdf=pdf, storage_url=engine.storage_url)
                engine.report_written()
                engine.events.phase("report", 1, 1)
        except BaseException:
            # A study that stops on an error still leaves runs.csv, with every failure's reason.
            with contextlib.suppress(Exception):
                write_runs_csv(engine.results(), out_dir)
            raise
        finally:
            engine.close()
        if report and not complete:
            write_runs_csv(results, out_dir)
    return Outcome(complete=complete, results=results, out_dir=out_dir,
                   storage_url=engine.storage_url, reported=reported)


def rebuild_report(name_or_spec: str | StudySpec, *, out: str | Path | None = None,
                   storage: str | None = None, pdf: bool = True) -> Path:
    """Rebuild a study's report from its storage alone (no training); returns the out folder.

    ``name_or_spec`` is the stored study's name, a spec path (its ``name`` is the study's), or a
    spec; the storage defaults to ``<out>/study.db`` with ``out`` defaulting to reports/NAME.
    """
    name = _study_name(name_or_spec)
    out_dir = out_path(out, name)
    url = storage or st.default_url(out_dir)
    if storage is None and not (out_dir / "study.db").is_file():
        raise StorageError(_no_stored_study(name_or_spec, name, out_dir))
    if storage is not None:
        st.require_stored(url)
    results = _load_stored(url, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_report(results, out_dir, pdf=pdf, storage_url=url)
    return out_dir


def _load_stored(url: str, name: str) -> StudyResults:
    """Study ``name``'s results, read from the storage at ``url`` (opened and closed here)."""
    from .study.records import load_results

    with _storage_errors(url):
        opened = st.open_storage(url, heartbeat_interval=None)
        try:
            return load_results(opened, name)
        finally:
            st.close_storage(opened)


def _no_stored_study(name_or_spec: str | StudySpec, name: str, out_dir: Path) -> str:
    """Why there is nothing to rebuild, and the command that helps: a near miss of a stored study
    or a known spec (a typo), else the study to run first."""
    from .study.spec import closest

    what = name_or_spec if isinstance(name_or_spec, str) else name
    found = f"no stored study at {out_dir / 'study.db'}"
    stored = {p.parent.name for p in out_dir.parent.glob("*/study.db")}
    close = closest(name, (stored | set(spec_paths())) - {name})
    if close:
        return (f"{found}; did you mean {close!r}? (admtune report {close}, or admtune study "
                f"{close} to run it)")
    if isinstance(name_or_spec, StudySpec) or what.endswith(".toml") or what in spec_paths():
        where = "" if out_dir == out_path(None, name) else f" --out {out_dir}"
        return f"{found}; run `admtune study {what}{where}` first"
    return f"{found}, and {what!r} is not a known study (see admtune list)"


def serve_storage_proxy(storage: str, *, host: str = "localhost", port: int = 13000,
                        on_ready: Any = None) -> None:
    """Serve ``storage`` (SQLite or PostgreSQL) to workers over gRPC until interrupted; workers
    then use ``--storage grpc://HOST:PORT``. See admtune.study.storage.serve_proxy."""
    st.serve_proxy(storage, host=host, port=port, on_ready=on_ready)


def _study_name(name_or_spec: str | StudySpec) -> str:
    if isinstance(name_or_spec, StudySpec):
        return name_or_spec.name
    if name_or_spec.endswith(".toml"):
        # The study is stored under the spec's own name, whatever the file is called.
        return load(str(resolve(name_or_spec))).name
    return name_or_spec


def write_report(results: StudyResults, out_dir: str | Path, pdf: bool = True,
                 storage_url: str | None = None) -> dict[str, Any]:
    """The report: summary.json, runs.csv, spec.toml, report.html and report.pdf, each written
    atomically; ``storage_url`` (default ``out_dir/study.db``) goes into its rebuild command."""
    from .report import write_report as write

    if storage_url == st.default_url(Path(out_dir)):
        storage_url = None  # the report's commands then need no --storage
    return write(results, Path(out_dir), pdf=pdf, storage_url=storage_url)


def workload_needs(workload: str) -> str:
    """What a study of ``workload`` needs beyond admtune and a CPU ("GPU, CIFAR-10 data"), "—"
    for nothing, without importing the workload (``admtune list`` stays fast)."""
    from .workloads import NEEDS

    return NEEDS.get(workload, "—" if ":" not in workload else "see its workload")


def write_runs_csv(results: StudyResults, out_dir: str | Path) -> Path:
    """runs.csv alone (a study stopped before its end has no report yet)."""
    path = Path(out_dir) / "runs.csv"
    atomic_write(path, results.frame().to_csv(index=False))
    return path


def _raised_in_journal(exc: BaseException) -> bool:
    """Whether ``exc`` came from Optuna reading a journal file (not from some other code)."""
    import traceback

    return any(Path(f.filename).parts[-2:] == ("journal", "_file.py")
               for f in traceback.extract_tb(exc.__traceback__))


@contextlib.contextmanager
def _storage_errors(url: str) -> Iterator[None]:
    """A storage or disk failure mid-study becomes one sentence (what is stored stays resumable).
    Optuna wraps a failed commit in StorageInternalError; the database's own words are its cause."""
    import optuna
    import sqlalchemy.exc

    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
        cause = cause if cause is not None else exc
        reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0][:200]
        if "disk" in reason and "full" in reason:
            raise StorageError(f"the disk holding the storage is full ({reason}); free space and "
                               "run the same command to resume") from None
        raise StorageError(f"the storage {mask(url)!r} failed: {mask(reason)}; every run that "
                           "ended before is kept: run the same command to resume once it works "
                           "again") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise AdmtuneError(f"no space left on the device while writing {exc.filename or 'results'};"
                               " free space and run the same command to resume") from None
        journal = st.journal_path(url)
        if journal is not None and exc.filename and str(exc.filename).startswith(str(journal)):
            # A journal file (or its lock file beside it) that went away or became unwritable.
            raise StorageError(f"the storage {url!r} failed: {exc.strerror or exc} ({exc.filename}); "
                               "every run that ended before is kept: run the same command to "
                               "resume once it works again") from None
        raise
    except ValueError as exc:
        if st.journal_path(url) is None or not _raised_in_journal(exc):
            raise
        # Optuna reads a line that is not JSON as the end of the journal until a later line follows.
        raise StorageError(f"the journal {url!r} holds a line that is not valid JSON ({exc}): a "
                           "write was cut short (a crash, a full disk); every line before it is "
                           "intact: repair the file (see README, Scale out) and run the same "
                           "command to resume") from None
    except Exception as exc:
        if not type(exc).__module__.startswith("grpc"):
            raise
        # The storage proxy went away or failed (grpc.RpcError: UNAVAILABLE, INTERNAL, …).
        code = getattr(exc, "code", lambda: None)()
        what = getattr(code, "name", "error")
        detail = str(getattr(exc, "details", lambda: "")() or "").splitlines()[:1]
        raise StorageError(f"the storage proxy {mask(url)!r} failed ({what}"
                           f"{': ' + detail[0][:200] if detail else ''}); every run that ended "
                           "before is kept: run the same command to resume once it answers "
                           "again") from None


__all__ = ["Events", "Interrupted", "LineEvents", "Outcome", "StopFlag", "StudySpec", "check_device",
           "list_studies", "workload_needs",
           "serve_storage_proxy",
           "load_spec",
           "prepare_engine", "rebuild_report", "run_study", "write_report", "write_runs_csv"]


# ----------------------------------------------------------------------------------------------
# Suites: one answer across many studies


@dataclass
class SuiteOutcome:
    """How a call of :func:`run_suite` ended."""

    complete: bool                      # every study of the suite has ended and was read back
    out_dir: Path                       # reports/suites/NAME (suite.json, suite.md, suite.html, suite.pdf)
    suite: dict[str, Any] | None        # the content of suite.json, when written
    outcomes: list[Outcome] = field(default_factory=list)  # the studies run (or resumed) here


def list_suites() -> dict[str, Path]:
    """Every suite visible by name: ./studies/suites/*.toml first, then the packaged ones."""
    from .study.suite import suite_paths

    return suite_paths()


def load_suite(name_or_path: str):
    """A validated suite spec: ``studies/suites/NAME.toml`` (local, then bundled) or a path."""
    from .study.suite import load_suite as load_suite_file

    return load_suite_file(name_or_path)


def suite_out(name: str, *, root: str | Path = "reports", out: str | Path | None = None) -> Path:
    """Where a suite's report goes: ``out``, or ROOT/suites/NAME."""
    return Path(out) if out is not None else Path(root) / "suites" / name


def run_suite(suite: Any, *, root: str | Path = "reports", storage: str | None = None,
              workers: int = 1, device: str = "auto", out: str | Path | None = None,
              pdf: bool = True, command: str = "", stop: StopFlag | None = None,
              events: Callable[[StudySpec], Events] | None = None,
              progress: Callable[[str], None] | None = None,
              wait_timeout: float | None = 3600.0) -> SuiteOutcome:
    """Run or resume every study of ``suite`` (a :class:`~admtune.study.suite.SuiteSpec` or a
    name), each in ROOT/STUDY as ``admtune study`` would (``storage``, ``workers`` and ``device``
    shared by all), then write the suite report from the stored studies alone.

    Every study's inputs (workload, data, device, storage URL) are checked before the first one
    trains, so a suite that cannot finish does not start. ``events(spec)`` gives each study its
    progress display; ``progress`` as in :func:`run_study`. Returns early, incomplete, when a
    study ended without finishing (another worker is still running it, or a stop request).
    """
    from .devices import resolve_device

    if isinstance(suite, str):
        suite = load_suite(suite)
    dev = resolve_device(device)
    for spec in suite.studies:
        _check_inputs(spec, storage, dev)
    stop = stop or StopFlag()
    outcomes: list[Outcome] = []
    for spec in suite.studies:
        if stop.after_run:
            break
        study_dir = Path(root) / spec.name
        outcome = run_study(spec, workers=workers, storage=storage, out=study_dir, device=device,
                            events=events(spec) if events is not None else None, stop=stop,
                            command=command, pdf=pdf, progress=progress, wait_timeout=wait_timeout)
        outcomes.append(outcome)
        if not outcome.complete:
            return SuiteOutcome(False, suite_out(suite.name, root=root, out=out), None, outcomes)
    if len(outcomes) < len(suite.studies):
        return SuiteOutcome(False, suite_out(suite.name, root=root, out=out), None, outcomes)
    out_dir, summary = rebuild_suite(suite, root=root, storage=storage, out=out, pdf=pdf)
    return SuiteOutcome(True, out_dir, summary, outcomes)


def _read_study(name: str, out_dir: Path, storage: str | None, origin: str):
    """A finished study's results, read from its storage; one sentence when it is not there or
    not finished."""
    from .report.suite.analysis import StoredStudy

    url = storage or st.default_url(out_dir)
    if storage is None and not (out_dir / "study.db").is_file():
        raise StorageError(f"{origin}: no stored study at {out_dir / 'study.db'} (run it with "
                           f"`admtune study {name} --out {out_dir}`, or give --storage)")
    if storage is not None:
        st.require_stored(url)
    results = _load_stored(url, name)
    if not results.complete:
        from .report.text import incomplete_text

        raise AdmtuneError(f"{origin}: study {name!r} has not finished "
                           f"({incomplete_text(results.progress) or 'incomplete'}); a suite is computed over "
                           f"finished studies only: resume it with `admtune study {name} --out "
                           f"{out_dir}`")
    return StoredStudy(results, out_dir, url if storage is not None else str(out_dir / "study.db"))


def rebuild_suite(suite: Any, *, root: str | Path = "reports", storage: str | None = None,
                  out: str | Path | None = None, pdf: bool = True) -> tuple[Path, dict[str, Any]]:
    """The suite report of ``suite``'s stored studies (ROOT/STUDY, or ``storage``), no training;
    returns (out folder, the content of suite.json)."""
    if isinstance(suite, str):
        suite = load_suite(suite)
    stored = [_read_study(spec.name, Path(root) / spec.name, storage, f"suite {suite.name}")
              for spec in suite.studies]
    target = suite_out(suite.name, root=root, out=out)
    summary = write_suite_report(suite.name, stored, target, alpha=suite.alpha,
                                 correction=suite.correction, description=suite.description,
                                 source=suite.source, pdf=pdf)
    return target, summary


def suite_from_folders(folders: list[str | Path], *, name: str = "suite",
                       storage: str | None = None, root: str | Path = "reports",
                       out: str | Path | None = None, alpha: float = 0.05,
                       correction: str = "holm", pdf: bool = True) -> tuple[Path, dict[str, Any]]:
    """The suite report over finished studies' out folders (each with its spec.toml, and its
    study.db unless ``storage`` holds them all); never trains. Returns (out folder, suite.json)."""
    from .study.spec import NAME_RE

    if not NAME_RE.match(name):
        raise SpecError(f"suite name {name!r} is not valid: use letters, digits, '-', '_' or '.'")
    if not folders:
        raise SpecError("--from needs at least one out folder of a finished study")
    stored = []
    seen: dict[str, Path] = {}
    for folder in folders:
        d = Path(folder)
        if not d.is_dir():
            raise SpecError(f"{d} is not a folder (--from takes the out folders of finished studies)")
        spec_file = d / "spec.toml"
        if not spec_file.is_file():
            raise SpecError(f"{d} holds no spec.toml: it is not the out folder of an admtune study")
        study = load(str(spec_file)).name
        if study in seen:
            raise SpecError(f"{seen[study]} and {d} both hold study {study!r}: give each study once")
        seen[study] = d
        stored.append(_read_study(study, d, storage, str(d)))
    target = suite_out(name, root=root, out=out)
    summary = write_suite_report(name, stored, target, alpha=alpha, correction=correction,
                                 source="--from " + " ".join(str(f) for f in folders), pdf=pdf)
    return target, summary


def write_suite_report(name: str, studies: list[Any], out_dir: str | Path, *, alpha: float = 0.05,
                       correction: str = "holm", description: str = "", source: str = "",
                       pdf: bool = True) -> dict[str, Any]:
    """suite.json, suite.md, suite.html (and suite.pdf) of stored studies into ``out_dir``, atomically."""
    from .report.suite import write_suite

    return write_suite(name, studies, Path(out_dir), alpha=alpha, correction=correction,
                       description=description, source=source, pdf=pdf)


__all__ += ["SuiteOutcome", "load_suite", "rebuild_suite", "run_suite", "suite_from_folders",
            "suite_out", "write_suite_report"]
