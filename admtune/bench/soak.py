"""Benchmark: do workers leak? RSS and open file descriptors of every worker over a long study.

    python -m admtune.bench.soak [--study quick] [--workers 2] [--trials 200] [--seeds 40]
                                 [--storage URL] [--interval 1.0]

Starts ``admtune study STUDY --workers N`` on a fresh storage (SQLite in a temporary folder unless
--storage names a server) and samples, every --interval seconds, each worker process's resident
memory (VmRSS) and its open file descriptors from /proc (Linux). A worker leaks when these grow with
the number of runs rather than level off after the first few (imports, the first compiled kernels):
the table compares the level after the first fifth of the runs with the level at the last run
(the report is drawn after it, by one worker), and the fitted slope between the two (per 100
samples).

A benchmark, not a test: it prints figures for README; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (the study's command and its workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


def _sample(pid: int) -> tuple[float, int] | None:
    """(RSS in MiB, open file descriptors) of one process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None
    return rss, fds


def _slope(ys: list[float]) -> float:
    """Least-squares slope per 100 samples (statistics.linear_regression)."""
    if len(ys) < 3:
        return float("nan")
    return statistics.linear_regression(range(len(ys)), ys).slope * 100


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m admtune.bench.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="quick")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--storage", default=None)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--csv", default=None, help="also write every sample here (pid, s, MiB, fds)")
    args = ap.parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "soak"
        cmd = [sys.executable, "-m", "admtune.cli", "study", args.study, "--device", "cpu",
               "--no-pdf", "--out", str(out),
               "--workers", str(args.workers), "--trials", str(args.trials),
               "--seeds", str(args.seeds)]
        if args.storage:
            # a fresh study on the server: a unique name keeps earlier soaks apart
            cmd += ["--storage", args.storage, "--set", f"name=soak-{uuid.uuid4().hex[:8]}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        runs_end: list[float] = []

        def watch() -> None:
            # without a terminal the command prints a line as each stage ends; after
            # "evaluate: …" only the report is left, drawn by one worker: not a leak
            for line in proc.stderr:
                if line.startswith("evaluate:") and not runs_end:
                    runs_end.append(time.monotonic() - t0)

        threading.Thread(target=watch, daemon=True).start()
        series: dict[int, list[tuple[float, float, int]]] = {}
        while proc.poll() is None:
            for pid in [proc.pid, *_children(proc.pid)]:
                s = _sample(pid)
                if s is not None:
                    series.setdefault(pid, []).append((time.monotonic() - t0, *s))
            time.sleep(args.interval)
        wall = time.monotonic() - t0
    if args.csv:
        lines = ["pid,seconds,rss_mib,fds"] + [f"{pid},{t:.1f},{rss:.1f},{fds}"
                                             for pid, rows in series.items() for t, rss, fds in rows]
        Path(args.csv).write_text("\n".join(lines) + "\n")
    ended = f"runs ended at {runs_end[0]:.0f} s, " if runs_end else ""
    table = Table(title=f"{args.study}: {args.workers} workers, {args.trials} trials, "
                        f"{args.seeds} seeds; {ended}all done at {wall:.0f} s (rc {proc.returncode})")
    for col in ("process", "samples", "RSS at 1/5 (MiB)", "RSS at last run", "RSS slope /100",
                "fds at 1/5", "fds at last run", "fds slope /100"):
        table.add_column(col, justify="right")
    for pid, rows in sorted(series.items(), key=lambda kv: -len(kv[1])):
        if len(rows) < 10:
            continue  # short-lived helpers (compilers, the report's renderer)
        # from a fifth of the runs (imports done) to the last run (then the report is drawn)
        stop = runs_end[0] if runs_end else wall
        inside = [r for r in rows if r[0] <= stop]
        tail = inside[len(inside) // 5:]
        if len(tail) < 3:
            continue
        rss = [r[1] for r in tail]
        fds = [r[2] for r in tail]
        table.add_row(str(pid), str(len(rows)), f"{rss[0]:.0f}", f"{rss[-1]:.0f}",
                      f"{_slope(rss):+.1f}", str(fds[0]), str(fds[-1]), f"{_slope(fds):+.2f}")
    console.print(table)
    console.print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
