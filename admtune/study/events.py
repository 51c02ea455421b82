"""What a study tells its caller, and how the caller tells it to stop.

The engine never prints: it calls :class:`Events` (the CLI draws progress bars from them, a notebook
may log them) and polls :class:`StopFlag` (the CLI's Ctrl-C handler sets it).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LOGGER = logging.getLogger("admtune")
# a run key's full-precision numbers ("beta=0.6566265994120531/lr=0.3"), shortened for a log line
_KEY_NUMBER = re.compile(r"(beta|lr)=([0-9.eE+-]+)")


def short_label(label: str) -> str:
    """``select sgd/select/beta=0.6566265994120531/lr=0.3/20000`` → ``… β=0.6566 lr=0.3 …``."""
    def short(m: re.Match) -> str:
        try:
            return f"{'β' if m[1] == 'beta' else 'lr'}={float(m[2]):.4g}"
        except ValueError:
            return m[0]

    return _KEY_NUMBER.sub(short, label)


class Interrupted(Exception):
    """The user asked to abort the current run (second Ctrl-C); it is recorded as interrupted."""


@dataclass
class StopFlag:
    """First request: stop after the run in progress; second: abort it (recorded as interrupted).

    ``listeners`` are called on every request: local worker processes get each press passed on.
    """

    after_run: bool = False
    now: bool = False
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def request(self) -> None:
        if self.after_run:
            self.now = True
        self.after_run = True
        for listener in self.listeners:
            listener()


class Events:
    """What the engine tells its caller. No-ops by default; subclass and override what you need."""

    def phase(self, name: str, total: int, done: int) -> None: ...
    def run_started(self, label: str) -> None: ...
    def run_finished(self, label: str, status: str, value: float | None, wall_s: float,
                     reason: str | None = None) -> None: ...
    def waiting(self, reason: str) -> None: ...


class LineEvents(Events):
    """Progress as plain lines, for logs, pipes and scripts: one line per finished run
    (``tune sgd 4/20: #3 β=0.93 complete 0.182 (0.4 s)``) at most every ``every`` seconds (the
    last run of a phase always), and what a worker waits for. ``say`` takes each line; the
    default is the ``admtune`` logger at INFO (``logging.basicConfig(level="INFO")`` shows it)."""

    def __init__(self, say: Callable[[str], None] | None = None, every: float = 0.0):
        self.say = say or LOGGER.info
        self.every = every
        self._done: dict[str, int] = {}
        self._last: tuple[str, str, float | None, float] | None = None
        self._said_at = -math.inf
        self._waiting: str | None = None

    def phase(self, name: str, total: int, done: int) -> None:
        before = self._done.get(name)
        self._done[name] = done
        if self._last is None or before is None or done <= before:
            return
        now = time.monotonic()
        if done < total and now - self._said_at < self.every:
            return
        label, status, value, wall = self._last
        shown = f" {value:.4g}" if value is not None and status in ("complete", "pruned") else ""
        self.say(f"{name} {done}/{total}: {short_label(label)} {status}{shown} ({wall:.1f} s)")
        self._said_at, self._last, self._waiting = now, None, None

    def run_finished(self, label: str, status: str, value: float | None, wall_s: float,
                     reason: str | None = None) -> None:
        self._last = (label, status, value, wall_s)
        if status in ("diverged", "failed") and reason:
            self.say(f"{label}: {status}: {reason}")

    def waiting(self, reason: str) -> None:
        if reason != self._waiting:
            self.say(reason)
        self._waiting = reason


__all__ = ["Events", "Interrupted", "LineEvents", "StopFlag"]
