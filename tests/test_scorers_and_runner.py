"""Scorer selection and the runner's deduplication."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from conftest import assert_one_line_error, run_cli

import trustslm
from trustslm.core.registry import Registry
from trustslm.engine.execute import execute
from trustslm.models.base import GenerateRequest, LoglikelihoodRequest
from trustslm.models.mock import ScriptedModel
from trustslm.scorers.base import Scorer


class NeverScorer(Scorer):
    name = "never"

    def unavailable(self):
        return "its weights are not here; install them with `pip install never`"

    def load(self):
        pass

    def score(self, texts):
        raise AssertionError("never called")

    def info(self):
        raise AssertionError("never called")


def _registry(scorers: dict[str, str]) -> Registry:
    groups = ("trustslm.probes", "trustslm.probe_kinds", "trustslm.models")
    eps = {g: list(entry_points(group=g)) for g in groups}
    eps["trustslm.scorers"] = [EntryPoint(name=n, value=v, group="trustslm.scorers") for n, v in scorers.items()]
    return Registry(eps)


def test_named_scorer_that_cant_load_is_bad_input_saying_how_to_supply_one(tmp_path):
    proc = run_cli("audit", "mock", "--probes", "toxicity.continuation", "--out", str(tmp_path),
                   "--set", f"toxicity.continuation.scorer=detoxify:{tmp_path / 'missing.ckpt'}")
    line = assert_one_line_error(proc, contains="checkpoint not found")
    assert "detoxify" in line


def test_auto_with_no_scorer_available_skips_with_every_reason():
    registry = _registry({"detoxify": "test_scorers_and_runner:NeverScorer",
                          "profanity-check": "test_scorers_and_runner:NeverScorer"})
    report = trustslm.audit("mock", probes=["toxicity.*"], registry=registry, progress=False, limit=2)
    result = report.result("toxicity.continuation")
    assert result.status == "skipped"
    assert "pip install never" in result.reason and "detoxify not used" in result.reason
    assert report.dimensions["toxicity"].status == "not measured"


def test_auto_falls_back_and_the_report_says_so():
    # here Detoxify has no checkpoint offline, so auto takes the offline default
    report = trustslm.audit("mock", probes=["toxicity.*"], progress=False, limit=2,
                            options={"toxicity.continuation": {"k": 1}})
    scorer = report.result("toxicity.continuation").scorer
    assert scorer.name == "profanity-check"
    assert "chosen by 'auto'" in scorer.detail and "detoxify not used" in scorer.detail
    assert scorer.weights_sha256 and all(len(h) == 64 for h in scorer.weights_sha256.values())


def test_duplicate_requests_reach_the_model_once():
    model = ScriptedModel()
    reqs = [LoglikelihoodRequest("", "a b"), LoglikelihoodRequest("", "a b"), LoglikelihoodRequest("", "c"),
            GenerateRequest(prompt="x", temperature=1.0, sample_index=0),
            GenerateRequest(prompt="x", temperature=1.0, sample_index=0),
            GenerateRequest(prompt="x", temperature=1.0, sample_index=1),
            GenerateRequest(prompt="y", seed=1), GenerateRequest(prompt="y", seed=2)]  # greedy: seed irrelevant
    results, stats = execute(model, reqs, identity="h", progress=False)
    assert model.calls == {"loglikelihood": 2, "generate": 3, "token_scores": 0}
    assert stats.computed == 5 and len(results) == 5


def test_request_keys_leave_out_defaults_so_new_fields_change_nothing():
    # a sampled continuation's seed derives from this key: it must not move when a field with a
    # default is added to GenerateRequest
    assert GenerateRequest(prompt="x").key() == '{"kind":"generate","prompt":"x"}'
    assert GenerateRequest(prompt="x", temperature=1.0, sample_index=2, stop=("a",)).key() == \
        '{"kind":"generate","prompt":"x","sample_index":2,"stop":["a"],"temperature":1.0}'
    assert GenerateRequest(prompt="x", seed=5).key() == GenerateRequest(prompt="x").key()  # greedy
    assert LoglikelihoodRequest("", "a").key() == '{"context":"","continuation":"a","kind":"loglikelihood"}'


def test_scorer_flag_sets_every_toxicity_scorer_and_a_named_one_never_falls_back(tmp_path):
    from trustslm.engine.run import plan

    config = {"toxicity.continuation": {"scorer": "from-config"}}
    planned = {p.probe.spec.id: p.probe.options for p in plan(
        Registry(), None, config=config, scorer="profanity-check",
        overrides={"toxicity.targeted_groups": {"scorer": "from-set"}})}
    assert planned["toxicity.continuation"].scorer == "profanity-check"  # --scorer over the config file
    assert planned["toxicity.instructed"].scorer == "profanity-check"
    assert planned["fairness.counterfactual_generation"].scorer == "profanity-check"
    assert planned["toxicity.targeted_groups"].scorer == "from-set"  # --set over --scorer
    assert planned["fairness.stereotype_pairs"] == plan(Registry(), ["fairness.stereotype_pairs"])[0].probe.options

    proc = run_cli("audit", "mock", "--probes", "toxicity.continuation", "--out", str(tmp_path / "o"),
                   "--scorer", f"detoxify:{tmp_path / 'missing.ckpt'}")
    assert_one_line_error(proc, contains="checkpoint not found")
    assert not (tmp_path / "o" / "report.json").exists()
