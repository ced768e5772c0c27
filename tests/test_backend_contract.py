"""The model-backend contract: construction from a spec and typed options, split capabilities,
and a second, non-Hugging-Face backend (``fake``, from ``tests/fake_plugin``) audited end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

import trustslm
from trustslm.core.errors import BadInputError, ProbeSkipped
from trustslm.core.registry import Registry
from trustslm.engine.suites import load_suite, suite_probe_ids
from trustslm.models.base import KNOWN_CAPABILITIES, ModelAdapter
from trustslm.models.mock import ScriptedModel
from trustslm.models.resolve import load_model

PLUGIN_DIR = Path(__file__).parent / "fake_plugin"
FAKE_CAPABILITIES = {"loglikelihood", "token_logprobs"}


@pytest.fixture
def texts(tmp_path):
    members, non_members = tmp_path / "members.txt", tmp_path / "non_members.txt"
    members.write_text("alpha beta gamma delta epsilon zeta eta theta iota kappa\n"
                       "one two three four five six seven eight nine ten\n")
    non_members.write_text("red green blue cyan magenta yellow black white grey pink\n"
                           "sun moon star comet planet galaxy nebula quasar pulsar void\n")
    canaries = tmp_path / "canaries.jsonl"
    canaries.write_text("".join(json.dumps({"prefix": "My PIN is ", "secret": secret, "alphabet": "0123456789",
                                            "inserted": inserted}) + "\n"
                                for secret, inserted in (("4821", True), ("0937", False))))
    return members, non_members, canaries


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    return Registry()


def test_options_are_typed_and_checked_in_one_line():
    assert ScriptedModel.from_spec("", {"batch_size": "4"}).batch_size == 4  # strings from the CLI convert
    with pytest.raises(BadInputError, match=r"mock model: unknown option 'colour' \(options: batch_size, batch_tokens\)"):
        ScriptedModel.from_spec("", {"colour": "red"})
    with pytest.raises(BadInputError, match="mock model option batch_size: ") as bad:
        ScriptedModel.from_spec("", {"batch_size": "zero"})
    assert "\n" not in str(bad.value)


def test_model_args_reach_the_backend_and_win_over_the_loading_flags(fake_registry):
    model = load_model("fake:toy", model_args={"vocab": "50", "seed": "2", "batch_size": "3"}, batch_size=9,
                       allow_pickle=True, registry=fake_registry)  # allow_pickle: not a fake option, not passed
    assert (model.options.vocab, model.options.seed, model.batch_size) == (50, 2, 3)
    assert load_model("fake:toy", batch_size=9, registry=fake_registry).batch_size == 9
    with pytest.raises(BadInputError, match="unknown option 'dtype'"):
        load_model("fake:toy", model_args={"dtype": "float16"}, registry=fake_registry)
    with pytest.raises(BadInputError, match="not for an adapter object"):
        load_model(ScriptedModel(), model_args={"batch_size": 2})


def test_hf_options_from_model_args(tiny_gpt2):
    assert load_model(tiny_gpt2, model_args={"dtype": "bfloat16"}).info().dtype == "bfloat16"
    with pytest.raises(BadInputError, match="transformers model option dtype: "):
        load_model(tiny_gpt2, model_args={"dtype": "float8"})
    with pytest.raises(BadInputError, match="transformers model option device: "):
        load_model(tiny_gpt2, model_args={"device": "tpu"})


def test_a_backend_without_a_tokenizer_says_so():
    fake = _fake_module().UnigramModel("x", _fake_module().UnigramOptions())
    assert "tokenizer" not in fake.capabilities
    with pytest.raises(ProbeSkipped, match="has no tokenizer"):
        fake.split_tokens("one two three", 1)
    assert ScriptedModel().split_tokens("one two three", 1) == ("one", " two three")  # a mock's token is a word


def _fake_module():
    import importlib
    import sys

    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        return importlib.import_module("fake_trustslm_plugin.backend")
    finally:
        sys.path.remove(str(PLUGIN_DIR))


def test_mock_capabilities_are_checked():
    with pytest.raises(BadInputError, match="unknown capabilities \\['token_scores'\\]"):
        ScriptedModel({"capabilities": ["loglikelihood", "token_scores"]})


def test_capabilities_are_split_per_probe(texts):
    """Token log-probs without vocabulary statistics serve StereoSet but not Min-K%++; a model
    without a tokenizer does not get a probe that counts tokens cut on words."""
    members, non_members, _ = texts
    model = ScriptedModel({"capabilities": ["loglikelihood", "token_logprobs", "generate"]})
    options = {"privacy.membership_inference": {"members": str(members), "non_members": str(non_members)},
               "privacy.extraction": {"data": str(members), "prefix_tokens": 2, "suffix_tokens": 2}}
    report = trustslm.audit(model, probes=["fairness.stereoset", "privacy.membership_inference", "privacy.extraction"],
                            progress=False, limit=2, options=options)
    assert report.result("fairness.stereoset").status == "ok"
    mia, extraction = report.result("privacy.membership_inference"), report.result("privacy.extraction")
    assert mia.status == "skipped" and mia.reason.endswith("needs: vocab_stats")
    assert extraction.status == "skipped" and extraction.reason.endswith("needs: tokenizer")
    assert model.calls["generate"] == 0
    assert ScriptedModel().capabilities == KNOWN_CAPABILITIES - {"chat_template"}  # the default mock has the rest


def test_every_probe_kind_needs_only_known_capabilities():
    registry = Registry()
    kinds = {registry.probe_kind(s.kind) for s in registry.specs.values()}
    assert all(k.needs <= KNOWN_CAPABILITIES for k in kinds)
    assert registry.probe_kind("stereoset").needs == {"loglikelihood", "token_logprobs"}
    assert registry.probe_kind("membership_inference").needs == {"token_logprobs", "vocab_stats"}


def test_the_fake_backend_is_a_plugin(fake_registry):
    assert "fake" in fake_registry.model_kinds()
    cls = fake_registry.model_kind("fake")
    assert issubclass(cls, ModelAdapter) and cls.__module__ == "fake_trustslm_plugin.backend"
    assert not issubclass(cls, type(load_model("mock")))


def _fake_audit(tmp_path, texts, *extra: str):
    members, non_members, canaries = texts
    out = tmp_path / "out"
    proc = run_cli("audit", "fake:toy", "--model-arg", "vocab=500", "--model-arg", "seed=3", "--limit", "2",
                   "--members", str(members), "--non-members", str(non_members), "--canaries", str(canaries),
                   "--out", str(out), "--no-progress", *extra, env={"PYTHONPATH": str(PLUGIN_DIR)})
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "report.json").read_text())


def _check_fake_report(report: dict) -> None:
    model = report["model"]
    assert model["backend"] == "fake-unigram" and model["backend_options"] == {"vocab": 500, "seed": 3}
    assert set(model["capabilities"]) == FAKE_CAPABILITIES and len(model["identity"]) == 64
    registry = Registry()
    for r in report["results"]:
        needs = registry.probe_kind(r["kind"]).needs
        assert r["status"] != "error", r
        if needs <= FAKE_CAPABILITIES:
            assert r["status"] == "ok", r  # every probe the backend can serve ran (all their data given)
        else:
            missing = ", ".join(sorted(needs - FAKE_CAPABILITIES))
            assert r["status"] == "skipped" and r["reason"].endswith(f"needs: {missing}"), r


def test_the_fake_backend_audited_through_the_cli(tmp_path, texts):
    report = _fake_audit(tmp_path, texts, "--probes", "fairness.stereoset,fairness.stereotype_pairs,"
                         "privacy.*,truthfulness.truthfulqa_mc,toxicity.continuation")
    _check_fake_report(report)
    status = {r["probe_id"]: r["status"] for r in report["results"]}
    assert status == {"fairness.stereoset": "ok", "fairness.stereotype_pairs": "ok", "truthfulness.truthfulqa_mc": "ok",
                      "privacy.canary_exposure": "ok", "privacy.membership_inference": "skipped",
                      "privacy.extraction": "skipped", "privacy.pii_leakage": "skipped",
                      "privacy.system_prompt_leakage": "skipped", "toxicity.continuation": "skipped"}


@pytest.mark.slow
def test_the_fake_backend_on_the_default_probes(tmp_path, texts, monkeypatch):
    """Done criterion of issue 17: the default probe set, each probe run or skipped with the reason.
    The audit runs with the fake plugin on its path, so its probe is in the default set: this
    process reads the report with the same plugins."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    report = _fake_audit(tmp_path, texts)
    assert {r["probe_id"] for r in report["results"]} >= suite_probe_ids(Registry(), load_suite("smoke"))
    _check_fake_report(report)
    assert sum(r["status"] == "ok" for r in report["results"]) >= 8


@pytest.mark.parametrize("arg, message", [
    ("colour=red", "fake-unigram model: unknown option 'colour' (options: batch_size, batch_tokens, seed, vocab)"),
    ("vocab=many", "fake-unigram model option vocab: "),
    ("vocab", "--model-arg 'vocab': expected KEY=VALUE"),
    ("=3", "--model-arg '=3': expected KEY=VALUE"),
])
def test_a_bad_model_arg_is_one_line(tmp_path, arg, message):
    proc = run_cli("audit", "fake:toy", "--model-arg", arg, "--out", str(tmp_path / "o"), "--no-progress",
                   env={"PYTHONPATH": str(PLUGIN_DIR)})
    assert_one_line_error(proc, 2, message)
    assert not (tmp_path / "o").exists()
