"""The ``admtune`` command line: a thin Typer layer over ``admtune.api`` (plus ``admtune.check``,
the gate, and the report's verdict table for the terminal). Imports stay inside the commands so
that ``admtune --help`` and ``admtune list`` start fast."""

from __future__ import annotations

import gc
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__, _gc
from .errors import AdmtuneError

app = typer.Typer(
    name="admtune",
    help="Does adaptive memory (AdM) momentum, untuned, match or beat momentum whose β was tuned?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"admtune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    pass


# --- shared options ----------------------------------------------------------------------------
TrialsOpt = Annotated[int | None, typer.Option("--trials", help="Optuna trials per baseline (total, across resumes and workers).")]
SeedsOpt = Annotated[int | None, typer.Option("--seeds", help="Fresh evaluation seeds per arm.")]
StorageOpt = Annotated[str | None, typer.Option("--storage", help="Optuna storage URL: sqlite:///…, postgresql://…, journal:///shared/study.log (a file on a shared filesystem), grpc://HOST:PORT (admtune storage-proxy); default: sqlite:///<out>/study.db.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Out folder (default: reports/NAME).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a spec key by dotted path, e.g. --set train.epochs=1 (repeatable).")]
PdfOpt = Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also render report.pdf.")]
WaitOpt = Annotated[float, typer.Option("--wait-timeout", help="Seconds an idle worker waits for runs of other workers, none of them ending, before it gives up (0: no limit).")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", help="Workers on this machine sharing the study; with --device cuda they spread over the GPUs.")]
DetailOpt = Annotated[bool, typer.Option("--detail", help="Also print the detail table (p-values, divergences, trials to match, seeds to resolve), however wide.")]
# Without a terminal (CI logs, nohup) a line per finished run, at most this often (seconds).
LINE_EVERY_S = 3.0


class _ProgressEvents:
    """Draws the engine's phases as Rich progress bars; without a terminal, plain lines (a finished
    run every few seconds, each phase's end) so that a log is never silent for a whole stage."""

    def __init__(self, progress: Progress, quiet: bool = False):
        from .api import LineEvents

        self.progress = progress
        self.tasks: dict[str, Any] = {}
        self.current = progress.add_task("", total=None, visible=False)
        self._last_wait: str | None = None
        self._reasons: set[str | None] = set()
        self.lines = None if quiet or not progress.disable else LineEvents(
            lambda line: progress.console.print(escape(line), highlight=False, soft_wrap=True),
            every=LINE_EVERY_S)

    def phase(self, name: str, total: int, done: int) -> None:
        if self.lines is not None and done < total:  # a phase's end has its own line below
            self.lines.phase(name, total, done)
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total)
        elif self.progress.disable and done >= total and \
                self.progress.tasks[self.tasks[name]].completed < total:
            # No live bars in logs and pipes: one line per finished phase instead.
            elapsed = self.progress.tasks[self.tasks[name]].elapsed or 0.0
            self.progress.console.print(f"{escape(name)}: {done}/{total} done in {elapsed:.1f} s")
        self.progress.update(self.tasks[name], total=total, completed=done)

    def run_started(self, label: str) -> None:
        self.progress.update(self.current, description=f"[dim]{escape(label)}", visible=True)

    def run_finished(self, label: str, status: str, value: float | None, wall_s: float,
                     reason: str | None = None) -> None:
        if self.lines is not None:
            self.lines.run_finished(label, status, value, wall_s)  # reasons: printed below
        if status in ("diverged", "failed"):
            shown = {"diverged": "[yellow]diverged", "failed": "[red]failed"}[status]
            # The reason the first time it appears (nine identical crashes need one explanation).
            why = f": {escape(reason)}" if reason and reason not in self._reasons else ""
            self._reasons.add(reason)
            self.progress.console.print(f"  {escape(label)}: {shown}[/] ({wall_s:.1f} s){why}",
                                        highlight=False, soft_wrap=True)
        self.progress.update(self.current, visible=False)

    def waiting(self, reason: str) -> None:
        if self.progress.disable and reason != self._last_wait:
            # No live line in logs and pipes: say once what this worker waits for.
            self.progress.console.print(escape(reason))
        self._last_wait = reason
        self.progress.update(self.current, description=f"[dim]{escape(reason)}", visible=True)


def _fail(exc: AdmtuneError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=exc.exit_code)


def _command_line() -> str:
    """The command that reproduces this run, as recorded in the storage and the report, with
    credentials masked."""
    from .util import mask

    return "admtune " + " ".join(shlex.quote(mask(a)) for a in sys.argv[1:])


def _progress(quiet: bool = False) -> Progress:
    # Live bars only on a terminal, redrawn 4 times a second: Rich redraws from a thread that
    # competes with training for the GIL (10 redraws a second cost ~12 % of the quick study).
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, disable=quiet or not err_console.is_terminal, transient=False,
        refresh_per_second=4,
    )


def _run_study(name: str, trials: int | None, seeds: int | None, storage: str | None,
               device: str, out: Path | None, sets: list[str] | None, pdf: bool,
               quiet: bool = False, workers: int = 1, wait_timeout: float = 3600.0):
    _gc.pause()  # until the first run has imported what training needs: see admtune._gc
    try:
        return _run_study_paused(name, trials, seeds, storage, device, out, sets, pdf, quiet, workers,
                                 wait_timeout)
    finally:
        _gc.resume()


def _run_study_paused(name: str, trials: int | None, seeds: int | None, storage: str | None,
                      device: str, out: Path | None, sets: list[str] | None, pdf: bool,
                      quiet: bool, workers: int, wait_timeout: float):
    from . import api
    from .errors import SpecError
    from .util import mask

    if not wait_timeout >= 0:  # NaN too: an idle worker would wait for ever
        raise SpecError(f"--wait-timeout must be a number of seconds ≥ 0 (0: no limit), got {wait_timeout}")
    s = api.load_spec(name, sets or [], trials=trials, seeds=seeds)
    for note in s.notes:  # e.g. an epochs override that replaced the spec's steps
        err_console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    stop = api.StopFlag()

    def on_sigint(signum: int, frame: Any) -> None:
        stop.request()
        if stop.now:
            err_console.print("[yellow]aborting the current run (it is recorded as interrupted)[/]")
        else:
            err_console.print("[yellow]stopping after the current run; Ctrl-C again to abort it[/]")

    previous = signal.signal(signal.SIGINT, on_sigint)
    progress = _progress(quiet)
    try:
        with progress:
            outcome = api.run_study(
                s, workers=workers, storage=storage, out=out, device=device,
                events=_ProgressEvents(progress, quiet), stop=stop, command=_command_line(), pdf=pdf,
                wait_timeout=wait_timeout if wait_timeout > 0 else None,
            )
    except api.Interrupted:
        err_console.print("[yellow]interrupted;[/] run the same command to resume")
        raise typer.Exit(code=130) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    for index, dev, rc, last in outcome.failed_workers:
        err_console.print(f"[bold red]error:[/] worker {index} ({dev}) exited with {rc}: "
                          f"{escape(last)}", highlight=False, soft_wrap=True)
    if outcome.failed_workers:
        raise typer.Exit(code=1)
    if not outcome.complete:
        err_console.print(
            f"stopped before the study finished; run the same command to resume "
            f"(storage {mask(outcome.storage_url)})"
        )
        raise typer.Exit(code=130)
    return outcome


def _print_summary(out_dir: Path, detail: bool = False) -> dict[str, Any] | None:
    """Print the answer (one line per baseline), the detail table where it fits the width (or
    when asked for), and the report's files; return the summary (None: no report)."""
    summary_path = out_dir / "summary.json"
    summary = None
    if summary_path.is_file():
        from rich.measure import Measurement

        from .report import verdict_lines, verdict_table

        summary = json.loads(summary_path.read_text())
        for line in verdict_lines(summary, console.width):
            console.print(line, highlight=False, soft_wrap=True)
        table = verdict_table(summary)
        # measured unbounded: within the console's width a table always "fits", by wrapping
        needed = Measurement.get(console, console.options.update(max_width=10_000), table).maximum
        if detail or needed <= console.width:
            # asked for on a narrow screen: the terminal wraps it; a log gets it whole
            out = console if console.is_terminal or needed <= console.width else Console(width=needed)
            out.print(table)
        else:
            console.print(f"[dim]detail table: --detail ({needed} columns), or the report[/]",
                          highlight=False)
    for f in ("report.html", "report.pdf", "summary.json", "runs.csv", "spec.toml"):
        if (out_dir / f).is_file():
            console.print(f"  [dim]{escape(str(out_dir / f))}[/]", highlight=False, soft_wrap=True)
    return summary


@app.command()
def study(
    name: Annotated[str, typer.Argument(help="A study name (see `admtune list`) or a path to a .toml spec.")],
    trials: TrialsOpt = None, seeds: SeedsOpt = None, storage: StorageOpt = None,
    device: DeviceOpt = "auto", out: OutOpt = None, set_: SetOpt = None, pdf: PdfOpt = True,
    workers: WorkersOpt = 1, wait_timeout: WaitOpt = 3600.0, detail: DetailOpt = False,
) -> None:
    """Run or resume a study, then write its report (summary.json, report.html, report.pdf, runs.csv, spec.toml)."""
    try:
        outcome = _run_study(name, trials, seeds, storage, device, out, set_, pdf, workers=workers,
                             wait_timeout=wait_timeout)
    except AdmtuneError as exc:
        _fail(exc)
    if not outcome.reported and (outcome.out_dir / "summary.json").is_file() and workers > 1:
        _print_summary(outcome.out_dir, detail)  # another worker of this command ended the last run
        return
    if not outcome.reported:
        console.print("The study is complete; the worker that ended its last run writes the report "
                      f"(or: admtune report {name} --out {outcome.out_dir}).")
        return
    _print_summary(outcome.out_dir, detail)


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="The study name (as stored) or its spec path.")],
    out: OutOpt = None, storage: StorageOpt = None, pdf: PdfOpt = True, detail: DetailOpt = False,
) -> None:
    """Rebuild a study's report from its storage alone (no training)."""
    from . import api

    try:
        out_dir = api.rebuild_report(name, out=out, storage=storage, pdf=pdf)
    except AdmtuneError as exc:
        _fail(exc)
    summary = _print_summary(out_dir, detail) or {}
    if summary.get("complete") is False:
        from .report.text import incomplete_text

        err_console.print(f"[yellow]{escape(incomplete_text(summary.get('progress')))}[/]: the "
                          "report is written, its verdicts are interim (exit code 3)",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(code=3)


def _run_suite(name: str, root: Path, storage: str | None, device: str, out: Path | None,
               pdf: bool, workers: int) -> tuple[Path, dict[str, Any]]:
    """Run or resume a suite's studies, then its report; exit 130 when stopped before the end."""
    from . import api

    spec = api.load_suite(name)
    stop = api.StopFlag()
    progress = _progress()
    started: list[str] = []

    def events(study: Any) -> _ProgressEvents:
        # One header per study, then the study's own bars (on a terminal) or paced lines; the
        # bars of finished studies stay on screen as their record.
        started.append(study.name)
        about = f" [dim]({escape(study.description)})[/]" if study.description else ""
        progress.console.print(f"[bold]study {len(started)}/{len(spec.studies)}: "
                               f"{escape(study.name)}[/]{about}", highlight=False, soft_wrap=True)
        return _ProgressEvents(progress)

    previous = signal.signal(signal.SIGINT, lambda *_: stop.request())
    try:
        with progress:
            outcome = api.run_suite(spec, root=root, storage=storage, workers=workers,
                                    device=device, out=out, pdf=pdf, stop=stop,
                                    command=_command_line(), events=events)
    except api.Interrupted:
        err_console.print("[yellow]interrupted;[/] run the same command to resume")
        raise typer.Exit(code=130) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    if not outcome.complete:
        err_console.print("stopped before every study of the suite finished; run the same "
                          "command to resume")
        raise typer.Exit(code=130)
    return outcome.out_dir, outcome.suite


@app.command()
def suite(
    names: Annotated[list[str], typer.Argument(
        help="A suite name (studies/suites/NAME.toml, see `admtune list`) or a suite file; with "
             "--from: the out folders of finished studies.")],
    from_: Annotated[bool, typer.Option("--from", help="The arguments are out folders of finished "
                                        "studies: build the suite report from them, never train.")] = False,
    name: Annotated[str, typer.Option("--name", help="With --from: the suite's name (its report "
                                      "goes to ROOT/suites/NAME).")] = "suite",
    root: Annotated[Path, typer.Option("--root", help="Where the suite's studies live (ROOT/STUDY) "
                                       "and its report goes (ROOT/suites/NAME).")] = Path("reports"),
    storage: StorageOpt = None, device: DeviceOpt = "auto", out: OutOpt = None,
    pdf: PdfOpt = True, workers: WorkersOpt = 1,
) -> None:
    """Run or resume every study of a suite, then write one report across them (suite.json, suite.md, suite.html, suite.pdf)."""
    from . import api
    from .report.suite import suite_lines

    try:
        if from_:
            out_dir, summary = api.suite_from_folders(names, name=name, storage=storage, root=root,
                                                      out=out, pdf=pdf)
        else:
            if len(names) != 1:
                raise AdmtuneError(f"give one suite name, not {len(names)} (out folders of "
                                   "finished studies go with --from)")
            out_dir, summary = _run_suite(names[0], root, storage, device, out, pdf, workers)
    except AdmtuneError as exc:
        _fail(exc)
    for line in suite_lines(summary, console.width):
        console.print(line, highlight=False, soft_wrap=True)
    for f in ("suite.html", "suite.pdf", "suite.json", "suite.md"):
        if (out_dir / f).is_file():
            console.print(f"  [dim]{escape(str(out_dir / f))}[/]", highlight=False, soft_wrap=True)


@app.command("storage-proxy")
def storage_proxy(
    storage: Annotated[str, typer.Option("--storage", help="The database to serve: sqlite:///… or postgresql://….")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface; the proxy has no authentication).")] = "localhost",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 13000,
) -> None:
    """Serve a study's database to many workers over gRPC (Optuna's storage proxy): one process
    holds the database connections; workers use --storage grpc://HOST:PORT."""
    from . import api
    from .util import mask

    try:
        api.serve_storage_proxy(storage, host=host, port=port, on_ready=lambda: console.print(
            f"storage proxy for {mask(storage)} on {host}:{port}; workers: --storage "
            f"grpc://{host if host not in ('0.0.0.0', '::') else 'THIS-HOST'}:{port} (Ctrl-C stops)",
            highlight=False, soft_wrap=True))
    except AdmtuneError as exc:
        _fail(exc)


@app.command("list")
def list_() -> None:
    """Show the studies and the suites: ./studies first, then the ones shipped with admtune."""
    from . import api
    wide = console.width >= 120  # the workload column only where the description keeps its room
    table = Table(title="admtune studies", title_justify="left", box=None, padding=(0, 1),
                  caption="needs: what a study needs beyond admtune and a CPU (a GPU study runs "
                          "on a CPU too, slowly); data: see README, Running the real studies",
                  caption_justify="left")
    table.add_column("study", style="bold", no_wrap=True)
    if wide:
        table.add_column("workload", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    table.add_column("needs", no_wrap=True)
    table.add_column("description", ratio=1)
    for stem, path in sorted(api.list_studies().items()):
        try:
            s = api.load_spec(str(path))
            needs = api.workload_needs(s.workload)
            row = [stem, escape(s.workload), s.metric, escape(needs), escape(s.description)]
        except AdmtuneError as exc:
            row = [stem, "[red]invalid[/]", "", "", escape(str(exc))]
        table.add_row(*(row if wide else row[:1] + row[2:]))
    console.print(table)
    suites = sorted(api.list_suites().items())
    if not suites:
        return
    table = Table(title="admtune suites", title_justify="left", box=None, padding=(0, 1),
                  caption="admtune suite NAME runs or resumes its studies, then writes one "
                          "report across them", caption_justify="left")
    table.add_column("suite", style="bold", no_wrap=True)
    table.add_column("studies", ratio=1)
    table.add_column("description", ratio=1)
    for stem, path in suites:
        try:
            suite = api.load_suite(str(path))
            row = [stem, escape(", ".join(s.name for s in suite.studies)), escape(suite.description)]
        except AdmtuneError as exc:
            row = [stem, "[red]invalid[/]", escape(str(exc))]
        table.add_row(*row)
    console.print()
    console.print(table)


@app.command()
def bench(
    device: DeviceOpt = "cpu",
    repeats: Annotated[int, typer.Option("--repeats", help="Timed steps per optimizer.")] = 30,
    protocol: Annotated[str, typer.Option("--protocol", help=(
        "interleaved (one step of each in turn), blocks, or train (the step inside "
        "ResNet-18 training)."))] = "interleaved",
    rounds: Annotated[int, typer.Option("--rounds", help="Whole measurements; medians reported.")] = 1,
) -> None:
    """Time AdMSGD / AdMAdamW against torch's SGD / AdamW on a ResNet-18 parameter set."""
    from . import api
    from . import bench as bench_mod

    try:
        api.check_device(device)
    except AdmtuneError as exc:
        _fail(exc)
    if protocol not in bench_mod.PROTOCOLS:
        _fail(AdmtuneError(f"--protocol must be one of {', '.join(bench_mod.PROTOCOLS)}, "
                           f"got {protocol!r}"))
    if repeats < 1 or rounds < 1:
        _fail(AdmtuneError(f"--repeats and --rounds must be at least 1, got {repeats} and {rounds}"))
    raise typer.Exit(code=bench_mod.main(["--device", device, "--repeats", str(repeats),
                                          "--protocol", protocol, "--rounds", str(rounds)]) or 0)


@app.command()
def check(
    name: Annotated[str, typer.Argument(help="A study name or spec path; with a suite's "
                                        "expectations file, a suite name or suite file.")],
    expect: Annotated[Path, typer.Option("--expect", help="Expectations file (TOML): a study's "
                                         "([sgd], [adamw]) or a suite's ([suite], [studies.NAME]).")],
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    from_: Annotated[Path | None, typer.Option("--from", help="Read this finished out folder "
                                               "(a study's, or a suite's reports/suites/NAME); do not train.")] = None,
    trials: TrialsOpt = None, seeds: SeedsOpt = None, storage: StorageOpt = None,
    device: DeviceOpt = "auto", out: OutOpt = None, set_: SetOpt = None, pdf: PdfOpt = True,
    root: Annotated[Path, typer.Option("--root", help="For a suite: where its studies live "
                                       "(ROOT/STUDY) and its report goes.")] = Path("reports"),
    workers: WorkersOpt = 1,
) -> None:
    """Run (or read) a study or a suite and fail when AdM no longer meets the expectations: exit 0, 1 or 2."""
    from . import check as check_mod
    from .errors import SpecError

    try:
        expectations = check_mod.load_expectations(expect)
        if isinstance(expectations, check_mod.SuiteExpectations):
            given = [flag for flag, v in (("--trials", trials), ("--seeds", seeds),
                                          ("--set", set_)) if v]
            if given:
                raise SpecError(f"{given[0]} does not apply to a suite: a suite's studies take "
                                "their overrides from its file (studies/suites/NAME.toml)")
            if from_ is not None:
                summary = check_mod.load_suite_summary(from_)
            else:
                _, summary = _run_suite(name, root, storage, device, out, pdf, workers)
        elif from_ is not None:
            summary = check_mod.load_summary(from_)
        else:
            outcome = _run_study(name, trials, seeds, storage, device, out, set_, pdf,
                                 workers=workers)
            summary = check_mod.load_summary(outcome.out_dir)
    except AdmtuneError as exc:
        if junit is not None:
            check_mod.write_junit_error(junit, f"admtune.check.{Path(name).stem}", str(exc))
        _fail(exc)
    raise typer.Exit(code=check_mod.run_check(summary, expectations, junit, console=console))


# Typer ships its own copy of click: its exception classes are reached through typer's own names.
_CLICK_ERRORS = {c.__name__: c for c in typer.BadParameter.__mro__}
UsageError = _CLICK_ERRORS["UsageError"]


def _usage_sentence(exc: Exception) -> str:
    """A usage error as one sentence naming the flag and the bad value, with where to read more."""
    msg = exc.format_message().strip().rstrip(".")
    param = getattr(exc, "param", None)
    opts = [o for o in (getattr(param, "opts", None) or []) if o.startswith("--")]
    raw = _raw_value(opts) if opts else None
    # typer words a failed conversion as pydantic does ("Input should be a valid integer, …")
    kind = ("integer" if "valid integer" in msg else "number" if "valid number" in msg
            else "")
    if raw is not None and kind:
        msg = f"{opts[0]} expects {'a whole number' if kind == 'integer' else 'a number'}, not {raw!r}"
        try:
            as_float = float(raw)
            if kind == "integer" and as_float.is_integer():
                msg += f" (write {int(as_float)})"
        except ValueError:
            pass
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return msg + where


def _raw_value(opts: list[str]) -> str | None:
    """What the user typed for an option, read back from the command line."""
    args = sys.argv[1:]
    for i, a in enumerate(args):
        for opt in opts:
            if a == opt and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(opt + "="):
                return a[len(opt) + 1:]
    return None


def main() -> None:
    code: int = 0
    try:
        rv = app(standalone_mode=False)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `admtune`: typer showed the help
            code = 2
        else:
            err_console.print(f"[bold red]error:[/] {escape(_usage_sentence(exc))}",
                              highlight=False, soft_wrap=True)
            code = 2
    except AdmtuneError as exc:  # anything that escaped a command: still one sentence, exit 2
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        # Ctrl-C before the study's own handler was set (imports, spec parsing) or after it was
        # removed (the verdict table): a stop like any other, not a death by signal (rc −2)
        err_console.print("[yellow]interrupted;[/] run the same command to resume")
        code = 130
    finally:
        # From here on a further Ctrl-C must not replace the exit code with a signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Interpreter shutdown garbage-collects torch, dynamo, sympy, pandas … object by object:
        # about 1 s of a 7 s quick study. Frozen objects are left to the OS, which frees them at once.
        gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    main()
