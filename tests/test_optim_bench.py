"""The benchmark command runs (on a tiny parameter set here) and reports what it promises."""

from __future__ import annotations

import math

import pytest

import admtune.bench.optimizers as bench


def test_resnet18_shapes_are_torchvisions():
    shapes = bench.resnet18_shapes()
    assert len(shapes) == 62
    assert sum(math.prod(s) for s in shapes) == 11_689_512


@pytest.mark.parametrize("protocol", ["interleaved", "blocks"])
def test_run_bench_rows(protocol):
    rows = bench.run_bench("cpu", repeats=2, warmup=1, shapes=[(10,), (3, 4), (300,)],
                           protocol=protocol, rounds=2, blocks=2)
    names = [r["name"] for r in rows]
    assert names[0].startswith("torch SGD") and "AdMSGD" in names and "AdMAdamW" in names
    by_family: dict[str, list[dict]] = {}
    for r in rows:
        by_family.setdefault(r["family"], []).append(r)
        assert r["median_ms"] > 0 and r["params"] == 322 and r["repeats"] == 2
        assert r["rounds"] == 2 and r["protocol"] == protocol
        assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
        # a target only for the default AdM rows, and met says whether the ratio is under it
        assert (r["target"] is not None) == (r["name"] in ("AdMSGD", "AdMAdamW"))
        if r["target"] is not None:
            assert r["met"] == (r["ratio"] <= r["target"])
    assert {"torch SGD, fused", "torch AdamW, fused", "AdMSGD, for-loop"} <= set(names)
    for fam in by_family.values():
        assert fam[0]["baseline"] and fam[0]["ratio"] == 1.0
        # state memory: the baseline's, exactly (AdMSGD: one buffer; AdMAdamW: two + a scalar)
        assert all(r["state_bytes"] == fam[0]["state_bytes"] for r in fam)


@pytest.mark.parametrize("targets,word", [({"AdMSGD": 1e9, "AdMAdamW": 1e9}, "met"),
                                          ({"AdMSGD": 1e-9, "AdMAdamW": 1e-9}, "MISSED")])
def test_main_prints_table_and_marks_targets_in_words(monkeypatch, capsys, targets, word):
    """Without a terminal (no colour) a missed target still reads as missed."""
    monkeypatch.setattr(bench, "RESNET18_SHAPES", [(10,), (20, 3)])
    monkeypatch.setitem(bench.TARGETS, "cpu", targets)
    assert bench.main(["--repeats", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "AdMSGD" in out and "AdMAdamW" in out and "ratio" in out
    rows = [ln for ln in out.splitlines() if ln.strip("│ ").startswith(("AdMSGD ", "AdMAdamW "))]
    assert len(rows) == 2 and all(word in ln for ln in rows), out


def test_bad_arguments():
    with pytest.raises(ValueError, match="repeats"):
        bench.run_bench("cpu", repeats=0)
    with pytest.raises(ValueError, match="protocol must be one of interleaved, blocks"):
        bench.run_bench("cpu", protocol="random")
    with pytest.raises(SystemExit):
        bench.main(["--device", "cuda:7"] if not bench.torch.cuda.is_available() else ["--x"])


def test_train_protocol_times_the_step_inside_training(capsys, monkeypatch):
    rows = bench.run_bench("cpu", repeats=2, warmup=1, protocol="train", batch=2, width=0.125)
    for r in rows:
        assert 0 < r["median_ms"] < r["iter_ms"] and r["share"] == r["median_ms"] / r["iter_ms"]
        assert r["protocol"] == "train" and r["params"] < 1_000_000  # the narrow net's own count
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: rows)
    assert bench.main(["--protocol", "train", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "ResNet-18 training" in out and "of iteration" in out
