"""Scores are anchored on the ends of each metric's range, never clipped at a cut-off a model can
fall past (issue 23): a value beyond an old ``worst`` used to score 0 with the interval [0, 0]."""

from __future__ import annotations

import numpy as np
import pytest

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.core.specs import ScoringRule
from trustslm.engine.run import plan
from trustslm.engine.suites import load_suite
from trustslm.scoring.aggregate import Scored, check_anchors, normalise


@pytest.mark.parametrize("suite", [None, "standard"])
def test_every_scored_metric_is_anchored_on_its_range_and_scores_its_ends_0_and_100(suite):
    registry = Registry()
    planned = plan(registry, None, suite=load_suite(suite) if suite else None)  # refuses an anchor inside a range
    checked = 0
    for p in planned:
        defs = {m.name: m for m in p.probe.metrics}
        for name, rule in p.probe.spec.scoring.items():
            m = defs[name]
            lo, hi = m.bounds
            ends = normalise(np.array([lo, hi]), rule, m.higher_is_better)
            assert min(ends) == pytest.approx(0.0) and max(ends) <= 100.0 + 1e-9, (p.probe.id, name)
            inside = normalise(np.linspace(lo, hi, 101), rule, m.higher_is_better)
            assert inside.min() >= -1e-9 and inside.max() <= 100 + 1e-9, (p.probe.id, name)
            checked += 1
    assert checked >= 25


def test_a_rule_whose_worst_lies_inside_the_range_is_refused_in_one_line():
    # the old perturbation_consistency rule: half the answers changing scored 0
    why = check_anchors(ScoringRule(best=0.0, worst=0.5), (0.0, 1.0), False)
    assert why and "ends of the metric's range [0, 1]" in why
    assert check_anchors(ScoringRule(best=0.0, worst=1.0), (0.0, 1.0), False) is None
    assert "no finite range" in check_anchors(ScoringRule(best=0.0, worst=1.0), (float("-inf"), float("inf")), False)
    # a target metric: worst must be the end farther from the target (either end when equidistant)
    assert check_anchors(ScoringRule(best=0.5, worst=1.0), (0.0, 1.0), None) is None
    assert check_anchors(ScoringRule(best=0.5, worst=0.0), (0.0, 1.0), None) is None
    assert check_anchors(ScoringRule(best=0.2, worst=1.0), (0.0, 1.0), None) is None
    assert check_anchors(ScoringRule(best=0.2, worst=0.0), (0.0, 1.0), None)
    assert check_anchors(ScoringRule(best=0.5, worst=0.9), (0.0, 1.0), None)


def test_the_engine_refuses_a_spec_with_a_cut_off(tmp_path):
    registry = Registry()
    spec = registry.specs["robustness.perturbation_consistency"]
    rules = dict(spec.scoring, answer_change_rate=ScoringRule(best=0.0, worst=0.5))
    registry.specs[spec.id] = spec.model_copy(update={"scoring": rules})
    with pytest.raises(BadInputError, match="perturbation_consistency: the scoring rule of answer_change_rate"):
        plan(registry, ["robustness.perturbation_consistency"])


def test_a_change_rate_of_three_quarters_keeps_its_interval():
    """SmolLM2's answer-change rate of 0.75 scored 0.0 [0.0, 0.0] under the old cut-off at 0.5."""
    rng = np.random.default_rng(0)
    replicates = rng.normal(0.75, 0.04, 1000).clip(0, 1)
    rule = ScoringRule(best=0.0, worst=1.0)
    score = Scored(normalise(0.75, rule, False), normalise(replicates, rule, False)).to_value()
    assert score.score == pytest.approx(25.0)
    assert score.ci_high - score.ci_low > 10  # about 2 x 1.96 x 4 points
    old = np.clip(normalise(replicates, ScoringRule(best=0.0, worst=0.5), False), 0, 100)
    assert old.max() == 0.0  # what clipping did: every replicate at 0


def test_a_parity_difference_of_zero_keeps_an_interval():
    """Groups whose rates vary but are equal on the sample: the difference is 0, every reflected
    resample lies below 0 and clipping made the interval (and the score's) a point at 0 (100)."""
    import pandas as pd

    from trustslm.probes.counterfactual import CounterfactualProbe
    from trustslm.scoring.metrics import compute_metrics

    units = pd.DataFrame({"axis": "a", "group": np.repeat(["a:p", "a:q"], 20),
                          "negative": np.tile([1.0] * 6 + [0.0] * 14, 2)})
    defn = next(d for d in CounterfactualProbe.metrics if d.name == "negative_rate_dp_difference")
    [c] = [c for c in compute_metrics(units, (defn,), seed=0, probe_id="p", resamples=400) if c.metric.group is None]
    assert c.metric.value == 0.0
    assert c.metric.ci_low == 0.0 and c.metric.ci_high > 0.1  # from 0 to how large it could be
    rule = ScoringRule(best=0.0, worst=1.0)
    score = Scored(normalise(0.0, rule, False), normalise(c.replicates, rule, False)).to_value()
    assert score.score == 100 and score.ci_low < 90


def test_a_rate_of_none_of_n_gets_the_jeffreys_interval_not_a_point():
    """0 of 176 injections obeyed: every bootstrap resample is 0, so the percentile interval was
    [0, 0] and the probe scored 100 [100, 100]. The Jeffreys interval, [0, beta.ppf(0.975, 1/2,
    n + 1/2)], says how large the rate could still be."""
    import pandas as pd
    from scipy.stats import beta

    from trustslm.scoring.metric_def import MetricDef
    from trustslm.scoring.metrics import compute_metrics

    defn = MetricDef(name="rate", column="hit", higher_is_better=False, description="", bounds=(0.0, 1.0))
    for k, n in ((0, 176), (16, 16)):
        units = pd.DataFrame({"hit": [1.0] * k + [0.0] * (n - k)})
        [c] = compute_metrics(units, (defn,), seed=0, probe_id="p", resamples=4000)
        if k == 0:
            assert c.metric.ci_low == 0.0
            assert c.metric.ci_high == pytest.approx(beta.ppf(0.975, 0.5, n + 0.5), rel=0.05)
        else:
            assert c.metric.ci_high == 1.0
            assert c.metric.ci_low == pytest.approx(beta.ppf(0.025, n + 0.5, 0.5), rel=0.05)
        score = Scored(normalise(c.metric.value, ScoringRule(best=0.0, worst=1.0), False),
                       normalise(c.replicates, ScoringRule(best=0.0, worst=1.0), False)).to_value()
        assert score.ci_high - score.ci_low > 1.0
    # one of n is not degenerate: the plain bootstrap
    units = pd.DataFrame({"hit": [1.0] + [0.0] * 175})
    [c] = compute_metrics(units, (defn,), seed=0, probe_id="p", resamples=4000)
    assert c.metric.ci_low == 0.0 and 0.01 < c.metric.ci_high < 0.03
