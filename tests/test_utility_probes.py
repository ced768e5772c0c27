"""The utility cost of a mitigation, by probes: perplexity on held-out text and closed-book QA accuracy
run through the engine from a registry of their own, compared by the gate's paired comparison, and
kept out of every audit, dimension and overall score."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from conftest import REPO

import trustslm
from trustslm.core.registry import Registry
from trustslm.gate.compare import compare
from trustslm.models.base import LoglikelihoodRequest
from trustslm.workflows.load import load_model
from trustslm.workflows.utility import (
    MEASURES,
    PERPLEXITY,
    QA_ACCURACY,
    compare_utility,
    measure,
    utility_registry,
)

QA_ITEMS = [json.loads(line) for line in (REPO / "datasets" / "closed_book_qa.jsonl").read_text().splitlines() if line]


def _qa_mock(path, wrong_every: int | None) -> str:
    """A mock that answers each closed-book question right, or wrongly on every ``wrong_every``-th."""
    rules = [{"match": it["question"],
              "response": it["distractors"][0] if wrong_every and i % wrong_every == 0 else it["answers"][0]}
             for i, it in enumerate(QA_ITEMS)]
    path.write_text(yaml.safe_dump({"name": f"qa-mock-{wrong_every or 'good'}", "generate": rules}))
    return f"mock:{path}"


def test_utility_probes_are_not_trust_probes():
    ids = {m.probe_id for m in MEASURES}
    assert not ids & set(Registry().specs)  # no audit selects them, by default, glob or id
    assert not [s for s in Registry().select(["truthfulness.*"]) if s.id in ids]
    specs = utility_registry().specs
    assert set(specs) == ids
    assert all(spec.scoring == {} for spec in specs.values())  # no score, so no dimension or overall score


def test_measure_runs_the_utility_probes_through_the_engine(tmp_path):
    model = load_model("mock")
    report = measure(model, qa_limit=7, out=tmp_path / "u")
    assert (tmp_path / "u" / "report.json").is_file() and (tmp_path / "u" / "units.jsonl").is_file()
    assert [r.status for r in report.results] == ["ok", "ok"]
    assert report.overall.score is None and all(d.status == "not measured" for d in report.dimensions.values())
    # perplexity: exp(total negative log-likelihood / total tokens) over the held-out lines, by hand
    lines = [t.strip() for t in (REPO / "datasets" / "heldout_text.txt").read_text().splitlines() if t.strip()]
    results = model.loglikelihood([LoglikelihoodRequest("", t) for t in lines])
    by_hand = math.exp(-sum(r.logprob for r in results) / sum(r.n_tokens for r in results))
    ppl = report.result(PERPLEXITY.probe_id).metric("perplexity")
    assert ppl.value == pytest.approx(by_hand, rel=1e-12) and ppl.n == len(lines)
    # --qa-limit N: the first N questions of the file (not N per category)
    qa = report.result(QA_ACCURACY.probe_id)
    assert qa.metric("accuracy").n == 7
    assert [s["id"] for s in report.samples if s["probe_id"] == QA_ACCURACY.probe_id] == \
        [it["id"] for it in QA_ITEMS[:7]]
    # 0: QA accuracy is not measured
    assert [r.probe_id for r in measure(model, qa_limit=0).results] == [PERPLEXITY.probe_id]


def test_the_utility_cost_is_the_gates_paired_comparison(tmp_path):
    good, worse = (load_model(_qa_mock(tmp_path / f"{n}.yaml", w)) for n, w in (("good", None), ("worse", 3)))
    before, after = measure(good, qa_limit=30, seed=3), measure(worse, qa_limit=30, seed=3)
    costs = {u.name: u for u in compare_utility(before, after, seed=3)}
    assert set(costs) == {"perplexity", "qa_accuracy"}
    qa = costs["qa_accuracy"]
    assert (qa.before, qa.after, qa.n, qa.data) == (1.0, pytest.approx(20 / 30), 30, "builtin:closed_book_qa.jsonl")
    assert qa.cost == "worse" and qa.ci_high < 0
    gate = compare(before, after, registry=utility_registry(), seed=3).find(f"{QA_ACCURACY.probe_id}.accuracy")
    assert (qa.difference, qa.ci_low, qa.ci_high) == (gate.difference, gate.ci_low, gate.ci_high)
    assert gate.verdict == qa.cost
    ppl = costs["perplexity"]  # the scripts change answers, not log-likelihoods
    assert ppl.before == ppl.after and ppl.cost == "no significant change" and not ppl.higher_is_better


def test_mitigate_writes_the_utility_reports_and_keeps_them_out_of_the_audits(tmp_path):
    out = tmp_path / "run"
    run = trustslm.mitigate("mock", "abstention", out=out, progress=False, utility_qa_limit=5)
    utility_ids = {m.probe_id for m in MEASURES}
    for side in ("before", "after"):
        trust = trustslm.load_report(out / side)
        assert not utility_ids & {r.probe_id for r in trust.results}
        utility = trustslm.load_report(out / "utility" / side)
        assert {r.probe_id for r in utility.results} == utility_ids and utility.overall.score is None
    after = trustslm.load_report(out / "utility" / "after")
    qa = next(u for u in run.utility if u.name == "qa_accuracy")
    assert qa.n == 5 and qa.after == after.result(QA_ACCURACY.probe_id).metric("accuracy").value
    saved = json.loads((out / "mitigation_run.json").read_text())["utility"]
    assert [u["name"] for u in saved] == ["perplexity", "qa_accuracy"]
