"""Several workers on this machine for one study (``admtune.api.run_study(spec, workers=N)``,
``admtune study NAME --workers N``).

The calling process is worker 0; it starts N − 1 more processes (``python -m admtune._workers``)
handed the resolved spec itself, the storage and the out folder, and the storage divides the work
between them exactly as it does between commands started by hand (see ``admtune.study.engine``).
What this module adds:

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

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

from .errors import AdmtuneError, DeviceError, SpecError

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
    def start(cls, job: dict[str, Any], devices: list[str], threads: int) -> WorkerGroup:
        """Start one worker per device; ``job`` is what :func:`main` takes (the spec as data, the
        storage, the out folder, ...), less the device."""
        group = cls()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        for i, dev in enumerate(devices, start=1):
            log = tempfile.TemporaryFile()
            cmd = [sys.executable, "-m", "admtune._workers", json.dumps({**job, "device": dev})]
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


def plan_devices(device: str, workers: int) -> tuple[list[str], int]:
    """The device of each worker and the torch threads of each CPU worker. A missing GPU is one
    sentence before anything starts; ``cpu`` asks nothing of torch (the workers start sooner)."""
    if device == "cpu":
        devices = device_plan(device, workers, 0)
    else:
        import torch

        from .devices import resolve_device

        needs_cuda = device in ("auto", "cuda")
        devices = device_plan(device, workers, torch.cuda.device_count() if needs_cuda else 0)
        for dev in sorted(set(devices)):
            resolve_device(dev)
    return devices, threads_per_worker(devices, os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    """A worker process: run its share of the study, then exit 0 (complete), 130 (stopped and
    resumable) or 2 (bad input), saying why in one line."""
    from dataclasses import replace

    from . import _gc, api
    from .study.spec import StudySpec

    job = json.loads((argv or sys.argv[1:])[0])
    stop = api.StopFlag()
    signal.signal(signal.SIGINT, lambda signum, frame: stop.request())
    _gc.pause()
    try:
        outcome = api.run_study(
            replace(StudySpec.from_data(job["spec"], source=job.get("source", "")),
                    overrides=tuple(job.get("overrides", ())), notes=tuple(job.get("notes", ()))),
            storage=job["storage"],
            out=job["out"], device=job["device"], stop=stop, command=job.get("command", ""),
            pdf=job.get("pdf", True), wait_timeout=job.get("wait_timeout", 3600.0),
        )
    except api.Interrupted:
        return 130
    except AdmtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        _gc.resume()
    return 0 if outcome.complete else 130


__all__ = ["MAX_WORKERS", "WorkerGroup", "device_plan", "main", "plan_devices", "threads_per_worker"]


if __name__ == "__main__":
    try:
        code = main()
    finally:
        import gc

        gc.freeze()  # leave the interpreter's teardown collection to the OS (see admtune.cli.main)
    sys.exit(code)
