"""A failure's reason reaches the user where they look: the terminal as it happens, the final
error, and runs.csv (also when the study stops on an error); `admtune report` keeps failed runs."""

from __future__ import annotations

import math

import pandas as pd
from typer.testing import CliRunner

from admtune.cli import app
from admtune.workloads import TrainConfig
from tests.test_cli import project  # noqa: F401  (the fixture: a folder with studies/toy.toml)


def test_a_crashing_plugin_shows_its_reason_everywhere(project):  # noqa: F811
    seeds = list(range(10_000, 10_020))  # every tuning seed crashes: the study stops on an error
    r = CliRunner().invoke(app, ["study", "toy", "--device", "cpu", "--no-pdf",
                                 "--set", f"workload.crash_seeds={seeds}"])
    assert r.exit_code == 2, r.output
    assert "RuntimeError: toy crash for seed 10000" in r.output  # first failure, as it happened
    last = r.output.strip().splitlines()[-1]
    assert "crashed 9 times; the first: RuntimeError: toy crash for seed 10000" in r.output, last
    runs = pd.read_csv(project / "reports" / "toy" / "runs.csv")
    assert len(runs) == 9 and (runs.status == "failed").all()
    assert runs.reason.str.startswith("RuntimeError: toy crash").all()
    # the report rebuilt from the storage keeps them too
    (project / "reports" / "toy" / "runs.csv").unlink()
    CliRunner().invoke(app, ["report", "toy", "--no-pdf"])
    again = pd.read_csv(project / "reports" / "toy" / "runs.csv")
    assert len(again) == 9 and again.reason.notna().all()


def test_batch_size_0_is_the_full_batch():
    cfg = TrainConfig(batch_size=0, lr=0.1, weight_decay=0.0, epochs=3)
    assert cfg.total_steps(100) == 3
    assert TrainConfig(batch_size=32, lr=0.1, weight_decay=0.0, epochs=3).total_steps(100) == \
        math.ceil(3 * 100 / 32)
