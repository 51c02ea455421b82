"""The storage under several workers: popping a waiting trial is atomic on every backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import optuna
import pytest

from admtune.study import storage as st
from tests.test_engine import PG_URL, REPO

POPPER = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {repo!r})
    import optuna
    from admtune.study import storage as st
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.get_storage(st.open_storage({url!r}, heartbeat_interval=None))
    study = optuna.load_study(study_name={name!r}, storage=storage)
    popped = []
    for i in range({n}):
        study.enqueue_trial({{}}, user_attrs={{"worker": os.getpid(), "i": i}})
        trial = study.ask()  # pops the oldest waiting trial, whoever enqueued it
        popped.append(trial._trial_id)
        study.tell(trial, 1.0)
    print(json.dumps(popped))
""")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_workers_never_pop_the_same_waiting_trial(tmp_path, backend):
    """Optuna pops a waiting trial by read-check-write; on SQLite, pysqlite ran the read outside the
    transaction and two workers popped the same trial (tens in 150 pops before the fix)."""
    url = st.default_url(tmp_path) if backend == "sqlite" else PG_URL
    name = f"pop{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=st.open_storage(url, heartbeat_interval=None))
    code = POPPER.format(repo=str(REPO), url=url, name=name, n=120)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ})
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    a, b = (json.loads(o) for o, _ in outs)
    assert len(set(a)) == len(a) == 120 and len(set(b)) == len(b) == 120
    assert not set(a) & set(b)
    trials = optuna.load_study(study_name=name, storage=url).trials
    # An ask that finds no waiting trial left (the other worker popped it) makes a fresh one.
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # no number given twice
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 240
