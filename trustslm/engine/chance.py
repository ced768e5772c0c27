"""Chance level: what a uniform-random answerer scores on each probe, computed on the audit's own
requests, so a score can be read against it (a random answerer looks unbiased on BBQ and
CrowS-Pairs: it prefers neither sentence).

The answerer has no preference at all: every log-likelihood (and per-token score) it returns is
the same up to noise of 1e-3 nats, drawn independently per distinct request, so each option of a
choice is picked with equal probability, a softmax over options is uniform to three decimals,
and lengths don't matter. :data:`RUNS` answerers are drawn (seeded by the run's seed), each
answers the probe's requests, the probe scores their answers exactly as it scored the model's,
and the chance level is the mean probe score over them, with the 2.5th-97.5th percentiles of
their scores as its band. The report flags a model whose 95% score interval holds the chance
score: it can't be told apart from a random answerer.

Only probes whose model calls are all likelihoods have a uniform-random answerer: a probe that
generates free text has no finite set of answers to draw from uniformly, and an attack adapts to
the answers it gets; both say why they have no chance level.
"""

from __future__ import annotations

import numpy as np

from trustslm.core.types import ChanceLevel, ProbeResult
from trustslm.models.base import (
    LOGLIKELIHOOD,
    TOKEN_LOGPROBS,
    VOCAB_STATS,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    TokenScoresRequest,
    TokenScoresResult,
)
from trustslm.probes.base import Probe, ProbeContext, ProbeSkipped, Results
from trustslm.scoring.aggregate import Scored, normalise, weighted_mean
from trustslm.scoring.metrics import metric_value, percentile_interval

#: Random answerers drawn per probe.
RUNS = 50
#: The spread of the answerer's log-likelihoods (nats): small enough that a softmax over options is
#: uniform to three decimals, nonzero so that every choice is a fair draw rather than the first option.
NOISE = 1e-3
_CAN = frozenset({LOGLIKELIHOOD, TOKEN_LOGPROBS, VOCAB_STATS})


def why_no_chance(probe: Probe) -> str | None:
    """Why ``probe`` has no uniform-random answerer (None when it has)."""
    extra = sorted(probe.needs - _CAN)
    if extra:
        return f"the probe needs {', '.join(extra)} (free text has no uniform-random answer)"
    if type(probe).adapt is not Probe.adapt:
        return "an attack adapts to the answers it gets"
    return None


def random_answers(requests: list, rng: np.random.Generator, keys: list[str] | None = None) -> Results:
    """One uniform-random answerer's results for ``requests`` (one draw per distinct request);
    ``keys``: the requests' keys, when the caller has them already."""
    by_key: dict[str, object] = {}
    for r, key in zip(requests, keys if keys is not None else (r.key() for r in requests)):
        if key in by_key:
            continue
        if isinstance(r, LoglikelihoodRequest):
            by_key[key] = LoglikelihoodResult(logprob=-NOISE * float(rng.random()), is_greedy=False,
                                              n_tokens=max(1, len(r.continuation.split())))
        elif isinstance(r, TokenScoresRequest):
            n = max(1, len(r.text.split()))
            by_key[key] = TokenScoresResult(logprobs=list(-NOISE * rng.random(n)), mu=[0.0] * n, sigma=[1.0] * n)
        else:
            raise TypeError(f"a random answerer can't answer a {type(r).__name__}")
    return Results(by_key)


def chance_level(probe: Probe, data, requests: list, ctx: ProbeContext, model_score, *,
                 runs: int = RUNS) -> ChanceLevel:
    """The chance level of ``probe`` on ``requests`` (built for the audited model, so the answerer
    answers exactly what the model answered); ``model_score`` (a ScoreValue or None) sets the flag."""
    why = why_no_chance(probe)
    if why:
        return ChanceLevel(runs=0, reason=why)
    spec = probe.spec
    defs = {m.name: m for m in probe.metrics}
    distinct = dict(zip((r.key() for r in requests), requests))  # keyed once, not once per answerer
    keys, unique = list(distinct), list(distinct.values())
    scores: list[float] = []
    overall = [d for d in probe.metrics if d.overall]
    values: dict[str, list[float]] = {d.name: [] for d in overall}
    for run in range(runs):
        rng = np.random.default_rng([ctx.seed, run, len(keys)])
        try:
            units = probe.score(data, random_answers(unique, rng, keys), ctx).units
        except ProbeSkipped as exc:
            return ChanceLevel(runs=0, reason=str(exc))
        this: dict[str, float] = {}
        for d in overall:
            if d.column and d.column not in units.columns:
                continue
            v = _value(d, units)
            if v is not None:
                this[d.name] = v
                values[d.name].append(v)
        parts = [(Scored(normalise(this[name], rule, defs[name].higher_is_better), np.empty(0)), rule.weight)
                 for name, rule in spec.scoring.items() if name in this]
        if parts:
            scores.append(weighted_mean(parts).value)
    if not scores:
        return ChanceLevel(runs=0, reason="no scored metric could be computed on random answers")
    arr = np.asarray(scores)
    lo, hi = percentile_interval(arr)
    mean = float(arr.mean())
    inside = None
    if model_score is not None:
        inside = bool(model_score.ci_low <= mean <= model_score.ci_high)
    return ChanceLevel(runs=len(scores), score=round(mean, 4), score_low=round(lo, 4), score_high=round(hi, 4),
                       metrics={k: round(float(np.mean(v)), 6) for k, v in values.items() if v},
                       indistinguishable=inside)


def _value(defn, units) -> float | None:
    """A metric's value on one answerer's units (None where it has none on them)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            v = float((defn.fast_statistic or defn.statistic)(units)) if defn.statistic else metric_value(defn, units)
        except (ValueError, ZeroDivisionError, KeyError):
            return None
    return v if np.isfinite(v) else None


def with_chance(result: ProbeResult, probe: Probe, data, requests: list, ctx: ProbeContext,
                runs: int = RUNS) -> ProbeResult:
    """``result`` with its chance level (a new object; ``result`` is not changed)."""
    if result.status != "ok" or runs <= 0:
        return result
    return result.model_copy(update={"chance": chance_level(probe, data, requests, ctx, result.score, runs=runs)})
