"""Every word and number format of the report: arm names, units, number formats, the verdict's
reason paragraph, the tuning sentence and the figure captions. Tables, figures and summary.json
take their words from here so that an arm is named, and a number written, the same everywhere.

Light on purpose (no scipy, statsmodels, matplotlib or pandas): the command line prints verdict
tables with it, and a test keeps it that way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from admtune import families
from admtune.report.summary import TEST_NONE, TEST_RANKED, TEST_SIGN, TEST_T

if TYPE_CHECKING:
    from admtune.report.summary import BaselineSummary
    from admtune.study.spec import StudySpec

# Accuracy is in percent in every workload (admtune.workloads.loop.classification_metrics).
UNITS = {
    "loss": "nats", "train_loss": "nats", "val_loss": "nats", "test_loss": "nats", "nll": "nats",
    "cross_entropy": "nats", "accuracy": "%", "acc": "fraction", "error": "fraction",
    "top1": "fraction", "error_rate": "fraction", "log10_subopt": "decades, log₁₀(f − f*)",
    "bpb": "bits/byte", "bits_per_byte": "bits/byte", "val_bpb": "bits/byte", "ppl": "perplexity",
    "perplexity": "perplexity",
}


# ----------------------------------------------------------------------------------------------
# Names


def baseline_name(baseline: str) -> str:
    return families.display(baseline)


def adm_name(baseline: str) -> str:
    return f"AdM-{baseline_name(baseline)}"


def adm_qualifier(beta_free: bool) -> str:
    return "β-free" if beta_free else "untuned"


def arm_label(baseline: str, arm: str, beta: float | None = None, beta_free: bool = False) -> str:
    """Human name of an evaluation arm, e.g. 'AdM-SGD (untuned)', 'SGD, tuned β = 0.873'."""
    b = baseline_name(baseline)
    if arm == "adm":
        return f"{adm_name(baseline)} ({adm_qualifier(beta_free)})"
    if arm == "tuned":
        return f"{b}, tuned β = {fmt_beta(beta)}" if beta is not None else f"{b}, tuned β"
    if arm == "default":
        return f"{b}, β = {fmt_beta(beta)}" if beta is not None else f"{b}, β = 0.9"
    extra = arm.replace("_", " ")
    return f"{b}, {extra} (β = {fmt_beta(beta)})" if beta is not None else f"{b}, {extra}"


def short_label(baseline: str, arm: str, beta: float | None, beta_free: bool) -> str:
    """A two-line tick label for an arm."""
    if arm == "adm":
        return f"{adm_name(baseline)}\n({adm_qualifier(beta_free)})"
    if arm == "tuned":
        return f"tuned β\n= {fmt_beta(beta)}" if beta is not None else "tuned β"
    if arm == "default":
        return f"β = {fmt_beta(beta)}" if beta is not None else "β = 0.9"
    return f"{arm.replace('_', ' ')}\n" + (f"β = {fmt_beta(beta)}" if beta is not None else "")


def legend_label(baseline: str, arm: str, beta: float | None, beta_free: bool) -> str:
    return short_label(baseline, arm, beta, beta_free).replace("\n", " ").replace("β\n=", "β =")


def metric_label(metric: str, split: str = "test") -> str:
    """An axis label with units, e.g. 'test loss (nats)'."""
    unit = UNITS.get(metric) or UNITS.get(metric.removeprefix("val_").removeprefix("test_"))
    name = metric.replace("_", " ")
    label = f"{split} {name}" if split else name
    return f"{label} ({unit})" if unit else label


# ----------------------------------------------------------------------------------------------
# Numbers


def fmt(x: Any, digits: int = 4, decimals: int | None = None) -> str:
    """A number for text: ``decimals`` fixed decimals or else ``digits`` significant digits;
    '—' for missing."""
    if x is None:
        return "—"
    # numpy integers too, recognised by their dtype so that numpy need not be imported here
    if (isinstance(x, int) and not isinstance(x, bool)) or getattr(getattr(x, "dtype", None),
                                                                   "kind", "") in ("i", "u"):
        return str(int(x))
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "—"
    # fixed decimals only where they show the number: not for 1e-13 ("0.00000000") or 1e300
    if decimals is not None and x != 0 and (abs(x) < 0.5 * 10.0 ** -decimals or abs(x) >= 1e6):
        decimals = None
    s = f"{x:.{decimals}f}" if decimals is not None else f"{x:.{digits}g}"
    if decimals is None and "e" not in s and abs(x) >= 1e5:
        s = f"{x:.{digits}g}"
    return s.replace("-", "−")


def fmt_beta(beta: Any) -> str:
    """A momentum β, the same in every table, figure and sentence: three decimals, more where
    1 − β needs them for two significant digits (0.896, 0.9995); '—' when unknown."""
    if beta is None:
        return "—"
    b = float(beta)
    if not math.isfinite(b):
        return "—"
    gap = abs(1.0 - b)
    decimals = 3 if gap == 0 else max(3, min(8, math.ceil(-math.log10(gap)) + 1))
    return f"{b:.{decimals}f}"


def fmt_p(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "—"
    p = float(p)
    if p < 1e-4:
        return "< 0.0001"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}".rstrip("0").rstrip(".") if p < 1 else "1"


def p_is(p: Any) -> str:
    """'p = 0.012' or 'p < 0.0001' for running text."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def fmt_ci(ci: Any, decimals: int | None = None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "—"
    return f"[{fmt(ci[0], decimals=decimals)}, {fmt(ci[1], decimals=decimals)}]"


def fmt_rate_ci(ci: Any) -> str:
    """A proportion's CI in percent: '[0 %, 52 %]'."""
    if not ci or ci[0] is None or ci[1] is None:
        return "—"
    return f"[{ci[0]:.0%}, {ci[1]:.0%}]".replace("%", " %")


def seeds_range_text(rng: Any) -> str:
    """'6 to 68', 'at least 6' (no upper end: some effects in the CI need any number), '—'."""
    if not rng or rng[0] is None:
        return "—"
    return f"{rng[0]} to {rng[1]}" if rng[1] is not None else f"at least {rng[0]}"


TEST_NAMES = {TEST_T: "one-sided paired t",
              TEST_SIGN: "exact sign test (no spread)",
              TEST_RANKED: "one-sided Wilcoxon, diverged worst",
              TEST_NONE: "none (too few pairs)"}


def test_name(test: str) -> str:
    return TEST_NAMES.get(test, test)


def metric_decimals(stds: Iterable[float | None], ci: tuple[float | None, float | None]) -> int | None:
    """Decimals for a baseline's metric values: two significant digits of its smallest spread.

    The spread is the narrowest of the arms' standard deviations ``stds`` and the Δ CI width, so
    that means, CIs and per-seed values of one baseline share one precision. None (4 significant
    digits) when no spread is known.
    """
    widths = [abs(float(s)) for s in stds if s]
    if ci[0] is not None and ci[1] is not None and ci[1] > ci[0]:
        widths.append(float(ci[1]) - float(ci[0]))
    widths = [w for w in widths if math.isfinite(w) and w > 0]
    if not widths:
        return None
    return int(min(8, max(0, math.ceil(-math.log10(min(widths))) + 1)))


def baseline_decimals(entry: BaselineSummary) -> int | None:
    """:func:`metric_decimals` of one baseline's arms and Δ."""
    return metric_decimals((a.std for a in entry.arms.values()), entry.diff.ci)


def duration(seconds: Any) -> str:
    """A duration that says its unit: '0.13 s', '5.1 s', '2 min 05 s', '1 h 02 min'; '—' when
    unknown."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(s) or s < 0:
        return "—"
    if s < 60:
        return f"{s:.2g} s" if s < 10 else f"{s:.0f} s"
    if s < 3600:
        m, sec = divmod(int(round(s)), 60)
        return f"{m} min {sec:02d} s"
    h, rem = divmod(int(round(s)), 3600)
    return f"{h} h {rem // 60:02d} min"


def hms(seconds: Any) -> str:
    """A duration as h:mm:ss (m:ss under an hour); '—' when unknown."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(s):
        return "—"
    h, rem = divmod(int(round(s)), 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def trials_to_match_text(trials_to_match: int | None, trials: int | None,
                         adm_val_mean: float | None, never: str = "never") -> str:
    """'3 of 20'; ``never`` when no trial reached AdM; '—' when there was nothing to match."""
    if trials_to_match is not None:
        return f"{trials_to_match} of {trials}"
    return never if trials and adm_val_mean is not None else "—"


# ----------------------------------------------------------------------------------------------
# Prose

HOLM_FAMILY = (
    "all one-sided AdM-vs-tuned tests of the report: p(better) and p(worse) for every baseline, "
    "and the Fisher exact test of the divergence rates for every baseline where an AdM or "
    "tuned-β run diverged"
)


def _runs(arm: Any) -> str:
    return f"{arm.diverged} of {arm.n + arm.diverged}"


def verdict_reason(entry: BaselineSummary, spec: StudySpec, alpha: float, margin: float) -> str:
    """One honest paragraph saying what the verdict is and why."""
    b = entry.baseline
    adm = f"{adm_name(b)} ({adm_qualifier(spec.beta_free)})"
    tuned_beta = entry.tuned.beta
    base = f"{baseline_name(b)} with tuned β = {fmt_beta(tuned_beta)}" if tuned_beta is not None \
        else f"tuned {baseline_name(b)}"
    metric = spec.metric
    a, t, d = entry.adm, entry.tuned, entry.diff
    dec = baseline_decimals(entry)
    means = (f"mean test {metric} {fmt(a.mean, decimals=dec)} (AdM) vs "
             f"{fmt(t.mean, decimals=dec)} (tuned β); AdM advantage "
             f"Δ = {fmt(d.mean, decimals=dec)} {fmt_ci(d.ci, dec)}")
    if not d.n:
        means = (f"no seed on which both completed ({a.n} complete AdM runs, {t.n} complete "
                 f"tuned-β runs)")
    v, capped, capped_b = entry.verdict, entry.capped_by_divergence, \
        entry.capped_by_baseline_divergence
    ranked = entry.test == TEST_RANKED
    test_words = (f"; the test is a one-sided Wilcoxon signed-rank over all {entry.test_n} "
                  f"seeds, a diverged run ranked worst" if ranked else
                  "; the test is the exact sign test, the differences having no spread"
                  if entry.test == TEST_SIGN else "")
    fisher = (f"Fisher exact {p_is(entry.p_divergence)}, Holm-adjusted "
              f"{p_is(entry.p_divergence_holm)}")
    counts = f"{_runs(a)} runs against {_runs(t)}; {fisher}"
    diverged = f"AdM diverged in {_runs(a)} runs, the tuned β in {_runs(t)} ({fisher})"
    within = entry.p_tost is not None and entry.p_tost < alpha
    if entry.decided_by_divergence:
        word = "beats" if v == "beats" else "loses to"
        text = (f"{adm} {word} {base} on reliability: {diverged}; a diverged run is the worst "
                f"outcome, so the arm that diverged significantly less often wins whatever the "
                f"complete runs show ({means}).")
    elif v == "matches":
        text = (f"{adm} matches {base}: {means}; TOST shows equivalence within ±δ = "
                f"±{fmt(margin)} ({p_is(entry.p_tost)} < α = {fmt(alpha)}): "
                f"{_inside_margin(d.mean)}.")
        detected = _detected(entry, alpha)
        if detected:
            text += (f" The difference is also detectable ({detected}), but it is smaller than "
                     f"what this study counts as practically relevant.")
    elif v == "beats":
        text = (f"{adm} beats {base}: {means} (positive = AdM better), "
                f"Holm-adjusted {p_is(entry.p_better_holm)} < α = {fmt(alpha)}{test_words}; "
                f"equivalence within δ = {fmt(margin)} is not shown (TOST {p_is(entry.p_tost)}).")
    elif v == "loses":
        text = (f"{adm} loses to {base}: {means} (negative = AdM worse), "
                f"Holm-adjusted {p_is(entry.p_worse_holm)} < α = {fmt(alpha)}{test_words}.")
        if within:
            # reachable only under the divergence cap, which rules out a match
            text += (f" On the complete pairs the difference is inside the margin δ = "
                     f"{fmt(margin)} (TOST {p_is(entry.p_tost)}).")
        else:
            text += (f" Equivalence within δ = {fmt(margin)} is not shown "
                     f"(TOST {p_is(entry.p_tost)}): here tuning β pays off and AdM does not "
                     f"replace it.")
    elif not d.n and not entry.test_n:
        text = (f"Inconclusive for {adm} against {base}: {means}, so nothing can be tested.")
    else:
        text = (f"Inconclusive for {adm} against {base}: {means}. "
                f"Neither one-sided test is significant after Holm "
                f"({p_is(entry.p_better_holm)} for better, {p_is(entry.p_worse_holm)} for "
                f"worse{test_words})")
        if capped:
            text += "."
        else:
            text += (f" and equivalence within δ = {fmt(margin)} is not shown "
                     f"(TOST {p_is(entry.p_tost)}).")
    if not entry.decided_by_divergence and (capped or capped_b):
        favour = d.mean is not None and d.mean > 0
        if capped:
            lead = ("The complete pairs favour AdM, but AdM" if favour and d.n else "AdM")
            text += (f" {lead} diverged more often than the tuned β ({counts}), so it cannot be a "
                     f"{'win' if favour else 'win or a match'}.")
        else:
            lead = ("The complete pairs favour the tuned β, but it" if d.n and d.mean is not None
                    and d.mean < 0 else "The tuned β")
            text += (f" {lead} diverged more often than AdM ({_runs(t)} runs against "
                     f"{_runs(a)}; {fisher}), so AdM cannot lose.")
    elif (a.diverged or t.diverged) and not entry.decided_by_divergence:
        text += f" Both arms diverged equally often ({_runs(a)} runs each)."
    if v == "inconclusive":
        pw = entry.power
        if entry.seeds_to_resolve is not None:
            lo, hi = pw.seeds_range if pw else (None, None)
            if lo is not None:
                span = (f"{lo} to {hi}" if hi is not None else f"at least {lo}, possibly no "
                        "number")
                span = f"; over the effect size's 95 % CI, {span}"
            else:
                span = ""
            text += (f" A power calculation (80 % power, the observed effect taken as true) says "
                     f"about {entry.seeds_to_resolve} seeds per arm would decide it{span}.")
        elif capped:
            text += (" More seeds could at most show that AdM loses; the complete pairs do not "
                     "point that way, so no seed estimate is given.")
        else:
            text += (" No seed estimate is possible from these runs (too few complete pairs, "
                     "or an observed effect too small to resolve).")
        if pw is not None and pw.mde is not None:
            text += (f" With {pw.n} pairs this study could detect, with 80 % power, only a "
                     f"difference of {fmt(pw.mde, 2)} or more ({fmt(pw.mde_z, 3)} sd of the "
                     f"differences, at the strictest Holm level α/m = {fmt(pw.alpha_directional, 2)}).")
    if d.n == 1:
        text += " Only 1 complete pair: the tests need at least two."
    return text + warmup_sentence(entry, spec, dec)


def power_note(entry: BaselineSummary, margin: float) -> str:
    """Page 1's warning when the study cannot show what it asks ('' when it can)."""
    pw = entry.power
    if pw is None or not pw.underpowered:
        return ""
    parts = []
    if pw.tost_power is not None and pw.tost_power < 0.8:
        need = (f"; about {pw.tost_seeds} would give 80 %" if pw.tost_seeds is not None else "")
        parts.append(f"even if the two arms were identical, {pw.n} seeds show equivalence within "
                     f"±δ = ±{fmt(margin)} with only {round(100 * pw.tost_power)} % power{need}")
    if pw.mde is not None and pw.mde > margin:
        parts.append(f"the smallest difference it detects with 80 % power, {fmt(pw.mde, 2)}, is "
                     f"larger than δ")
    return (f"{adm_name(entry.baseline)} vs {baseline_name(entry.baseline)}: underpowered for its "
            f"own margin: " + "; ".join(parts) + ".")


def _inside_margin(diff_mean: float | None) -> str:
    """The direction of a match, by the sign of the mean Δ (positive = AdM better): a match is
    not a tie, and a reader should not have to read the sign off Δ."""
    if diff_mean is not None and diff_mean > 0:
        return "AdM slightly better, inside the margin δ"
    if diff_mean is not None and diff_mean < 0:
        return "AdM slightly worse, inside the margin δ"
    return "no difference on average, inside the margin δ"


def _detected(entry: BaselineSummary, alpha: float) -> str:
    """The one-sided test that is significant as well as TOST, worded; '' when neither is."""
    for p, word in ((entry.p_better_holm, "better"), (entry.p_worse_holm, "worse")):
        if p is not None and math.isfinite(p) and p < alpha:
            return f"Holm-adjusted {p_is(p)} for AdM {word}"
    return ""


def warmup_sentence(entry: BaselineSummary, spec: StudySpec, dec: int | None) -> str:
    """When AdM trained with another warmup than the baselines (the LM study's warmup-free
    question), say so, and how AdM fared against the tuned β trained without warmup too."""
    warm, adm_warm = spec.warmup_for(adm=False), spec.warmup_for(adm=True)
    if adm_warm == warm:
        return ""

    def steps(n: int) -> str:
        return "without warmup" if n == 0 else f"with {n} warmup steps"

    text = (f" AdM trained {steps(adm_warm)} (train.adm_warmup_steps), the tuned β and β = 0.9 "
            f"{steps(warm)} (train.warmup_steps).")
    o = entry.vs_other_arms.get("nowarmup")
    if o is not None and o.diff.n:
        text += (f" Against the tuned β trained without warmup as well (arm nowarmup), AdM's "
                 f"advantage is Δ = {fmt(o.diff.mean, decimals=dec)} "
                 f"{fmt_ci(o.diff.ci, dec)} (two-sided {p_is(o.p_two_sided)}, not "
                 f"adjusted: descriptive).")
    return text


def tuning_sentence(entry: BaselineSummary, metric: str, beta_free: bool) -> str:
    """How many tuning trials the baseline needed to reach AdM, with the caveats."""
    b, t = entry.baseline, entry.tuning
    n = t.trials
    caveat = (" A single-seed best-so-far against a multi-seed mean is optimistic for the "
              "baseline: the tuning it replaces is, if anything, more than this.")
    if t.adm_val_mean is None:
        return (f"Tuning saved: unknown, AdM's evaluation runs recorded no validation {metric}.")
    if not n:
        return "Tuning saved: unknown, no tuning trials were recorded."
    k = entry.trials_to_match
    target = fmt(t.adm_val_mean)
    adm = entry.adm
    if adm.diverged:
        caveat += (f" AdM's mean is over its {adm.n} complete runs; "
                   f"{adm.diverged} diverged and are not in it.")
    fins = entry.selection.finalists
    if fins:
        runs = len(fins) * entry.selection.selection_seeds
        caveat += (f" Choosing the tuned β also took {runs} selection runs ({len(fins)} finalists "
                   f"× {entry.selection.selection_seeds} seeds), not counted in these trials.")
    qualifier = adm_qualifier(beta_free)
    if k is None:
        return (f"Tuning saved: in all {n} trials, {baseline_name(b)}'s best validation {metric} "
                f"({fmt(t.best_value)}) never reached AdM's mean of {target}: {qualifier} AdM "
                f"did better than the whole β search, in any order of the trials." + caveat)
    o = t.to_match
    own = f"in this study's own order it took {k} trial{'s' if k != 1 else ''}"
    if o is None:  # not reachable when k is known; kept for summaries of older versions
        return (f"Tuning saved: {baseline_name(b)}'s best-so-far validation {metric} first "
                f"reached AdM's mean of {target} at trial {k} of {n}." + caveat)
    return (f"Tuning saved: over every random ordering of {baseline_name(b)}'s {n} trials, its "
            f"best-so-far validation {metric} first reaches AdM's mean of {target} after a median "
            f"of {o.median} trial{'s' if o.median != 1 else ''} (95 % of orderings: {o.ci[0]} to "
            f"{o.ci[1]}; {o.good} of the {n} trials reach it), so AdM, {qualifier}, is worth about "
            f"{o.median} tuning trial{'s' if o.median != 1 else ''}; {own}, which is one draw. "
            f"Random orderings treat the trials as exchangeable, as random search would; TPE "
            f"chose each trial from the earlier ones." + caveat)


def orderings_text(to_match: Any, trials: int | None, adm_val_mean: float | None) -> str:
    """Trials to match over random orderings of the trials, median [95 %]: '3 [1, 9]'; 'never'
    when no trial reached AdM; '—' when there was nothing to match. ``to_match`` is the
    summary's TrialsToMatch or its dict."""
    if to_match is None:
        return "never" if trials and adm_val_mean is not None else "—"
    if isinstance(to_match, dict):
        median, ci = to_match["median"], to_match["ci"]
    else:
        median, ci = to_match.median, to_match.ci
    return f"{median} [{ci[0]}, {ci[1]}]"


def time_to_target_text(ttt: Any, metric: str) -> str:
    """AdM's steps to the tuned arm's final mean validation value, as a ratio of the tuned arm's."""
    if ttt is None:
        return (f"Time to target: unknown, the runs recorded no validation {metric} curve of "
                f"both arms.")
    n = len(ttt.seeds)
    reached_a = sum(s is not None for s in ttt.adm_steps)
    reached_t = sum(s is not None for s in ttt.tuned_steps)
    text = (f"Time to target (AlgoPerf's view): the tuned β's mean final validation {metric}, "
            f"{fmt(ttt.target)}, was reached on {reached_a} of {n} seeds by AdM and on "
            f"{reached_t} of {n} by the tuned β (a curve reaches its own mean final value on "
            f"about half of its seeds).")
    if ttt.ratio is not None:
        ci = (f" [{fmt(ttt.ratio_ci[0], 2)}, {fmt(ttt.ratio_ci[1], 2)}]"
              if ttt.ratio_ci[0] is not None else " (one pair: no interval)")
        faster = "fewer" if ttt.ratio < 1 else "more"
        text += (f" Where both reached it ({ttt.pairs} seeds), AdM needed {fmt(ttt.ratio, 2)}× "
                 f"the tuned β's steps{ci} (geometric mean, paired t-interval on log ratios; "
                 f"{faster} steps for AdM).")
    else:
        text += " No seed where both reached it at a step after the first: no ratio."
    if ttt.adm_never or ttt.tuned_never:
        text += (f" Never reached: AdM alone on {ttt.adm_never} seeds, the tuned β alone on "
                 f"{ttt.tuned_never}, neither on {ttt.both_never}; those seeds are not in the "
                 f"ratio.")
    return text


BUDGET_NAMES = {"seeds": "seeds", "trials": "tuning trials",
                "tune.finalists": "finalists (tune.finalists)",
                "tune.selection_seeds": "selection seeds (tune.selection_seeds)"}


def budget_change_text(change: dict[str, Any]) -> str:
    """One budget grown on resume, worded as what it is statistically: an interim look."""
    key = str(change.get("key", "?"))
    at = str(change.get("at") or "")[:10] or "an unrecorded date"
    return (f"{BUDGET_NAMES.get(key, key)} extended from {change.get('from')} to "
            f"{change.get('to')} on {at}: an interim look after a first report; p-values are "
            f"not adjusted for it.")


def pruning_text(spec: StudySpec) -> str:
    """How tuning trials were pruned ('' when they were not)."""
    if spec.tune.pruner == "none":
        return ""
    return (f"{spec.tune.pruner} pruner, acting only after {spec.tune.prune_after:.0%} of a "
            f"trial's steps (tune.prune_after)")


def selection_how(entry: BaselineSummary, metric: str) -> str:
    """How the tuned β was chosen, as this baseline's runs show it."""
    sel = entry.selection
    fins = sel.finalists
    if not fins:
        return ("No selection runs were recorded: the tuned β is the best single-seed tuning "
                "trial.")
    n_trials = sum(f.origin == "tuning trial" for f in fins)
    parts = [f"the {n_trials} best distinct tuning trial{'s' if n_trials != 1 else ''}"]
    if any(f.origin == "β = 0.9" for f in fins):
        parts.append("β = 0.9")
    n_cand = sum(f.origin == "candidate" for f in fins)
    if n_cand:
        parts.append(f"{n_cand} candidate{'s' if n_cand != 1 else ''} (tune.candidates)")
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]
    return (f"The tuned β is the best of {len(fins)} finalists ({listed}), each re-run on "
            f"{sel.selection_seeds} selection seeds of its own and ranked by mean validation "
            f"{metric}; a diverged or failed selection run scores as the worst value, ties go to "
            f"the earlier finalist.")


def selection_heading(selection_seeds: int, metric: str) -> str:
    return (f"Selection: finalists on {selection_seeds} seeds of their own "
            f"(validation {metric})")


SELECTION_NOTE = (
    "Mean ± sample sd over each finalist's complete selection runs. The selection itself ranks "
    "a diverged or failed run as the worst value, so a finalist with one is chosen only if every "
    "finalist had one. The chosen β is the best of a few on a few seeds: its selection mean is "
    "optimistic; the evaluation on separate seeds is what the verdict uses."
)


# ----------------------------------------------------------------------------------------------
# Figure captions and the notes shown when a figure has nothing to draw


def forest_caption(metric: str, margin: float) -> str:
    return (f"AdM's advantage Δ in test {metric} (mean paired difference over seeds, "
            f"positive = AdM better) with its 95 % paired t-interval, against the tuned β (filled) and "
            f"β = 0.9 (open). Shaded: the equivalence margin ±δ = ±{margin:g}.")


def sensitivity_caption(baseline: str, metric: str, beta_free: bool,
                        selection_seeds: int | None = None) -> str:
    caption = (f"β-sensitivity of {baseline_name(baseline)}: every tuning trial's validation "
               f"{metric} against 1 − β (log scale; β on the top axis). Band: "
               f"{adm_name(baseline)}'s validation mean with 95 % CI over its evaluation seeds.")
    if selection_seeds:
        caption += (f" Diamonds: the finalists' mean ± sd over their {selection_seeds} selection "
                    f"seeds (complete runs), filled for the one chosen as the tuned β.")
    caption += " One look tells how much tuning AdM replaces."
    if beta_free:
        caption += " Trials also tuned the learning rate, so points mix learning rates."
    return caption


def best_so_far_caption(baseline: str, metric: str, tuning: Any) -> str:
    return (f"Tuning saved, with its uncertainty: {baseline_name(baseline)}'s best validation "
            f"{metric} after k tuning trials, over every random ordering of its {tuning.trials} "
            f"trials (exact; solid: median, band: 95 % of orderings) and in this study's order "
            f"(dotted), against {adm_name(baseline)}'s mean validation {metric}. Pruned and "
            f"diverged trials use budget and never improve the best.")


def curves_caption(baseline: str) -> str:
    return (f"Learning curves on {baseline_name(baseline)}'s evaluation seeds: mean over seeds with "
            f"a pointwise 95 % t band, per arm; insets zoom on the last 40 % of training. Dotted: "
            f"diverged runs, up to where they stopped.")


def traces_caption(baseline: str, tensors: int | None = None, seeds: int = 0,
                   heatmap: bool = False) -> str:
    """The β_t figure's caption; ``tensors`` None when there are no traces to describe."""
    caption = f"{adm_name(baseline)}'s adaptive βₜ over training, on its evaluation seeds."
    if tensors is None:
        return caption
    if heatmap:
        caption += (f" Top: distribution over the {tensors} parameter tensors of the seed-mean βₜ; "
                    f"bottom: every tensor's βₜ (mean over seeds).")
    else:
        caption += (" Line: mean over seeds; band: range over seeds"
                    + (" (one β per parameter group)." if tensors == 1 else ", per tensor."))
    if seeds:
        caption += f" {seeds} seed(s)."
    return caption


def per_seed_caption(metric: str, minimize: bool) -> str:
    return (f"Test {metric} of every evaluation run, per arm; grey lines join the runs of one "
            f"seed (the pairing). Bar: mean with 95 % t-interval over complete runs. "
            f"Diverged runs are drawn in the strip at the {'top' if minimize else 'bottom'} "
            f"(the worst outcome).")


NO_PAIRS = "No complete AdM / baseline pairs: nothing to plot."
NO_TRIALS = "No tuning trials recorded for this baseline."
NO_CURVES = "No learning curves were recorded for these runs."
NO_TRACES = "No βₜ traces were recorded for AdM's runs."
NO_EVAL_RUNS = "No evaluation runs."


def incomplete_text(progress: dict[str, Any] | None) -> str:
    """"incomplete: 40 of 124 planned runs done (tuning 40/40, selection 0/24, evaluation 0/60)"."""
    if not progress:
        return ""
    stages = [("tuning", "tune"), ("selection", "select"), ("evaluation", "evaluate")]
    done = sum(progress[k]["done"] for _, k in stages if k in progress)
    planned = sum(progress[k]["planned"] for _, k in stages if k in progress)
    parts = ", ".join(f"{word} {progress[k]['done']}/{progress[k]['planned']}"
                      for word, k in stages if k in progress)
    return f"incomplete: {done} of {planned} planned runs done ({parts})"
