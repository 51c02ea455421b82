"""No worker waits forever: runs of dead workers are failed in every stage (also one that died
before its first heartbeat), a worker goes back to the stage that has work again, and an idle
worker gives up after --wait-timeout with one sentence. Each dead worker is made deterministically:
its trial is created exactly as a worker's ask() would leave it, and nothing ever runs it."""

from __future__ import annotations

import threading

import optuna
import pytest
from optuna.trial import TrialState

from admtune import api
from admtune.errors import AdmtuneError
from admtune.study import records
from admtune.study import storage as st
from tests.test_engine import PG_URL, toy_spec

FAST = dict(device="cpu", report=False, heartbeat_interval=1, grace_period=2, wait_timeout=90)
SETS = ["baselines=['sgd']", "tune.finalists=1", "tune.selection_seeds=2"]


def url_for(backend: str, tmp_path) -> str:
    return st.default_url(tmp_path) if backend == "sqlite" else PG_URL


def unique(name: str) -> str:
    import uuid

    return f"{name}{uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("stage", ["tune", "eval"])
def test_a_worker_dead_before_its_first_heartbeat_stalls_nobody(tmp_path, backend, stage):
    name = unique("nohb")
    url = url_for(backend, tmp_path)
    s = toy_spec(name, SETS, trials=3, seeds=2)
    engine, _ = api.prepare_engine(s, storage=url, out=tmp_path, device="cpu")
    engine.prepare()
    engine.close()
    storage = st.open_storage(url, heartbeat_interval=None)
    if stage == "tune":
        study = optuna.load_study(study_name=f"{name}/tune/sgd", storage=storage)
        dead = study.ask()  # RUNNING, and its worker is gone before any heartbeat
    else:
        study = optuna.load_study(study_name=f"{name}/eval", storage=storage)
        key = records.eval_key("sgd", "default", 0)
        study.enqueue_trial({"key": key}, user_attrs={"key": key, "baseline": "sgd", "arm": "default",
                                                      "seed": 0, "beta": 0.9, "lr": 0.1})
        dead = study.ask()
    assert dead.user_attrs.get("key") == (None if stage == "tune" else key)
    out = api.run_study(s, storage=url, out=tmp_path, **FAST)
    assert out.complete
    assert storage.get_trial(dead._trial_id).state == TrialState.FAIL
    trials = optuna.load_study(study_name=f"{name}/tune/sgd", storage=storage).trials
    assert len(records.counted_tuning_trials(trials)) == 3


def test_a_dead_tuning_run_with_heartbeats_sends_the_next_worker_back_to_tuning(tmp_path):
    """The dead trial counts towards the budget while RUNNING, so the worker moves on to selection;
    waiting there it fails the stale trial, finds tuning one short, and goes back to do it."""
    name = unique("back")
    url = st.default_url(tmp_path)
    api.run_study(toy_spec(name, SETS, trials=3, seeds=2), storage=url, out=tmp_path, **FAST)
    storage = st.open_storage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name=f"{name}/tune/sgd", storage=storage)
    dead = study.ask()
    storage.record_heartbeat(dead._trial_id)  # it beat once, then its worker died
    out = api.run_study(toy_spec(name, SETS, trials=4, seeds=2), storage=url, out=tmp_path, **FAST)
    assert out.complete
    trials = study.get_trials(deepcopy=False)
    assert storage.get_trial(dead._trial_id).state == TrialState.FAIL
    assert len(records.counted_tuning_trials(trials)) == 4
    assert all(t.state != TrialState.RUNNING for t in trials)


def test_an_idle_worker_gives_up_after_the_wait_timeout(tmp_path):
    """A live worker's run that never ends (its heartbeat keeps beating): the idle worker says what
    it waits for and gives up after wait_timeout, in one sentence."""
    name = unique("idle")
    url = st.default_url(tmp_path)
    s = toy_spec(name, SETS, trials=3, seeds=2)
    engine, _ = api.prepare_engine(s, storage=url, out=tmp_path, device="cpu")
    engine.prepare()
    engine.close()
    storage = st.open_storage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name=f"{name}/eval", storage=storage)
    key = records.eval_key("sgd", "adm", 0)
    study.enqueue_trial({"key": key}, user_attrs={"key": key, "baseline": "sgd", "arm": "adm",
                                                  "seed": 0, "beta": None, "lr": 0.1})
    alive = study.ask()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(0.5):
            storage.record_heartbeat(alive._trial_id)

    class Seen(api.Events):
        said: list[str] = []

        def waiting(self, reason: str) -> None:
            self.said.append(reason)

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        with pytest.raises(AdmtuneError, match=r"gave up after waiting 3 s .*sgd/adm/0"):
            api.run_study(s, storage=url, out=tmp_path, events=Seen(),
                          **{**FAST, "wait_timeout": 3, "grace_period": 30})
    finally:
        stop.set()
        beater.join()
    assert any("evaluate: waiting for 1 run of other workers (sgd/adm/0)" in r for r in Seen.said)


def test_a_worker_killed_while_creating_the_study_leaves_it_usable(tmp_path):
    """Killed between the meta study's first attribute and its fingerprint: the next worker with
    the same spec waits the grace period, then finishes creating the study and runs it."""
    name = unique("born")
    url = st.default_url(tmp_path)
    storage = st.open_storage(url, heartbeat_interval=None)
    meta = optuna.create_study(study_name=name, storage=storage)
    meta.set_user_attr("spec", "{}")  # what a worker killed mid-creation leaves: no fingerprint
    out = api.run_study(toy_spec(name, SETS, trials=3, seeds=2), storage=url, out=tmp_path, **FAST)
    assert out.complete
    again = optuna.load_study(study_name=name, storage=storage).user_attrs
    assert "fingerprint" in again and again["spec"] != "{}"
