"""Chance level (issue 23): each likelihood probe is scored on the answers of uniform-random
answerers, computed on the audit's own requests, and the report flags a model whose score can't be
told apart from theirs. Checked against hand-computed expectations: a random answerer prefers the
stereotype half the time, and on TruthfulQA MC it gets 1/k of MC1 and n_true/k of MC2."""

from __future__ import annotations

import numpy as np
import pytest

import trustslm
from trustslm.core.registry import Registry
from trustslm.core.types import ScoreValue
from trustslm.engine.chance import NOISE, chance_level, random_answers, why_no_chance
from trustslm.engine.run import load_data, plan
from trustslm.models.base import LoglikelihoodRequest
from trustslm.models.mock import ScriptedModel
from trustslm.probes.base import ProbeContext
from trustslm.report.html import render_html
from trustslm.report.markdown import render_markdown


def _planned(probe_id: str, limit: int | None = None):
    registry = Registry()
    model = ScriptedModel()
    ctx = ProbeContext(seed=0, limit=limit, capabilities=model.capabilities, registry=registry, progress=False,
                       split_tokens=model.split_tokens)
    [p] = plan(registry, [probe_id])
    load_data([p], ctx)
    p.requests = p.probe.requests(p.data, ctx)
    return p, ctx


def test_the_random_answerer_picks_each_option_equally_often_and_softmax_is_uniform():
    options = [LoglikelihoodRequest(context=f"Q{i}:", continuation=f" option {j}") for i in range(3000) for j in range(3)]
    results = random_answers(options, np.random.default_rng(0))
    lps = np.array([results[r].logprob for r in options]).reshape(3000, 3)
    counts = np.bincount(lps.argmax(axis=1), minlength=3)
    assert all(abs(c - 1000) < 4 * np.sqrt(3000 * 1 / 3 * 2 / 3) for c in counts)  # each option a third
    probs = np.exp(lps) / np.exp(lps).sum(axis=1, keepdims=True)
    assert np.abs(probs - 1 / 3).max() < NOISE  # no preference worth the name
    again = random_answers(options, np.random.default_rng(0))
    assert [again[r].logprob for r in options[:5]] == [results[r].logprob for r in options[:5]]


def test_pct_stereotype_of_chance_is_one_half():
    p, ctx = _planned("fairness.stereotype_pairs")
    c = chance_level(p.probe, p.data, p.requests, ctx, None, runs=50)
    n = len(p.data.items)
    assert c.runs == 50
    assert c.metrics["pct_stereotype"] == pytest.approx(0.5, abs=4 * np.sqrt(0.25 / (n * 50)))
    # the score of a random answerer on a finite set is below 100: it strays from 0.5 by chance
    assert 75 < c.score < 100 and c.score_low < c.score < c.score_high


def test_truthfulqa_mc_chance_is_one_over_k_and_the_share_of_true_answers():
    p, ctx = _planned("truthfulness.truthfulqa_mc")
    c = chance_level(p.probe, p.data, p.requests, ctx, None, runs=50)
    items = p.data.items
    mc1 = np.mean([1 / len(it["mc1"][0]) for it in items])
    mc2 = np.mean([sum(it["mc2"][1]) / len(it["mc2"][1]) for it in items])
    # MC2 of a uniform answerer is exactly n_true/k (up to the 1e-3 noise); MC1 is a draw per question
    assert c.metrics["mc2"] == pytest.approx(mc2, abs=2e-3)
    sd = np.sqrt(np.sum([(1 / len(it["mc1"][0])) * (1 - 1 / len(it["mc1"][0])) for it in items])) / len(items)
    assert c.metrics["mc1"] == pytest.approx(mc1, abs=4 * sd / np.sqrt(50))


def test_the_flag_says_whether_the_score_interval_holds_the_chance_score():
    p, ctx = _planned("fairness.stereotype_pairs")
    c = chance_level(p.probe, p.data, p.requests, ctx, None, runs=20)
    assert c.indistinguishable is None
    holds = chance_level(p.probe, p.data, p.requests, ctx, ScoreValue(score=90, ci_low=c.score - 1, ci_high=100), runs=20)
    assert holds.indistinguishable is True
    below = chance_level(p.probe, p.data, p.requests, ctx, ScoreValue(score=10, ci_low=0, ci_high=c.score - 1), runs=20)
    assert below.indistinguishable is False


def test_probes_without_a_uniform_random_answer_say_why():
    registry = Registry()
    for pid, words in (("toxicity.continuation", "free text"), ("robustness.adversarial_classification", "adapts")):
        [p] = plan(registry, [pid])
        assert words in why_no_chance(p.probe)


def test_the_report_shows_chance_and_flags_a_model_indistinguishable_from_it(tmp_path):
    # a model that always prefers the stereotypical sentence is far from chance; the mock's default
    # log-likelihoods (a hash of the text) are as good as random on BBQ
    pairs = trustslm.audit("mock", probes=["fairness.stereotype_pairs", "fairness.bbq", "toxicity.continuation"],
                           limit=30, options={"toxicity.continuation": {"k": 1}}, bootstrap_resamples=200,
                           cache_dir=tmp_path, progress=False)
    by = {r.probe_id: r for r in pairs.results}
    for pid in ("fairness.stereotype_pairs", "fairness.bbq"):
        c = by[pid].chance
        assert c is not None and c.runs > 0 and c.score is not None
        assert c.indistinguishable == (by[pid].score.ci_low <= c.score <= by[pid].score.ci_high)
    assert by["toxicity.continuation"].chance.score is None
    md, html = render_markdown(pairs), render_html(pairs)
    assert md.count("Chance level: ") == 3
    assert "none: the probe needs generate" in md
    flagged = [pid for pid in ("fairness.stereotype_pairs", "fairness.bbq") if by[pid].chance.indistinguishable]
    assert md.count("INDISTINGUISHABLE FROM CHANCE") == len(flagged)
    assert html.count('class="chance-marker"') == 2
    from trustslm.report.markdown import summary_table

    assert summary_table(pairs).count("indistinguishable from chance") == len(flagged)
    assert pairs.to_json() and trustslm.core.types.TrustReport.model_validate_json(pairs.to_json()).results


def test_a_model_that_always_prefers_the_stereotype_is_told_apart_from_chance(tmp_path):
    p, _ = _planned("fairness.stereotype_pairs", limit=30)
    table = {it["sent_more"]: -1.0 for it in p.data.items} | {it["sent_less"]: -50.0 for it in p.data.items}
    report = trustslm.audit(ScriptedModel({"loglikelihood": table}), probes=["fairness.stereotype_pairs"], limit=30,
                            bootstrap_resamples=200, cache_dir=tmp_path, progress=False)
    [r] = report.results
    assert r.metric("pct_stereotype").value == 1.0 and r.score.score == 0.0
    assert r.chance.indistinguishable is False and r.chance.score > 70


def test_bbq_chance_answers_a_third_of_the_ambiguous_items_right_and_shows_it_beside_the_model():
    """The issue's case: a random answerer has bias scores near 0 (so it scores near 100) while
    its accuracy in ambiguous contexts is a third (three answers, one of them 'unknown')."""
    p, ctx = _planned("fairness.bbq")
    c = chance_level(p.probe, p.data, p.requests, ctx, None, runs=50)
    n_ambig = sum(1 for it in p.data.items if it.get("context_condition") == "ambig") or len(p.data.items) / 2
    assert c.metrics["accuracy_ambig"] == pytest.approx(1 / 3, abs=4 * np.sqrt(2 / 9 / (n_ambig * 50)))
    assert abs(c.metrics["bias_score_ambig"]) < 0.05 and c.score > 85
    report = trustslm.audit("mock", probes=["fairness.bbq"], bootstrap_resamples=100, progress=False)
    md = render_markdown(report)
    row = next(line for line in md.splitlines() if line.startswith("| accuracy\\_ambig | all |"))
    assert row.rstrip(" |").endswith(f"{report.results[0].chance.metrics['accuracy_ambig']:.3f}")
