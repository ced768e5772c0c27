"""A model's identity: one digest over everything that can change its outputs, set by every
adapter, and the key of the request cache."""

from __future__ import annotations

import json

import pytest
from conftest import ENGINE_PROBES

import trustslm
from trustslm.core.errors import BadInputError
from trustslm.core.types import IDENTITY_FIELDS, ModelInfo, TrustReport
from trustslm.engine.cache import RequestCache
from trustslm.engine.execute import execute
from trustslm.mitigations.wrapped import WrappedModel
from trustslm.models.base import LoglikelihoodRequest, model_info
from trustslm.models.mock import ScriptedModel
from trustslm.models.resolve import load_model

BASE = ModelInfo(spec="m", kind="hf", name="m", hash="h" * 64, dtype="float32", device="cpu", backend="transformers",
                 backend_versions={"transformers": "4.0", "torch": "2.0"}, chat_template_sha256="c" * 64)
QUICK = {"toxicity.continuation": {"k": 2}}


def test_identity_changes_with_each_ingredient_and_nothing_else():
    base = BASE.with_identity().identity
    assert base == BASE.output_identity() and len(base) == 64
    changed = {
        "hash": "g" * 64, "chat_template_sha256": "d" * 64, "dtype": "bfloat16", "device": "cuda",
        "backend": "vllm", "backend_versions": {"transformers": "4.1", "torch": "2.0"},
        "backend_options": {"seed": 1}, "mitigations": [{"name": "safety-prompt", "options": {"text": "x"}}],
    }
    assert set(changed) == set(IDENTITY_FIELDS)
    identities = {f: BASE.model_copy(update={f: v}).with_identity().identity for f, v in changed.items()}
    assert base not in identities.values() and len(set(identities.values())) == len(changed)
    # the same mitigation with other options is another model
    other = BASE.model_copy(update={"mitigations": [{"name": "safety-prompt", "options": {"text": "y"}}]})
    assert other.with_identity().identity != identities["mitigations"]
    # what names or describes the model without changing its outputs leaves the identity alone
    same = {"spec": "/elsewhere/m", "kind": "gguf", "name": "renamed", "path": "/x", "parameters": 7,
            "capabilities": ["generate"], "chat_template": True}
    for f, v in same.items():
        assert BASE.model_copy(update={f: v}).with_identity().identity == base, f


def test_every_builtin_adapter_sets_its_identity():
    mock = ScriptedModel({"name": "a"})
    info = mock.info()
    assert info.identity == info.output_identity() and info.backend == "mock"
    assert ScriptedModel({"name": "b"}).info().identity != info.identity
    wrapped = [WrappedModel(mock, name="w", options={"strength": s}, resolved={}) for s in (1, 2)]
    ids = {w.info().identity for w in wrapped}
    assert len(ids) == 2 and info.identity not in ids
    assert all(w.info().identity == w.info().output_identity() for w in wrapped)


def test_hf_identity_covers_dtype_chat_template_and_backend_version(tiny_gpt2, tiny_llama, monkeypatch, tmp_path):
    import shutil

    import transformers

    gpt2 = load_model(tiny_gpt2).info()
    assert gpt2.backend == "transformers" and gpt2.device == "cpu" and gpt2.dtype == "float32"
    assert set(gpt2.backend_versions) == {"transformers", "torch"} and gpt2.identity == gpt2.output_identity()
    assert gpt2.chat_template_sha256 is None
    assert load_model(tiny_llama).info().chat_template_sha256 is not None  # built with a chat template
    copy = load_model(shutil.copytree(tiny_gpt2, tmp_path / "copy")).info()  # same files elsewhere: same model
    assert copy.path != gpt2.path and copy.identity == gpt2.identity
    half = load_model(tiny_gpt2, model_args={"dtype": "bfloat16"}).info()
    assert half.dtype == "bfloat16" and half.hash == gpt2.hash and half.identity != gpt2.identity
    monkeypatch.setattr(transformers, "__version__", "0.0.0-other")
    other = load_model(tiny_gpt2).info()
    assert other.hash == gpt2.hash and other.identity != gpt2.identity


class _Versioned(ScriptedModel):
    """A mock whose backend version can be changed: the files (hash) stay the same."""

    def __init__(self, version: str):
        super().__init__()
        self.version = version

    def info(self) -> ModelInfo:
        return super().info().model_copy(update={"backend_versions": {"mock": self.version}}).with_identity()


def test_a_cached_result_is_used_only_under_the_identity_it_was_written_for(tmp_path):
    cache = RequestCache(tmp_path / "requests.sqlite")
    requests = [LoglikelihoodRequest("a", " b"), LoglikelihoodRequest("c", " d")]
    first = _Versioned("1")
    execute(first, requests, identity=model_info(first).identity, cache=cache, progress=False)
    again, newer = _Versioned("1"), _Versioned("2")
    assert again.info().hash == newer.info().hash  # only the version differs
    _, hit = execute(again, requests, identity=model_info(again).identity, cache=cache, resume=True, progress=False)
    _, miss = execute(newer, requests, identity=model_info(newer).identity, cache=cache, resume=True, progress=False)
    assert (hit.cache_hits, hit.computed, again.calls["loglikelihood"]) == (2, 0, 0)
    assert (miss.cache_hits, miss.computed, newer.calls["loglikelihood"]) == (0, 2, 2)
    cache.close()


def test_an_audit_resumes_only_from_its_own_identity():
    common = dict(probes=ENGINE_PROBES, progress=False, limit=3, options=QUICK)
    first = trustslm.audit(_Versioned("1"), **common)
    assert first.model.identity == _Versioned("1").info().identity and first.run.cache_misses > 0
    same = trustslm.audit(_Versioned("1"), resume=True, **common)
    assert same.run.cache_hits == first.run.cache_misses and same.run.cache_misses == 0
    other = trustslm.audit(_Versioned("2"), resume=True, **common)
    assert other.run.cache_hits == 0 and other.run.cache_misses == first.run.cache_misses


def test_an_adapter_that_sets_no_identity_gets_one_from_its_info():
    class Bare(ScriptedModel):
        def info(self) -> ModelInfo:
            return ModelInfo(spec="bare", kind="bare", name="bare", hash="b" * 64)

    report = trustslm.audit(Bare(), probes=["fairness.stereotype_pairs"], progress=False, limit=2)
    assert report.model.kind == "bare"
    assert report.model.identity == Bare().info().output_identity()


def test_schema_1_0_reports_still_load(tmp_path):
    report = trustslm.audit("mock", probes=["fairness.stereotype_pairs"], progress=False, limit=2, out=tmp_path)
    assert report.schema_version == "1.1"
    data = json.loads((tmp_path / "report.json").read_text())
    data["schema_version"] = "1.0"
    for field in ("backend", "backend_versions", "backend_options", "device", "chat_template_sha256", "identity"):
        del data["model"][field]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    loaded = TrustReport.load(old)
    assert loaded.schema_version == "1.0" and loaded.model.identity is None
    assert loaded.results == report.results
    data["schema_version"] = "0.9"
    old.write_text(json.dumps(data))
    with pytest.raises(BadInputError, match="schema_version 1.0 or 1.1"):
        TrustReport.load(old)
