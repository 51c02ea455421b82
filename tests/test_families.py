"""The optimizer-family registry: the built-in families, and a third one registered from a test
module running a whole study (tuning, evaluation, report) beside SGD and AdamW."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from admtune import api, check, families
from admtune.errors import SpecError
from admtune.study.context import Arm, build_optimizer


def test_builtin_families_build_torch_baselines_and_adm():
    p = [torch.nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer(p, Arm("sgd", "tuned", beta=0.8, lr=0.1, weight_decay=0.0))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.8 and sgd.defaults["dampening"] == 0.8
    adamw = build_optimizer(p, Arm("adamw", "tuned", beta=0.7, lr=0.1, weight_decay=0.01))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.7, 0.999)
    assert type(build_optimizer(p, Arm("sgd", "adm", None, 0.1, 0.0))).__name__ == "AdMSGD"
    assert type(build_optimizer(p, Arm("adamw", "adm", None, 0.1, 0.0))).__name__ == "AdMAdamW"
    assert families.names()[:2] == ("sgd", "adamw")


def test_an_unknown_family_is_one_sentence():
    with pytest.raises(SpecError, match="baselines must be a non-empty list of distinct values"):
        api.load_spec("quick", ["baselines=['lion']"])


@pytest.fixture
def heavyball():
    from tests import toy_family

    families.register(toy_family.FAMILY, replace=True)
    toy_family.CALLS.update(baseline=0, adm=0)
    yield toy_family
    families.unregister("heavyball")


SPEC = {
    "name": "three", "metric": "loss", "direction": "minimize", "margin": 0.05,
    "baselines": ["sgd", "adamw", "heavyball"], "trials": 3, "seeds": 2,
    "train": {"steps": 12, "batch_size": 8, "lr": {"sgd": 0.1, "adamw": 0.05, "heavyball": 0.05}},
    "workload": {"name": "tests.toy_workload:toy", "dim": 4},
}


def test_a_registered_family_runs_a_study_end_to_end(tmp_path, heavyball):
    from admtune.study import spec as specmod

    s = specmod.from_dict(SPEC)
    assert s.train.weight_decay["heavyball"] == 0.0  # a plug-in family decays by 0 unless told
    outcome = api.run_study(s, device="cpu", out=tmp_path, pdf=True)
    assert outcome.complete and outcome.reported
    # every tuning, selection and evaluation run of the family built its own optimizers
    f = outcome.results.frame()
    runs = f[f.baseline == "heavyball"].arm.value_counts()
    assert heavyball.CALLS["baseline"] == runs["trial"] + runs["select"] + runs["tuned"] + runs["default"]
    assert heavyball.CALLS["adm"] == runs["adm"] == 2 and runs["trial"] == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["baselines"]) == ["sgd", "adamw", "heavyball"]
    assert summary["baselines"]["heavyball"]["verdict"] in ("beats", "matches", "loses", "inconclusive")
    rows = list(csv.DictReader((tmp_path / "runs.csv").open()))
    arms = {r["arm"] for r in rows if r["baseline"] == "heavyball"}
    assert arms == {"trial", "select", "adm", "tuned", "default"}
    html = (tmp_path / "report.html").read_text()
    assert "AdM-Heavy ball" in html and "Heavy ball, tuned β" in html
    assert (tmp_path / "report.pdf").read_bytes()[:5] == b"%PDF-"
    # the CI gate takes expectations for the new family too
    exp = tmp_path / "expect.toml"
    exp.write_text("[heavyball]\nverdict = ['beats', 'matches', 'loses', 'inconclusive']\n")
    assert "heavyball" in check.load_expectations(exp).baselines


def test_a_stored_study_of_an_unregistered_family_still_rebuilds(tmp_path, heavyball):
    from admtune.study import spec as specmod

    s = specmod.from_dict({**SPEC, "baselines": ["heavyball"], "trials": 2})
    api.run_study(s, device="cpu", out=tmp_path, pdf=False)
    def numbers(summary: dict) -> dict:  # the verdict's wording names the family by its display name
        return {k: v for k, v in summary["baselines"]["heavyball"].items() if k != "reason"}

    before = json.loads((tmp_path / "summary.json").read_text())
    families.unregister("heavyball")
    api.rebuild_report("three", out=tmp_path, pdf=False)
    after = json.loads((tmp_path / "summary.json").read_text())
    assert numbers(after) == numbers(before)
    assert "AdM-heavyball" in after["baselines"]["heavyball"]["reason"]  # its name stands in
