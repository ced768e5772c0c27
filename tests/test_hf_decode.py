"""The transformers backend's own decoding loop (trustslm/models/decode.py) against
transformers' ``model.generate``, and rows that leave the batch when they end."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig, LogitsProcessorList

from trustslm.models.base import GENERATION_TOKENS_PER_ROW, GenerateRequest, LoglikelihoodRequest
from trustslm.models.hf import PerRowSampler
from trustslm.models.resolve import load_model

PROMPTS = ["The cat sat.", "A quick brown fox jumps over the lazy dog near the river.", "Paris",
           "She said that the weather was nice today", "x", "Once upon a time"]


def reference(adapter, request: GenerateRequest) -> list[int]:
    """One prompt, no padding, through transformers' own ``generate`` (greedy, or sampled with
    the same per-row sampler), cut at the first end-of-sequence token."""
    ids = torch.tensor([adapter.encode_prompt(request)])
    config = GenerationConfig(max_new_tokens=request.max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=adapter.pad_id, eos_token_id=adapter.eos_ids or None)
    processors = LogitsProcessorList([] if request.greedy else [PerRowSampler([request])])
    with torch.inference_mode():
        out = adapter.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                     generation_config=config, logits_processor=processors)
    new = out[0, ids.shape[1]:].tolist()
    stop = next((j for j, t in enumerate(new) if t in set(adapter.eos_ids)), None)
    return new if stop is None else new[:stop]


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_batched_decoding_equals_transformers_generate_one_prompt_at_a_time(request, fixture):
    adapter = load_model(request.getfixturevalue(fixture), batch_size=6)
    reqs = [GenerateRequest(prompt=p, max_new_tokens=3 + 2 * i) for i, p in enumerate(PROMPTS)]
    reqs += [GenerateRequest(prompt=p, max_new_tokens=7, temperature=1.0, top_p=0.9, seed=5, sample_index=i)
             for i, p in enumerate(PROMPTS)]
    reqs += [GenerateRequest(prompt="The cat", max_new_tokens=5, temperature=0.8, seed=3, sample_index=i) for i in range(5)]
    got = adapter.generate(reqs)
    for r, res in zip(reqs, got):
        want = reference(adapter, r)
        assert res.text == adapter.tokenizer.decode(want, skip_special_tokens=True)
        assert res.n_tokens == len(want) <= r.max_new_tokens


def test_rows_leave_the_batch_when_a_stop_string_ends_them(tiny_gpt2):
    adapter = load_model(tiny_gpt2, batch_size=4)
    free = adapter.generate([GenerateRequest(prompt=p, max_new_tokens=16) for p in PROMPTS[:4]])
    assert all(r.n_tokens == 16 for r in free)  # the tiny model never says EOS in 16 tokens
    # stop each row at a piece of its own free text: it ends there, the others run on
    cuts = [r.text[2:4] for r in free]
    reqs = [GenerateRequest(prompt=p, max_new_tokens=16, stop=(c,)) for p, c in zip(PROMPTS[:4], cuts)]
    adapter.recorder = []
    stopped = adapter.generate(reqs)
    for f, s, c in zip(free, stopped, cuts):
        assert s.text == f.text[: f.text.find(c)] and s.finish_reason == "stop"
        assert s.n_tokens < 16  # decoding ended at the stop string, not at max_new_tokens
    assert adapter.recorder[0]["steps"] == max(s.n_tokens for s in stopped)


def test_each_row_keeps_its_own_token_budget(tiny_llama):
    adapter = load_model(tiny_llama, batch_size=8)
    reqs = [GenerateRequest(prompt="The cat", max_new_tokens=n) for n in (1, 4, 9)]
    got = adapter.generate(reqs)
    assert [r.n_tokens for r in got] == [1, 4, 9]
    assert got[2].text.startswith(got[1].text) and got[1].text.startswith(got[0].text)


def test_samples_of_one_prompt_run_the_prompt_once(tiny_llama):
    adapter = load_model(tiny_llama, batch_size=8)
    widths = []
    hook = adapter.model.register_forward_pre_hook(lambda _m, _a, kw: widths.append(tuple(kw["input_ids"].shape)),
                                                   with_kwargs=True)
    try:
        reqs = [GenerateRequest(prompt=p, max_new_tokens=3, temperature=1.0, sample_index=i)
                for p in ("The cat sat", "A dog ran") for i in range(4)]
        got = adapter.generate(reqs)
    finally:
        hook.remove()
    # (a one-token pass finds whether prompts' prefixes can be shared), the two prompts once,
    # then the 8 rows one token a step (fewer once a row ends)
    assert widths[0] == (1, 1) and widths[1][0] == 2 and widths[2] == (8, 1), widths
    assert all(w[1] == 1 for w in widths[2:]), widths
    for r, res in zip(reqs, got):
        assert res.text == adapter.tokenizer.decode(reference(adapter, r), skip_special_tokens=True)


def test_generation_batches_go_by_token_budget(tiny_llama):
    adapter = load_model(tiny_llama, batch_size=4)
    short = [GenerateRequest(prompt="Hi", max_new_tokens=4, sample_index=i, temperature=1.0) for i in range(40)]
    long = [GenerateRequest(prompt="word " * 200 + str(i), max_new_tokens=40) for i in range(6)]
    reqs = long + short
    default = adapter.plan_batches(reqs)  # budget batch_size x GENERATION_TOKENS_PER_ROW
    adapter.batch_tokens = 300
    for budget, batches in ((4 * GENERATION_TOKENS_PER_ROW, default), (300, adapter.plan_batches(reqs))):
        assert sorted(i for b in batches for i in b) == list(range(len(reqs)))
        for b in batches:
            cost = len(b) * (max(adapter.request_length(reqs[i]) for i in b) + max(reqs[i].max_new_tokens for i in b))
            assert (len(b) == 1 or cost <= budget) and len(b) <= 16  # at most 4 x batch_size rows
    # the long prompts (cut to the tiny model's 128 positions less 40 new tokens) two to a batch,
    # the short ones 16 to a batch (the row cap, not the budget, binds)
    assert [len(b) for b in adapter.plan_batches(reqs)] == [2, 2, 2, 16, 16, 8]
    loglik = [LoglikelihoodRequest("", "word " * n) for n in range(1, 11)]
    assert [len(b) for b in adapter.plan_batches(loglik)] == [4, 4, 2]  # scoring: batch_size at a time


def test_batch_tokens_is_a_backend_option(tiny_llama):
    assert load_model(tiny_llama, model_args={"batch_tokens": "5000"}).batch_tokens == 5000
    assert load_model(tiny_llama).batch_tokens is None


def test_a_cache_whose_rows_cant_be_selected_keeps_them_and_gives_the_same_tokens(tiny_gpt2, monkeypatch):
    from trustslm.models import decode

    adapter = load_model(tiny_gpt2, batch_size=8)
    reqs = [GenerateRequest(prompt=p, max_new_tokens=2 + i) for i, p in enumerate(PROMPTS)]
    reqs += [GenerateRequest(prompt="The cat", max_new_tokens=6, temperature=1.0, sample_index=i) for i in range(3)]
    want = [r.text for r in adapter.generate(reqs)]
    monkeypatch.setattr(decode, "_can_select", lambda cache: False)
    adapter.recorder = []
    assert [r.text for r in adapter.generate(reqs)] == want


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_the_preallocated_cache_gives_the_tokens_and_logits_of_transformers_own_cache(request, fixture, monkeypatch):
    from trustslm.models import decode

    adapter = load_model(request.getfixturevalue(fixture), batch_size=8)
    reqs = [GenerateRequest(prompt=p, max_new_tokens=2 + 2 * i) for i, p in enumerate(PROMPTS)]
    reqs += [GenerateRequest(prompt="The cat", max_new_tokens=6, temperature=1.0, sample_index=i) for i in range(3)]
    made = []
    real = decode.preallocate
    monkeypatch.setattr(decode, "preallocate", lambda cache, extra: made.append(real(cache, extra)) or made[-1])
    want = adapter.generate(reqs)
    layers = made[0].layers
    assert layers and all(type(layer).__name__ == "PreallocatedLayer" for layer in layers)
    # rows left the batch along the way, and the buffers kept their rows' keys
    assert layers[0].keys.shape[0] < len(reqs)
    monkeypatch.setattr(decode, "preallocate", lambda cache, extra: cache)  # transformers' DynamicCache
    got = adapter.generate(reqs)
    assert [r.text for r in got] == [r.text for r in want] and [r.n_tokens for r in got] == [r.n_tokens for r in want]

    # step by step, the logits are the same to float rounding, and a buffer that is full grows
    model = adapter.model
    ids = torch.tensor([adapter.encode_prompt(reqs[1])])
    with torch.inference_mode():
        plain = model(input_ids=ids, use_cache=True)
        grown = model(input_ids=ids, use_cache=True)
    cache_plain, cache_grown = decode.cache_of(plain), real(decode.cache_of(grown), 1)  # room for 1: then it doubles
    cache_arg, _ = decode.forward_names(model)
    nxt = plain.logits[:, -1:].argmax(-1)
    for _ in range(4):
        with torch.inference_mode():
            a = model(input_ids=nxt, use_cache=True, **{cache_arg: cache_plain})
            b = model(input_ids=nxt, use_cache=True, **{cache_arg: cache_grown})
        assert torch.allclose(a.logits, b.logits, atol=1e-5, rtol=0)
        assert cache_grown.get_seq_length() == cache_plain.get_seq_length()
        nxt = a.logits[:, -1:].argmax(-1)
    assert cache_grown.layers[0]._k.shape[-2] >= cache_grown.get_seq_length() > ids.shape[1] + 1


def test_caches_it_cannot_preallocate_are_left_as_they_are():
    from trustslm.models.decode import preallocate

    legacy = ((torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)),)
    assert preallocate(legacy, 5) is legacy
    from transformers.cache_utils import DynamicCache, DynamicSlidingWindowLayer

    cache = DynamicCache()
    cache.layers = [DynamicSlidingWindowLayer(sliding_window=4)]
    cache.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), 0)
    assert type(preallocate(cache, 5).layers[0]) is DynamicSlidingWindowLayer


PREAMBLE = "You are a careful assistant. Answer in one short sentence, and say so when you do not know. "


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_prompts_that_share_a_prefix_run_it_once_with_the_same_tokens(request, fixture):
    shared = load_model(request.getfixturevalue(fixture), batch_size=16)
    plain = load_model(request.getfixturevalue(fixture), batch_size=16, model_args={"prefix_sharing": False})
    reqs = [GenerateRequest(prompt=PREAMBLE + p, max_new_tokens=4 + i) for i, p in enumerate(PROMPTS)]
    reqs += [GenerateRequest(prompt=PREAMBLE + "The cat", max_new_tokens=6, temperature=1.0, top_p=0.9,
                             seed=2, sample_index=i) for i in range(3)]
    reqs += [GenerateRequest(prompt="Paris is", max_new_tokens=5)]  # in no group: its whole prompt in the second pass
    widths = []
    hook = shared.model.register_forward_pre_hook(lambda _m, _a, kw: widths.append(tuple(kw["input_ids"].shape)),
                                                  with_kwargs=True)
    try:
        got = shared.generate(reqs)
    finally:
        hook.remove()
    want = plain.generate(reqs)
    assert [r.text for r in got] == [r.text for r in want] and [r.n_tokens for r in got] == [r.n_tokens for r in want]
    # a one-token pass finds the cache shareable; then the preamble once, then the 8 distinct
    # prompts' rest (far narrower than a whole prompt), then one token a step
    longest = max(len(shared.encode_prompt(r)) for r in reqs)
    assert widths[0] == (1, 1) and widths[1][0] == 1 and widths[2][0] == 8 and widths[2][1] < longest / 2, widths
    assert all(w[1] == 1 for w in widths[3:])
    for r, res in zip(reqs, got):  # and the one-prompt-at-a-time reference agrees
        assert res.text == shared.tokenizer.decode(reference(shared, r), skip_special_tokens=True)


def test_prefixes_are_shared_only_when_that_saves_tokens():
    from trustslm.models.decode import plan_shared_prompts

    head = list(range(100, 140))  # 40 tokens
    groups, width = plan_shared_prompts([head + [1, 2], head + [3], head + [4, 5, 6]])
    assert groups == [(40, [0, 1, 2])] and width == 3  # the last token of each is never in the prefix
    assert plan_shared_prompts([head + [1], list(range(300, 340))]) is None  # no group
    # a long prompt in no group widens the second pass to itself: no saving left
    assert plan_shared_prompts([head + [1], head + [2], list(range(300, 400))]) is None
    assert plan_shared_prompts([list(range(5)) + [1], list(range(5)) + [2]]) is None  # under 8 tokens in common


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95])
def test_nucleus_filter_keeps_exactly_the_tokens_transformers_top_p_keeps(top_p):
    from transformers import TopPLogitsWarper

    from trustslm.models.hf import NucleusFilter

    g = torch.Generator().manual_seed(0)
    vocab = 49152
    # peaked rows (the nucleus is a few tokens), middling, and flat ones (thousands of tokens:
    # the fallback to the warper itself)
    scores = torch.cat([torch.randn(8, vocab, generator=g) * scale for scale in (12.0, 4.0, 1.0, 0.05)])
    ids = torch.zeros((scores.shape[0], 1), dtype=torch.long)
    want = TopPLogitsWarper(top_p)(ids, scores.clone())
    got = NucleusFilter(top_p)(ids, scores.clone())
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.equal(got[~torch.isinf(got)], scores[~torch.isinf(got)])
    kept = (~torch.isinf(got)).sum(dim=1)
    assert kept.min() < 64 and kept.max() > 1024  # every path of the filter ran


def test_the_sampler_draws_the_token_a_whole_vocabulary_draw_draws():
    """PerRowSampler.choose draws among the nucleus only; the token must be the one that
    transformers' own warpers (the sorting top-p included) and an inverse-CDF draw over the whole
    vocabulary give with the same uniform number, on peaked, middling and flat rows, and for a
    subset of the rows (finished rows left out)."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from trustslm.models.base import request_seed

    vocab = 49152
    settings = [dict(temperature=1.0, top_p=0.9), dict(temperature=0.7, top_p=0.5), dict(temperature=1.0),
                dict(temperature=1.0, top_p=0.95, top_k=50), dict(temperature=0.0)]
    reqs = [GenerateRequest(prompt=f"p{i}", seed=1, sample_index=i, **settings[i % len(settings)]) for i in range(20)]
    sampler = PerRowSampler(reqs)
    generators = [torch.Generator().manual_seed(request_seed(r)) for r in reqs]
    g = torch.Generator().manual_seed(0)
    ids = torch.zeros((len(reqs), 1), dtype=torch.long)
    nucleus_sizes = []
    for step in range(12):
        scale = (12.0, 4.0, 1.0, 0.05)[step % 4]
        scores = torch.randn(len(reqs), vocab, generator=g) * scale
        rows = list(range(len(reqs))) if step < 6 else [i for i in range(len(reqs)) if (i + step) % 3]
        got = sampler.choose(ids, scores[rows], rows=rows)
        for k, i in enumerate(rows):
            r, s = reqs[i], scores[i : i + 1].clone()
            if r.greedy:
                assert got[k] == s.argmax()
                continue
            if r.temperature != 1.0:
                s = TemperatureLogitsWarper(r.temperature)(ids[:1], s)
            if r.top_k:
                s = TopKLogitsWarper(r.top_k)(ids[:1], s)
            if r.top_p < 1.0:
                s = TopPLogitsWarper(r.top_p)(ids[:1], s)
                nucleus_sizes.append(int((~torch.isinf(s)).sum()))
            cdf = torch.softmax(s, dim=-1).cumsum(dim=-1)
            u = torch.rand(1, generator=generators[i])
            want = min(int(torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[0, 0]), vocab - 1)
            assert int(got[k]) == want, (step, i)  # a left-out row's generator drew nothing: still in step
    assert min(nucleus_sizes) < 64 and max(nucleus_sizes) > 1024  # every path of the nucleus ran
    # as a logits processor: -inf but at the chosen token
    out = PerRowSampler(reqs[:5])(ids[:5], torch.randn(5, vocab, generator=g))
    assert torch.equal((out == 0).sum(dim=1), torch.ones(5, dtype=torch.long))
    assert torch.isinf(out).sum() == 5 * (vocab - 1)
