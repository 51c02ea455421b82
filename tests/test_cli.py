"""The command line: bad input is one sentence and exit code 2, nothing is written; secrets are masked;
`admtune list`; `admtune study` and `admtune report` on a tiny plug-in study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from admtune.cli import app

REPO = Path(__file__).resolve().parents[1]

TOY = """\
name = "toy"
description = "toy <script>alert(1)</script>"
metric = "loss"
direction = "minimize"
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


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO))
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "toy.toml").write_text(TOY)
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_sentence_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text
    for n in needles:
        assert n in text, text
    return text


BAD_INPUTS = [
    (["study", "toy", "--set", "train.bogus=1"], ["train.bogus"]),
    (["study", "toy", "--set", "seeds=1"], ["seeds"]),
    (["study", "toy", "--set", "train.lr.sgd=-0.5"], ["train.lr.sgd"]),
    (["study", "toy", "--set", "tune.beta_high=1.5"], ["tune.beta_high"]),
    (["study", "toy", "--set", "workload.bogus=1"], ["workload.bogus"]),
    (["study", "toy", "--set", "workload.name=nosuch"], ["unknown workload 'nosuch'"]),
    (["study", "toy", "--set", "metric=accuracy"], ["metric 'accuracy'"]),
    (["study", "toy", "--trials", "0"], ["trials"]),
    (["study", "toy", "--seeds", "1"], ["seeds"]),
    (["study", "nosuch"], ["unknown study 'nosuch'"]),
    (["study", "../../etc/passwd"], ["not valid"]),
    (["study", "toy", "--device", "cuda"], ["no CUDA GPU"]),
    (["study", "toy", "--device", "tpu9"], ["--device"]),
    (["study", "toy", "--storage", "notaurl"], ["not a database URL"]),
    (["report", "toy"], ["no stored study"]),
    (["study", "toy", "--set", "train.steps=20000000000000"], ["train.steps", "typo"]),
    (["study", "toy", "--seeds", "1000000"], ["seeds", "typo"]),
    (["study", "toy", "--set", "train.epochs=1e308", "--set", "train.steps=-1"], ["train.steps"]),
    (["study", "toy", "--storage", "mysql+nosuchdriver://u@h/db"], ["cannot open storage"]),
]


@pytest.mark.parametrize(("args", "needles"), BAD_INPUTS)
def test_bad_input_is_one_clear_sentence_and_writes_nothing(project, args, needles):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present: --device cuda is valid here")  # never the case in CI
    text = one_sentence_error(invoke(*args), *needles)
    assert text.startswith("error:")
    assert not (project / "reports").exists()  # not even an empty out folder


def test_a_binary_spec_file_is_one_sentence(project):
    (project / "studies" / "bin.toml").write_bytes(b"\xff\xfe\x00name = 1\x80\x81")
    one_sentence_error(invoke("study", "bin"), "not a UTF-8 text file", "bin.toml")


def test_malformed_toml_names_the_file(project):
    (project / "studies" / "broken.toml").write_text('name = "broken"\n[train\n')
    one_sentence_error(invoke("study", "broken"), "malformed TOML", "broken.toml")
    assert not (project / "reports").exists()


def test_wrong_flag_is_a_usage_error(project):
    r = invoke("study", "toy", "--bogus-flag")
    assert r.exit_code == 2 and "No such option" in r.output


def test_credentials_never_appear(project):
    url = "postgresql+psycopg2://alice:s3cr3tpw@127.0.0.1:1/db"
    r = invoke("study", "toy", "--storage", url)
    text = one_sentence_error(r, "cannot open storage", "***")
    assert "s3cr3tpw" not in text


def test_list_shows_local_and_packaged_studies(project):
    r = invoke("list")
    assert r.exit_code == 0, r.output
    assert "toy" in r.output


def test_list_shows_local_and_packaged_suites_and_flags_a_broken_one(project):
    (project / "studies" / "suites").mkdir()
    (project / "studies" / "suites" / "mine.toml").write_text(
        'description = "my toys"\n[[study]]\nspec = "toy"\n')
    (project / "studies" / "suites" / "broken.toml").write_text('[[study]]\nspec = "nope"\n')
    r = invoke("list")
    assert r.exit_code == 0, r.output
    suites = r.output.split("admtune suites", 1)[1].split("admtune suite NAME", 1)[0]
    rows: dict[str, str] = {}
    for line in suites.splitlines()[2:]:  # after the column headings
        first = line.split()[0] if line.strip() else ""
        if first in ("mine", "broken", "cpu", "gpu"):
            key = first
            rows[key] = ""
        rows[key] += " " + line  # a wrapped cell continues on the next lines
    assert "toy" in rows["mine"] and "my toys" in rows["mine"]
    assert "quick" in rows["cpu"] and "mlp" in rows["cpu"]  # the bundled suite
    assert "invalid" in rows["broken"] and "nope" in rows["broken"]


def test_unwritable_out_folder_is_refused_before_training(project):
    if os.geteuid() == 0:
        blocker = project / "file-not-folder"
        blocker.write_text("x")
        one_sentence_error(invoke("study", "toy", "--out", str(blocker / "sub")), "out folder")
    else:  # pragma: no cover
        ro = project / "ro"
        ro.mkdir(mode=0o500)
        one_sentence_error(invoke("study", "toy", "--out", str(ro / "sub")), "out folder")


def test_study_then_report_rebuilds_the_same_summary(project):
    r = invoke("study", "toy", "--device", "cpu", "--no-pdf")
    assert r.exit_code == 0, r.output
    out = project / "reports" / "toy"
    for f in ("runs.csv", "summary.json", "report.html", "study.db"):
        assert (out / f).is_file(), f
    first = json.loads((out / "summary.json").read_text())
    assert set(first["baselines"]) == {"sgd", "adamw"}
    html = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    (out / "summary.json").unlink()
    r = invoke("report", "toy", "--no-pdf")
    assert r.exit_code == 0, r.output
    second = json.loads((out / "summary.json").read_text())
    strip = ("wall_s",)
    assert {k: v for k, v in first.items() if k not in strip} == \
        {k: v for k, v in second.items() if k not in strip}
    # Resuming the finished study trains nothing and changes nothing.
    r = invoke("study", "toy", "--device", "cpu", "--no-pdf")
    assert r.exit_code == 0
    assert json.loads((out / "summary.json").read_text())["baselines"] == first["baselines"]


def test_the_console_script_runs(project):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "admtune.cli", "study", "toy", "--set", "seeds=1"],
                       capture_output=True, text=True, env=env, cwd=project)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: seeds must be an integer ≥ 2")
    assert "Traceback" not in r.stderr


def test_cifar_loader_refuses_pickles_that_would_run_code(tmp_path):
    import pickle

    from admtune.errors import DataError
    from admtune.workloads import cifar_data as cifar
    from tests.fake_cifar import write_fake_cifar

    write_fake_cifar(tmp_path, n_train=20, n_test=10)
    batch = next(tmp_path.rglob("data_batch_1"))

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    batch.write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="refusing to load"):
        cifar._read_batch(cifar.CIFAR10, batch)
    assert not (tmp_path / "pwned").exists()


def test_a_full_disk_is_refused_before_training(project, monkeypatch):
    import shutil
    from collections import namedtuple

    from admtune import api

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(api.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2**20, 2**20))
    text = one_sentence_error(invoke("study", "toy", "--device", "cpu"), "1 MiB free")
    assert shutil.disk_usage is not None and "Traceback" not in text
    assert not (project / "reports" / "toy" / "study.db").exists()


def _wait_for_trials(db: Path, n: int, timeout: float = 120) -> None:
    import sqlite3
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    done = con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
                if done >= n:
                    return
            except sqlite3.Error:
                pass
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} runs finished in {timeout} s")


# two presses (abort the run in progress) is the heavier path: nox -s slow runs it
@pytest.mark.parametrize("presses", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(project, presses):
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "admtune.cli", "study", "toy", "--device", "cpu", "--no-pdf",
           "--set", "workload.sleep=0.05"]
    p = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait_for_trials(project / "reports" / "toy" / "study.db", 2)
    for _ in range(presses):
        p.send_signal(signal.SIGINT)
        time.sleep(0.2)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    assert ("interrupted" if presses == 2 else "run the same command to resume") in err
    r = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    import pandas as pd

    f = pd.read_csv(project / "reports" / "toy" / "runs.csv")
    assert (f.status == "complete").all()  # the interrupted attempt was re-run; final attempts only
    assert (f.arm != "select").sum() == 2 * 3 + 2 * 3 * 2


def test_the_recorded_command_never_holds_a_password(project, monkeypatch):
    from admtune import cli

    monkeypatch.setattr(sys, "argv", ["admtune", "study", "toy", "--storage",
                                      "postgresql://bob:hunter2@db.example/admtune"])
    line = cli._command_line()
    assert "hunter2" not in line and "bob:***@db.example" in line


def test_a_missing_postgres_driver_is_a_one_line_hint(project, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_psycopg2(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] == "psycopg2":
            raise ImportError("No module named 'psycopg2'")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_psycopg2)
    text = one_sentence_error(
        invoke("study", "toy", "--storage", "postgresql://u:pw@127.0.0.1/test"),
        "a PostgreSQL driver (psycopg2 or psycopg)", "pip install 'admtune[postgres]'")
    assert "pw@" not in text
    monkeypatch.setattr(builtins, "__import__", real_import)
    one_sentence_error(invoke("study", "toy", "--storage", "postgresql+pg8000://u:pw@127.0.0.1/t"),
                       "pip install pg8000")


# --- several workers from one command -------------------------------------------------------------
def _worker_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_workers_option_shares_one_study_between_processes(project):
    import pandas as pd

    cmd = [sys.executable, "-m", "admtune.cli", "study", "toy", "--device", "cpu", "--no-pdf",
           "--workers", "2", "--set", "workload.sleep=0.03"]
    r = subprocess.run(cmd, cwd=project, env=_worker_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert "  SGD  " in r.stdout and "AdM " in r.stdout  # the answer, whichever worker wrote the report
    f = pd.read_csv(project / "reports" / "toy" / "runs.csv")
    ev = f[f.arm.isin(["adm", "tuned", "default"])]
    keys = sorted(f"{b}/{a}/{s}" for b, a, s in zip(ev.baseline, ev.arm, ev.seed, strict=True))
    assert len(keys) == len(set(keys)) == 2 * 3 * 2 and (ev.status == "complete").all()
    assert (f.arm == "trial").sum() == 2 * 3
    assert f.worker.nunique() == 2  # both processes ran some of it
    assert set(f.device) == {"cpu"}


def test_ctrl_c_stops_every_worker_of_the_command_and_it_resumes(project):
    import time

    import optuna

    cmd = [sys.executable, "-m", "admtune.cli", "study", "toy", "--device", "cpu", "--no-pdf",
           "-j", "2", "--set", "workload.sleep=0.05"]
    p = subprocess.Popen(cmd, cwd=project, env=_worker_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    db = project / "reports" / "toy" / "study.db"
    _wait_for_trials(db, 2)
    p.send_signal(signal.SIGINT)  # to the command only, as a terminal would: it tells the others
    time.sleep(0.2)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    storage = f"sqlite:///{db}"
    complete = 0
    for name in optuna.get_all_study_names(storage):  # every worker ended its run and stopped
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert not [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING], name
        complete += sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert complete < 2 * 3 + 2 * 3 * 2  # the other worker stopped too, long before the end
    r = subprocess.run(cmd, cwd=project, env=_worker_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    import pandas as pd

    f = pd.read_csv(project / "reports" / "toy" / "runs.csv")
    assert (f.status == "complete").all() and (f.arm != "select").sum() == 2 * 3 + 2 * 3 * 2


@pytest.mark.parametrize("n", ["0", "65"])
def test_workers_out_of_range_is_one_sentence(project, n):
    one_sentence_error(invoke("study", "toy", "--workers", n, "--device", "cpu"), "--workers")
    assert not (project / "reports" / "toy" / "study.db").exists()


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_sigterm_to_the_command_terminates_its_other_workers(project):
    import time

    cmd = [sys.executable, "-m", "admtune.cli", "study", "toy", "--device", "cpu", "--no-pdf",
           "-j", "2", "--set", "workload.sleep=0.05"]
    p = subprocess.Popen(cmd, cwd=project, env=_worker_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait_for_trials(project / "reports" / "toy" / "study.db", 2)
    kids = _children(p.pid)
    assert kids, "the command started no other worker"
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGTERM
    def alive(pid: int) -> bool:  # a zombie waiting for its new parent to reap it is not
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.time() + 30
    while time.time() < deadline and any(alive(k) for k in kids):
        time.sleep(0.1)
    assert not any(alive(k) for k in kids)


def test_report_of_a_spec_file_uses_the_spec_name_not_the_file_name(project):
    """A spec whose file name differs from its `name` is stored under its name; `admtune report
    FILE.toml` finds it there."""
    (project / "renamed.toml").write_text((project / "studies" / "toy.toml").read_text())
    out = project / "o"
    assert invoke("study", "renamed.toml", "--out", str(out), "--no-pdf", "--device", "cpu").exit_code == 0
    (out / "summary.json").unlink()
    result = invoke("report", "renamed.toml", "--out", str(out), "--no-pdf")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["study"] == "toy"


# ---------------------------------------------------------------------------------------------
# What main() does around the commands: usage errors and Ctrl-C outside a study's own handler


def _main(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run admtune's real entry point in a fresh interpreter, after ``code`` (a kill point)."""
    script = (f"import sys\nsys.argv = ['admtune', *{list(args)!r}]\n{code}\n"
              "from admtune import cli\ncli.main()\n")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args, words", [
    (["study", "quick", "--trials", "1e3"], "--trials expects a whole number, not '1e3' (write 1000)"),
    (["study", "quick", "--seeds=abc"], "--seeds expects a whole number, not 'abc'"),
    (["study", "quick", "--bogus"], "No such option: --bogus"),
])
def test_usage_errors_are_one_sentence(args, words):
    p = _main("", *args)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], p.stderr
    assert "Usage:" not in p.stderr and "╭" not in p.stderr and "Traceback" not in p.stderr


def test_ctrl_c_before_the_study_handler_exits_130_not_by_signal():
    """A Ctrl-C while the command still imports or parses the spec (no handler of its own yet)."""
    kill = ("import admtune.api as api\n"
            "def load_spec(*a, **k):\n    raise KeyboardInterrupt\n"
            "api.load_spec = load_spec")
    p = _main(kill, "study", "quick", "--device", "cpu")
    assert p.returncode == 130, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr


def test_ctrl_c_while_the_console_script_imports_exits_130():
    script = ("import builtins, sys\nsys.argv = ['admtune', '--version']\nreal = builtins.__import__\n"
              "def imp(name, *a, **k):\n"
              "    if name == 'typer':\n        raise KeyboardInterrupt\n"
              "    return real(name, *a, **k)\n"
              "builtins.__import__ = imp\nfrom admtune._entry import main\nmain()\n")
    p = subprocess.run([sys.executable, "-c", script], env={"PYTHONPATH": str(REPO),
                       "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 130, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr


def test_ctrl_c_during_shutdown_keeps_the_exit_code():
    """A second Ctrl-C while the interpreter shuts down (here: at exit, after main decided the
    code) must not turn a finished run into a death by SIGINT (rc −2)."""
    kill = ("import atexit, os, signal, time\n"
            "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))")
    p = _main(kill, "--version")
    assert p.returncode == 0, (p.returncode, p.stderr)
