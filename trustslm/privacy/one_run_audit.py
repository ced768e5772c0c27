"""The one-run privacy audit of Steinke, Nasr and Jagielski ("Privacy Auditing with One (1)
Training Run", NeurIPS 2023).

``m`` canaries are each included in training independently with probability 1/2. After training,
an auditor guesses "in" for the ``k_plus`` highest-scoring canaries and "out" for the ``k_minus``
lowest, abstaining on the rest; ``v`` of its ``r = k_plus + k_minus`` guesses are right. If
training is (eps, delta)-DP, the number of correct guesses is stochastically dominated by a
Binomial(r, e^eps / (1 + e^eps)), up to a delta term (the paper's Theorem 3.1, computed as in its
Algorithm / appendix code): ``p = P[Bin(r, q) >= v] + 2 m delta * alpha`` with
``alpha = max_i P[v > Bin(r, q) >= v - i] / i``. The 95% lower bound on epsilon is the largest
eps whose p-value is below 0.05, found by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """Probability of at least ``v`` correct guesses out of ``r`` under (eps, delta)-DP."""
    from scipy.stats import binom

    if not (0 <= v <= r <= m) or eps < 0 or not 0 <= delta <= 1:
        raise ValueError("need 0 <= v <= r <= m, eps >= 0 and 0 <= delta <= 1")
    q = 1.0 / (1.0 + math.exp(-eps))
    beta = float(binom.sf(v - 1, r, q))
    alpha, total = 0.0, 0.0
    if delta > 0:
        for i in range(1, v + 1):
            total += float(binom.pmf(v - i, r, q))
            alpha = max(alpha, total / i)
    return min(1.0, beta + alpha * delta * 2 * m)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, *, confidence: float = 0.95) -> float:
    """The largest eps rejected at ``confidence``: the run is not (eps, delta)-DP."""
    alpha = 1 - confidence
    if p_value(m, r, v, 0.0, delta) >= alpha:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < alpha:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            return lo
    for _ in range(60):
        mid = (lo + hi) / 2
        if p_value(m, r, v, mid, delta) < alpha:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class AuditResult:
    m: int
    guesses: int
    correct: int
    epsilon_lower_bound: float


def audit(scores: Sequence[float], included: Sequence[bool], *, delta: float, guess_fraction: float = 0.2,
          confidence: float = 0.95) -> AuditResult:
    """Guess "in" for the top ``guess_fraction / 2`` of canaries by score and "out" for the bottom
    ``guess_fraction / 2`` (fixed in advance, so the bound is valid), count the correct guesses,
    and bound epsilon."""
    s = np.asarray(scores, dtype=float)
    inc = np.asarray(included, dtype=bool)
    m = len(s)
    k = max(1, int(round(m * guess_fraction / 2)))
    order = np.argsort(-s, kind="mergesort")
    top, bottom = order[:k], order[-k:]
    correct = int(inc[top].sum() + (~inc[bottom]).sum())
    r = 2 * k
    return AuditResult(m=m, guesses=r, correct=correct,
                       epsilon_lower_bound=epsilon_lower_bound(m, r, correct, delta, confidence=confidence))
