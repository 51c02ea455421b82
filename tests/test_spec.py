"""Study specs: parsing, validation (one sentence naming the key), overrides, fingerprints."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admtune.errors import SpecError
from admtune.study import spec

RAW = {
    "name": "toy",
    "description": "a toy",
    "workload": {"name": "tests.toy_workload:toy", "dim": 4},
    "metric": "loss",
    "direction": "minimize",
    "margin": 0.01,
    "train": {"steps": 20, "batch_size": 8, "lr": {"sgd": 0.1, "adamw": 0.05}},
}


def raw(**changes):
    out = copy.deepcopy(RAW)
    for dotted, value in changes.items():
        node = out
        *path, last = dotted.split("__")
        for p in path:
            node = node.setdefault(p, {})
        if value is _DELETE:
            node.pop(last)
        else:
            node[last] = value
    return out


_DELETE = object()


def test_defaults_are_filled_and_workload_table_is_split():
    s = spec.from_dict(raw())
    assert s.workload == "tests.toy_workload:toy"
    assert s.workload_options == {"dim": 4}
    assert s.alpha == 0.05 and s.trials == 20 and s.seeds == 5
    assert s.baselines == ["sgd", "adamw"]
    assert dataclasses.asdict(s.tune) == {"beta_low": 0.0, "beta_high": 0.999, "lr": False, "lr_range": None,
                      "sampler": "tpe", "pruner": "median", "prune_after": 0.5,
                      "finalists": 3, "selection_seeds": 3, "candidates": []}
    assert s.train.weight_decay == {"sgd": 0.0, "adamw": 0.0}
    assert s.to_toml_dict()["workload"] == {"name": "tests.toy_workload:toy", "dim": 4}


def test_plain_workload_name_is_accepted():
    s = spec.from_dict(raw(workload="mlp"))
    assert s.workload == "mlp" and s.workload_options == {}


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"bogus": 1}, "bogus"),
        ({"train__bogus": 1}, "train.bogus"),
        ({"tune__bogus": 1}, "tune.bogus"),
        ({"seeds": 1}, "seeds"),
        ({"seeds": 2.5}, "seeds"),
        ({"trials": "many"}, "trials"),
        ({"trials": 0}, "trials"),
        ({"alpha": 1.5}, "alpha"),
        ({"margin": -1}, "margin"),
        ({"direction": "down"}, "direction"),
        ({"baselines": ["sgd", "lion"]}, "baselines"),
        ({"baselines": []}, "baselines"),
        ({"train__lr": {"sgd": -0.1, "adamw": 0.1}}, "train.lr.sgd"),
        ({"train__lr": {"sgd": 0.1}}, "train.lr"),
        ({"train__weight_decay": {"sgd": -1.0}}, "train.weight_decay.sgd"),
        ({"train__schedule": "step"}, "train.schedule"),
        ({"train__epochs": 3}, "train.epochs"),           # both epochs and steps
        ({"train__steps": _DELETE}, "train.epochs"),       # neither
        ({"train__batch_size": -1}, "train.batch_size"),
        ({"tune__beta_low": -0.1}, "tune.beta_low"),
        ({"tune__beta_high": 1.0}, "tune.beta_high"),
        ({"tune__beta_low": 0.9, "tune__beta_high": 0.5}, "tune.beta_high"),
        ({"tune__lr": True}, "tune.lr_range"),
        ({"tune__sampler": "cmaes"}, "tune.sampler"),
        ({"name": "../escape"}, "name"),
        ({"name": "/abs"}, "name"),
        ({"metric": _DELETE}, "metric"),
        ({"workload": {"dim": 3}}, "workload.name"),
        ({"extra_arms": ["nowarmup"]}, "extra_arms"),       # needs warmup_steps > 0
    ],
)
def test_bad_values_name_the_key(changes, named):
    with pytest.raises(SpecError) as err:
        spec.from_dict(raw(**changes))
    msg = str(err.value)
    assert msg.startswith(named), msg
    assert "\n" not in msg


def test_overrides_are_typed_like_the_file():
    s = spec.from_dict(raw(), ["train.steps=5", "tune.beta_high=0.99", "workload.dim=7",
                               "workload.label=hello world", "train.lr.sgd=0.3", "seeds=3"])
    assert s.train.steps == 5 and s.tune.beta_high == 0.99 and s.seeds == 3
    assert s.workload_options == {"dim": 7, "label": "hello world"}
    assert s.train.lr == {"sgd": 0.3, "adamw": 0.05}
    with pytest.raises(SpecError, match=r"^train.steps must be an integer"):
        spec.from_dict(raw(), ["train.steps=abc"])
    with pytest.raises(SpecError, match=r"--set train.nope: unknown key 'nope'"):
        spec.from_dict(raw(), ["train.nope=1"])
    with pytest.raises(SpecError, match=r"--set nope.x: unknown key 'nope'"):
        spec.from_dict(raw(), ["nope.x=1"])
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        spec.from_dict(raw(), ["train.steps"])


def test_top_level_overrides_apply_last():
    s = spec.from_dict(raw(), ["trials=9"], trials=4, seeds=None)
    assert s.trials == 4 and s.seeds == 5


def test_fingerprint_tracks_protocol_not_description():
    a = spec.from_dict(raw())
    b = spec.from_dict(raw(description="other words"))
    c = spec.from_dict(raw(), ["train.steps=21"])
    assert a.fingerprint("1") == b.fingerprint("1")
    assert a.fingerprint("1") != c.fingerprint("1")
    assert a.fingerprint("1") != a.fingerprint("2")
    assert spec.diff(a.to_data(), c.to_data()) == ["train.steps: 20 → 21"]


@given(st.floats(min_value=0.0, max_value=0.998), st.floats(min_value=0.0001, max_value=0.0009))
def test_valid_beta_ranges_round_trip(low, gap):
    s = spec.from_dict(raw(tune__beta_low=low, tune__beta_high=min(0.9999, low + gap)))
    assert 0 <= s.tune.beta_low < s.tune.beta_high < 1


def test_load_from_file_and_malformed_toml(tmp_path):
    good = tmp_path / "toy.toml"
    good.write_text(
        'name = "toy"\nmetric = "loss"\ndirection = "minimize"\nmargin = 0.1\n'
        '[train]\nsteps = 3\nbatch_size = 4\nlr = { sgd = 0.1, adamw = 0.01 }\n'
        '[workload]\nname = "tests.toy_workload:toy"\ndim = 3\n'
    )
    s = spec.load(str(good), ["workload.dim=5"])
    assert s.workload_options == {"dim": 5} and s.name == "toy"
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[train\n')
    with pytest.raises(SpecError, match="malformed TOML"):
        spec.load(str(bad))
    with pytest.raises(SpecError, match="does not exist"):
        spec.load(str(tmp_path / "missing.toml"))


def test_names_resolve_to_local_then_packaged_specs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match="unknown study 'no-such-study'"):
        spec.resolve("no-such-study")
    with pytest.raises(SpecError, match="not valid"):
        spec.resolve("../etc/passwd")
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "mine.toml").write_text("name = 'mine'\n")
    assert spec.resolve("mine") == tmp_path / "studies" / "mine.toml"
    assert "mine" in spec.spec_paths()
