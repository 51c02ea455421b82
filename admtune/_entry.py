"""The `admtune` console script: admtune.cli's main, with a Ctrl-C during its imports (typer, rich)
ending the process with 130 like any other stop, rather than by the signal (exit status −2)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from admtune.cli import main as cli_main
    except KeyboardInterrupt:
        sys.exit(130)
    cli_main()
