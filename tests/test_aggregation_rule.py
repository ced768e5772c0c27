"""One aggregation rule: the gate recomputes a report's probe, dimension and overall scores through
the functions the engine scored the report with (trustslm.scoring.aggregate), and refuses to compare
a score that does not follow from what it is made of."""

from __future__ import annotations

import pytest

import trustslm
from trustslm.core.registry import Registry
from trustslm.core.types import DIMENSIONS, TrustReport
from trustslm.gate.compare import SCORE_TOLERANCE, compare, recomputed_scores

#: Four dimensions, fairness with two probes (its score is a mean), all quick on the mock model.
PROBES = ["fairness.stereotype_pairs", "fairness.winobias", "privacy.pii_leakage", "toxicity.continuation",
          "truthfulness.truthfulqa_mc"]
RESAMPLES = 100


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> TrustReport:
    return trustslm.audit("mock", probes=PROBES, limit=5, options={"toxicity.continuation": {"k": 1}},
                          bootstrap_resamples=RESAMPLES, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def _own_scores(report: TrustReport) -> dict[str, float]:
    own = {r.probe_id: r.score.score for r in report.results if r.score is not None}
    own.update({d: v.score for d, v in report.dimensions.items() if v.score is not None})
    own["overall"] = report.overall.score
    return own


def test_the_gate_recomputes_every_score_of_a_report_as_the_report_has_it(report):
    own = _own_scores(report)
    assert set(report.dimensions["fairness"].probes) == {"fairness.stereotype_pairs", "fairness.winobias"}
    assert len([d for d in DIMENSIONS if report.dimensions[d].score is not None]) == 4
    recomputed = recomputed_scores(report, registry=Registry())
    assert set(recomputed) == set(own)
    for target, value in own.items():
        assert recomputed[target] == pytest.approx(value, abs=SCORE_TOLERANCE), target
    # and compared with itself, every score is paired (none refused as not following from its parts)
    diff = compare(report, report, resamples=RESAMPLES, targets={"overall"})
    scores = [c for c in diff.changes if c.level != "metric"]
    assert {c.target for c in scores} == set(own)
    assert all(c.verdict == "no significant change" and c.ci_low == 0.0 for c in scores), scores


def _with_dimension_score(report: TrustReport, dim: str, score: float) -> TrustReport:
    dims = dict(report.dimensions)
    dims[dim] = dims[dim].model_copy(update={"score": score})
    edited = report.model_copy(update={"dimensions": dims})
    assert edited.units.keys() == report.units.keys()  # the unit tables travel with the copy
    return edited


def test_a_dimension_score_that_does_not_follow_the_rule_is_not_compared(report):
    """A report whose fairness score is not the mean of its probes' scores (edited here, as a report
    made under another aggregation rule would be): the gate says so instead of comparing it."""
    fairness = report.dimensions["fairness"].score
    edited = _with_dimension_score(report, "fairness", fairness + 5.0)
    assert recomputed_scores(edited)["fairness"] == pytest.approx(fairness, abs=SCORE_TOLERANCE)
    diff = compare(report, edited, resamples=RESAMPLES, targets={"overall"})
    row = diff.find("fairness")
    assert row.verdict == "not compared"
    assert "new report's fairness score does not follow from its probe scores" in row.reason
    assert diff.find("overall").verdict == "not compared"  # made of fairness
    assert diff.find("toxicity").verdict == "no significant change"
    assert diff.find("fairness.winobias").verdict == "no significant change"  # its probes still are


def test_an_overall_score_that_does_not_follow_the_rule_is_not_compared(report):
    edited = report.model_copy(update={"overall": report.overall.model_copy(
        update={"score": report.overall.score - 3.0})})
    row = compare(edited, report, resamples=RESAMPLES, targets={"overall"}).find("overall")
    assert row.verdict == "not compared"
    assert "old report's overall score does not follow from its dimension scores" in row.reason
