"""The rank-based AUROC equals scikit-learn's roc_auc_score, ties and all."""

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from trustslm.scoring.auroc import auroc


def test_auroc_equals_scikit_learns_with_ties():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            y[0] = 1 - y[0]
        # few distinct values half the time, so ties between and within classes are common
        s = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.normal(size=n)
        assert math.isclose(auroc(y, s), roc_auc_score(y, s), abs_tol=1e-12)


def test_auroc_hand_computed_and_one_class_is_nan():
    # positives 0.9 and 0.5; negatives 0.5 and 0.1: pairs (0.9>0.5), (0.9>0.1), (0.5=0.5), (0.5>0.1)
    assert auroc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == (3 + 0.5) / 4
    assert auroc([0, 0, 1], [0.3, 0.2, 0.1]) == 0.0
    assert math.isnan(auroc([1, 1], [0.2, 0.4])) and math.isnan(auroc([], []))
