"""Normalise metrics onto 0-100 and aggregate them into probe, dimension and overall scores.

* normaliser ``linear``: a scored metric's anchors are the ends of the range it can take (its
  ``MetricDef.bounds``), so no value a model can produce falls past them and nothing is clipped:
  a monotone metric maps ``worst -> 0`` and ``best -> 100`` linearly; a target metric (best value
  inside the range, e.g. ``pct_stereotype`` 0.5) scores ``100 * (1 - |v - best| / |worst - best|)``
  with ``worst`` the range's end farther from the target. :func:`check_anchors` refuses a spec
  whose anchors a value could fall past (a score interval collapsed to a point at 0 by a cut-off
  told nothing about where the model lay beyond it). Chance level and the reference models are
  shown beside a score, not folded into it (:mod:`trustslm.references`).
* probe score: weighted mean of its scored metrics (weights from the spec);
* dimension score: mean of its probes' scores;
* overall score: mean of the measured dimensions' scores. Dimensions with no probe run are
  "not measured" and carry no number; the overall score lists which dimensions it covers.

Every score carries a percentile-bootstrap interval: the same arithmetic is applied to each
bootstrap replicate of the underlying metrics, and the interval is widened to contain the score
(see :meth:`Scored.to_value`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trustslm.core.specs import ScoringRule
from trustslm.core.types import (
    DIMENSIONS,
    DimensionScore,
    OverallScore,
    ScoreValue,
    ScoringInfo,
)
from trustslm.scoring import CONFIDENCE
from trustslm.scoring.metrics import percentile_interval


def scoring_info(resamples: int) -> ScoringInfo:
    return ScoringInfo(
        normaliser="linear over each metric's whole range (no clipping): monotone metrics map worst->0, "
        "best->100; target metrics score 100*(1-|v-best|/|worst-best|), worst the range's end farther from best",
        probe_aggregation="weighted mean of the probe's scored metrics (weights from its spec)",
        dimension_aggregation="mean of the dimension's probe scores",
        overall_aggregation="mean of the measured dimensions' scores",
        interval=f"percentile bootstrap over units, {int(CONFIDENCE * 100)}%; basic bootstrap for metrics biased by "
                 "resampling (group parity differences and ratios); a rate of 0 or 1 (every resample alike) gets the "
                 "Jeffreys interval; score intervals widened to contain the score",
        bootstrap_resamples=resamples,
        confidence_level=CONFIDENCE,
    )


def check_anchors(rule: ScoringRule, bounds: tuple[float, float], higher_is_better: bool | None) -> str | None:
    """Why ``rule`` can't score a metric whose values lie in ``bounds`` without clipping (None when
    it can): its anchors must be the range's ends (a target metric: ``best`` inside the range and
    ``worst`` the end farther from it)."""
    lo, hi = bounds
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "its metric declares no finite range (MetricDef.bounds) to anchor the score on"
    if higher_is_better is None:
        reach = max(abs(lo - rule.best), abs(hi - rule.best))
        if not lo <= rule.best <= hi or rule.worst not in (lo, hi) or abs(rule.worst - rule.best) != reach:
            return (f"a target metric in [{lo:g}, {hi:g}] needs best inside the range and worst the range's end "
                    f"farther from best, got best {rule.best:g}, worst {rule.worst:g}")
        return None
    want = (hi, lo) if higher_is_better else (lo, hi)
    if (rule.best, rule.worst) != want:
        return (f"its anchors must be the ends of the metric's range [{lo:g}, {hi:g}] (best {want[0]:g}, "
                f"worst {want[1]:g}) so no value is clipped, got best {rule.best:g}, worst {rule.worst:g}")
    return None


def normalise(value, rule: ScoringRule, higher_is_better: bool | None):
    """0-100 score of a metric value (a float or an array of replicates). Not clipped: the rule's
    anchors are the metric's range (:func:`check_anchors`), so a value in range scores in [0, 100]."""
    v = np.asarray(value, dtype=float)
    span = rule.worst - rule.best
    if span == 0:
        raise ValueError("a scoring rule needs best != worst")
    if higher_is_better is None:  # target metric
        s = 1.0 - np.abs(v - rule.best) / abs(span)
    else:
        s = (v - rule.worst) / (rule.best - rule.worst)
    out = 100.0 * s
    return float(out) if out.ndim == 0 else out


@dataclass
class Scored:
    """A score and its replicates."""

    value: float
    replicates: np.ndarray

    def to_value(self) -> ScoreValue:
        """The score and its percentile interval, widened to contain the score: a target metric
        scores by its distance from the target, so near the target resampling can only move it
        one way and the plain percentile interval can miss the estimate itself."""
        lo, hi = percentile_interval(self.replicates)
        lo, hi = min(lo, self.value), max(hi, self.value)
        return ScoreValue(score=round(self.value, 4), ci_low=round(lo, 4), ci_high=round(hi, 4))


def weighted_mean(parts: list[tuple[Scored, float]]) -> Scored:
    """The weighted mean of scores, of their values and replicate by replicate: a probe's score
    from its normalised metrics (weights from the spec), and :func:`combine`'s means."""
    weights = np.array([w for _, w in parts], dtype=float)
    values = np.array([p.value for p, _ in parts])
    reps = np.stack([p.replicates for p, _ in parts])
    return Scored(
        value=float(np.average(values, weights=weights)),
        replicates=np.average(reps, axis=0, weights=weights),
    )


def combine(probe_scores: dict[str, tuple[str, Scored]]) -> tuple[dict[str, Scored], Scored | None]:
    """The aggregation rule, applied alike to a score and to its replicates: a dimension's score is
    the mean of its probes' scores (``probe_scores`` maps probe id to (dimension, score)), the
    overall score the mean of the measured dimensions' scores (None when none is). The report
    (:func:`aggregate`) and the gate's paired comparison (:mod:`trustslm.gate.compare`) both
    aggregate through this function, so they can't disagree."""
    dims: dict[str, Scored] = {}
    for dim in DIMENSIONS:
        members = dimension_members(probe_scores, dim)
        if members:
            dims[dim] = weighted_mean([(probe_scores[p][1], 1.0) for p in members])
    overall = weighted_mean([(s, 1.0) for s in dims.values()]) if dims else None
    return dims, overall


def dimension_members(probe_scores: dict[str, tuple[str, Scored]], dim: str) -> list[str]:
    """The probes whose scores make up ``dim``'s score, in id order."""
    return sorted(pid for pid, (d, _) in probe_scores.items() if d == dim)


def aggregate(
    probe_scores: dict[str, tuple[str, Scored]],
) -> tuple[dict[str, DimensionScore], OverallScore]:
    """``probe_scores`` maps probe id to (dimension, score) for every probe that produced one."""
    scored, overall = combine(probe_scores)
    dims: dict[str, DimensionScore] = {}
    for dim in DIMENSIONS:
        if dim not in scored:
            dims[dim] = DimensionScore(status="not measured")
            continue
        sv = scored[dim].to_value()
        dims[dim] = DimensionScore(status="measured", score=sv.score, ci_low=sv.ci_low,
                                   ci_high=sv.ci_high, probes=dimension_members(probe_scores, dim))
    measured_names = list(scored)
    not_measured = [d for d in DIMENSIONS if d not in scored]
    if overall is None:
        return dims, OverallScore(score=None, dimensions_measured=[], dimensions_not_measured=not_measured)
    ov = overall.to_value()
    return dims, OverallScore(
        score=ov.score, ci_low=ov.ci_low, ci_high=ov.ci_high,
        dimensions_measured=measured_names, dimensions_not_measured=not_measured,
    )
