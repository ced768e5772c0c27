"""Numeric tolerances of the test suite, each derived from the arithmetic behind the numbers it
compares (docs/testing.md states the rules and the measurements behind the constants).

Every comparison in ``tests/`` is one of these kinds:

* **Exact**: counts, integers, hashes, texts, and one computation repeated the same way in one
  process (a cache replay, a seeded rerun, ``round(x, 1)`` on both sides): ``==``, no tolerance.
* **float64 maths on the same inputs** (a metric against its formula, scikit-learn or scipy):
  bare ``pytest.approx(expected)``. Its relative 1e-6 is about 10**10 times float64's unit
  roundoff (2**-53), far above what the few thousand operations behind these numbers accumulate,
  and far below the smallest difference those tests tell apart (their expected values are
  fractions with small denominators).
* **A number rounded or printed to k decimals**, or a literal typed with k decimals:
  ``decimals(k)``.
* **float32 model arithmetic**: two float32 evaluations of one network on the same tokens, which
  differ only in the order of their sums (batched or alone, padded or not, with a key/value cache
  or without, 1 thread or 16, AVX2 or AVX-512 kernels, MKL or OpenBLAS, CPU or GPU):
  ``float32_logprob`` and the functions built on it.
* **A sampling statistic**: ``bootstrap_width``.

The float32 rule. Let u = 2**-23 (float32 machine epsilon, ``EPS32``). Reordering a float32 sum or
dot product changes its result by a few units in the last place of the numbers it adds, so every
deviation below is a multiple of u times a magnitude:

1. The forward pass moves one per-token log-probability log p_t = z_t - logsumexp(z) by at most
   ``FORWARD_ULPS`` * u * Z, Z a bound on the logits' magnitude (``TINY_LOGITS``,
   ``SMOLLM2_LOGITS``): its reordered sums shift every logit by a few u * Z, and log p_t moves by
   the shift of z_t less the p-weighted mean shift.
2. The log-softmax's own rounding adds at most 2 u * |log p_t|: 2 u * |S| over a sequence whose
   log-probabilities sum to S.
3. Summing n per-token values in float32 rounds n - 1 partial sums, each by at most u/2 times its
   magnitude, which is at most |S| for terms of one sign: (n - 1)/2 * u * |S|.

So for a sum of n per-token log-probabilities (``float32_logprob``)::

    u * (FORWARD_ULPS * n * Z + (n + 3)/2 * |S|)

It grows with n (n per-token deviations, n - 1 roundings of a partial sum), with the logits'
magnitude and with the sum's. It assumes IEEE float32 matrix products: TF32 or reduced-precision
autocast on a GPU are outside it.
"""

from __future__ import annotations

import math

#: float32 machine epsilon, u = 2**-23 (numpy.finfo(numpy.float32).eps).
EPS32 = 2.0 ** -23
#: Bound on the forward pass's deviation of one per-token log-probability, in units of u * Z.
#: Measured at most 2.9 (SmolLM2, 30 layers: batched against alone, 1 or 2 threads, ATen's default
#: or AVX2 kernels, MKL's default or COMPATIBLE code path; docs/testing.md), so 16 leaves 5.5 times
#: the largest deviation seen.
FORWARD_ULPS = 16
#: |logit| bound of the tiny random models (trustslm.testing.tiny_models: two layers, weights of
#: standard deviation 0.02; measured at most 0.63 on the tests' texts).
TINY_LOGITS = 1.0
#: Vocabulary size of the tiny models (``build_tokenizer``'s default).
TINY_VOCAB = 300
#: |logit| bound of SmolLM2-135M-Instruct at the positions tests/test_smollm2.py scores (measured
#: at most 35.0 on its CrowS-Pairs rows and 37.4 on its TruthfulQA questions).
SMOLLM2_LOGITS = 40.0
#: Float64 slack of an absolute tolerance on numbers below about 10**3 (a few units in their last place).
_FLOAT64_SLACK = 1e-12


def decimals(k: int) -> float:
    """A value rounded to ``k`` decimals (a report's score, a JUnit time, TextAttack's
    percentages, a literal typed with ``k`` decimals) is within half a unit of its last place of
    the exact value, and so is a mean of such values."""
    return 0.5 * 10.0 ** -k + _FLOAT64_SLACK


def float32_logprob(n_tokens: int, total: float, *, logits: float = TINY_LOGITS) -> float:
    """Absolute tolerance between two float32 evaluations of a sum of ``n_tokens`` per-token
    log-probabilities that sums to ``total``, from a model whose |logits| <= ``logits``:
    u * (FORWARD_ULPS * n * Z + (n + 3)/2 * |S|), derived in the module docstring."""
    n = max(1, n_tokens)
    return EPS32 * (FORWARD_ULPS * n * logits + (n + 3) / 2 * abs(total))


def float32_probability(*, logits: float = TINY_LOGITS) -> float:
    """Relative deviation of a float32 softmax probability, and so the absolute tolerance of one
    that is at most 1 (a classifier's score): its log moves by ``FORWARD_ULPS`` * u * Z (rule 1)
    and the exponential rounds by 2 u more."""
    return EPS32 * (FORWARD_ULPS * logits + 2)


def float32_debiased_logprob(n_tokens: int, total: float, *, decay_constant: float, logits: float = TINY_LOGITS,
                             vocab: int = TINY_VOCAB) -> float:
    """``float32_logprob`` for self-debiased log-probabilities (Schick et al. 2021),
    log p~_t = log p_t + log a_t - log sum_j p_j a_j with log a_j = decay_constant * min(0, p_j - q_j).

    The probabilities p and q (plain and prefixed) deviate relatively by r = ``float32_probability``
    and are at most P = e**(2 Z) / V (every |logit| <= Z). So log a_t moves by at most
    decay_constant * r * (p_t + q_t) <= 2 decay_constant * r * P, and the normaliser, a p~-weighted
    mean of such moves, as much again: each of the n tokens gains 4 decay_constant * P * r."""
    max_prob = min(1.0, math.exp(2 * logits) / vocab)
    per_token = 4 * decay_constant * max_prob * float32_probability(logits=logits)
    return float32_logprob(n_tokens, total, logits=logits) + max(1, n_tokens) * per_token


def float32_entropy(*, decay_constant: float = 0.0, logits: float = TINY_LOGITS, vocab: int = TINY_VOCAB) -> float:
    """Tolerance of mu = sum_j p_j log p_j at one position (trustslm's token scores): every log p_j
    moves by at most the one-token tolerance d (at |log p_j| <= log V + 2 Z, which bounds every j
    when all |logits| <= Z) and p_j by at most p_j d, so mu moves by at most
    d * (1 + sum_j p_j |log p_j|) <= d * (1 + log V)."""
    d = float32_debiased_logprob(1, math.log(vocab) + 2 * logits, decay_constant=decay_constant, logits=logits,
                                 vocab=vocab)
    return d * (1 + math.log(vocab))


def float32_mc2(n_tokens: int, total: float, *, logits: float) -> float:
    """Tolerance of TruthfulQA's MC2, sum_true e**ll_i / sum_all e**ll_j, from answer
    log-likelihoods each within ``float32_logprob(n_tokens, total)`` (the longest and the largest
    answer): it moves by sum_i w_i (1[i true] - MC2) d ll_i with weights w summing to 1, at most
    2 MC2 (1 - MC2) max |d ll| <= max |d ll| / 2."""
    return float32_logprob(n_tokens, total, logits=logits) / 2


def bootstrap_width(resamples: int, *, level: float = 0.95, sds: float = 5.0) -> float:
    """Relative tolerance of a percentile bootstrap interval's width against its normal value
    (2 z standard errors). Each end is a sample quantile of ``resamples`` replicates, with a standard
    error of sqrt(a (1 - a) / B) / phi(z) standard errors (a = (1 - level) / 2); the two ends make
    the width's relative standard error sqrt(2 a (1 - a)) / (2 z phi(z) sqrt(B)) (0.030 for
    B = 1000; 0.028 measured over 400 seeds). ``sds`` of them, so that a seeded run whose random
    stream changes with another numpy still passes."""
    from statistics import NormalDist

    alpha = (1 - level) / 2
    z = NormalDist().inv_cdf(1 - alpha)
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return sds * math.sqrt(2 * alpha * (1 - alpha)) / (2 * z * phi * math.sqrt(resamples))
