"""Benchmark: wall time of a study with two workers on one storage against one worker.

    python -m admtune.bench.workers [--study quick] [--storage URL] [--repeats 3] [--one-command]

Each repeat runs the study from scratch with one worker, then with two workers started together
on a fresh storage (SQLite in a temporary folder unless --storage names a server, e.g. PostgreSQL),
and prints the medians and the ratio two/one (the target on 2 cores is ≤ 0.65).

It also times, in the same repeats, what no second worker can take off the first: a worker's start
(Python, torch, torch._dynamo, which torch.optim imports at its first optimizer, Optuna) and the
report (written once, by one worker; its time is read from the worker's log). With those serial
seconds F out of the one-worker time T1, two workers cannot do better than (F + (T1 − F) / 2) / T1
(Amdahl's law), which the last line prints beside the measured ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _workers(n: int, study: str, out: Path, storage: str | None, threads: int,
             sets: list[str], one_command: bool = False) -> tuple[float, float | None]:
    """Wall seconds of n workers started together (n commands, or one with --workers n), and the
    seconds the report took."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "admtune.cli", "study", study, "--device", "cpu", "--no-pdf",
           "--out", str(out)]
    if storage:
        cmd += ["--storage", storage]
    for s in sets:
        cmd += ["--set", s]
    if one_command and n > 1:
        cmd, n = [*cmd, "--workers", str(n)], 1
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(n)]
    errs = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    for p, e in zip(procs, errs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"a worker failed (exit {p.returncode}): {e.strip().splitlines()[-1:]}")
    found = [float(m) for e in errs for m in re.findall(r"^report: 1/1 done in ([0-9.]+) s", e, re.M)]
    return wall, (found[0] if found else None)


_START = "import gc; gc.disable(); import torch, torch._dynamo, optuna, sqlalchemy"  # as a worker does


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m admtune.bench.workers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="quick")
    ap.add_argument("--storage", default=None, help="a server URL; default: SQLite per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--one-command", action="store_true",
                    help="two workers as one `admtune study --workers 2` instead of two commands")
    args = ap.parse_args(argv)
    one, two, start, report = [], [], [], []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for n, bucket in ((1, one), (2, two)):
                out = Path(tmp) / f"{n}-{r}"
                storage = args.storage
                sets = list(args.sets)
                name = f"bench{uuid.uuid4().hex[:8]}"
                if storage:  # a fresh study name per repeat on a shared server
                    sets.append(f"name={name}")
                wall, report_s = _workers(n, args.study, out, storage, args.threads, sets,
                                          args.one_command)
                bucket.append(wall)
                if n == 1:
                    start.append(_timed([sys.executable, "-c", _START], env))
                    report.append(report_s or 0.0)
    how = "one command, --workers 2" if args.one_command else "two commands"
    table = Table(title=f"{args.study}: two workers ({how}) vs one ({args.repeats} repeats, "
                        f"{args.threads} thread(s) per worker, {os.cpu_count()} cores)")
    for c in ("workers", "median wall s", "all (s)"):
        table.add_column(c)
    table.add_row("1", f"{statistics.median(one):.1f}", ", ".join(f"{x:.1f}" for x in one))
    table.add_row("2", f"{statistics.median(two):.1f}", ", ".join(f"{x:.1f}" for x in two))
    Console().print(table)
    t1, t2 = statistics.median(one), statistics.median(two)
    f = statistics.median(start) + statistics.median(report)
    Console().print(f"ratio two/one (medians): {t2 / t1:.2f}")
    Console().print(
        f"serial part: worker start {statistics.median(start):.1f} s + report "
        f"{statistics.median(report):.1f} s = {f:.1f} s of {t1:.1f} s; the best two workers can do "
        f"with it (Amdahl): {(f + (t1 - f) / 2) / t1:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
