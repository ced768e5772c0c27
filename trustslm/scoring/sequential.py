"""Intervals that stay valid when a probe stops drawing items once its interval is narrow enough.

A probe sampled in rounds (``target_width`` set: :class:`~trustslm.probes.base.SampledGenerationProbe`)
looks at its headline metric after each of at most ``looks`` rounds and stops when the interval is
at most ``target_width`` wide. Reporting the ordinary 95% interval after such a rule is not valid:
the rule chose the sample size by looking at the data, so the chance that at least one of the
looks' intervals misses the true value is higher than 5%. The fix used here is the Bonferroni
correction over the planned looks (Dunn 1961; in group-sequential terms, a constant boundary over
a fixed maximum number of looks, as in Jennison and Turnbull 2000, ch. 2): every look's interval
is taken at level ``1 - (1 - 0.95) / looks``. By the union bound, the probability that any of the
at most ``looks`` intervals misses is at most 5%, so the interval at whatever look the rule stops
at covers with probability at least 95%, whatever the rule. It is conservative (wider than
needed); ``tests/test_sequential_sampling.py`` checks its coverage by simulation.

The reported interval of every metric of such a probe is the percentile interval of its bootstrap
replicates at the corrected level. The replicates handed on (to the probe score, the dimension and
the release gate) are stretched about their median, each side by its own factor, so that their 95%
percentile interval is that corrected one (:func:`stretch_replicates`), and what is built on them
inherits the correction.
"""

from __future__ import annotations

import numpy as np

from trustslm.scoring import CONFIDENCE

#: Method name written in the report.
METHOD = "Bonferroni over the planned looks (union bound): each look's interval at level 1 - 0.05/looks"


def corrected_level(looks: int, level: float = CONFIDENCE) -> float:
    """The per-look level that keeps ``level`` over ``looks`` looks (Bonferroni)."""
    if looks < 1:
        raise ValueError("looks must be at least 1")
    return 1.0 - (1.0 - level) / looks


def stretch_replicates(replicates: np.ndarray, looks: int, level: float = CONFIDENCE) -> np.ndarray:
    """``replicates`` mapped monotonically so that their ``level`` percentile interval is the
    original replicates' interval at :func:`corrected_level`: below the median each one's distance
    from the median is scaled by one factor, above it by another. A side with no spread is left as
    it is. With ``looks == 1`` the replicates are returned unchanged."""
    reps = np.asarray(replicates, dtype=float)
    if looks == 1:
        return reps
    finite = reps[np.isfinite(reps)]
    if finite.size == 0:
        return reps
    a, b = (1 - level) / 2, (1 - corrected_level(looks, level)) / 2
    mid = float(np.median(finite))
    lo, hi, lo_wide, hi_wide = np.quantile(finite, [a, 1 - a, b, 1 - b])
    down = (mid - lo_wide) / (mid - lo) if mid > lo else 1.0
    up = (hi_wide - mid) / (hi - mid) if hi > mid else 1.0
    out = reps.copy()
    below = reps < mid
    out[below] = mid + (reps[below] - mid) * down
    out[~below] = mid + (reps[~below] - mid) * up
    return out
