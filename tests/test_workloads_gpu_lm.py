"""The byte-level LM workload on the CPU with a tiny model and corpus."""

from __future__ import annotations

import math
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from admtune.errors import DataError, SpecError
from admtune.study.context import Arm, RunRecorder
from admtune.workloads import Pruned, TrainConfig, get_workload
from admtune.workloads import lm as L
from admtune.workloads.models import GPT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TINY = {"max_bytes": 60_000, "n_layer": 1, "n_head": 2, "d_model": 32, "context": 32,
        "eval_batches": 2}


def make_ctx(seed=0, steps=12, batch=8, lr=3e-3, baseline="adamw", beta=0.9, warmup=3, **kw):
    train = TrainConfig(batch_size=batch, lr=lr, weight_decay=0.1, steps=steps, schedule="cosine",
                        warmup_steps=warmup)
    arm = Arm(baseline=baseline, name="tuned", beta=beta, lr=lr, weight_decay=0.1,
              warmup_steps=warmup)
    return RunRecorder(seed=seed, device=torch.device("cpu"), train=train, options={}, arm=arm, **kw)


def test_stdlib_corpus_is_the_sorted_sources_capped():
    data, source = L.read_corpus("", 50_000)
    assert len(data) == 50_000 and source.startswith("stdlib ")
    files = L.stdlib_files()
    root = Path(sysconfig.get_paths()["stdlib"])
    rels = [p.relative_to(root).as_posix() for p in files]
    assert rels == sorted(rels) and all(r.endswith(".py") for r in rels)
    assert not any("site-packages" in r for r in rels)
    first = files[0].read_bytes()
    assert data.startswith(first[:1000])
    assert L.read_corpus("", 50_000)[0] == data


def test_split_is_contiguous_blocks_18_1_1():
    data = bytes(range(256)) * 400  # 102,400 bytes
    train, val, test, block = L.split_corpus(data, context=32)
    assert block == len(data) // 40
    assert len(val) == len(test) == 2 * block and len(train) == 36 * block
    assert val[:block] == data[18 * block:19 * block] and test[:block] == data[19 * block:20 * block]
    assert train[:18 * block] == data[:18 * block]
    big = b"x" * 10_000_000
    assert L.split_corpus(big, 256)[3] == L.BLOCK_BYTES
    with pytest.raises(DataError, match="too few for context 256"):
        L.split_corpus(b"y" * 5000, 256)


def test_user_text_file(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_bytes(b"hello world, " * 2000)
    data, source = L.read_corpus(str(p), 1000)
    assert data == (b"hello world, " * 2000)[:1000] and source == str(p.resolve())
    with pytest.raises(DataError, match="is not a file"):
        L.read_corpus(str(tmp_path / "missing.txt"), 1000)


@pytest.mark.parametrize("options, key", [
    ({"layers": 2}, "workload.layers"),
    ({"n_layer": 0}, "workload.n_layer"),
    ({"context": 1.5}, "workload.context"),
    ({"data_path": 3}, "workload.data_path"),
    ({"d_model": 30, "n_head": 4}, "workload.d_model"),
])
def test_bad_options_name_the_key(options, key):
    with pytest.raises(SpecError) as err:
        L.lm(options)
    assert str(err.value).startswith(key)


def test_gpt_is_causal():
    torch.manual_seed(0)
    model = GPT(n_layer=2, n_head=2, d_model=16, context=12).eval()
    x = torch.randint(0, 256, (2, 12))
    y = x.clone()
    y[:, 7:] = torch.randint(0, 256, (2, 5))
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6) and not torch.allclose(a[:, 7:], b[:, 7:])
    assert model.wte.weight is not None and a.shape == (2, 12, 256)


def test_eval_windows_do_not_overlap():
    starts = L.eval_windows(1000, 32, 100)
    assert starts.tolist() == list(range(0, 1000 - 32, 32))
    few = L.eval_windows(10_000, 32, 10)
    assert len(few) == 10 and few[0] == 0 and few[-1] + 33 <= 10_000


def test_run_learns_and_reports():
    wl = get_workload("lm", TINY)
    ctx = make_ctx(steps=30, batch=8, lr=1e-2)
    res = wl.run(ctx)
    ctx.finish()
    assert res.steps == 30 and len(ctx._losses) == 30
    assert ctx.val_steps == [3 * k - 1 for k in range(1, 11)]  # 10 per run by default, 0-based
    for split in (res.validation, res.test):
        assert set(split) == {"loss", "bpb"}
        assert split["bpb"] == pytest.approx(split["loss"] / math.log(2))
        assert split["loss"] < math.log(256)  # better than uniform over bytes
    assert ctx.val_values[-1] == pytest.approx(res.validation["loss"])
    assert ctx.val_values[-1] < ctx.val_values[0]
    assert res.extra["corpus_bytes"] == 60_000 and len(res.extra["corpus_sha256"]) == 64
    assert res.extra["val_windows"] == 16


def test_seed_fixes_the_run_and_micro_batches_match_the_full_batch():
    base = get_workload("lm", TINY)
    micro = get_workload("lm", {**TINY, "micro_batch_tokens": 64})  # 2 windows per pass
    a, b, c = make_ctx(seed=3, steps=5), make_ctx(seed=3, steps=5), make_ctx(seed=3, steps=5)
    ra, rb, rc = base.run(a), base.run(b), micro.run(c)
    assert a.curve()["train_loss"] == b.curve()["train_loss"] and ra.test == rb.test
    assert c.curve()["train_loss"] == pytest.approx(a.curve()["train_loss"], rel=1e-4)
    assert rc.test["loss"] == pytest.approx(ra.test["loss"], rel=1e-4)
    other = make_ctx(seed=4, steps=5)
    base.run(other)
    assert other.curve()["train_loss"] != a.curve()["train_loss"]


def test_sgd_arm_and_pruning():
    wl = get_workload("lm", {**TINY, "eval_every": 2})
    ctx = make_ctx(steps=6, baseline="sgd", lr=0.5, should_prune=lambda s, v: s >= 3)
    with pytest.raises(Pruned):
        wl.run(ctx)
    assert ctx.val_steps == [1, 3]  # 0-based: after the 2nd and the 4th update


def test_lm_spec_asks_for_the_warmup_free_comparison():
    path = Path(__file__).resolve().parents[1] / "studies" / "lm.toml"
    raw = tomllib.loads(path.read_text())
    assert raw["extra_arms"] == ["nowarmup"]
    assert raw["train"]["adm_warmup_steps"] == 0 and raw["train"]["warmup_steps"] > 0
    assert "adamw" in raw["baselines"] and raw["metric"] == "loss"
    assert raw["direction"] == "minimize"
    opts = {k: v for k, v in raw["workload"].items() if k != "name"}
    assert L.lm(opts).options["context"] == 256
    spec_mod = pytest.importorskip("admtune.study.spec")
    spec = spec_mod.load(str(path), ["train.steps=3", "workload.n_layer=1"])
    assert spec.warmup_for(adm=True) == 0 and spec.warmup_for(adm=False) == 200
    assert get_workload(spec.workload, spec.workload_options).options["n_layer"] == 1


def test_bench_lm_on_the_cpu(capsys):
    from admtune.bench import workloads as bench_workloads

    rc = bench_workloads.main([
        "--workload", "lm", "--device", "cpu", "--steps", "4", "--baseline", "adamw",
        "--set", "workload.n_layer=1", "--set", "workload.d_model=32", "--set", "workload.n_head=2",
        "--set", "workload.context=32", "--set", "workload.max_bytes=60000",
        "--set", "workload.eval_batches=1", "--set", "train.batch_size=8", "--study-estimate",
    ])
    text = capsys.readouterr().out
    assert rc == 0 and "tokens/s" in text and "val loss" in text
    assert "1 baseline(s) × (20 trials + 12 selection runs + 4 arms × 5 seeds) = 52 runs" in text


@pytest.mark.parametrize("baseline, lr", [("sgd", 0.5), ("adamw", 1e-2)])
def test_adm_arms_train_with_the_param_groups(baseline, lr):
    optim = pytest.importorskip("admtune.optim")
    if not hasattr(optim, "AdMSGD"):
        pytest.skip("admtune.optim has no AdM optimizers yet")
    ctx = make_ctx(steps=4, baseline=baseline, lr=lr)
    ctx.arm = Arm(baseline=baseline, name="adm", beta=None, lr=lr, weight_decay=0.1)
    res = get_workload("lm", TINY).run(ctx)
    ctx.finish()
    assert math.isfinite(res.test["loss"]) and ctx.beta_trace() is not None


def test_lm_study_completes_with_a_report_on_the_cpu(tmp_path):
    """The issue's done-when for `admtune study lm` with a tiny model and corpus: AdM without
    warmup, tuned β1 with warmup and the extra `nowarmup` arm, side by side in the report."""
    import json
    import os
    import subprocess

    import pandas as pd

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    sets = [f"workload.{k}={v}" for k, v in TINY.items()] + [
        "train.steps=6", "train.warmup_steps=2", "train.batch_size=8"]
    cmd = [sys.executable, "-m", "admtune.cli", "study", "lm", "--device", "cpu", "--no-pdf",
           "--trials", "2", "--seeds", "2", "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["baselines"]) == ["adamw"] and summary["metric"] == "loss"
    runs = pd.read_csv(out / "runs.csv")
    counts = runs.arm.value_counts().to_dict()
    sel = runs[runs.arm == "select"]
    assert counts.pop("select") == 3 * sel.beta.nunique()  # every finalist on 3 selection seeds
    assert counts == {"trial": 2, "adm": 2, "tuned": 2, "default": 2, "nowarmup": 2}
    reason = summary["baselines"]["adamw"]["reason"]  # the verdict text says what was compared
    assert "AdM trained without warmup" in reason and "with 2 warmup steps" in reason
    assert "arm nowarmup" in reason
    assert "AdM trained without warmup" in (out / "report.html").read_text()
