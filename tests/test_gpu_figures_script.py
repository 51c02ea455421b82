"""tools/gpu_figures.sh, the one-run GPU measurement, checked end to end on the CPU (its SMOKE mode),
and the pieces of admtune.bench.gpu_figures that turn its records into estimates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from admtune.bench import gpu_figures as G
from admtune.bench.workloads import parse_tags
from admtune.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["meta", "data", "sync", "optimizers", "cifar", "airbench", "lm", "cifar-compile",
         "cifar-workers", "train", "cifar-adm", "estimate"]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_smoke_run_writes_every_record(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "SMOKE": "1", "DEVICE": "cpu", "TMPDIR": str(tmp_path), "HARD_S": "86",
           "PYTHON": sys.executable, "PEERS": str(tmp_path / "no-peers"), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(["bash", "tools/gpu_figures.sh", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=89)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "gpu-figures.log").read_text(encoding="utf-8")
    assert "accuracies mean nothing" in log
    recs = [json.loads(line) for line in (out / "gpu-figures.jsonl").read_text().splitlines()]
    assert all("date" in r for r in recs)

    steps = {r["name"]: r for r in recs if r["kind"] == "step"}
    assert list(steps) == STEPS
    assert {r["status"] for r in steps.values()} == {"ok"}, steps

    meta = next(r for r in recs if r["kind"] == "meta")
    assert meta["device_name"] == "cpu" and meta["smoke"] and meta["generated_data"]

    # The sync check cannot check anything on a CPU: skipped, not passed.
    sync = [r for r in recs if r["kind"] == "sync_check"]
    assert len(sync) == 10 and {r["status"] for r in sync} == {"skipped"}
    names = {r["optimizer"] for r in sync}
    for cls in ("AdMSGD", "AdMAdamW"):
        for gran in ("global", "tensor"):
            for foreach in (True, False):
                assert f"{cls} granularity={gran} foreach={foreach}" in names
    assert next(r for r in recs if r["kind"] == "sync_check_summary")["status"] == "skipped"

    opt = [r for r in recs if r["kind"] == "optimizer"]
    for protocol in ("interleaved", "train"):
        rows = {r["name"] for r in opt if r["protocol"] == protocol}
        assert {"AdMSGD", "AdMAdamW", "torch SGD, foreach", "torch SGD, fused",
                "torch AdamW, foreach", "torch AdamW, fused"} <= rows
    assert all(r["device_name"] == "cpu" for r in opt)

    runs = [r for r in recs if r["kind"] == "run"]
    count = {s: sum(r.get("step") == s for r in runs) for s in
             ("cifar", "cifar-compile", "cifar-workers", "cifar-adm", "lm")}
    assert count == {"cifar": 2, "cifar-compile": 2, "cifar-workers": 4, "cifar-adm": 1, "lm": 1}
    for r in runs:
        assert r["device"] == "cpu" and r["wall_s"] > 0
        if r["workload"] == "cifar":
            assert r["generated_data"] is True and "mean nothing" in r["note"]
    assert {r["workload"] for r in recs if r["kind"] == "estimate"} == {"cifar", "lm"}

    air = next(r for r in recs if r["kind"] == "airbench")
    assert air["status"] == "skipped" and air["generated_data"] is True

    conc = next(r for r in recs if r["kind"] == "concurrent")
    assert conc["processes"] == 2 and conc["exit_codes"] == [0, 0] and conc["steady_span_s"] > 0

    est = {r["workers"]: r for r in recs if r["kind"] == "study_estimate" and r["status"] == "ok"
           and "compile =" not in r["variant"]}
    assert sorted(est) == [1, 2, 4, 8]
    assert est[1]["runs"] == 94 and est[2]["basis"].startswith("measured")
    assert est[4]["basis"].startswith("ESTIMATE") and est[8]["basis"].startswith("ESTIMATE")
    assert all(r["generated_data"] is True for r in est.values())
    assert any(r["kind"] == "study_estimate" and "compile =" in r.get("variant", "") for r in recs)
    assert next(r for r in recs if r["kind"] == "peer")["status"] == "skipped"


def _est(**kw):
    rec = {"kind": "estimate", "workload": "cifar", "step": "cifar", "spec_examples": 2000,
           "bench_examples": 1000, "runs": 10, "steady_run_s": 3.0, "device": "cuda:0 (X)",
           "generated_data": True, "smoke": False,
           "stages": {"tuning": 4, "selection": 3, "evaluation": 3}}
    rec.update(kw)
    return rec


def test_estimates_from_records() -> None:
    records = [
        _est(),
        {"kind": "run", "step": "cifar-compile", "run": 1, "wall_s": 60.0},
        {"kind": "run", "step": "cifar-compile", "run": 2, "wall_s": 2.0},
        {"kind": "concurrent", "processes": 2, "steady_run_s": [5.0, 5.0], "steady_span_s": 5.0,
         "steady_overlap": 0.9},
        {"kind": "airbench", "status": "ok", "steady_s": 2.0},
    ]
    out = G.estimates(records)
    by = {r.get("variant"): r for r in out if r["kind"] == "study_estimate"}
    one = by["1 worker, no compile"]
    assert one["run_s"] == 6.0 and one["staged_s"] == 60.0 and one["met"]
    assert by["1 worker, workload.compile = true"]["run_s"] == 4.0
    two = by["2 workers on one GPU"]
    # 10 s per wave of 2 runs; stages 4, 3, 3 -> 2 + 2 + 2 waves (staged), 5 waves (ideal)
    assert two["run_s"] == 10.0 and two["staged_s"] == 60.0 and two["ideal_s"] == 50.0
    assert two["throughput_vs_1"] == pytest.approx(1.2)
    assert by["4 workers on one GPU"]["basis"].startswith("ESTIMATE")
    assert by["4 workers on one GPU"]["run_s"] == 20.0
    peer = next(r for r in out if r["kind"] == "peer")
    assert peer["ratio"] == 1.5 and peer["met"] and "mean nothing" in peer["note"]


def test_estimates_without_runs_or_concurrency() -> None:
    assert G.estimates([])[0]["status"] == "missing"
    out = G.estimates([_est(), {"kind": "airbench", "status": "skipped", "reason": "no CUDA"}])
    two = next(r for r in out if r.get("workers") == 2)
    assert two["basis"].startswith("ESTIMATE") and two["run_s"] == 12.0
    assert next(r for r in out if r["kind"] == "peer")["status"] == "skipped"


def test_tags() -> None:
    assert parse_tags(["a=true", "b=3", "c=some words", "d=x=y"]) == {
        "a": True, "b": 3, "c": "some words", "d": "x=y"}
    with pytest.raises(SpecError):
        parse_tags(["novalue"])


def test_torchvision_standin_normalises_like_torchvision(monkeypatch) -> None:
    import torch

    for name in ("torchvision", "torchvision.transforms"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr("builtins.__import__", _no_torchvision(__import__))
    what = G._torchvision_standin()
    assert "stand-in" in what
    norm = sys.modules["torchvision.transforms"].Normalize((0.5, 0.25, 0.0), (2.0, 1.0, 0.5))
    x = torch.ones(2, 3, 4, 4)
    y = norm(x)
    assert torch.allclose(y[:, 0], torch.full((2, 4, 4), 0.25))
    assert torch.allclose(y[:, 2], torch.full((2, 4, 4), 2.0))


def _no_torchvision(real):
    def imp(name, *args, **kwargs):
        if name == "torchvision" or name.startswith("torchvision."):
            raise ImportError("no torchvision here")
        return real(name, *args, **kwargs)
    return imp


def test_estimate_from_a_cut_short_cifar_step() -> None:
    run = {"kind": "run", "step": "cifar", "run": 1, "wall_s": 9.0, "epochs": 16,
           "train_steps": None, "batch_size": 1024, "device": "cuda:0 (X)", "generated_data": True}
    out = G.estimates([run])
    one = next(r for r in out if r.get("workers") == 1)
    assert one["run_s"] == 9.0 and one["runs"] == 94 and one["total_s"] == 94 * 9.0
    assert "only run" in one["basis"]
    assert G.estimates([{**run, "train_steps": 2}])[0]["status"] == "missing"
