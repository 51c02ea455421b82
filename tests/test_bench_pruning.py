"""bench.pruning on a tiny study of the toy plug-in workload: its re-runs are the trials the pruner
stopped, its counts agree with a computation from the stored results, and it writes nothing."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import torch
from optuna.trial import TrialState

from admtune import api
from admtune.bench import pruning
from admtune.study import records
from admtune.study import storage as st
from admtune.study.context import Arm, RunRecorder, seed_everything
from admtune.workloads import TrainConfig, get_workload

from .test_engine import toy_spec
from .toy_workload import Toy

# Enough trials past the median pruner's 5 startup trials that some are pruned (toy runs take ms).
SETS = ["baselines=['sgd']", "tune.finalists=2", "tune.selection_seeds=2"]


class _Skewed:
    """A run context whose mid-run validation reports are ``factor`` times the truth."""

    def __init__(self, ctx, factor: float, last: int):
        self._ctx, self._factor, self._last = ctx, factor, last

    def report(self, step: int, value: float) -> None:
        self._ctx.report(step, value if step >= self._last else value * self._factor)

    def __getattr__(self, name: str):
        return getattr(self._ctx, name)


class LateToy(Toy):
    """The toy whose odd seeds look ten times worse until their last step: the median pruner
    stops runs that would have won, as it did on the reviewer's MLP (deterministic, unlike luck)."""

    def run(self, ctx):
        factor = 10.0 if ctx.seed % 2 else 1.0
        return super().run(_Skewed(ctx, factor, ctx.train.total_steps(self.n) - 1))


def late(options: dict) -> LateToy:
    return LateToy(options)


def _counts(url: str) -> dict[str, int]:
    """Trials per study, by state: what a write to the storage would change."""
    storage = st.open_storage(url, heartbeat_interval=None)
    try:
        out = {}
        for s in storage.get_all_studies():
            for t in storage.get_all_trials(s._study_id, deepcopy=False):
                key = f"{s.study_name}:{t.state.name}"
                out[key] = out.get(key, 0) + 1
        return out
    finally:
        storage.engine.dispose()


def _rerun_directly(spec, workload, beta: float, lr: float, seed: int) -> float:
    """A pruned trial to completion through the recorder and the workload alone (no executor)."""
    t = spec.train
    arm = Arm(baseline="sgd", name="trial", beta=beta, lr=lr, weight_decay=t.weight_decay["sgd"],
              warmup_steps=spec.warmup_for(False))
    cfg = TrainConfig(batch_size=t.batch_size, lr=lr, weight_decay=arm.weight_decay, epochs=t.epochs,
                      steps=t.steps, schedule=t.schedule, warmup_steps=arm.warmup_steps)
    rec = RunRecorder(seed=seed, device=torch.device("cpu"), train=cfg, options=spec.workload_options,
                      arm=arm, metric=spec.metric)
    seed_everything(seed)
    result = workload.run(rec)
    rec.finish()
    return float(result.validation[spec.metric])


LATE = "tests.test_bench_pruning:late"


@pytest.fixture(scope="module", params=[("tests.toy_workload:toy", 14), (LATE, 18)], ids=["toy", "late"])
def study(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("pruning") / "o"
    workload, trials = request.param
    spec = toy_spec("prune", SETS + [f"workload.name={workload!r}"], trials=trials, seeds=2)
    outcome = api.run_study(spec, out=out, device="cpu", report=False)
    assert outcome.complete
    return spec, out, outcome.storage_url


def test_counts_match_the_stored_results(study, tmp_path, capsys):
    spec, out, url = study
    before = _counts(url)
    pruned = before.get("prune/tune/sgd:PRUNED", 0)
    assert pruned > 0, "the study must prune for this test to mean anything"

    assert pruning.main(["--out", str(out), "--json", str(tmp_path / "p.json")]) == 0
    assert _counts(url) == before  # the study's storage was only read
    text = capsys.readouterr().out
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["study"] == "prune" and [r["baseline"] for r in data["tuning"]] == ["sgd"]
    rep = data["tuning"][0]
    assert f"{pruned} pruned and re-run" in text

    # Independently: the stored results, and each pruned trial re-run without the executor.
    res = records.load_results(url, "prune")
    f = res.frame()
    trials = f[(f.baseline == "sgd") & (f.arm == "trial")]
    done = trials[trials.status == "complete"]
    incumbent = float(done.value.min())
    tuned_beta = float(f[f.arm == "tuned"].beta.iloc[0])
    sel = f[(f.arm == "select") & (f.beta == tuned_beta)]
    sel_mean = float(sel.value.mean())
    own = done[done.beta == tuned_beta]
    own_value = float(own.value.iloc[0]) if len(own) else None
    assert rep["incumbent"] == incumbent
    assert rep["selected_beta"] == tuned_beta and rep["selected_mean"] == pytest.approx(sel_mean)
    assert rep["selected_trial_value"] == own_value

    workload = get_workload(spec.workload, spec.workload_options)
    stored = {t.number: t for t in optuna.load_study(study_name="prune/tune/sgd", storage=url).trials
              if t.state == TrialState.PRUNED}
    by_trial = {r["trial"]: r for r in rep["reruns"]}
    assert sorted(by_trial) == sorted(stored)
    beat_inc = beat_mean = beat_own = 0
    beating = []
    for number, t in stored.items():
        r = by_trial[number]
        value = _rerun_directly(spec, workload, t.user_attrs["beta"], t.user_attrs["lr"],
                                records.TUNING_SEED_OFFSET + number)
        assert r["value"] == value  # the same run, bit for bit
        assert r["reproduced"] and r["pruned_at"] < spec.train.steps
        assert math.isfinite(value)
        beat_inc += value < incumbent
        beat_mean += value < sel_mean
        beat_own += own_value is not None and value < own_value
        if value < sel_mean:
            beating.append(t.user_attrs["beta"])
    c = rep["counts"]
    assert (c["pruned"], c["beat_incumbent"], c["beat_selected_mean"]) == (pruned, beat_inc, beat_mean)
    assert c["beat_selected_trial"] == (beat_own if own_value is not None else None)
    assert sorted(c["beating_mean"]) == sorted(beating)
    if spec.workload == LATE:  # the counts are not all zero: both outcomes are checked
        assert 0 < beat_own < pruned and 0 < beat_mean


def test_bad_input_is_one_sentence(tmp_path, capsys):
    assert pruning.main(["--out", str(tmp_path / "nothing")]) == 2
    assert "no stored study" in capsys.readouterr().err
    assert not (tmp_path / "nothing" / "study.db").exists()  # not created by looking

    engine, _ = api.prepare_engine(toy_spec("half", SETS, trials=14, seeds=2), out=tmp_path / "h",
                                   device="cpu")
    engine.prepare()  # the studies exist, no run has been made
    engine.close()
    assert pruning.main(["--out", str(tmp_path / "h")]) == 2
    assert "is not finished" in capsys.readouterr().err
    assert pruning.main(["--out", str(tmp_path / "h"), "--study", "other"]) == 2
    assert "no admtune study named 'other'" in capsys.readouterr().err
