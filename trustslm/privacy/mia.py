"""Membership-inference attack scores and their metrics.

Every score is oriented so that higher means "more likely a member".

* ``loss``: the mean token log-likelihood (Yeom et al. 2018).
* ``zlib``: minus the ratio of the text's negative log-likelihood (in bits) to its zlib-compressed
  length in bits (Carlini et al. 2021, "Extracting Training Data from Large Language Models").
* ``min_k``: Min-K% Prob, the mean of the k% lowest token log-probabilities (Shi et al. 2023,
  "Detecting Pretraining Data from Large Language Models"), k = 20% by default.
* ``min_k_pp``: Min-K%++, the same over token scores normalised by the mean and standard deviation
  of the log-probability under the model's own distribution at that position,
  ``(log p(x_t) - mu_t) / sigma_t`` (Zhang et al. 2024, "Min-K%++").
* ``reference``: the target model's mean log-likelihood minus a reference model's (Carlini et al.
  2021; Mireshghallah et al. 2022), when a reference model is given.

``auc`` is the area under the ROC curve (the Mann-Whitney statistic, ties counted half), and
``tpr_at_fpr`` the highest true-positive rate at a false-positive rate at most the target, read
off the ROC curve as in Carlini et al. 2022 ("Membership Inference Attacks From First Principles").
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np

ATTACKS = ("loss", "zlib", "min_k", "min_k_pp")


def _lowest_mean(values: Sequence[float], k: float) -> float:
    arr = np.sort(np.asarray(values, dtype=float))
    n = max(1, int(math.ceil(len(arr) * k)))  # at least one token
    return float(arr[:n].mean())


def attack_scores(text: str, logprobs: Sequence[float], mu: Sequence[float], sigma: Sequence[float],
                  *, k: float = 0.2) -> dict[str, float]:
    if not logprobs:
        return {name: float("nan") for name in ATTACKS}
    lp = np.asarray(logprobs, dtype=float)
    nll_bits = float(-lp.sum()) / math.log(2)
    zlib_bits = 8 * len(zlib.compress(text.encode("utf-8")))
    normalised = (lp - np.asarray(mu, dtype=float)) / np.maximum(np.asarray(sigma, dtype=float), 1e-6)
    return {
        "loss": float(lp.mean()),
        "zlib": -nll_bits / zlib_bits,
        "min_k": _lowest_mean(lp, k),
        "min_k_pp": _lowest_mean(normalised, k),
    }


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tpr_at_fpr(scores: Sequence[float], labels: Sequence[int], target_fpr: float) -> float:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    tps = np.cumsum(y_sorted)
    fps = np.cumsum(~y_sorted)
    last_of_tie = np.r_[np.diff(s_sorted) != 0, True]  # thresholds only between distinct scores
    tpr = np.r_[0.0, tps[last_of_tie] / n_pos]
    fpr = np.r_[0.0, fps[last_of_tie] / n_neg]
    return float(tpr[fpr <= target_fpr + 1e-12].max())
