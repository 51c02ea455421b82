"""What a study tells its caller, and how the caller tells it to stop.

The engine never prints: it calls :class:`Events` (the CLI draws progress bars from them, a notebook
may log them) and polls :class:`StopFlag` (the CLI's Ctrl-C handler sets it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


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


__all__ = ["Events", "Interrupted", "StopFlag"]
