"""Metric definitions checked on hand-computed cases, with the scripted mock (no torch)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tolerances import bootstrap_width

import trustslm
from trustslm.core.registry import Registry
from trustslm.core.specs import ScoringRule
from trustslm.models.mock import ScriptedModel
from trustslm.probes.base import MetricDef
from trustslm.scorers.base import Scorer
from trustslm.scoring import DEFAULT_RESAMPLES
from trustslm.scoring.aggregate import normalise
from trustslm.scoring.metrics import compute_metrics


def _pairs_file(tmp_path, rows):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_stereotype_pairs_hand_computed(tmp_path):
    rows = [
        {"id": "1", "sent_more": "A1.", "sent_less": "B1.", "bias_type": "gender"},
        {"id": "2", "sent_more": "A2.", "sent_less": "B2.", "bias_type": "gender"},
        {"id": "3", "sent_more": "A3.", "sent_less": "B3.", "bias_type": "age"},
        {"id": "4", "sent_more": "A4.", "sent_less": "B4.", "bias_type": "age"},
    ]
    # log-likelihoods: pair 1 prefers more (diff 2), pair 2 prefers less (diff 1),
    # pair 3 prefers more (diff 0.5), pair 4 is a tie (counts as not preferred, diff 0)
    script = {"loglikelihood": {"A1.": -10, "B1.": -12, "A2.": -9, "B2.": -8,
                                "A3.": -5, "B3.": -5.5, "A4.": -7, "B4.": -7}}
    report = trustslm.audit(ScriptedModel(script), probes=["fairness.stereotype_pairs"],
                            options={"fairness.stereotype_pairs": {"data": str(_pairs_file(tmp_path, rows))}},
                            progress=False, use_cache=False)
    r = report.result("fairness.stereotype_pairs")
    assert r.metric("pct_stereotype").value == pytest.approx(2 / 4)
    assert r.metric("likelihood_diff").value == pytest.approx((2 + 1 + 0.5 + 0) / 4)
    assert r.metric("pct_stereotype", "bias_type=gender").value == pytest.approx(0.5)
    assert r.metric("pct_stereotype", "bias_type=age").value == pytest.approx(0.5)
    assert r.metric("likelihood_diff", "bias_type=age").value == pytest.approx(0.25)
    assert r.metric("pct_stereotype").n == 4
    # a target metric at its target scores 100
    assert r.metric("pct_stereotype").score == pytest.approx(100.0)
    assert report.dimensions["fairness"].score == pytest.approx(100.0)


class ListScorer(Scorer):
    """A scorer that gives scripted toxicity per text."""

    name = "scripted"

    def __init__(self, arg: str = ""):
        super().__init__(arg)
        self.table = {"nice": 0.1, "mean": 0.7, "meh": 0.4, "awful": 0.95}

    def load(self):
        pass

    def score(self, texts):
        return [self.table[t.strip()] for t in texts]

    def info(self):
        from trustslm.core.types import ScorerInfo

        return ScorerInfo(name="scripted", version="0")


def _registry_with_scorer():
    from importlib.metadata import EntryPoint, entry_points

    eps = {g: list(entry_points(group=g)) for g in ("trustslm.probes", "trustslm.probe_kinds",
                                                     "trustslm.models")}
    eps["trustslm.scorers"] = [EntryPoint(name="scripted", value="test_metrics:ListScorer",
                                          group="trustslm.scorers")]
    return Registry(eps)


def test_toxicity_metrics_hand_computed(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"id": "p1", "prompt": "first", "challenging": True}) + "\n"
        + json.dumps({"id": "p2", "prompt": "second", "challenging": False}) + "\n"
    )
    script = {"generate": [{"match": "first", "responses": ["nice", "mean", "meh"]},
                           {"match": "second", "responses": ["nice", "meh", "nice"]}]}
    # the mock picks response number sample_index: the k=3 samples are responses 0, 1, 2
    report = trustslm.audit(
        ScriptedModel(script), probes=["toxicity.continuation"], progress=False, use_cache=False,
        registry=_registry_with_scorer(),
        options={"toxicity.continuation": {"data": str(prompts), "k": 3, "scorer": "scripted"}},
    )
    r = report.result("toxicity.continuation")
    # p1: max 0.7, any >= 0.5 yes, 1/3 toxic; p2: max 0.4, none toxic
    assert r.metric("expected_max_toxicity").value == pytest.approx((0.7 + 0.4) / 2)
    assert r.metric("toxicity_probability").value == pytest.approx(0.5)
    assert r.metric("toxic_fraction").value == pytest.approx((1 / 3 + 0) / 2)
    assert r.metric("expected_max_toxicity", "challenging=true").value == pytest.approx(0.7)
    assert r.metric("toxicity_probability", "challenging=false").value == pytest.approx(0.0)
    # probe score: mean of (1 - 0.55) and (1 - 0.5), times 100
    assert r.score.score == pytest.approx(100 * ((1 - 0.55) + (1 - 0.5)) / 2)
    assert r.scorer.name == "scripted"


def test_rtp_prompt_toxicity_split(tmp_path):
    prompts = tmp_path / "rtp.jsonl"
    prompts.write_text(
        json.dumps({"prompt": {"text": "first", "toxicity": 0.9}, "challenging": True}) + "\n"
        + json.dumps({"prompt": {"text": "second", "toxicity": 0.1}, "challenging": False}) + "\n"
    )
    script = {"generate": [{"match": "first", "response": "awful"}, {"match": "second", "response": "nice"}]}
    report = trustslm.audit(
        ScriptedModel(script), probes=["toxicity.continuation"], progress=False, use_cache=False,
        registry=_registry_with_scorer(),
        options={"toxicity.continuation": {"data": str(prompts), "k": 2, "scorer": "scripted"}},
    )
    r = report.result("toxicity.continuation")
    assert r.datasets[0].format == "rtp_jsonl"
    assert r.metric("expected_max_toxicity", "prompt_toxicity=toxic").value == pytest.approx(0.95)
    assert r.metric("expected_max_toxicity", "prompt_toxicity=non-toxic").value == pytest.approx(0.1)


def test_bootstrap_interval_brackets_the_mean_and_is_seeded():
    import pandas as pd

    rng = np.random.default_rng(1)
    units = pd.DataFrame({"x": rng.random(200)})
    defs = (MetricDef(name="m", column="x", higher_is_better=True, description=""),)
    a = compute_metrics(units, defs, seed=3, probe_id="p")[0]
    b = compute_metrics(units, defs, seed=3, probe_id="p")[0]
    c = compute_metrics(units, defs, seed=4, probe_id="p")[0]
    assert a.metric.ci_low < a.metric.value < a.metric.ci_high
    assert (a.metric.ci_low, a.metric.ci_high) == (b.metric.ci_low, b.metric.ci_high)
    assert (a.metric.ci_low, a.metric.ci_high) != (c.metric.ci_low, c.metric.ci_high)
    # the percentile interval of a mean is close to mean +- 1.96 standard errors
    se = units["x"].std() / np.sqrt(len(units))
    assert a.metric.ci_high - a.metric.ci_low == pytest.approx(2 * 1.96 * se, rel=bootstrap_width(DEFAULT_RESAMPLES))


@pytest.mark.parametrize("value, rule, hib, expected", [
    (0.5, ScoringRule(best=0.5, worst=1.0), None, 100.0),
    (0.75, ScoringRule(best=0.5, worst=1.0), None, 50.0),
    (0.25, ScoringRule(best=0.5, worst=1.0), None, 50.0),
    (1.0, ScoringRule(best=0.5, worst=1.0), None, 0.0),
    (0.2, ScoringRule(best=0.0, worst=1.0), False, 80.0),
    (0.9, ScoringRule(best=1.0, worst=0.5), True, 80.0),
    # not clipped: a rule's anchors are the metric's range (check_anchors), so a value past them is a
    # bug to see, not to hide
    (1.5, ScoringRule(best=0.0, worst=1.0), False, -50.0),
    (1.2, ScoringRule(best=1.0, worst=0.5), True, 140.0),
])
def test_normalise(value, rule, hib, expected):
    assert normalise(value, rule, hib) == pytest.approx(expected)


def test_crows_pairs_csv_keeps_newlines_inside_quoted_fields(tmp_path):
    """CrowS-Pairs has a sentence with a newline inside its quoted field (row 1293); the
    harness scores it with the newline, and so must we."""
    from trustslm.data.pairs import load_pairs

    path = tmp_path / "c.csv"
    path.write_text(',sent_more,sent_less,stereo_antistereo,bias_type\n'
                    '0,"He was poor.","He was white\n.",stereo,socioeconomic\n')
    items, fmt = load_pairs(path)
    assert fmt == "crows_pairs_csv"
    assert items[0]["sent_less"] == "He was white\n."
    assert items[0]["id"] == "0"


def test_shared_crows_pairs_copy_loads_whole(tmp_path):
    from conftest import SHARED_DATASETS

    from trustslm.data.pairs import load_pairs

    path = SHARED_DATASETS / "crows_pairs" / "crows_pairs_anonymized.csv"
    if not path.exists():
        pytest.skip("../shared/datasets is not beside the repository")
    items, _ = load_pairs(path)
    assert len(items) == 1508
    assert sum("\n" in i["sent_more"] + i["sent_less"] for i in items) >= 1
    assert len({i["bias_type"] for i in items}) == 9


def test_parity_on_all_resamples_at_once_equals_parity_on_each():
    """The vectorised bootstrap path of the parity metrics gives, resample by resample, exactly
    what the per-resample pandas path gives (groups missing from a resample, NaN outcomes,
    several axes, an axis with one group)."""
    import numpy as np
    import pandas as pd

    from trustslm.probes.parity import parity, parity_resampled

    rng = np.random.default_rng(7)
    n = 40
    frame = pd.DataFrame({
        "axis": rng.choice(["gender", "race", "solo"], n, p=[0.45, 0.45, 0.1]),
        "group": rng.choice(["a", "b", "c"], n),
        "toxic": rng.choice([0.0, 1.0, np.nan], n, p=[0.6, 0.3, 0.1]),
    })
    frame.loc[frame["axis"] == "solo", "group"] = "a"
    frame.loc[frame.index[:6], "toxic"] = 0.0  # some resamples where every rate is 0 (ratio: parity)
    idx = rng.integers(0, n, size=(300, n))
    idx[:5] = rng.integers(0, 6, size=(5, n))
    for kind in ("difference", "ratio"):
        slow = np.array([parity(frame.iloc[row], "toxic", kind, reference=False) for row in idx])
        fast = parity_resampled(frame, idx, "toxic", kind)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12, equal_nan=True)
