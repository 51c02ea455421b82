"""The typed result of a study's analysis: every number a table, a figure or summary.json needs.

Built by :func:`admtune.report.analysis.summarise`; read by the text, the figures and the HTML.
A statistic that is undefined (too few runs, no spread) is ``None`` here, as it is null in
summary.json; only the arrays drawn by the figures keep NaN (a gap in a curve).

:meth:`Summary.to_dict` is the content of summary.json: its keys and their order are a contract
(``admtune check`` reads it, the committed examples are compared byte for byte).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from admtune.study.results import CORE_ARMS
from admtune.util import json_safe, round_floats

Interval = tuple[float | None, float | None]

# What gave p(better) / p(worse) (admtune.report.stats.directional): the values of ``test``
TEST_T = "paired t"
TEST_SIGN = "sign test"
TEST_RANKED = "wilcoxon, diverged worst"
TEST_NONE = "none"


@dataclass(frozen=True)
class ArmStats:
    """One evaluation arm over its seeds: mean, std and Student-t CI of the complete runs, and how
    often it diverged, with the exact (Clopper–Pearson) CI of that rate."""

    arm: str
    beta: float | None             # None for AdM (adaptive) and for an arm that did not run
    mean: float | None
    std: float | None
    ci: Interval                   # t-interval of the mean (null below 2 complete runs)
    n: int                         # complete runs
    diverged: int
    excluded: int                  # failed or pruned
    wall_s: float = 0.0            # sum over the arm's runs (the report's table, not summary.json)
    diverged_ci: Interval = (None, None)  # of diverged / (n + diverged)
    # median wall time of one run (the report's table): a process's first run also pays its
    # one-off start-up (imports, data), which a mean would spread over the arm
    wall_median_s: float | None = None

    @property
    def runs(self) -> int:
        """Runs that count for the divergence rate: complete or diverged (not excluded)."""
        return self.n + self.diverged

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.arm == "adm" else {"beta": self.beta}
        out.update(mean=self.mean, std=self.std, ci=list(self.ci), n=self.n,
                   diverged=self.diverged, excluded=self.excluded,
                   diverged_rate=self.diverged / self.runs if self.runs else None,
                   diverged_ci=list(self.diverged_ci))
        return out


@dataclass(frozen=True)
class Difference:
    """AdM − other on the seeds where both completed, oriented: positive = AdM better."""

    mean: float | None
    ci: Interval                   # paired t-interval (null below 2 pairs)
    n: int                         # complete pairs
    bootstrap_ci: Interval = (None, None)  # BCa on sorted differences, only from 10 pairs on

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci": list(self.ci), "n": self.n,
                "bootstrap_ci": list(self.bootstrap_ci)}


@dataclass(frozen=True)
class Rate:
    """A probability with its CI and what it is over."""

    value: float | None
    ci: Interval
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": list(self.ci), "n": self.n}


EFFECT_FORMULA = ("paired: d_z = mean(Δ) / sd(Δ); g_z = J(n − 1)·d_z, "
                  "J(ν) = Γ(ν/2) / (√(ν/2)·Γ((ν − 1)/2)); CI by inverting the noncentral t "
                  "distribution of √n·d_z with n − 1 degrees of freedom")


@dataclass(frozen=True)
class EffectSize:
    """The paired standardized difference of AdM − tuned (complete pairs)."""

    d_z: float | None
    d_z_ci: Interval
    g_z: float | None
    g_z_ci: Interval
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"d_z": self.d_z, "d_z_ci": list(self.d_z_ci), "g_z": self.g_z,
                "g_z_ci": list(self.g_z_ci), "n": self.n, "formula": EFFECT_FORMULA}


@dataclass(frozen=True)
class PowerStats:
    """What the study's sample could detect, and what it would take to decide (complete pairs)."""

    n: int
    sd: float | None               # sd of the paired differences
    alpha_directional: float       # the strictest Holm level, α / m
    mde: float | None              # minimal detectable |Δ| at 80 % power (metric units)
    mde_z: float | None            # the same in sd units (d_z)
    tost_power: float | None       # TOST power at n pairs were the arms identical
    tost_seeds: int | None         # pairs that give that power 80 %
    underpowered: bool             # tost_power < 80 %, or the margin is below the MDE
    seeds_to_resolve: int | None   # the observed effect taken as true (inconclusive only)
    seeds_range: Interval          # over the d_z CI; high null = no number of seeds is enough

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "sd": self.sd, "alpha_directional": self.alpha_directional,
                "mde": self.mde, "mde_z": self.mde_z, "tost_power": self.tost_power,
                "tost_seeds": self.tost_seeds, "underpowered": self.underpowered,
                "seeds_to_resolve": self.seeds_to_resolve,
                "seeds_to_resolve_range": list(self.seeds_range)}


@dataclass(frozen=True)
class OtherComparison:
    """AdM against an arm other than the tuned β (β = 0.9, workload extras): descriptive, raw p."""

    arm: str
    diff: Difference
    p_two_sided: float | None
    p_wilcoxon: float | None
    prob_improvement: float | None
    prob_improvement_ci: Interval = (None, None)
    win_rate: Rate | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"diff": self.diff.to_dict(), "p_two_sided": self.p_two_sided,
                "p_wilcoxon": self.p_wilcoxon, "prob_improvement": self.prob_improvement,
                "prob_improvement_ci": list(self.prob_improvement_ci),
                "win_rate": self.win_rate.to_dict() if self.win_rate else None}


@dataclass(frozen=True)
class BestSoFar:
    """The baseline's best validation value after k tuning trials, over every random ordering of
    its trials (exact, not sampled): the mean, and the median with a 95 % band. Values in the
    metric's own direction; null where no ordering has a complete trial yet."""

    k: tuple[int, ...]
    mean: tuple[float | None, ...]
    median: tuple[float | None, ...]
    lo: tuple[float | None, ...]   # the band's worse end (2.5 %)
    hi: tuple[float | None, ...]   # its better end (97.5 %)
    in_order: tuple[float | None, ...]  # the study's own (TPE) order

    def to_dict(self) -> dict[str, Any]:
        return {"k": list(self.k), "mean": list(self.mean), "median": list(self.median),
                "lo": list(self.lo), "hi": list(self.hi), "in_order": list(self.in_order)}


@dataclass(frozen=True)
class TrialsToMatch:
    """Trials a random ordering of the baseline's tuning trials needs before its best reaches
    AdM's mean validation value: the median with a 95 % interval (exact), and the mean."""

    median: int
    ci: tuple[int, int]
    mean: float
    good: int                      # trials at least as good as AdM's mean

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "ci": list(self.ci), "mean": self.mean, "good": self.good}


@dataclass(frozen=True)
class TuningStats:
    """The baseline's β search and the trial at which it first reached AdM's validation mean."""

    trials: int                    # counted: complete, pruned and diverged
    complete: int
    pruned: int
    diverged: int
    failed: int                    # retried, not counted
    best_value: float | None
    best_beta: float | None
    adm_val_mean: float | None
    trials_to_match: int | None    # in the study's own order
    adm_trials: int                # AdM's own learning-rate trials (tune.lr)
    to_match: TrialsToMatch | None = None  # over random orderings; None: never (or no target)
    best_so_far: BestSoFar | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "complete": self.complete, "pruned": self.pruned,
                "diverged": self.diverged, "failed": self.failed, "best_value": self.best_value,
                "best_beta": self.best_beta, "adm_val_mean": self.adm_val_mean,
                "trials_to_match": self.trials_to_match, "adm_trials": self.adm_trials,
                "trials_to_match_orderings": self.to_match.to_dict() if self.to_match else None,
                "best_so_far": self.best_so_far.to_dict() if self.best_so_far else None}


@dataclass(frozen=True)
class TimeToTarget:
    """AlgoPerf's view: the step at which each arm's validation curve first reaches the tuned arm's
    final mean validation value, per evaluation seed, and AdM's step ratio over the seeds where
    both reached it (geometric mean, paired t-interval on log ratios). ``None`` steps: never."""

    target: float | None           # the tuned arm's mean final validation value
    seeds: tuple[int, ...]
    adm_steps: tuple[float | None, ...]
    tuned_steps: tuple[float | None, ...]
    ratio: float | None            # AdM steps / tuned steps; < 1 = AdM faster
    ratio_ci: Interval
    pairs: int                     # seeds where both reached it (at a step > 0)
    adm_never: int                 # seeds where the tuned arm reached it and AdM never did
    tuned_never: int               # and the reverse
    both_never: int

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "seeds": list(self.seeds),
                "adm_steps": list(self.adm_steps), "tuned_steps": list(self.tuned_steps),
                "ratio": self.ratio, "ratio_ci": list(self.ratio_ci), "pairs": self.pairs,
                "adm_never": self.adm_never, "tuned_never": self.tuned_never,
                "both_never": self.both_never}


@dataclass(frozen=True)
class FinalistStats:
    """One finalist of the selection stage over its selection seeds (validation metric).

    ``mean`` / ``std`` are over the complete runs only; the engine's selection scores a diverged
    or failed run as the worst value, so a finalist with one was never chosen unless all had one.
    """

    beta: float | None             # None for AdM's own learning-rate finalists
    lr: float | None
    origin: str | None             # "tuning trial" | "β = 0.9" | "candidate" | "spec lr"
    mean: float | None
    std: float | None
    n: int                         # complete runs
    diverged: int
    seeds: int                     # planned selection seeds (tune.selection_seeds)
    chosen: bool                   # its (β, lr) is the evaluated arm's

    def to_dict(self) -> dict[str, Any]:
        return {"beta": self.beta, "lr": self.lr, "origin": self.origin, "mean": self.mean,
                "std": self.std, "n": self.n, "diverged": self.diverged, "seeds": self.seeds,
                "chosen": self.chosen}


@dataclass(frozen=True)
class SelectionStats:
    """The selection stage of one baseline: its finalists in the engine's order (ties go to the
    earlier one), and AdM's own when it tuned its learning rate (tune.lr)."""

    selection_seeds: int
    finalists: tuple[FinalistStats, ...]
    adm_finalists: tuple[FinalistStats, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"selection_seeds": self.selection_seeds,
                "finalists": [f.to_dict() for f in self.finalists],
                "adm_finalists": [f.to_dict() for f in self.adm_finalists]}


@dataclass(frozen=True)
class TrialPoint:
    """One tuning trial of the β-sensitivity figure."""

    beta: float
    value: float | None            # validation value (the last one reported when pruned)
    state: str                     # complete | pruned | diverged


@dataclass(frozen=True)
class Sensitivity:
    """The β-sensitivity figure: the trials (failed ones left out) and AdM's validation band."""

    trials: tuple[TrialPoint, ...]
    adm_val_mean: float | None
    adm_val_ci: Interval
    adm_val_n: int


@dataclass(frozen=True)
class CurveBand:
    """Mean over seeds and pointwise 95 % Student-t band of one arm's complete curves, on the
    steps of its longest run (NaN where too few runs reach a step)."""

    step: Any                      # numpy arrays, all of one length
    mean: Any
    lo: Any
    hi: Any


@dataclass(frozen=True)
class ArmCurves:
    arm: str
    band: CurveBand | None         # None when no complete run recorded this curve
    diverged: tuple[tuple[Any, Any], ...]  # (steps, values) of each diverged run, as recorded


@dataclass(frozen=True)
class CurvePanel:
    """One panel of the learning-curve figure: the training loss or the validation metric."""

    kind: str                      # "train" | "val"
    key: str                       # the curve's name (train_loss, ...) or the study's metric
    arms: tuple[ArmCurves, ...]
    value_range: Interval          # finite (min, max) over every value drawn; None, None if none


@dataclass(frozen=True)
class BetaTraces:
    """AdM's β_t over training, on the steps of its longest run."""

    names: tuple[str, ...]         # one per tensor or parameter group
    step: Any                      # (steps,)
    seeds: int
    mean: Any                      # (steps, tensors): mean over seeds
    lo: Any                        # (steps, tensors): range over seeds
    hi: Any
    quantiles: Any                 # (5, steps): 5, 25, 50, 75, 95 % over tensors of ``mean``


@dataclass(frozen=True)
class SeedResult:
    """One evaluation run as the per-seed figure and table show it."""

    state: str                     # complete | diverged | excluded
    status: str                    # the run's own status (failed, pruned, ...)
    value: float | None            # the test value of a complete run


@dataclass(frozen=True)
class WallTime:
    arm: str                       # an evaluation arm, "trial" or "adm_trial"
    runs: int
    total_s: float
    median_s: float | None = None  # of one run: robust to the first run's one-off start-up


@dataclass(frozen=True)
class BaselineSummary:
    """AdM against one baseline: every arm, the tests, the verdict, and the figures' data."""

    baseline: str
    verdict: str
    reason: str
    arms: dict[str, ArmStats]      # every arm that ran (display order), then missing core arms
    eval_arms: tuple[str, ...]     # the arms that ran, display order
    seeds: tuple[int, ...]
    diff: Difference               # against the tuned β
    p_better: float | None
    p_worse: float | None
    p_better_holm: float | None
    p_worse_holm: float | None
    p_wilcoxon: float | None
    p_tost: float | None
    prob_improvement: float | None
    trials_to_match: int | None
    capped_by_divergence: bool
    seeds_to_resolve: int | None
    tuning: TuningStats
    selection: SelectionStats
    vs_other_arms: dict[str, OtherComparison]
    sensitivity: Sensitivity
    curves: tuple[CurvePanel, ...]
    traces: BetaTraces | None
    per_seed: dict[str, dict[int, SeedResult]]  # arm → seed → run
    walls: tuple[WallTime, ...]
    test: str = "none"             # what gave p_better / p_worse (stats.directional)
    test_n: int = 0                # pairs that test used (diverged ones included)
    p_wilcoxon_min: float | None = None  # the smallest p the Wilcoxon test can give here
    p_divergence: float | None = None    # Fisher exact, AdM vs tuned divergence rates
    p_divergence_holm: float | None = None
    capped_by_baseline_divergence: bool = False
    decided_by_divergence: bool = False
    effect: EffectSize | None = None
    win_rate: Rate | None = None
    prob_improvement_ci: Interval = (None, None)
    power: PowerStats | None = None
    time_to_target: TimeToTarget | None = None

    @property
    def adm(self) -> ArmStats:
        return self.arms["adm"]

    @property
    def tuned(self) -> ArmStats:
        return self.arms["tuned"]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict, "reason": self.reason}
        out.update({a: self.arms[a].to_dict() for a in CORE_ARMS})
        out.update({a: s.to_dict() for a, s in self.arms.items() if a not in CORE_ARMS})
        out.update(
            diff=self.diff.to_dict(), p_better=self.p_better, p_worse=self.p_worse,
            p_better_holm=self.p_better_holm, p_worse_holm=self.p_worse_holm,
            test=self.test, test_n=self.test_n,
            p_wilcoxon=self.p_wilcoxon, p_wilcoxon_min=self.p_wilcoxon_min, p_tost=self.p_tost,
            p_divergence=self.p_divergence, p_divergence_holm=self.p_divergence_holm,
            effect_size=self.effect.to_dict() if self.effect else None,
            win_rate=self.win_rate.to_dict() if self.win_rate else None,
            prob_improvement=self.prob_improvement,
            prob_improvement_ci=list(self.prob_improvement_ci),
            trials_to_match=self.trials_to_match,
            capped_by_divergence=self.capped_by_divergence,
            capped_by_baseline_divergence=self.capped_by_baseline_divergence,
            decided_by_divergence=self.decided_by_divergence,
            seeds_to_resolve=self.seeds_to_resolve,
            power=self.power.to_dict() if self.power else None,
            time_to_target=self.time_to_target.to_dict() if self.time_to_target else None,
            tuning=self.tuning.to_dict(),
            selection=self.selection.to_dict(),
            vs_other_arms={a: o.to_dict() for a, o in self.vs_other_arms.items()},
        )
        return out


@dataclass(frozen=True)
class Summary:
    """The analysis of a study."""

    study: str
    metric: str
    direction: str
    margin: float
    alpha: float
    fingerprint: str
    description: str
    beta_free: bool
    holm_family: str
    baselines: dict[str, BaselineSummary]
    version: str
    versions: dict[str, str]
    device: str | None
    wall_s: float | None
    extra_arms: tuple[str, ...] = field(default=())  # beyond adm / tuned / default, all baselines
    # Budgets grown on resume, as recorded: [{"key", "from", "to", "at"}, ...] (an interim look)
    budget_changes: tuple[dict[str, Any], ...] = field(default=())
    # How far the study got (admtune.study.records.progress); an incomplete study's verdicts are
    # interim and `admtune report` / `admtune check` exit 3 on it.
    complete: bool = True
    progress: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The content of summary.json (plain JSON data; the file rounds its floats, see to_json)."""
        return json_safe({
            "study": self.study, "metric": self.metric, "direction": self.direction,
            "margin": self.margin, "alpha": self.alpha, "fingerprint": self.fingerprint,
            "description": self.description, "beta_free": self.beta_free,
            "holm_family": self.holm_family,
            "baselines": {b: e.to_dict() for b, e in self.baselines.items()},
            "version": self.version, "versions": dict(self.versions), "device": self.device,
            "wall_s": self.wall_s,
            "budget_changes": [dict(c) for c in self.budget_changes],
            "complete": self.complete,
            "progress": dict(self.progress) if self.progress is not None else None,
        })

    def to_json(self) -> str:
        """summary.json's text: floats to 12 significant digits (:func:`admtune.util.round_floats`),
        so a rebuild on another CPU gives the same file. The suite analysis works on
        :meth:`to_dict`: rounded means would move the gaps between near-equal arms."""
        return json.dumps(round_floats(self.to_dict()), indent=2, allow_nan=False) + "\n"
