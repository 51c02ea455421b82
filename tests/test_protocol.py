"""The protocol's selection stage and studies that grow, on the toy plug-in workload."""

from __future__ import annotations

import uuid

import optuna
import pytest
from optuna.trial import TrialState

from admtune import api
from admtune.errors import AdmtuneError
from admtune.study import records
from admtune.study import storage as st
from tests.test_engine import kill_inside, start_worker, toy_spec


def run(s, out, **kw):
    kw.setdefault("report", False)
    return api.run_study(s, out=out, device="cpu", **kw)


SGD_ONLY = ["baselines=['sgd']", "tune.sampler='random'"]


def test_a_trial_that_won_by_luck_is_not_the_tuned_beta(tmp_path):
    """The single-seed best trial is a finalist, but the tuned β is the best selection mean."""
    honest = run(toy_spec("luck", SGD_ONLY, trials=6), tmp_path / "a").results.frame()
    trials = honest[(honest.arm == "trial") & (honest.status == "complete")]
    worst = trials.sort_values("value").iloc[-1]  # make the worst β look best on its tuning seed
    lucky = run(toy_spec("luck", [*SGD_ONLY, f"workload.lucky_seeds=[{int(worst.seed)}]"], trials=6),
                tmp_path / "b").results.frame()
    t = lucky[(lucky.arm == "trial") & (lucky.status == "complete")]
    assert t.sort_values("value").iloc[0].beta == worst.beta  # the same β, now the single-seed best
    sel = lucky[lucky.arm == "select"]
    assert worst.beta in set(sel.beta) and 0.9 in set(sel.beta)  # both are finalists
    means = sel.groupby("beta").value.mean()
    tuned = lucky[lucky.arm == "tuned"].beta.iloc[0]
    assert tuned == means.idxmin() and tuned != worst.beta
    assert means[tuned] <= means[0.9]


def test_candidates_join_the_finalists(tmp_path):
    f = run(toy_spec("cand", [*SGD_ONLY, "tune.candidates=[0.5, 0.9]", "tune.finalists=1"], trials=3),
            tmp_path / "o").results.frame()
    sel = f[f.arm == "select"]
    assert len(dict.fromkeys(sel.beta)) == 3 and {0.5, 0.9} <= set(sel.beta)  # 0.9 only once
    assert (sel.groupby("beta").size() == 3).all()


def test_seeds_grow_on_resume_and_nothing_is_rerun(tmp_path):
    out = tmp_path / "o"
    run(toy_spec("grow", seeds=3), out)
    url = st.default_url(out)
    storage = st.open_storage(url, heartbeat_interval=None)
    before = {t.number: t.user_attrs["key"] for t in optuna.load_study(
        study_name="grow/eval", storage=storage).trials if t.state == TrialState.COMPLETE}
    grown = run(toy_spec("grow", seeds=5), out)
    assert grown.complete
    ev = optuna.load_study(study_name="grow/eval", storage=storage).trials
    after = {t.number: t.user_attrs["key"] for t in ev if t.state == TrialState.COMPLETE}
    assert {n: after[n] for n in before} == before  # every earlier run kept, none re-run
    assert len(after) - len(before) == 2 * 3 * 2   # exactly 2 new seeds per arm and baseline
    f = grown.results.frame()
    assert set(f[f.arm == "adm"].seed) == {0, 1, 2, 3, 4}
    changes = grown.results.budget_changes
    assert [(c["key"], c["from"], c["to"]) for c in changes] == [("seeds", 3, 5)]


def test_trials_grow_the_same_tuning_study_and_shrinking_is_refused(tmp_path):
    out = tmp_path / "o"
    first = run(toy_spec("more", trials=3), out).results.frame()
    again = run(toy_spec("more", trials=5), out).results.frame()
    for b in ("sgd", "adamw"):
        old = first[(first.baseline == b) & (first.arm == "trial")]
        new = again[(again.baseline == b) & (again.arm == "trial")]
        assert len(new) == 5 and list(new.beta[:3]) == list(old.beta)  # continued, not restarted
    with pytest.raises(AdmtuneError, match=r"trials: 5 → 4.*never shrink"):
        run(toy_spec("more", trials=4), out)
    with pytest.raises(AdmtuneError, match=r"train\.steps: 16 → 17"):
        run(toy_spec("more", ["train.steps=17"], trials=5), out)


def test_a_worker_killed_mid_selection_is_resumed(tmp_path):
    name = f"s{uuid.uuid4().hex[:8]}"
    url = st.default_url(tmp_path)
    sets = [*SGD_ONLY, "workload.sleep=0.05", "tune.finalists=1", "tune.selection_seeds=2"]
    w = start_worker(name, url, tmp_path, sets=sets, trials=3, seeds=2, hb=1, grace=3)
    kill_inside(w, url, f"{name}/select")
    storage = st.open_storage(url, heartbeat_interval=None)
    out = run(toy_spec(name, sets, trials=3, seeds=2), tmp_path, heartbeat_interval=1, grace_period=3)
    assert out.complete
    sel = optuna.load_study(study_name=f"{name}/select", storage=storage).trials
    done = [t.user_attrs["key"] for t in sel if t.state == TrialState.COMPLETE]
    assert len(done) == len(set(done)) == (out.results.frame().arm == "select").sum()
    assert sum(t.state == TrialState.FAIL and not t.user_attrs.get("skipped") for t in sel) == 1


def test_finalists_rule_on_stored_trials(tmp_path):
    """records.finalists: the best distinct β first, then 0.9, in a fixed order."""
    out = run(toy_spec("fin", trials=5), tmp_path / "o")
    storage = st.open_storage(st.default_url(tmp_path / "o"), heartbeat_interval=None)
    trials = optuna.load_study(study_name="fin/tune/sgd", storage=storage).trials
    fins = records.finalists(trials, out.results.spec, "sgd", adm=False)
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (t.value, t.number))
    assert [f.beta for f in fins[:3]] == [t.user_attrs["beta"] for t in done[:3]]
    assert fins[-1].beta == 0.9 and fins[-1].origin == "β = 0.9"
