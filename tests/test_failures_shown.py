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


def test_an_incomplete_study_says_so_and_exits_3(project, tmp_path):  # noqa: F811
    """Stopped after tuning: the rebuilt report is marked incomplete (summary.json, page 1, the
    terminal) and `admtune report` / `admtune check` exit 3."""
    import json

    from admtune import api

    class StopAfterTuning(api.Events):
        def __init__(self, stop: api.StopFlag):
            self.stop = stop

        def phase(self, name: str, total: int, done: int) -> None:
            if name == "select":
                self.stop.request()

    stop = api.StopFlag()
    s = api.load_spec("toy")
    out = api.run_study(s, device="cpu", out=project / "o", stop=stop, events=StopAfterTuning(stop),
                        pdf=False)
    assert not out.complete
    r = CliRunner().invoke(app, ["report", "toy", "--out", str(project / "o"), "--no-pdf"])
    assert r.exit_code == 3, r.output
    summary = json.loads((project / "o" / "summary.json").read_text())
    assert summary["complete"] is False
    p = summary["progress"]
    assert p["tune"] == {"done": 6, "planned": 6} and p["evaluate"]["done"] == 0
    assert p["evaluate"]["planned"] == 2 * 3 * 2 and not p["complete"]
    done = sum(p[k]["done"] for k in ("tune", "select", "evaluate"))
    planned = sum(p[k]["planned"] for k in ("tune", "select", "evaluate"))
    assert f"incomplete: {done} of {planned} planned runs done" in " ".join(r.output.split())
    assert "This study is incomplete" in (project / "o" / "report.html").read_text()
    expect = tmp_path / "e.toml"
    expect.write_text("[sgd]\nverdict = ['beats', 'matches', 'loses', 'inconclusive']\n")
    c = CliRunner().invoke(app, ["check", "toy", "--expect", str(expect), "--from", str(project / "o")])
    assert c.exit_code == 3 and "interim" in c.output, c.output
