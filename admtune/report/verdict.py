"""The verdict rules (DESIGN.md, "Statistics"), applied in this order, the margin first:

1. **matches** if the TOST equivalence p (margin ±δ) < α, whatever the sign of the mean Δ:
   a difference inside ±δ is, by the study's own definition, not practically relevant, even when
   a one-sided test also detects it (the reason then says "AdM slightly better" or "AdM slightly
   worse, inside the margin δ");
2. **beats** if the Holm-adjusted p(AdM better) < α (equivalence not shown);
3. **loses** if the Holm-adjusted p(AdM worse) < α (equivalence not shown);
4. else **inconclusive** (with the seeds per arm a power calculation says would decide it).

If AdM diverged more often than its baseline (the tuned arm), the verdict cannot be beats or
matches: rules 1 and 2 are skipped, so a loss inside the margin is then a loss. A p-value that is
undefined (NaN: too few complete pairs) never makes a test significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VERDICTS = ("beats", "matches", "loses", "inconclusive")


@dataclass(frozen=True)
class Decision:
    verdict: str
    capped: bool  # True when AdM's divergences excluded beats / matches


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
) -> Decision:
    """Apply the rules above; see the module docstring."""
    capped = adm_diverged > baseline_diverged
    if not capped and _significant(p_tost, alpha):
        return Decision("matches", capped)
    if not capped and _significant(p_better_holm, alpha):
        return Decision("beats", capped)
    if _significant(p_worse_holm, alpha):
        return Decision("loses", capped)
    return Decision("inconclusive", capped)
