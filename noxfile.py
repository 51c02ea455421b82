"""Developer sessions: tests, lint, bench, gate (the CI regression gate on the quick study)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# CPU torch keeps CI machines light; users get their platform's build from `pip install admtune`.
TORCH = ["torch==2.13.0"]


def install(session: nox.Session, extras: str = "test") -> None:
    session.install(*TORCH)
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (needs PostgreSQL on 127.0.0.1:5432 for the multi-worker tests)."""
    install(session)
    session.run("pytest", "-q", "-n", "2", "--dist", "loadfile", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "admtune", "tests", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Optimizer step time and state memory against torch's (pass --device cuda on a GPU)."""
    install(session)
    session.run("admtune", "bench", *session.posargs)


@nox.session
def gate(session: nox.Session) -> None:
    """The CI regression gate: run (or resume) the quick study and check its expectations."""
    install(session)
    session.run("admtune", "check", "quick", "--device", "cpu", "--expect",
                "studies/quick.expect.toml", "--junit", "reports/junit.xml", *session.posargs)


@nox.session
def workers(session: nox.Session) -> None:
    """Two workers against one: wall time of the quick study on the same storage."""
    install(session)
    session.run("python", "-m", "admtune.bench.workers", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Worker RSS and open file descriptors over a long multi-worker study (do they leak?)."""
    install(session)
    session.run("python", "-m", "admtune.bench.soak", *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """The chaos tests with more cycles than CI runs (ADMTUNE_CHAOS_CYCLES, default here 40)."""
    install(session)
    session.env.setdefault("ADMTUNE_CHAOS_CYCLES", "40")
    session.run("python", "-m", "pytest", "tests/test_chaos.py", "-q", "-s", "-m", "slow",
                "-k", "random")


@nox.session
def slow(session: nox.Session) -> None:
    """The heaviest end-to-end checks that README's test command leaves out (marked `slow`):
    fault injection mid-study, chaos kills, the GPU script's smoke run."""
    install(session)
    session.run("python", "-m", "pytest", "-q", "-m", "slow", *session.posargs)


@nox.session
def pruning(session: nox.Session) -> None:
    """Re-run the pruned tuning trials of finished studies to completion: what pruning cost.
    Pass out folders (``nox -s pruning -- reports/examples/mlp reports/quick``); extra options
    (``--device cuda``) go after ``--``: ``nox -s pruning -- reports/quick -- --device cuda``."""
    if not session.posargs:
        session.error("give the out folders of finished studies: nox -s pruning -- reports/quick …")
    args = list(session.posargs)
    folders, options = (args[:args.index("--")], args[args.index("--") + 1:]) if "--" in args \
        else (args, [])
    install(session)
    for folder in folders:
        session.run("python", "-m", "admtune.bench.pruning", "--out", folder, *options)
