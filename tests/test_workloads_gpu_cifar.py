"""The CIFAR workload on the CPU, with a small generated dataset in the real python-pickle layout:
the real loader, split, device augmentation and training loop are what these tests run."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from admtune.errors import DataError, SpecError
from admtune.study.context import Arm, RunRecorder
from admtune.workloads import Diverged, Pruned, TrainConfig, get_workload
from admtune.workloads import cifar as C
from admtune.workloads import cifar_data as CD
from admtune.workloads.models import FastNet, whitening_filters
from admtune.workloads.options import parse_options
from tests.fake_cifar import write_fake_cifar

TINY = {"width": 0.0625, "val_size": 64}


@pytest.fixture(scope="module")
def fake10(tmp_path_factory) -> Path:
    return write_fake_cifar(tmp_path_factory.mktemp("c10"), n_train=320, n_test=96, classes=10)


@pytest.fixture(scope="module")
def fake100(tmp_path_factory) -> Path:
    return write_fake_cifar(tmp_path_factory.mktemp("c100"), n_train=260, n_test=60, classes=100)


def make_ctx(seed=0, epochs=1.0, batch=64, lr=1.0, baseline="sgd", beta=0.9, wd=5e-4, **kw):
    train = TrainConfig(batch_size=batch, lr=lr, weight_decay=wd, epochs=epochs,
                        schedule="linear", warmup_steps=2)
    arm = Arm(baseline=baseline, name="tuned", beta=beta, lr=lr, weight_decay=wd, warmup_steps=2)
    return RunRecorder(seed=seed, device=torch.device("cpu"), train=train, options={}, arm=arm, **kw)


# -- files ----------------------------------------------------------------------------------------
def test_fake_cifar10_is_in_the_real_format(fake10):
    folder = fake10 / "cifar-10-batches-py"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["batches.meta", *[f"data_batch_{i}" for i in range(1, 6)], "test_batch"]
    with open(folder / "data_batch_1", "rb") as f:
        d = pickle.load(f, encoding="bytes")
    assert set(d) == {b"batch_label", b"data", b"labels", b"filenames"}
    assert d[b"data"].dtype == np.uint8 and d[b"data"].shape == (64, 3072)
    assert isinstance(d[b"labels"], list) and max(d[b"labels"]) < 10
    with open(folder / "batches.meta", "rb") as f:
        assert len(pickle.load(f, encoding="bytes")[b"label_names"]) == 10
    arrays = CD.load_arrays(CD.CIFAR10, folder)
    assert arrays["train_x"].shape == (320, 3, 32, 32) and arrays["test_x"].shape == (96, 3, 32, 32)
    assert arrays["train_y"].dtype == np.int64


def test_fake_cifar100_is_in_the_real_format(fake100):
    folder = fake100 / "cifar-100-python"
    assert sorted(p.name for p in folder.iterdir()) == ["meta", "test", "train"]
    with open(folder / "train", "rb") as f:
        d = pickle.load(f, encoding="bytes")
    assert {b"data", b"fine_labels", b"coarse_labels", b"filenames", b"batch_label"} <= set(d)
    arrays = CD.load_arrays(CD.CIFAR100, folder)
    assert arrays["train_x"].shape == (260, 3, 32, 32) and arrays["train_y"].max() < 100


def test_data_dir_may_be_the_pickle_folder_itself(fake10):
    assert CD.locate(CD.CIFAR10, fake10 / "cifar-10-batches-py") == fake10 / "cifar-10-batches-py"
    assert CD.locate(CD.CIFAR10, fake10) == fake10 / "cifar-10-batches-py"


def test_missing_data_says_where_it_looked_and_how_to_provide_it(tmp_path):
    with pytest.raises(DataError) as err:
        CD.locate(CD.CIFAR100, tmp_path / "nowhere")
    msg = str(err.value)
    assert "cifar-100-python" in msg and "cifar-100-python.tar.gz" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg and "download = true" in msg
    assert "\n" not in msg


def test_corrupt_batch_names_the_file(fake10, tmp_path):
    bad = tmp_path / "cifar-10-batches-py"
    bad.mkdir()
    for p in (fake10 / "cifar-10-batches-py").iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3 is corrupt"):
        CD.load_arrays(CD.CIFAR10, bad)
    with open(bad / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match="expected uint8 N×3072"):
        CD.load_arrays(CD.CIFAR10, bad)


def _archive_of(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue()


def test_archive_is_checked_against_its_md5_then_extracted(fake100, tmp_path):
    blob = _archive_of(fake100 / "cifar-100-python")
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(blob)
    with pytest.raises(DataError, match="corrupt: its MD5"):  # the published MD5 does not match
        CD.locate(CD.CIFAR100, tmp_path)
    rel = dataclasses.replace(CD.CIFAR100, md5=hashlib.md5(blob).hexdigest())
    folder = CD.locate(rel, tmp_path)
    assert folder == tmp_path / "cifar-100-python"
    assert CD.load_arrays(rel, folder)["test_y"].shape == (60,)


def test_download_only_when_asked_and_md5_checked(fake10, tmp_path, monkeypatch):
    blob = _archive_of(fake10 / "cifar-10-batches-py")
    rel = dataclasses.replace(CD.CIFAR10, md5=hashlib.md5(blob).hexdigest())
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return io.BytesIO(blob)

    monkeypatch.setattr(CD.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(DataError, match="not found"):
        CD.locate(rel, tmp_path / "a", download=False)
    assert urls == []
    folder = CD.locate(rel, tmp_path / "a", download=True)
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert (folder / "data_batch_5").is_file()

    def offline(url, timeout=None):
        raise OSError("network unreachable")

    monkeypatch.setattr(CD.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="could not download .*network unreachable"):
        CD.locate(rel, tmp_path / "b", download=True)
    assert not list((tmp_path / "b").glob("*.part"))


# -- options --------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, key", [
    ({"colour": 1}, "workload.colour"),
    ({"arch": "vgg"}, "workload.arch"),
    ({"width": 0}, "workload.width"),
    ({"val_size": 0}, "workload.val_size"),
    ({"compile": "yes"}, "workload.compile"),
    ({"label_smoothing": 1.5}, "workload.label_smoothing"),
])
def test_bad_options_name_the_key(options, key):
    with pytest.raises(SpecError) as err:
        C.cifar10(options)
    assert str(err.value).startswith(key)


def test_registry_names():
    assert isinstance(get_workload("cifar", {}), C.Cifar)
    assert get_workload("cifar100", {"arch": "resnet18"}).release is CD.CIFAR100
    assert C.cifar10({}).metrics == {"accuracy": "maximize", "loss": "minimize"}


def test_val_size_too_large(fake10):
    wl = C.cifar10({"data_dir": str(fake10), "val_size": 320})
    with pytest.raises(SpecError, match="workload.val_size"):
        wl.run(make_ctx())


# -- split and augmentation -----------------------------------------------------------------------
def test_validation_is_the_tail_of_a_fixed_permutation(fake10):
    opts = parse_options("cifar10", {"data_dir": str(fake10), "val_size": 50}, C.OPTIONS)
    data = C.device_data(CD.CIFAR10, opts, torch.device("cpu"))
    arrays = CD.load_arrays(CD.CIFAR10, fake10 / "cifar-10-batches-py")
    perm = torch.randperm(320, generator=torch.Generator().manual_seed(0))
    assert torch.equal(data.val_x, torch.from_numpy(arrays["train_x"])[perm[-50:]])
    assert data.train_y.shape == (270,) and data.train_x.shape == (270, 3, 36, 36)
    sub = C.device_data(CD.CIFAR10, {**opts, "n_train": 100}, torch.device("cpu"))
    assert torch.equal(sub.val_x, data.val_x) and sub.train_y.shape == (100,)


def test_reflect_pad_matches_torch():
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    ref = F.pad(x.float(), (2, 2, 2, 2), mode="reflect").to(torch.uint8)
    assert torch.equal(C.reflect_pad(x, 2), ref)


def test_batch_stream_crops_and_flips_like_the_reference(fake10):
    opts = parse_options("cifar10", {"data_dir": str(fake10), "val_size": 64}, C.OPTIONS)
    data = C.device_data(CD.CIFAR10, opts, torch.device("cpu"))
    stream = C.BatchStream(data, 100, 2, True, torch.Generator().manual_seed(3))
    x, y = stream.next()
    assert x.shape == (100, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    order, shift, mirror = stream._order, stream._shift, stream._mirror
    for i in range(0, 100, 9):
        j = order[i]
        sy, sx = shift[i].tolist()
        ref = data.train_x[j, :, sy:sy + 32, sx:sx + 32]
        if mirror[i]:
            ref = ref.flip(-1)
        assert torch.allclose(x[i], C.normalise(ref[None])[0])
        assert y[i] == data.train_y[j]
    assert 0 < int(mirror.sum()) < len(mirror) and shift.min() == 0 and shift.max() == 4


def test_batch_stream_spans_passes_with_fixed_batch_size(fake10):
    opts = parse_options("cifar10", {"data_dir": str(fake10), "val_size": 64}, C.OPTIONS)
    data = C.device_data(CD.CIFAR10, opts, torch.device("cpu"))  # 256 training images
    a = C.BatchStream(data, 100, 2, True, torch.Generator().manual_seed(1))
    b = C.BatchStream(data, 100, 2, True, torch.Generator().manual_seed(1))
    c = C.BatchStream(data, 100, 2, True, torch.Generator().manual_seed(2))
    labels = [a.next()[1]]
    first_pass = a._order.clone()
    labels += [a.next()[1], a.next()[1]]  # the third batch straddles two passes
    assert all(len(v) == 100 for v in labels)
    assert a._pos == 300 - 256 and not torch.equal(a._order, first_pass)
    assert torch.equal(labels[0], data.train_y[first_pass[:100]])
    xb, yb = b.next()
    assert torch.equal(xb, C.BatchStream(data, 100, 2, True, torch.Generator().manual_seed(1))
                       .next()[0])
    assert not torch.equal(xb, c.next()[0])


def test_whitening_filters_whiten_patches():
    torch.manual_seed(0)
    base = torch.randn(200, 3, 32, 32)
    images = base + 0.8 * base.roll(1, dims=3) + 0.5 * base.roll(1, dims=1)  # correlated pixels
    w = whitening_filters(images, eps=1e-6)
    out = F.conv2d(images.double(), w.double())  # N × 12 × 31 × 31
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)
    cov = torch.cov(flat)
    assert torch.allclose(cov, torch.eye(12, dtype=cov.dtype), atol=0.05)
    net = FastNet(10, width=0.0625)
    net.init_whitening(w)
    assert not net.stem[0].weight.requires_grad and net.stem[0].bias.requires_grad


# -- training runs --------------------------------------------------------------------------------
def test_run_trains_reports_and_records(fake10):
    wl = C.cifar10({"data_dir": str(fake10), **TINY})
    ctx = make_ctx(seed=1, epochs=2, batch=64)
    res = wl.run(ctx)
    ctx.finish()
    assert res.steps == 8 and len(ctx._losses) == 8  # 256 images / 64 = 4 steps per epoch
    assert ctx.val_steps == [3, 7]  # 0-based: after the 4th and the 8th update
    assert ctx.val_values[-1] == pytest.approx(res.validation["accuracy"])
    for split in (res.validation, res.test):
        assert set(split) == {"accuracy", "loss"}
        assert 0 <= split["accuracy"] <= 100 and math.isfinite(split["loss"])
    assert res.extra["n_train"] == 256 and res.extra["n_val"] == 64 and res.extra["n_test"] == 96
    assert res.extra["epochs"] == pytest.approx(2.0)
    assert len(ctx.curve()["train_loss"]) == 8


def test_same_seed_same_run_other_seed_differs(fake10):
    wl = C.cifar10({"data_dir": str(fake10), **TINY, "n_train": 128})
    runs = []
    for seed in (5, 5, 6):
        ctx = make_ctx(seed=seed, epochs=1, batch=64)
        runs.append((wl.run(ctx), ctx.curve()["train_loss"]))
    assert runs[0][1] == runs[1][1] and runs[0][0].test == runs[1][0].test
    assert runs[0][1] != runs[2][1]


def test_learns_the_fake_classes(fake10):
    wl = C.cifar10({"data_dir": str(fake10), **TINY, "label_smoothing": 0.0, "whiten": False,
                    "tta": False})
    res = wl.run(make_ctx(seed=0, epochs=3, batch=32, lr=1e-2, baseline="adamw", wd=0.0))
    assert res.test["accuracy"] > 25  # chance is 10%


@pytest.mark.parametrize("arch, factory", [("resnet18", C.cifar10), ("fast", C.cifar100)])
def test_resnet18_and_cifar100(arch, factory, fake10, fake100):
    folder = fake10 if factory is C.cifar10 else fake100
    wl = factory({"data_dir": str(folder), "arch": arch, "width": 0.0625, "val_size": 40,
                  "n_train": 64, "tta": False, "whiten": False})
    ctx = make_ctx(epochs=1, batch=32, baseline="adamw", lr=1e-3, wd=0.05)
    res = wl.run(ctx)
    assert res.steps == 2 and 0 <= res.test["accuracy"] <= 100


def test_divergence_raises(fake10):
    wl = C.cifar10({"data_dir": str(fake10), **TINY, "n_train": 128})
    with pytest.raises(Diverged):
        ctx = make_ctx(epochs=1, batch=64, lr=1e30)
        wl.run(ctx)
        ctx.finish()


def test_pruning_stops_the_run(fake10):
    wl = C.cifar10({"data_dir": str(fake10), **TINY, "n_train": 128})
    seen = []
    ctx = make_ctx(epochs=3, batch=64, should_prune=lambda s, v: seen.append((s, v)) or True)
    with pytest.raises(Pruned):
        wl.run(ctx)
    assert [s for s, _ in seen] == [1]  # 0-based: after the 2nd update, the end of epoch 1


def test_spec_overrides_reach_the_workload(fake10):
    spec_mod = pytest.importorskip("admtune.study.spec")
    for name in ("cifar", "cifar100"):
        spec = spec_mod.load(name, [f"workload.data_dir={fake10}", "train.epochs=1"])
        assert spec.metric == "accuracy" and spec.direction == "maximize"
        assert spec.train.epochs == 1
        wl = get_workload(spec.workload, spec.workload_options)
        assert wl.options["data_dir"] == str(fake10) and wl.options["arch"] == "fast"


# -- the benchmark command ------------------------------------------------------------------------
def test_bench_runs_on_the_cpu_with_fake_data(fake10, tmp_path, capsys):
    from admtune.bench import workloads as bench_workloads

    out = tmp_path / "bench.jsonl"
    rc = bench_workloads.main([
        "--workload", "cifar", "--data-dir", str(fake10), "--device", "cpu", "--epochs", "1",
        "--set", "workload.width=0.0625", "--set", "workload.val_size=64",
        "--set", "train.batch_size=128", "--study-estimate", "--json", str(out),
    ])
    text = capsys.readouterr().out
    assert rc == 0
    assert "s/run" in text and "images/s" in text and "test accuracy" in text
    assert ("study estimate (cifar.toml: 2 baseline(s) × (20 trials + 12 selection runs + "
            "3 arms × 5 seeds) = 94 runs") \
        in text
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and '"kind": "estimate"' in lines[1]


def test_bench_errors_are_one_sentence(tmp_path, capsys):
    from admtune.bench import workloads as bench_workloads

    rc = bench_workloads.main(["--workload", "cifar", "--data-dir", str(tmp_path),
                               "--device", "cpu", "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: CIFAR-10 not found")
    if not torch.cuda.is_available():
        assert bench_workloads.main(["--device", "cuda", "--data-dir", str(tmp_path)]) == 2


def test_adm_sgd_arm_trains_without_the_frozen_whitening(fake10):
    optim = pytest.importorskip("admtune.optim")
    if not hasattr(optim, "AdMSGD"):
        pytest.skip("admtune.optim has no AdM optimizers yet")
    ctx = make_ctx(epochs=1, batch=64, lr=1.0)
    ctx.arm = Arm(baseline="sgd", name="adm", beta=None, lr=1.0, weight_decay=5e-4)
    res = C.cifar10({"data_dir": str(fake10), **TINY, "n_train": 128}).run(ctx)
    ctx.finish()
    trace = ctx.beta_trace()
    assert math.isfinite(res.test["loss"]) and trace is not None and len(trace["names"]) == 2


# -- the done-when, end to end through the command line --------------------------------------
def test_cifar_study_completes_with_a_report_on_the_cpu(fake10, tmp_path):
    """`admtune study cifar --set workload.data_dir=<generated> --set train.epochs=1 --trials 2
    --seeds 2 --device cpu` (narrower net, smaller batch and held-out set for the tiny data)."""
    import json
    import os
    import subprocess
    import sys

    import pandas as pd

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "admtune.cli", "study", "cifar", "--device", "cpu",
           "--trials", "2", "--seeds", "2", "--out", str(out),
           "--set", f"workload.data_dir={fake10}", "--set", "train.epochs=1",
           "--set", "train.batch_size=64", "--set", "workload.val_size=64",
           "--set", "workload.width=0.0625"]
    r = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    for f in ("report.html", "report.pdf", "summary.json", "runs.csv"):
        assert (out / f).stat().st_size > 0, f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "accuracy" and summary["direction"] == "maximize"
    assert {b: e["verdict"] in ("beats", "matches", "loses", "inconclusive")
            for b, e in summary["baselines"].items()} == {"sgd": True, "adamw": True}
    runs = pd.read_csv(out / "runs.csv")
    sel = runs[runs.arm == "select"]
    runs = runs[runs.arm != "select"]  # each finalist on its selection seeds, counted apart
    assert len(sel) == 3 * sel.groupby("baseline").beta.nunique().sum()
    assert len(runs) == 2 * 2 + 2 * 3 * 2 and set(runs.status) <= {"complete", "pruned"}
    ev = runs[runs.arm != "trial"]
    assert ev.value.between(0, 100).all()  # test accuracy in percent
