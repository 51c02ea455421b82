"""A newcomer's first hour (issue 16): the answer fits 80 columns and a log is never silent; the
report says what it is (its spec.toml runs, its commands reproduce its folder, its overrides show);
bad input leaves nothing behind; `direction` defaults to the workload's; an override of
train.epochs replaces train.steps; the plug-in example runs as README shows it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.text import Text
from typer.testing import CliRunner

from admtune import api
from admtune.cli import app
from admtune.errors import SpecError
from admtune.report import verdict_lines
from admtune.report.text import baseline_name, fmt_beta
from admtune.study import spec

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "reports" / "examples").glob("*/summary.json"))
PLUGIN = REPO / "examples" / "plugin"
VERDICTS = ("beats", "matches", "loses", "inconclusive")

TOY = """\
name = "toy"
metric = "loss"
margin = 0.05
trials = 3
seeds = 2
[train]
steps = 12
batch_size = 8
lr = { sgd = 0.1, adamw = 0.05 }
[workload]
name = "tests.toy_workload:toy"
"""


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGIN)]),
            "OMP_NUM_THREADS": "1", **extra}


def admtune(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    """The real command line, without a terminal (stdout and stderr are pipes)."""
    return subprocess.run([sys.executable, "-m", "admtune.cli", *args], cwd=cwd,
                          env=env(**extra), capture_output=True, text=True, timeout=600)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO))
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "toy.toml").write_text(TOY)
    return tmp_path


# --- the answer in the terminal ----------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
@pytest.mark.parametrize("width", [80, 60])
def test_the_answer_is_one_readable_line_per_baseline(path, width):
    summary = json.loads(path.read_text())
    lines = [Text.from_markup(x).plain for x in verdict_lines(summary, width)]
    for line in lines[2:]:
        for row in line.splitlines():
            assert len(row) <= width, row
    for b, e in summary["baselines"].items():
        row = next(x for x in lines if x.split()[:1] == [baseline_name(b)])
        assert row.split()[1] == e["verdict"]  # the verdict word, whole
        assert "AdM " in row and " vs tuned " in row
        assert re.search(r"Δ [+−]?\d", row) and "[" in row  # Δ with its CI


def test_a_tuned_beta_reads_the_same_everywhere():
    assert fmt_beta(0.8958) == "0.896" and fmt_beta(0.9) == "0.900"
    assert fmt_beta(0.99953) == "0.99953"  # 1 − β keeps two significant digits


def test_the_cli_at_80_columns_without_a_terminal(project):
    r = admtune("study", "toy", "--device", "cpu", "--no-pdf", cwd=project, COLUMNS="80")
    assert r.returncode == 0, r.stderr
    assert all(len(line) <= 80 for line in r.stdout.splitlines()), r.stdout
    assert any(v in r.stdout.split() for v in VERDICTS)
    assert "--detail" in r.stdout  # the wide table is offered, not squeezed
    # a log is never silent for a stage: finished runs are printed as they end
    assert re.search(r"^tune sgd \d+/3: .* (complete|pruned|diverged)", r.stderr, re.M), r.stderr
    detail = admtune("report", "toy", "--no-pdf", "--detail", cwd=project, COLUMNS="80")
    assert detail.returncode == 0 and "seeds to resolve" in detail.stdout


def test_the_python_api_reports_progress(project):
    lines: list[str] = []
    s = api.load_spec("toy")
    out = api.run_study(s, device="cpu", out=project / "o", report=False, progress=lines.append)
    assert out.complete
    assert any(line.startswith("tune adamw ") for line in lines)
    assert any(line.startswith("evaluate ") for line in lines)


# --- specs ---------------------------------------------------------------------------------
def test_direction_defaults_to_the_workload_s_declaration(project):
    assert api.load_spec("toy").direction == "minimize"
    assert api.load_spec("toy", ["metric='score'"]).direction == "maximize"
    with pytest.raises(SpecError, match="not reported by workload"):
        api.load_spec("toy", ["metric='nope'"])


def test_an_epochs_override_replaces_the_spec_s_steps(project):
    s = api.load_spec("toy", ["train.epochs=1"])
    assert s.train.epochs == 1.0 and s.train.steps is None
    assert any("train.steps = 12" in n and "--set train.epochs=1" in n for n in s.notes)
    assert "# train.steps = 12 of the spec file was replaced" in s.to_toml()
    both = ["train.epochs=1", "train.steps=5"]  # both given: the user's contradiction
    with pytest.raises(SpecError, match="exactly one"):
        api.load_spec("toy", both)


@pytest.mark.parametrize("name", sorted(spec.spec_paths()))
def test_the_resolved_spec_file_reads_back_to_the_same_study(name, tmp_path):
    s = api.load_spec(name, ["train.batch_size=16"], trials=7)
    path = tmp_path / "spec.toml"
    path.write_text(s.to_toml())
    again = api.load_spec(str(path))
    assert again.to_data() == s.to_data()
    assert again.fingerprint("v") == s.fingerprint("v")


# --- bad input leaves nothing behind ---------------------------------------------------------
def test_a_study_without_its_data_makes_no_storage(project):
    r = CliRunner().invoke(app, ["study", "cifar", "--device", "cpu", "--out", "c"])
    assert r.exit_code == 2 and "CIFAR-10 not found" in r.output
    assert not (project / "c").exists()


def test_list_says_which_studies_need_a_gpu_or_data(project):
    r = admtune("list", cwd=project, COLUMNS="80")
    assert r.returncode == 0
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "GPU, CIFAR-10 data" in rows["cifar"] and "GPU" in rows["lm"]
    assert "GPU" not in rows["quick"]
    assert all(len(line) <= 80 for line in r.stdout.splitlines())


def test_a_typo_gets_the_study_it_meant(project):
    r = CliRunner().invoke(app, ["report", "tyo", "--no-pdf"])
    assert r.exit_code == 2 and "did you mean 'toy'" in r.output
    assert "admtune study tyo" not in r.output
    r = CliRunner().invoke(app, ["study", "tyo"])
    assert r.exit_code == 2 and "did you mean 'toy'" in r.output


# --- reports that say what they are --------------------------------------------------------
def test_a_report_reproduces_its_own_folder(project):
    out = project / "runs" / "t2"
    db = project / "elsewhere.db"
    url = f"sqlite:///{db}"
    r = admtune("study", "toy", "--device", "cpu", "--no-pdf", "--out", str(out), "--storage", url,
                "--set", "train.steps=6", cwd=project)
    assert r.returncode == 0, r.stderr
    html = (out / "report.html").read_text()
    assert "--set train.steps=6" in html and f"out folder {out}" in html  # under the title
    rerun = f"admtune study {out / 'spec.toml'} --out {out} --storage {url}"
    rebuild = f"admtune report toy --out {out} --storage {url}"
    assert rerun in html and rebuild in html
    # the re-run command resumes this very study: same fingerprint, nothing left to run
    before = json.loads((out / "summary.json").read_text())
    r = admtune(*rerun.split()[1:], "--no-pdf", "--device", "cpu", cwd=project)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["fingerprint"] == before["fingerprint"]
    shutil.rmtree(out)
    r = admtune(*rebuild.split()[1:], "--no-pdf", cwd=project)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["baselines"] == before["baselines"]


def test_a_report_written_from_python_has_its_commands(project):
    out = project / "py"
    api.run_study(api.load_spec("toy"), device="cpu", out=out, pdf=False)
    html = (out / "report.html").read_text()
    assert f"admtune study {out / 'spec.toml'} --out {out}" in html
    assert f"admtune report toy --out {out}" in html


# --- the plug-in example, as README shows it ---------------------------------------------------
def test_the_plugin_example_runs_end_to_end(tmp_path):
    out = tmp_path / "tinynet"
    r = admtune("study", str(PLUGIN / "spec.toml"), "--device", "cpu", "--no-pdf", "--out", str(out),
                "--trials", "3", "--seeds", "2", "--set", "train.epochs=1",
                "--set", "tune.finalists=1", "--set", "tune.selection_seeds=1",
                "--set", "workload.n=300", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["direction"] == "minimize"  # from the workload: the spec does not say
    assert set(summary["baselines"]) == {"sgd", "adamw"}
    assert all(e["verdict"] in VERDICTS for e in summary["baselines"].values())
    runs = (out / "runs.csv").read_text()
    assert "complete" in runs and "failed" not in runs
    # AdM-AdamW's β_t is labelled by the model's parameter names
    from admtune.study.records import load_results

    results = load_results(f"sqlite:///{out / 'study.db'}", "tinynet")
    names = next(r.beta_trace["names"] for r in results.runs
                 if r.baseline == "adamw" and r.arm == "adm" and r.beta_trace)
    assert names[:2] == ["0.weight", "0.bias"]


def test_readme_shows_the_shipped_plugin():
    readme = (REPO / "README.md").read_text()
    source = (PLUGIN / "tinynet" / "workload.py").read_text()
    run = source[source.index("    def run(self, ctx)"):source.index("def factory")].rstrip()
    assert run in readme  # the README's training loop is the example's, verbatim
    assert (PLUGIN / "spec.toml").read_text().strip() in readme
    assert "PYTHONPATH=examples/plugin" in readme and "pip install -e examples/plugin" in readme
    assert "ALGORITHM.md" not in readme


def test_the_command_line_says_what_an_override_replaced(project):
    r = CliRunner().invoke(app, ["study", "toy", "--set", "train.epochs=x", "--device", "cpu"])
    assert r.exit_code == 2  # a bad value is still refused: the note is for a good one
    r = admtune("study", "toy", "--device", "cpu", "--no-pdf", "--set", "train.epochs=1",
                cwd=project)
    assert r.returncode == 0, r.stderr
    assert "note: train.steps = 12 of the spec file was replaced by --set train.epochs=1" in r.stderr
    assert "# train.steps = 12 of the spec file was replaced" in \
        (project / "reports" / "toy" / "spec.toml").read_text()


def test_a_long_list_override_stays_one_comment_line(project, tmp_path):
    s = api.load_spec("toy", [f"workload.crash_seeds={list(range(40))}"])
    text = s.to_toml()
    assert text.splitlines()[1].startswith("# with --set workload.crash_seeds=[0, 1, 2")
    path = tmp_path / "again.toml"
    path.write_text(text)
    assert api.load_spec(str(path)).to_data() == s.to_data()


def test_a_ci_end_below_the_precision_is_not_scientific():
    summary = json.loads(EXAMPLES[-1].read_text())  # quick
    e = summary["baselines"]["adamw"]
    e["diff"]["ci"] = [-0.0030, 1.677e-05]
    line = next(x for x in verdict_lines(summary) if "AdamW" in x)
    assert "e−05" not in line and "+0.0000]" in line
