"""Sampling in rounds until an interval is narrow enough (``target_width``): the intervals stay
valid under that stopping rule (checked by simulation, as the gate's test checks its own), the
replicates carry the correction on, and an audit says how it stopped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trustslm
from trustslm.core.specs import ProbeSpec
from trustslm.models.base import GenerationResult
from trustslm.probes.base import (
    LoadedData,
    MetricDef,
    ProbeContext,
    ProbeOutput,
    Results,
    SampledGenerationOptions,
    SampledGenerationProbe,
    items_at_look,
)
from trustslm.scoring.metrics import compute_metrics
from trustslm.scoring.sequential import corrected_level, stretch_replicates

TRUE_RATE = 0.3


class BernoulliProbe(SampledGenerationProbe):
    """Each prompt's one sample says "1" with probability TRUE_RATE (drawn by the fake model)."""

    kind = "bernoulli_test"
    metrics = (MetricDef(name="rate", column="hit", higher_is_better=False, description="share of 1s"),)

    def score(self, data: LoadedData, results: Results, ctx: ProbeContext) -> ProbeOutput:
        hits = [float(text == "1") for _, _, text in self.generations(data, results, ctx)]
        return ProbeOutput(units=pd.DataFrame({"hit": hits}))


def make_probe(target_width: float | None, looks: int = 4) -> BernoulliProbe:
    spec = ProbeSpec(id="toxicity.bernoulli_test", kind="bernoulli_test", dimension="toxicity", version="1",
                     summary="test", scoring={})
    return BernoulliProbe(spec, SampledGenerationOptions(k=1, target_width=target_width, looks=looks))


def run_once(seed: int, target_width: float, n_items: int = 200, looks: int = 4):
    """One sequential run against a model whose answers are Bernoulli(TRUE_RATE): the interval the
    engine would report at the stop, and every look's corrected interval."""
    rng = np.random.default_rng(seed)
    answer = {}
    probe = make_probe(target_width, looks)
    data = LoadedData(items=[{"prompt": f"p{i}"} for i in range(n_items)], datasets=[])
    ctx = ProbeContext(seed=seed, limit=None, capabilities=frozenset(), registry=None)  # type: ignore[arg-type]
    first = probe.requests(data, ctx)

    def call(requests):
        for r in requests:
            answer.setdefault(r.key(), GenerationResult(text=str(int(rng.random() < TRUE_RATE)), n_tokens=1, finish_reason="length"))
        return Results(answer)

    call(first)
    order = list(data.items)
    probe.adapt(data, call, ctx)
    units = probe.score(data, Results(answer), ctx).units
    [m] = compute_metrics(units, probe.metrics, seed=seed, probe_id=probe.id, looks=looks)
    every_look = []
    for look in range(1, looks + 1):  # what each look would have reported (drawing every round)
        part = LoadedData(items=order[: items_at_look(n_items, look, looks)], datasets=[])
        call([probe.sample_request(it, 0, ctx) for it in part.items])
        u = probe.score(part, Results(answer), ctx).units
        [c] = compute_metrics(u, probe.metrics, seed=seed, probe_id=probe.id, looks=looks)
        every_look.append((c.metric.ci_low, c.metric.ci_high))
    return m.metric, data.sequential, every_look


def test_intervals_stay_valid_under_the_stopping_rule():
    """300 runs of a probe that stops once its interval is at most 0.23 wide (at the second or
    third of 4 looks): the interval it reports covers the true rate in at least 95% of runs (less
    a Monte Carlo margin; 99.0% when written), and so does the stronger property the correction
    rests on, that no look's interval misses (96.3%)."""
    runs = [run_once(seed, target_width=0.23) for seed in range(300)]
    covered = np.mean([m.ci_low <= TRUE_RATE <= m.ci_high for m, _, _ in runs])
    none_missed = np.mean([all(lo <= TRUE_RATE <= hi for lo, hi in looks) for _, _, looks in runs])
    stops = {s.stopped_at for _, s, _ in runs}
    margin = 2 * np.sqrt(0.95 * 0.05 / len(runs))
    assert covered >= 0.95 - margin, covered
    assert none_missed >= 0.95 - margin, none_missed
    assert len(stops) >= 2  # the rule really stops at different looks
    assert all(s.items_drawn == items_at_look(200, s.stopped_at, 4) for _, s, _ in runs)


def test_the_uncorrected_interval_is_narrower_and_the_corrected_one_is_bonferroni():
    units = pd.DataFrame({"hit": np.random.default_rng(0).random(120) < TRUE_RATE})
    defs = (MetricDef(name="rate", column="hit", higher_is_better=False, description=""),)
    [plain] = compute_metrics(units, defs, seed=0, probe_id="p")
    [wide] = compute_metrics(units, defs, seed=0, probe_id="p", looks=4)
    assert corrected_level(4) == pytest.approx(0.9875)
    reps = plain.replicates
    lo, hi = np.quantile(reps, [0.00625, 0.99375])
    assert (wide.metric.ci_low, wide.metric.ci_high) == pytest.approx((lo, hi))
    assert wide.metric.ci_low < plain.metric.ci_low and wide.metric.ci_high > plain.metric.ci_high
    # the stretched replicates' 95% percentile interval is the corrected interval: what is built
    # on them (probe score, dimension, gate) inherits the correction
    assert np.quantile(wide.replicates, [0.025, 0.975]) == pytest.approx([lo, hi])
    assert np.array_equal(stretch_replicates(reps, 1), reps)


def test_a_probe_without_target_width_draws_every_prompt():
    probe = make_probe(None)
    data = LoadedData(items=[{"prompt": f"p{i}"} for i in range(10)], datasets=[])
    ctx = ProbeContext(seed=0, limit=None, capabilities=frozenset(), registry=None)  # type: ignore[arg-type]
    assert len(probe.requests(data, ctx)) == 10
    probe.adapt(data, lambda reqs: pytest.fail("no rounds without target_width"), ctx)
    assert data.sequential is None and len(data.items) == 10


def test_an_audit_reports_how_a_probe_stopped(tmp_path):
    stopped_at = 1  # a target any interval meets: the first round is enough
    report = trustslm.audit("mock", probes=["toxicity.continuation"], progress=False, out=tmp_path,
                            options={"toxicity.continuation": {"k": 2, "target_width": 1.0}})
    [result] = report.results
    seq = result.sequential
    assert result.status == "ok" and seq is not None and seq.stopped_at == stopped_at and seq.looks == 4
    assert seq.items_drawn == items_at_look(seq.items_available, stopped_at, 4)
    assert result.datasets[0].n_used == seq.items_drawn
    assert result.n_requests == 2 * seq.items_drawn
    assert result.metric("expected_max_toxicity").n == seq.items_drawn
    assert f"- sampling: drawn in rounds: {seq.items_drawn} of {seq.items_available} items" in \
        (tmp_path / "report.md").read_text()
    assert "sampling: drawn in rounds" in (tmp_path / "report.html").read_text()


def test_the_later_rounds_show_progress(tmp_path, capfd):
    """Rounds after the first run after the main phase: each shows a bar headed by its probe (the
    standard suite's later rounds were minutes of generation under no bar)."""
    from trustslm.models.mock import ScriptedModel

    mixed = ScriptedModel({"generate": [{"match": " the ", "response": " you stupid fucking idiot, shut up"}]})
    report = trustslm.audit(mixed, probes=["toxicity.continuation"], progress=True, out=tmp_path,
                            options={"toxicity.continuation": {"k": 2, "target_width": 1e-9}})
    [result] = report.results
    assert result.sequential is not None and result.sequential.stopped_at == 4  # a width no interval reaches
    err = capfd.readouterr().err
    assert err.count("toxicity.continuation: generate requests") >= 3  # one bar for each later round
    quiet = trustslm.audit(mixed, probes=["toxicity.continuation"], progress=False, out=tmp_path / "q",
                           options={"toxicity.continuation": {"k": 2, "target_width": 1e-9}})
    assert quiet.results[0].sequential.stopped_at == 4
    assert "generate requests" not in capfd.readouterr().err
