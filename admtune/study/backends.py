"""Storages for clusters, past one database server: Optuna's journal file (one append-only file on
a shared filesystem) and its gRPC storage proxy (one server holds the database connections), each
with the heartbeats Optuna gives neither of them.

Imported only when such a storage is opened (``admtune.study.storage.open_storage``).

Why our own heartbeats: Optuna's stale-trial detection (``BaseHeartbeat``) is implemented by
``RDBStorage`` alone, in a table of its own. ``JournalStorage`` and ``GrpcStorageProxy`` are plain
``BaseStorage``: a worker killed mid-run would leave its trial RUNNING forever, and a study with
keyed runs would never complete. Here a running trial's heartbeat is a trial system attribute,
rewritten every ``heartbeat_interval`` seconds, and a trial is stale when a worker watching it
sees that attribute unchanged for ``grace_period`` seconds of its own monotonic clock. Nothing
compares two machines' clocks (RDB compares against the database server's clock; on a cluster
the workers' clocks may disagree by more than the grace period), and a trial whose worker died
before its first beat (no attribute at all) is noticed the same way.

The price: a worker fails a dead worker's trial only after watching it for the grace period (a
fresh worker cannot tell an old silent trial from a live one at a glance), and each beat is one
record in the journal (about 130 bytes; see README "Scale out").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import GrpcStorageProxy, JournalStorage
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

HEARTBEAT_ATTR = "admtune:heartbeat"


class AttrHeartbeat(BaseHeartbeat):
    """Heartbeats kept as a trial system attribute, judged by change (see the module's text)."""

    def _setup_heartbeat(self, interval: int | None, grace_period: int | None) -> None:
        self._hb_interval = interval or None
        self._hb_grace = float(grace_period or 3 * (interval or 0))
        # study id -> {trial id -> (the heartbeat last seen, when it was first seen)}
        self._hb_seen: dict[int, dict[int, tuple[Any, float]]] = {}

    def record_heartbeat(self, trial_id: int) -> None:
        # A value that changes at every beat; the time is for people reading the storage only.
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, round(time.time(), 3))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.monotonic()
        before = self._hb_seen.get(study_id, {})
        seen: dict[int, tuple[Any, float]] = {}
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.system_attrs.get(HEARTBEAT_ATTR)
            last = before.get(t._trial_id)
            if last is None or last[0] != beat:
                seen[t._trial_id] = (beat, now)
            else:
                seen[t._trial_id] = last
                if now - last[1] > self._hb_grace:
                    stale.append(t._trial_id)
        self._hb_seen[study_id] = seen  # trials that ended are forgotten
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._hb_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return None


class JournalFile(AttrHeartbeat, JournalStorage):
    """Optuna's JournalStorage on one file, with heartbeats.

    Every operation is one JSON line appended under a lock file beside the journal (``lock``:
    "symlink", Optuna's default, which works on NFSv2 and later; or "open", O_EXCL, NFSv3 and
    later); every process replays the lines in file order, so all of them agree on who popped a
    waiting trial (the first RUNNING record wins; a later one is rejected on replay).
    """

    def __init__(self, path: str, *, lock: str = "symlink", heartbeat_interval: int | None = None,
                 grace_period: int | None = None) -> None:
        lock_obj = JournalFileOpenLock(path) if lock == "open" else JournalFileSymlinkLock(path)
        JournalStorage.__init__(self, JournalFileBackend(path, lock_obj=lock_obj))
        self._setup_heartbeat(heartbeat_interval, grace_period)


class GrpcProxy(AttrHeartbeat, GrpcStorageProxy):
    """A client of Optuna's gRPC storage proxy (``admtune storage-proxy``), with heartbeats."""

    def __init__(self, host: str, port: int, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None) -> None:
        GrpcStorageProxy.__init__(self, host=host, port=port)
        self._setup_heartbeat(heartbeat_interval, grace_period)




class ServedCache(_CachedStorage):
    """Optuna's in-process cache of an RDBStorage, fit for the storage proxy's server, whose
    threads serve many workers at once (Optuna recommends its cache there: without one, every
    worker's look at a study reads all its trials from the database).

    Optuna's ``create_new_trial`` puts the new trial into the cache after the database insert,
    outside the lock, and not among the trials to read again. When another thread read the trial
    meanwhile and saw it finish (a waiting trial popped and told by another worker), the stale
    copy replaced the finished one, for good: every worker then saw a completed trial as WAITING
    (seen once in 13 runs of two or three workers popping 160 to 240 trials through the proxy;
    tests/test_journal.py makes it happen). Here the new trial
    replaces nothing already cached, and an unfinished one is read again at the next look."""

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        frozen = self._backend._create_new_trial(study_id, template_trial)
        with self._lock:
            study = self._studies.setdefault(study_id, _StudyInfo())
            if frozen.number not in study.trials:
                self._add_trials_to_cache(study_id, [frozen])
            if not study.trials[frozen.number].state.is_finished():
                study.unfinished_trial_ids.add(frozen._trial_id)
        return frozen._trial_id


__all__ = ["HEARTBEAT_ATTR", "AttrHeartbeat", "GrpcProxy", "JournalFile", "ServedCache"]
