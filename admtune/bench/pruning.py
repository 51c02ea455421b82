"""What the median pruner cost a finished study: every pruned tuning trial re-run to completion.

    python -m admtune.bench.pruning --out reports/examples/mlp [--storage URL] [--study NAME] \\
        [--device cpu] [--json FILE]

For each baseline (and AdM's lr study when ``tune.lr`` is on) it re-runs every PRUNED tuning trial
exactly as the engine ran it — the same arm (β, lr, warmup), the same seed (``TUNING_SEED_OFFSET +
trial.number``), the stored spec — with pruning disabled, and counts how many of them, at
completion (one seed, validation metric), beat

- the best complete tuning trial's value (the pruner's incumbent),
- the selected β's own tuning-trial value (when the selection chose a tuning trial's β),
- the selected β's selection mean (the mean over its selection seeds),

and lists the β (AdM: lr) of those that beat the selection mean. Each re-run's validation curve
is also compared with the stored curve up to where the trial was pruned: "reproduced" says the
re-run is the run the pruner stopped (same device and versions give identical values).

The study's storage is only read. Each re-run trains through the engine's own
:class:`~admtune.study.execute.Executor` (hence :class:`~admtune.study.context.RunRecorder`, the
seeding and the same value extraction) as a trial of a throw-away in-memory Optuna study, so the
measured value is exactly what a tuning trial records, and nothing is written where the study
lives. Exit code 2 with one sentence on bad input (no such storage, study not finished).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from admtune.errors import AdmtuneError, StorageError
from admtune.study import records
from admtune.study import storage as st
from admtune.study.context import Arm
from admtune.study.execute import Executor
from admtune.study.spec import StudySpec
from admtune.util import json_safe, mask

optuna.logging.set_verbosity(optuna.logging.ERROR)


@dataclass
class Rerun:
    """One pruned tuning trial, as stored and as re-run to completion."""

    trial: int
    beta: float | None
    lr: float
    seed: int
    pruned_at: int                 # steps done when the pruner stopped it
    pruned_value: float | None     # the validation value it was stopped at
    value: float | None            # the validation value at completion (None: diverged or failed)
    status: str                    # the re-run's status: complete | diverged | failed
    reproduced: bool               # the re-run's validation curve starts as the stored one
    beats_incumbent: bool = False
    beats_selected_trial: bool | None = None   # None: the selected β was not a tuning trial
    beats_selected_mean: bool = False


@dataclass
class Report:
    """One tuning study (a baseline's β, or AdM's lr) and its pruned trials re-run."""

    baseline: str
    adm: bool
    metric: str
    direction: str
    trials: int                    # counted tuning trials
    incumbent: float | None        # the best complete tuning trial's value
    incumbent_trial: int | None
    selected_beta: float | None
    selected_lr: float
    selected_origin: str           # "trial #N", "β = 0.9", "candidate", "spec lr"
    selected_trial_value: float | None
    selected_mean: float
    selected_values: list[float]
    reruns: list[Rerun] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.baseline + (" (AdM lr)" if self.adm else "")

    def counts(self) -> dict[str, Any]:
        beat_trial = [r for r in self.reruns if r.beats_selected_trial]
        return {
            "pruned": len(self.reruns),
            "reproduced": sum(r.reproduced for r in self.reruns),
            "beat_incumbent": sum(r.beats_incumbent for r in self.reruns),
            "beat_selected_trial": None if self.selected_trial_value is None else len(beat_trial),
            "beat_selected_mean": sum(r.beats_selected_mean for r in self.reruns),
            "beating_mean": [r.lr if self.adm else r.beta for r in self.reruns if r.beats_selected_mean],
        }


# --- reading the study --------------------------------------------------------------------------
def storage_url(out: Path, storage: str | None) -> str:
    """The storage's URL; a missing SQLite or journal file is an error (opening it would create an
    empty one)."""
    url = storage or st.default_url(out)
    st.require_stored(url)
    return url


def study_name(storage: optuna.storages.BaseStorage, name: str | None) -> str:
    """``name``, or the storage's one admtune study (its meta study is marked ``admtune = study``)."""
    metas = [s.study_name for s in storage.get_all_studies() if s.user_attrs.get("admtune") == "study"]
    if name is not None:
        if name not in metas:
            raise StorageError(f"the storage holds no admtune study named {name!r}")
        return name
    if len(metas) != 1:
        held = ", ".join(sorted(metas)) or "none"
        raise StorageError(f"the storage holds {len(metas)} admtune studies ({held}); name one with --study")
    return metas[0]


def _trials(storage: optuna.storages.BaseStorage, name: str) -> list[FrozenTrial]:
    if not st.study_exists(storage, name):
        return []
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def check_finished(storage: optuna.storages.BaseStorage, spec: StudySpec, name: str,
                   tuning: dict[tuple[str, bool], list[FrozenTrial] | None],
                   selection: list[FrozenTrial]) -> None:
    """Raise unless every tuning budget, the selection and every evaluation run have ended: the
    comparison needs the selected β, and a study still running could change it."""
    if any(trials is None for trials in tuning.values()):
        raise AdmtuneError(f"study {name!r} is not finished (a tuning budget is not done); "
                           "run the study to its end first")
    plan, complete = records.evaluation_plan(spec, tuning, selection)
    states = records.eval_states(_trials(storage, st.eval_name(name)), [r["key"] for r in plan])
    if not complete or any(s not in ("complete", "failed") for s in states.values()):
        raise AdmtuneError(f"study {name!r} is not finished (selection or evaluation runs are "
                           "missing); run the study to its end first")


# --- re-running ---------------------------------------------------------------------------------
def tuning_arm(spec: StudySpec, t: FrozenTrial, adm: bool) -> Arm:
    """The arm a tuning trial ran with, as ``Engine._arm`` builds it from the trial's β and lr;
    checked against what the trial recorded, so a spec that does not match the runs is noticed."""
    a = records.unpack(t)
    baseline = a["baseline"]
    arm = Arm(baseline=baseline, name="adm_trial" if adm else "trial", beta=None if adm else a["beta"],
              lr=float(a["lr"]), weight_decay=spec.train.weight_decay[baseline],
              warmup_steps=spec.warmup_for(adm))
    if a.get("warmup_steps", arm.warmup_steps) != arm.warmup_steps:
        raise AdmtuneError(f"tuning trial #{t.number} of {baseline} ran with warmup "
                           f"{a['warmup_steps']}, the stored spec gives {arm.warmup_steps}")
    return arm


def rerun(executor: Executor, spec: StudySpec, t: FrozenTrial, adm: bool) -> Rerun:
    """Train pruned trial ``t`` to completion as the engine would have without pruning."""
    arm = tuning_arm(spec, t, adm)
    seed = records.TUNING_SEED_OFFSET + t.number
    stored = records.unpack(t)
    if int(stored.get("seed", seed)) != seed:
        raise AdmtuneError(f"tuning trial #{t.number} recorded seed {stored['seed']}, not {seed}")
    # A throw-away study per re-run: the executor records the run as an Optuna trial, exactly as
    # the engine's would be, without a single write to the study's own storage.
    scratch = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction=spec.direction)
    trial = scratch.ask()
    executor.run(scratch, trial, arm, seed, prune=False, score="validation",
                 label=f"rerun #{t.number}", extra_attrs={"kind": "tune"})
    done = scratch.get_trials(deepcopy=False)[-1]
    a = records.unpack(done)
    status = a.get("status", "failed")
    value = float(a["value"]) if status == "complete" and a.get("value") is not None else None
    old = (stored.get("val_curve") or {}).get("value") or []
    new = (a.get("val_curve") or {}).get("value") or []
    return Rerun(trial=t.number, beta=arm.beta, lr=arm.lr, seed=seed, pruned_at=int(stored.get("steps", 0)),
                 pruned_value=stored.get("value"), value=value, status=status,
                 reproduced=bool(old) and new[:len(old)] == old)


def better(a: float | None, b: float | None, direction: str) -> bool:
    """``a`` strictly better than ``b`` (a missing or non-finite ``a`` never is)."""
    if a is None or b is None or not math.isfinite(a):
        return False
    return a < b if direction == "minimize" else a > b


def analyse(out: Path, storage: str | None = None, name: str | None = None, device: str = "cpu",
            progress: Any = None) -> tuple[str, list[Report]]:
    """Re-run every pruned tuning trial of a finished study: its name, and one :class:`Report`
    per tuning study."""
    from admtune.devices import resolve_device
    from admtune.workloads import get_workload

    url = storage_url(out, storage)
    rdb = st.open_storage(url, heartbeat_interval=None)
    try:
        name = study_name(rdb, name)
        spec = records.load_results(rdb, name).spec
        tuning = records.finished_only(spec, {
            (b, adm): _trials(rdb, st.tune_name(name, b, adm)) for b, adm in records.tuning_studies(spec)})
        selection = _trials(rdb, st.select_name(name))
        check_finished(rdb, spec, name, tuning, selection)
    finally:
        st.close_storage(rdb)

    dev = resolve_device(device)
    workload = get_workload(spec.workload, spec.workload_options)
    # The executor's storage only receives heartbeats, and heartbeats are off (interval None).
    executor = Executor(spec=spec, workload=workload, device=dev,
                        storage=optuna.storages.InMemoryStorage())
    reports = []
    for (baseline, adm), trials in tuning.items():
        assert trials is not None  # check_finished
        counted = records.counted_tuning_trials(trials)
        best = records.best_trial(counted, spec.direction)
        cands = records.finalists(trials, spec, baseline, adm)
        scores = records.selection_scores(selection, cands, spec, baseline, adm)
        chosen = records.selected(scores, spec.direction)
        assert chosen is not None  # check_finished
        values = [float(v) for f, vs in scores if f == chosen for v in vs if v is not None]
        sel_trial = None
        if chosen.origin.startswith("trial #"):
            number = int(chosen.origin.removeprefix("trial #"))
            sel_trial = next(float(t.value) for t in trials if t.number == number)
        rep = Report(
            baseline=baseline, adm=adm, metric=f"val_{spec.metric}", direction=spec.direction,
            trials=len(counted), incumbent=None if best is None else float(best.value),
            incumbent_trial=None if best is None else best.number, selected_beta=chosen.beta,
            selected_lr=chosen.lr, selected_origin=chosen.origin, selected_trial_value=sel_trial,
            selected_mean=sum(values) / len(values), selected_values=values,
        )
        for t in counted:
            if t.state != TrialState.PRUNED:
                continue
            if progress is not None:
                progress(f"re-running {rep.label} trial #{t.number}")
            r = rerun(executor, spec, t, adm)
            r.beats_incumbent = better(r.value, rep.incumbent, spec.direction)
            r.beats_selected_trial = None if sel_trial is None else better(r.value, sel_trial, spec.direction)
            r.beats_selected_mean = better(r.value, rep.selected_mean, spec.direction)
            rep.reruns.append(r)
        reports.append(rep)
    return name, reports


# --- output -------------------------------------------------------------------------------------
def _g(x: float | None, digits: int = 5) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def render(reports: list[Report], name: str) -> str:
    lines = [f"study {name}: pruned tuning trials re-run to completion (one seed, validation metric)"]
    for rep in reports:
        c = rep.counts()
        what = "lr" if rep.adm else "β"
        sel = (f"lr={rep.selected_lr:.4g}" if rep.adm else f"β={rep.selected_beta:.4f}")
        lines += [
            "",
            f"{rep.label}: {rep.trials} tuning trials, {c['pruned']} pruned and re-run "
            f"({c['reproduced']}/{c['pruned']} reproduce the stored curve up to the prune point); "
            f"{rep.metric}, {rep.direction}",
            f"  incumbent (best complete trial #{rep.incumbent_trial}): {_g(rep.incumbent)}",
            f"  selected {sel} ({rep.selected_origin}): tuning value {_g(rep.selected_trial_value)}, "
            f"selection mean {_g(rep.selected_mean)} over {len(rep.selected_values)} seeds",
            f"  pruned trials that beat, at completion: the incumbent {c['beat_incumbent']}/{c['pruned']}; "
            "the selected β's tuning trial "
            + ("n/a (not a tuning trial)" if c["beat_selected_trial"] is None
               else f"{c['beat_selected_trial']}/{c['pruned']}")
            + f"; the selection mean {c['beat_selected_mean']}/{c['pruned']}",
        ]
        if c["beating_mean"]:
            lines.append(f"  {what} of those beating the selection mean: "
                         + ", ".join(f"{v:.4f}" for v in sorted(c["beating_mean"])))
        if rep.reruns:
            lines.append(f"  {'trial':>6} {what:>8} {'pruned at':>9} {'value then':>11} "
                         f"{'at end':>11}  beats: incumbent / sel. trial / sel. mean")
            for r in rep.reruns:
                v = r.lr if rep.adm else r.beta
                flag = {True: "yes", False: "no", None: "n/a"}
                end = _g(r.value) if r.status == "complete" else r.status
                lines.append(f"  {'#' + str(r.trial):>6} {v:>8.4f} {r.pruned_at:>9} {_g(r.pruned_value):>11} "
                             f"{end:>11}  {flag[r.beats_incumbent]} / {flag[r.beats_selected_trial]} / "
                             f"{flag[r.beats_selected_mean]}"
                             + ("" if r.reproduced else "  (not reproduced)"))
    return "\n".join(lines)


def to_data(reports: list[Report], name: str, url: str) -> dict[str, Any]:
    out = []
    for rep in reports:
        d = asdict(rep)
        d["counts"] = rep.counts()
        out.append(d)
    return json_safe({"study": name, "storage": url, "tuning": out})  # ±inf (all diverged): null


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m admtune.bench.pruning",
        description="Re-run the pruned tuning trials of a finished study to completion and count "
                    "how many would have beaten the incumbent and the selected β.",
    )
    ap.add_argument("--out", required=True, help="the study's out folder (storage DIR/study.db)")
    ap.add_argument("--storage", help="the study's storage URL (default: sqlite DIR/study.db)")
    ap.add_argument("--study", help="the study's name (default: the storage's only admtune study)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (the study's device "
                                                   "reproduces its runs exactly)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    return ap


def main(argv: list[str] | None = None, out: Any = print) -> int:
    args = build_parser().parse_args(argv)
    try:
        name, reports = analyse(Path(args.out), args.storage, args.study, args.device,
                                progress=lambda msg: print(msg, file=sys.stderr))
    except AdmtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    out(render(reports, name))
    if args.json:
        url = mask(args.storage or st.default_url(Path(args.out)))
        Path(args.json).write_text(json.dumps(to_data(reports, name, url), indent=1) + "\n",
                                   encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["Report", "Rerun", "analyse", "main", "render"]
