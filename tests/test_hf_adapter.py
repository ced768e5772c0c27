"""The Hugging Face adapter on tiny random models: batching and padding change nothing."""

from __future__ import annotations

import hashlib

import pytest
import torch
from tolerances import float32_logprob

import trustslm
from trustslm.models.base import CHAT_TEMPLATE, GenerateRequest, LoglikelihoodRequest
from trustslm.models.resolve import load_model

TEXTS = ["The cat sat.", "A quick brown fox jumps over the lazy dog near the river.", "Paris",
         "She said that the weather was nice today", "x"]


def manual_loglikelihood(adapter, context: str, continuation: str) -> float:
    """One sequence at a time, no padding, no batching: the obvious oracle."""
    ctx, cont = adapter.encode_loglikelihood(LoglikelihoodRequest(context, continuation))
    ids = torch.tensor([ctx + cont])
    with torch.inference_mode():
        logits = adapter.model(input_ids=ids).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return float(sum(logprobs[len(ctx) - 1 + i, t] for i, t in enumerate(cont)))


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_batched_loglikelihood_equals_one_at_a_time(request, fixture):
    adapter = load_model(request.getfixturevalue(fixture), batch_size=3)
    reqs = [LoglikelihoodRequest("", t) for t in TEXTS] + [
        LoglikelihoodRequest("The capital of France is", " Paris"),
        LoglikelihoodRequest("The capital of France is ", "Paris"),  # trailing space moves over
    ]
    got = adapter.loglikelihood(reqs)
    for r, res in zip(reqs, got):
        want = manual_loglikelihood(adapter, r.context, r.continuation)
        assert res.logprob == pytest.approx(want, abs=float32_logprob(res.n_tokens, want))
    assert got[-1].logprob == pytest.approx(got[-2].logprob, abs=float32_logprob(got[-2].n_tokens, got[-2].logprob))


def test_empty_context_conditions_on_bos(tiny_gpt2):
    adapter = load_model(tiny_gpt2)
    ctx, cont = adapter.encode_loglikelihood(LoglikelihoodRequest("", "The cat sat."))
    assert ctx == [adapter.tokenizer.bos_token_id]
    assert adapter.tokenizer.decode(cont) == "The cat sat."


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_batched_greedy_generation_equals_one_at_a_time(request, fixture):
    path = request.getfixturevalue(fixture)
    reqs = [GenerateRequest(prompt=t, max_new_tokens=6) for t in TEXTS]
    batched = load_model(path, batch_size=5).generate(reqs)
    single = load_model(path, batch_size=1).generate(reqs)
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(r.n_tokens <= 6 for r in batched)


def test_sampling_is_seeded_per_request_not_per_batch(tiny_llama):
    base = dict(max_new_tokens=8, temperature=1.0, top_p=0.95, seed=11)
    target = GenerateRequest(prompt="The cat", sample_index=3, **base)
    others = [GenerateRequest(prompt=t, sample_index=i, **base) for i, t in enumerate(TEXTS)]
    alone = load_model(tiny_llama, batch_size=1).generate([target])[0].text
    crowded = load_model(tiny_llama, batch_size=6).generate(others + [target])[-1].text
    assert alone == crowded
    varied = load_model(tiny_llama, batch_size=8).generate(
        [GenerateRequest(prompt="The cat", sample_index=i, **base) for i in range(8)])
    assert len({r.text for r in varied}) > 1


def test_chat_template_used_when_asked_and_present(tiny_llama, tiny_gpt2):
    llama = load_model(tiny_llama)
    assert CHAT_TEMPLATE in llama.capabilities
    chat = llama.tokenizer.decode(llama.encode_prompt(GenerateRequest(prompt="Hi there", chat=True)))
    assert chat.startswith("<|im_start|>user\nHi there<|im_end|>") and chat.endswith("<|im_start|>assistant\n")
    plain = llama.tokenizer.decode(llama.encode_prompt(GenerateRequest(prompt="Hi there")))
    assert "<|im_start|>" not in plain
    gpt2 = load_model(tiny_gpt2)
    assert CHAT_TEMPLATE not in gpt2.capabilities  # no template: the plain prompt is used
    assert gpt2.encode_prompt(GenerateRequest(prompt="Hi there", chat=True)) == \
        gpt2.encode_prompt(GenerateRequest(prompt="Hi there"))


def test_left_padding_for_generation_right_padding_for_loglikelihood(tiny_gpt2):
    adapter = load_model(tiny_gpt2, batch_size=4)
    adapter.recorder = []
    adapter.generate([GenerateRequest(prompt=t, max_new_tokens=2) for t in TEXTS[:3]])
    adapter.loglikelihood([LoglikelihoodRequest("", t) for t in TEXTS[:3]])
    gen, ll = adapter.recorder
    assert gen["kind"] == "generate" and bool(gen["attention_mask"][:, -1].all())
    assert ll["kind"] == "loglikelihood" and bool(ll["attention_mask"][:, 0].all())


def test_stop_strings_cut_the_text(tiny_gpt2):
    adapter = load_model(tiny_gpt2)
    full = adapter.generate([GenerateRequest(prompt="The cat", max_new_tokens=12)])[0].text
    assert len(full) > 2
    cut_at = full[1:3]
    stopped = adapter.generate([GenerateRequest(prompt="The cat", max_new_tokens=12, stop=(cut_at,))])[0]
    assert stopped.text == full[: full.find(cut_at)]
    assert stopped.finish_reason == "stop"


def test_audit_of_a_tiny_model_records_provenance(tiny_llama, tmp_path):
    report = trustslm.audit(str(tiny_llama), probes=["fairness.stereotype_pairs", "toxicity.continuation"], progress=False, limit=4,
                            options={"toxicity.continuation": {"k": 2, "max_new_tokens": 5}}, out=tmp_path)
    assert [r.status for r in report.results] == ["ok", "ok"]
    files = {f.path: f.sha256 for f in report.model.files}
    assert files["model.safetensors"] == hashlib.sha256((tiny_llama / "model.safetensors").read_bytes()).hexdigest()
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= set(files)
    assert report.model.kind == "hf" and report.model.parameters > 1000
    assert report.model.chat_template is True


def test_model_kind_prefix(tiny_gpt2):
    adapter = load_model(f"hf:{tiny_gpt2}")
    assert adapter.info().kind == "hf"
    assert load_model("mock").info().kind == "mock"


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_scoring_projects_only_the_scored_positions(request, fixture):
    """The plain scoring pass asks the model for the logits of the columns some continuation
    scores (``logits_to_keep``), not of every position, and the log-likelihoods stay the
    one-at-a-time ones (rows of similar length, as the engine's length-sorted batches are)."""
    import functools

    adapter = load_model(request.getfixturevalue(fixture), batch_size=8, model_args={"prefix_sharing": False})
    real = adapter.model.forward
    kept = []

    @functools.wraps(real)
    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        kept.append((kwargs.get("logits_to_keep"), kwargs["input_ids"].shape[1], out.logits.shape[1]))
        return out

    adapter.model.forward = spy
    reqs = [LoglikelihoodRequest(TEXTS[k], cont) for k in (1, 3) for cont in (" and then it rained", " x", "")]
    got = adapter.loglikelihood(reqs)
    [(keep, width, columns)] = kept
    assert keep is not None and columns == len(keep) < width
    for r, res in zip(reqs, got):
        want = manual_loglikelihood(adapter, r.context, r.continuation) if r.continuation else 0.0
        assert res.logprob == pytest.approx(want, abs=float32_logprob(res.n_tokens, want))


def test_a_forward_that_ignores_logits_to_keep_is_still_read_right(tiny_llama):
    """A model class that takes ``logits_to_keep`` but returns every position anyway (a custom
    forward) is indexed by position, not by the kept columns."""
    import functools

    adapter = load_model(tiny_llama, batch_size=8, model_args={"prefix_sharing": False})
    real = adapter.model.forward

    @functools.wraps(real)
    def ignoring(*args, logits_to_keep=None, **kwargs):
        return real(*args, **kwargs)

    adapter.model.forward = ignoring
    reqs = [LoglikelihoodRequest(TEXTS[k], cont) for k in (1, 3) for cont in (" and then it rained", " x")]
    for r, res in zip(reqs, adapter.loglikelihood(reqs)):
        want = manual_loglikelihood(adapter, r.context, r.continuation)
        assert res.logprob == pytest.approx(want, abs=float32_logprob(res.n_tokens, want))
