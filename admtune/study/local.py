"""Several workers on this machine from one command (``admtune study NAME --workers N``).

The command's own process is worker 0; it starts N − 1 more ``admtune study`` processes with the
same spec, storage and out folder, and the storage divides the work between them exactly as it
does between commands started by hand (see ``admtune.study.runner``). What this module adds:

- Devices: ``--device cuda`` spreads the workers over the visible GPUs (worker i on cuda:i mod k);
  an explicit ``cuda:N``, ``cpu`` or ``mps`` is used by every worker. CPU workers share the cores
  (each gets cores ÷ N torch threads, at least one).
- Ctrl-C: the extra workers run in their own process groups, and worker 0 passes each press on,
  so one press means "stop after the current run" for all of them, not a second press for some.
  A SIGTERM to worker 0 (``kill``, a job scheduler) terminates the others too.
- Output: the extra workers write to temporary files; the last lines of a worker that failed are
  shown, and a failure of worker 0 stops the others (nothing is lost: the same command resumes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import IO

from ..errors import DeviceError, SpecError

MAX_WORKERS = 64


def device_plan(device: str, n: int, cuda_count: int) -> list[str]:
    """The device of each of n workers. ``auto`` is cuda when there is a GPU, else cpu."""
    if n < 1 or n > MAX_WORKERS:
        raise SpecError(f"--workers must be between 1 and {MAX_WORKERS}, got {n}")
    if device == "auto":
        device = "cuda" if cuda_count > 0 else "cpu"
    if device == "cuda":
        if cuda_count < 1:
            raise DeviceError("--device cuda was asked for, but no CUDA GPU is available here")
        return [f"cuda:{i % cuda_count}" for i in range(n)]
    return [device] * n


def threads_per_worker(devices: list[str], cores: int) -> int:
    """torch threads for each CPU worker: the cores shared out, at least one each."""
    on_cpu = sum(d == "cpu" for d in devices)
    return max(1, cores // on_cpu) if on_cpu else max(1, cores)


@dataclass
class _Worker:
    index: int
    device: str
    proc: subprocess.Popen
    log: IO[bytes]


@dataclass
class WorkerGroup:
    """The extra workers (1 … N − 1) of one command."""

    workers: list[_Worker] = field(default_factory=list)

    @classmethod
    def start(cls, argv: list[str], devices: list[str], threads: int) -> WorkerGroup:
        """Start one ``admtune study`` per device; ``argv`` is the command after ``admtune``
        without ``--device`` and ``--workers``."""
        group = cls()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        for i, dev in enumerate(devices, start=1):
            log = tempfile.TemporaryFile()
            cmd = [sys.executable, "-m", "admtune.cli", *argv, "--device", dev]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                    start_new_session=True)
            group.workers.append(_Worker(i, dev, proc, log))
        return group

    def interrupt(self) -> None:
        """Pass a Ctrl-C press on to every worker still running."""
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGINT)

    def terminate(self) -> None:
        """Worker 0 was told to terminate (SIGTERM): so are the others. Their runs in progress
        are failed as stale by the next worker and re-run, as for any killed worker."""
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.terminate()

    def stop(self) -> None:
        """Worker 0 failed: stop the others now (their current runs are recorded as interrupted
        or, if killed, failed as stale later; the same command resumes)."""
        for _ in range(2):  # the second SIGINT aborts the run in progress
            self.interrupt()
        for w in self.workers:
            try:
                w.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()

    def wait(self) -> list[tuple[int, str, int, str]]:
        """Wait for every worker; (index, device, exit code, last line) of those that failed.
        Exit code 130 (stopped by Ctrl-C, resumable) is not a failure."""
        failed = []
        for w in self.workers:
            rc = w.proc.wait()
            if rc not in (0, 130):
                w.log.seek(0)
                lines = [ln for ln in w.log.read().decode(errors="replace").splitlines() if ln.strip()]
                failed.append((w.index, w.device, rc, lines[-1].strip() if lines else ""))
            w.log.close()
        return failed


__all__ = ["MAX_WORKERS", "WorkerGroup", "device_plan", "threads_per_worker"]
