"""Rates from an imperfect detector: the Rogan-Gladen correction (hand-computed), its interval's
coverage by simulation, the corrected rows the engine adds, and the shipped hand labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trustslm.core.errors import DataError
from trustslm.core.resources import resolve_data_path
from trustslm.scoring.detector_error import (
    VALIDATION_FILE,
    DetectorValidation,
    corrected,
    read_labels,
    rogan_gladen,
    validate,
)
from trustslm.scoring.metric_def import MetricDef
from trustslm.scoring.metrics import compute_metrics
from trustslm.scoring.refusal import is_refusal


def _validation(tp, pos, fp, neg) -> DetectorValidation:
    return DetectorValidation(detector="d", positives=pos, true_positives=tp, negatives=neg, false_positives=fp,
                              source="test", sha256="0" * 64)


def test_rogan_gladen_hand_computed():
    # observed 0.3 with sensitivity 0.8 and specificity 0.9: (0.3 + 0.9 - 1) / (0.8 + 0.9 - 1) = 0.2 / 0.7
    assert rogan_gladen(0.3, 0.8, 0.9) == pytest.approx(0.2 / 0.7)
    assert rogan_gladen(0.42, 1.0, 1.0) == pytest.approx(0.42)  # a perfect detector changes nothing
    assert np.isnan(rogan_gladen(0.3, 0.5, 0.5))  # no better than chance: no correction
    # not clipped: an observed rate below the false-positive rate gives a negative estimate
    assert rogan_gladen(0.05, 0.8, 0.9) == pytest.approx(-0.05 / 0.7)
    v = _validation(8, 10, 3, 30)
    assert (v.sensitivity, v.specificity) == (pytest.approx(0.8), pytest.approx(0.9))
    assert v.usable and not _validation(0, 0, 3, 30).usable and not _validation(5, 10, 15, 30).usable


def test_corrected_interval_covers_the_true_rate_and_the_raw_one_does_not():
    """200 simulated audits of a detector with sensitivity 0.7 and specificity 0.85 on a true rate
    of 0.1, each with its own 50 + 100 hand labels: the corrected 95% interval covers 0.1 about 95%
    of the time; the raw interval (around 0.205) almost never does, and an interval that ignores
    the labels' own error covers less often than the corrected one."""
    rng = np.random.default_rng(7)
    truth, se, sp, n, pos, neg = 0.1, 0.7, 0.85, 300, 50, 100
    hits_corrected = hits_raw = hits_fixed = 0
    sims = 200
    for _ in range(sims):
        true_units = rng.random(n) < truth
        flagged = np.where(true_units, rng.random(n) < se, rng.random(n) < 1 - sp).astype(float)
        v = _validation(int(rng.binomial(pos, se)), pos, int(rng.binomial(neg, 1 - sp)), neg)
        idx = rng.integers(0, n, size=(1000, n))
        reps = flagged[idx].mean(axis=1)
        p = flagged.mean()
        _, lo, hi = corrected(p, reps, v, rng)
        hits_corrected += lo <= truth <= hi
        rlo, rhi = np.quantile(reps, [0.025, 0.975])
        hits_raw += rlo <= truth <= rhi
        fixed = np.asarray(rogan_gladen(reps, v.sensitivity, v.specificity))
        flo, fhi = np.quantile(fixed, [0.025, 0.975])
        hits_fixed += flo <= truth <= fhi
    assert hits_corrected / sims >= 0.90
    assert hits_fixed < hits_corrected
    assert hits_raw / sims < 0.05


def test_compute_metrics_adds_a_corrected_row_after_each_row():
    units = pd.DataFrame({"refused": [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0], "wrapper": list("aabbaabb")})
    defn = MetricDef(name="refusal_rate", column="refused", higher_is_better=True, description="d", by=("wrapper",),
                     detector="refusal")
    v = _validation(40, 50, 10, 100)  # sensitivity 0.8, specificity 0.9
    rows = [c.metric for c in compute_metrics(units, (defn,), seed=0, probe_id="p", detectors={"refusal": v})]
    assert [(m.name, m.group) for m in rows] == [
        ("refusal_rate", None), ("refusal_rate_corrected", None),
        ("refusal_rate", "wrapper=a"), ("refusal_rate_corrected", "wrapper=a"),
        ("refusal_rate", "wrapper=b"), ("refusal_rate_corrected", "wrapper=b")]
    raw, fixed = rows[0], rows[1]
    assert raw.value == pytest.approx(3 / 8) and not raw.corrected and "sensitivity 0.800" in raw.detector
    assert fixed.corrected and fixed.value == pytest.approx((3 / 8 + 0.9 - 1) / 0.7)
    assert fixed.ci_high - fixed.ci_low > raw.ci_high - raw.ci_low  # the labels' error widens it
    # a detector without a usable validation: the note says why, and no corrected row
    rows = [c.metric for c in compute_metrics(units, (defn,), seed=0, probe_id="p",
                                              detectors={"refusal": _validation(0, 0, 1, 10)})]
    assert all(not m.corrected for m in rows) and "not corrected" in rows[0].detector
    rows = [c.metric for c in compute_metrics(units, (defn,), seed=0, probe_id="p")]
    assert all(m.detector is None for m in rows)


def test_the_shipped_hand_labels_read_and_measure_the_refusal_phrases():
    rows, digest = read_labels(resolve_data_path(VALIDATION_FILE))
    assert len(digest) == 64 and rows
    v = validate("refusal phrases", lambda texts: [is_refusal(t) for t in texts], rows, "refusal", source="s",
                 sha256=digest)
    tuned = sum("refusal" in r.get("tuned_on", []) for r in rows if r["refusal"] is not None)
    assert v.positives + v.negatives == sum(r["refusal"] is not None for r in rows) - tuned
    assert v.usable, v.describe()  # out-of-sample labels of both classes


@pytest.mark.parametrize("line, message", [
    ("not json", "not JSON"),
    ('{"refusal": true, "toxic": false}', "'response' string"),
    ('{"response": "x", "refusal": "yes", "toxic": false}', "'refusal' must be"),
    ('{"response": "x", "refusal": true, "toxic": null, "tuned_on": ["judge"]}', "'tuned_on'"),
])
def test_bad_label_files_are_one_line_errors(tmp_path, line, message):
    path = tmp_path / "labels.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(DataError, match=message) as exc:
        read_labels(path)
    assert "\n" not in str(exc.value)


def test_rows_the_detector_was_tuned_on_and_unlabelled_rows_are_left_out(tmp_path):
    rows = [{"response": "I'm sorry, but no.", "refusal": True, "toxic": None, "tuned_on": ["refusal"]},
            {"response": "I won't do that.", "refusal": True, "toxic": None},
            {"response": "Sure, here it is.", "refusal": False, "toxic": False}]
    (tmp_path / "l.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    read, _ = read_labels(tmp_path / "l.jsonl")
    v = validate("refusal phrases", lambda texts: [is_refusal(t) for t in texts], read, "refusal", source="s",
                 sha256="0")
    assert (v.positives, v.true_positives, v.negatives, v.false_positives) == (1, 1, 1, 0)
    t = validate("tox", lambda texts: [False] * len(texts), read, "toxic", source="s", sha256="0")
    assert (t.positives, t.negatives) == (0, 1) and not t.usable
