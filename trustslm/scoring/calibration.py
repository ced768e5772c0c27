"""Calibration of multiple-choice probabilities.

* Choice probabilities: the softmax of the choices' log-likelihoods (the model's distribution
  restricted to the offered answers); confidence is the highest one, the prediction its argmax.
* Expected calibration error (Naeini et al. 2015; Guo et al. 2017, eq. 3) over ``M`` equal-width
  bins of confidence: ``ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|``. A confidence of exactly
  1 falls in the last bin; bin ``m`` is ``(m/M, (m+1)/M]`` as in Guo et al. (a confidence of 0
  goes in the first).
* Brier score (Brier 1950): ``sum_k (p_k - y_k)^2`` over the choices, averaged over questions
  (the multi-class form, as scikit-learn's ``brier_score_loss`` computes it for more than two
  classes, without halving).
* Selective prediction (El-Yaniv and Wiener 2010): abstain when the confidence is below a
  threshold ``t``; coverage is the share answered, selective accuracy the accuracy on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: A confidence this close to a threshold counts as on it (1 / (1 + 1/9) is 0.8999999999999999).
EDGE = 1e-9


def choice_probabilities(logprobs: Sequence[float]) -> np.ndarray:
    lp = np.asarray(logprobs, dtype=float)
    e = np.exp(lp - lp.max())
    return e / e.sum()


def confidence_bin(confidence: float, n_bins: int) -> int:
    """The bin ``(m/M, (m+1)/M]`` holding ``confidence`` (0 goes in bin 0). The product is rounded
    to 9 decimals first, so that a confidence on an edge stays there (0.7 * 10 is 7.000000000000001)."""
    return min(n_bins - 1, max(0, math.ceil(round(confidence * n_bins, 9)) - 1))


def bin_label(index: int, n_bins: int) -> str:
    return f"{index / n_bins:.2f}-{(index + 1) / n_bins:.2f}"


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: np.ndarray, n_bins: int) -> float:
    """ECE from each question's confidence, correctness (0/1) and bin index."""
    n = len(confidence)
    if n == 0:
        return float("nan")
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    return float(np.abs(acc_sum - conf_sum).sum() / n)  # |B|/n * |acc - conf| = |sum acc - sum conf| / n


def brier(probabilities: np.ndarray, label: int) -> float:
    target = np.zeros_like(probabilities)
    target[label] = 1.0
    return float(((probabilities - target) ** 2).sum())


def selective_accuracy(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> float:
    """Accuracy on the questions answered when abstaining below ``threshold`` (NaN if none)."""
    kept = confidence >= threshold - EDGE
    return float(correct[kept].mean()) if kept.any() else float("nan")


def coverage(confidence: np.ndarray, threshold: float) -> float:
    return float((confidence >= threshold - EDGE).mean()) if len(confidence) else float("nan")


def expected_calibration_error_resampled(confidence: np.ndarray, correct: np.ndarray, bins: np.ndarray,
                                         idx: np.ndarray) -> np.ndarray:
    """:func:`expected_calibration_error` on every resample at once: one value per row of the
    index matrix ``idx`` (the positions of a resample's questions)."""
    from trustslm.scoring.resample import group_sums, row_sums

    idx = np.asarray(idx)
    if idx.shape[1] == 0:
        return np.full(len(idx), np.nan)
    bins = np.asarray(bins)
    n_bins = int(bins.max()) + 1
    conf_sum = group_sums(confidence, bins, n_bins, idx)
    acc_sum = group_sums(correct, bins, n_bins, idx)
    used = bins[idx].max(axis=1) + 1  # the bins the statistic sums over on each resample
    return row_sums(np.abs(acc_sum - conf_sum), used) / idx.shape[1]


def selective_accuracy_resampled(confidence: np.ndarray, correct: np.ndarray, threshold: float,
                                 idx: np.ndarray) -> np.ndarray:
    """:func:`selective_accuracy` on every resample at once."""
    from trustslm.scoring.resample import mean_where

    return mean_where(correct, confidence >= threshold - EDGE, idx, skipna=False)


def coverage_resampled(confidence: np.ndarray, threshold: float, idx: np.ndarray) -> np.ndarray:
    """:func:`coverage` on every resample at once."""
    from trustslm.scoring.resample import count_where

    idx = np.asarray(idx)
    if idx.shape[1] == 0:
        return np.full(len(idx), np.nan)
    return count_where(confidence >= threshold - EDGE, idx) / idx.shape[1]
