"""The verdict rules (README, "Statistics"), applied in this order:

1. **divergence decides** if the two arms diverged at significantly different rates (Fisher exact
   test, Holm-adjusted p < α): the arm that diverged less wins, so AdM **beats** or **loses**.
   A diverged run is the worst outcome there is, whatever the complete runs show;
2. **matches** if the TOST equivalence p (margin ±δ) < α, whatever the sign of the mean Δ:
   a difference inside ±δ is, by the study's own definition, not practically relevant, even when
   a one-sided test also detects it (the reason then says "AdM slightly better" or "AdM slightly
   worse, inside the margin δ");
3. **beats** if the Holm-adjusted p(AdM better) < α (equivalence not shown);
4. **loses** if the Holm-adjusted p(AdM worse) < α (equivalence not shown);
5. else **inconclusive** (with what the sample could have detected and the seeds that would decide).

Two caps, mirror images: if AdM diverged more often than the tuned arm, the verdict cannot be beats
or matches (rules 2 and 3 are skipped, so a loss inside the margin is then a loss); if the tuned arm
diverged more often, it cannot be loses (rule 4 is skipped). Rule 1 is not capped: it is the test of
the very difference the caps look at. A p-value that is undefined (NaN: too few runs) never makes a
test significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VERDICTS = ("beats", "matches", "loses", "inconclusive")


@dataclass(frozen=True)
class Decision:
    verdict: str
    capped: bool           # AdM diverged more often: beats / matches ruled out
    capped_baseline: bool  # the tuned arm diverged more often: loses ruled out
    by_divergence: bool    # rule 1 decided it


def _significant(p: float | None, alpha: float) -> bool:
    return p is not None and not math.isnan(p) and p < alpha


def decide(
    *,
    p_better_holm: float | None,
    p_worse_holm: float | None,
    p_tost: float | None,
    alpha: float,
    adm_diverged: int,
    baseline_diverged: int,
    p_divergence_holm: float | None = None,
    adm_rate: float | None = None,
    baseline_rate: float | None = None,
) -> Decision:
    """Apply the rules above; see the module docstring. ``adm_rate`` / ``baseline_rate`` are the
    divergence proportions rule 1 compares (counts alone would mislead if the arms ran a different
    number of seeds); by default the counts are compared."""
    a_rate = adm_diverged if adm_rate is None else adm_rate
    b_rate = baseline_diverged if baseline_rate is None else baseline_rate
    capped = adm_diverged > baseline_diverged
    capped_baseline = baseline_diverged > adm_diverged
    if _significant(p_divergence_holm, alpha) and a_rate != b_rate:
        return Decision("loses" if a_rate > b_rate else "beats", capped, capped_baseline, True)
    if not capped and _significant(p_tost, alpha):
        return Decision("matches", capped, capped_baseline, False)
    if not capped and _significant(p_better_holm, alpha):
        return Decision("beats", capped, capped_baseline, False)
    if not capped_baseline and _significant(p_worse_holm, alpha):
        return Decision("loses", capped, capped_baseline, False)
    return Decision("inconclusive", capped, capped_baseline, False)
