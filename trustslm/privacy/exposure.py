"""Canary exposure (Carlini, Liu, Erlingsson, Kos, Song. "The Secret Sharer: Evaluating and
Testing Unintended Memorization in Neural Networks." USENIX Security 2019).

The exposure of a canary ``s[r]`` with randomness space ``R`` is
``log2 |R| - log2 rank(s[r])``, where the rank orders every candidate ``s[r']`` by its
log-perplexity under the model (rank 1 = most likely). Enumerating ``R`` is infeasible, so, as
the paper does (Section 4.3), the rank is estimated from a sample of candidates:
``exposure = -log2 Pr_{r' ~ R}[Px(s[r']) <= Px(s[r])]``. When no sampled candidate is as likely
as the canary (its sampled rank is 1), the probability is extrapolated from a skew-normal
distribution fitted to the candidates' log-perplexities, the paper's approximation. Exposure is
capped at ``log2 |R|``, its maximum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Exposure:
    bits: float
    max_bits: float
    method: str  # "rank" (from sampled candidates) or "skew-normal" (extrapolated)
    rank_fraction: float  # estimated Pr[candidate at least as likely as the canary]


def exposure(canary_logppl: float, candidate_logppls: Sequence[float], space_size: float) -> Exposure:
    """Exposure in bits of a canary, given its log-perplexity and those of random candidates of
    the same format (lower log-perplexity = more likely)."""
    cand = np.asarray(candidate_logppls, dtype=float)
    if cand.size < 2:
        raise ValueError("exposure needs at least two candidates")
    max_bits = math.log2(space_size)
    at_most = int(np.count_nonzero(cand <= canary_logppl))
    if at_most > 0:
        fraction = at_most / cand.size
        method = "rank"
    else:
        from scipy.stats import skewnorm

        a, loc, scale = skewnorm.fit(cand)
        fraction = float(skewnorm.cdf(canary_logppl, a, loc=loc, scale=scale))
        method = "skew-normal"
    fraction = max(fraction, 2.0 ** -max_bits)
    bits = min(max_bits, -math.log2(fraction))
    return Exposure(bits=bits, max_bits=max_bits, method=method, rank_fraction=fraction)
