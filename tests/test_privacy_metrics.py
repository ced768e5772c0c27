"""Privacy measurements checked against hand computations and reference implementations."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from trustslm.privacy.exposure import exposure
from trustslm.privacy.mia import attack_scores, auc, tpr_at_fpr
from trustslm.privacy.one_run_audit import audit, epsilon_lower_bound, p_value
from trustslm.privacy.pii import find_pii, luhn_valid, mask


def test_exposure_from_the_sampled_rank():
    # 2 of 4 candidates are at least as likely (lower log-perplexity) as the canary: Pr = 1/2 -> 1 bit
    e = exposure(2.5, [1.0, 2.0, 3.0, 4.0], space_size=10**9)
    assert e.method == "rank" and e.bits == pytest.approx(1.0)
    assert e.max_bits == pytest.approx(math.log2(10**9))
    # the canary as likely as the most likely candidate: Pr = 1/4 -> 2 bits
    assert exposure(1.0, [1.0, 2.0, 3.0, 4.0], space_size=10**9).bits == pytest.approx(2.0)


def test_exposure_extrapolates_with_a_skew_normal_when_rank_is_one():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    cands = rng.normal(50.0, 5.0, size=20_000)
    e = exposure(50.0 - 4 * 5.0, cands, space_size=10**9)  # 4 sigma below every candidate's mean
    assert e.method in ("skew-normal", "rank")
    expected = -math.log2(norm.cdf(-4))  # about 14.9 bits for a normal population
    assert e.bits == pytest.approx(expected, abs=1.0)
    far = exposure(-1e6, cands, space_size=1000)  # capped at log2 |R|
    assert far.method == "skew-normal" and far.bits == pytest.approx(math.log2(1000))


def test_auc_and_tpr_at_fpr_match_scikit_learn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(size=500) + 0.7 * labels, 1)  # rounded: many ties
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores)
    for target in (0.001, 0.01, 0.1, 0.5):
        assert tpr_at_fpr(scores, labels, target) == pytest.approx(tpr[fpr <= target].max())
    assert math.isnan(auc([1.0, 2.0], [1, 1]))


def test_attack_scores_hand_computed():
    text = "abc"
    logprobs = [-1.0, -4.0, -2.0, -3.0, -10.0]
    mu, sigma = [-2.0] * 5, [2.0] * 5
    s = attack_scores(text, logprobs, mu, sigma, k=0.4)  # k = 40% of 5 tokens -> the 2 lowest
    assert s["loss"] == pytest.approx(-4.0)
    assert s["min_k"] == pytest.approx((-10.0 - 4.0) / 2)
    assert s["min_k_pp"] == pytest.approx(((-10 + 2) / 2 + (-4 + 2) / 2) / 2)
    nll_bits = 20.0 / math.log(2)
    assert s["zlib"] == pytest.approx(-nll_bits / (8 * len(zlib.compress(b"abc"))))


@pytest.mark.parametrize("number, valid", [
    ("4111 1111 1111 1111", True), ("4111-1111-1111-1112", False), ("5500 0000 0000 0004", True),
    ("378282246310005", True), ("1234567812345678", False),
])
def test_luhn(number, valid):
    assert luhn_valid(number) is valid


def test_pii_detection_and_masking():
    text = ("Write to jane.roe@example.org or call +1 (555) 123-4567; SSN 123-45-6789, not 000-12-3456; "
            "card 4111 1111 1111 1111 but not 4111 1111 1111 1112; server 10.0.0.255, not 999.1.1.1.")
    found = {(f.kind, f.value) for f in find_pii(text)}
    assert found == {("email", "jane.roe@example.org"), ("phone", "+1 (555) 123-4567"), ("ssn", "123-45-6789"),
                     ("card", "4111 1111 1111 1111"), ("ip", "10.0.0.255")}
    masked = mask(text)
    for _, value in found:
        assert value not in masked
    assert "<EMAIL:" in masked and "<CARD:" in masked and "4111 1111 1111 1112" in masked


def test_one_run_audit_p_value_and_bound():
    from scipy.stats import binom

    # delta = 0: the p-value is the binomial tail P[Bin(r, e^eps / (1 + e^eps)) >= v]
    q = 1 / (1 + math.exp(-1.0))
    assert p_value(100, 20, 15, 1.0, 0.0) == pytest.approx(binom.sf(14, 20, q))
    # all 20 guesses right: the bound solves q^20 = 0.05, eps = log(q / (1 - q))
    q20 = 0.05 ** (1 / 20)
    assert epsilon_lower_bound(1000, 20, 20, 0.0) == pytest.approx(math.log(q20 / (1 - q20)))
    # half right is what chance gives: no evidence against any epsilon
    assert epsilon_lower_bound(1000, 20, 10, 0.0) == 0.0
    # a delta term can only weaken the bound
    assert epsilon_lower_bound(1000, 200, 180, 1e-3) <= epsilon_lower_bound(1000, 200, 180, 0.0)


def test_one_run_audit_guesses():
    scores = list(range(100))
    included = [s >= 50 for s in scores]  # perfectly separable
    res = audit(scores, included, delta=0.0, guess_fraction=0.2)
    assert (res.m, res.guesses, res.correct) == (100, 20, 20)
    assert res.epsilon_lower_bound > 1.5
    shuffled = audit(scores, [i % 2 == 0 for i in range(100)], delta=0.0)
    assert shuffled.correct == 10 and shuffled.epsilon_lower_bound == 0.0
