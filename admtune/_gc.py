"""Python's garbage collector around the imports a study needs.

Importing torch, torch._dynamo (which torch.optim imports with the first optimizer), Optuna and a
workload's data makes hundreds of thousands of long-lived objects; while they are being made, the
collector walks all of them again every time the heap grows by a quarter: 0.7 s of full collections
in a 7 s quick study, and a growing pause in every later one. The CLI pauses collection until the
first run has ended; the engine then freezes what exists (the permanent generation is never
walked) and resumes collection. A study that ends before its first run resumes it unfrozen.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Stop automatic collection until ``settle`` or ``resume`` (the CLI calls it before a study
    imports anything)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def settle() -> None:
    """After ``pause``: freeze the objects alive now and resume collection. Otherwise nothing (a
    program using admtune as a library keeps its collector as it set it)."""
    global _paused
    if _paused:
        gc.freeze()
        gc.enable()
        _paused = False


def resume() -> None:
    """Resume collection if ``pause`` stopped it and ``settle`` has not (nothing is frozen)."""
    global _paused
    if _paused:
        gc.enable()
        _paused = False
