"""Self-debiasing (trustslm/mitigations/self_debias.py) on tiny random models: the formula computed by
hand, generation through the wrapper with left padding, the identity case, a model it cannot
apply to, and the report's model identity."""

from __future__ import annotations

import pytest
import torch
from tolerances import float32_debiased_logprob, float32_entropy, float32_logprob

import trustslm
from trustslm.core.errors import BadInputError
from trustslm.mitigations.base import NotApplicableError
from trustslm.mitigations.self_debias import BIAS_TYPES, TEMPLATE, SelfDebias
from trustslm.models.base import GenerateRequest, LoglikelihoodRequest, TokenScoresRequest
from trustslm.workflows.load import load_model

REQUESTS = [
    LoglikelihoodRequest("", "The cat sat on the mat."),
    LoglikelihoodRequest("", "The nurse and the doctor talked."),
    LoglikelihoodRequest("She said that the weather", " was nice today"),
    LoglikelihoodRequest("", "x"),
]
PROMPTS = ["The cat", "A quick brown fox jumps over the lazy dog near the", "She said that the weather was", "x"]


def wrapped(path, options=None, batch_size=8):
    """A fresh model (steering is installed on the model object) and its self-debiased wrapper."""
    mitigation = SelfDebias(options or {})
    adapter = load_model(path, batch_size=batch_size)
    resolved, _ = mitigation.prepare(adapter)
    return mitigation.wrap(adapter, resolved), resolved


def next_token_probs(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), dim=-1)


def debiased_by_hand(core, x: list[int], prefixes: list[list[int]], lam: float) -> torch.Tensor:
    """p̃(. | x) of the paper, one unpadded sequence at a time."""
    p = next_token_probs(core.model, x)
    head = 1 if x[0] == core.prefix_token_id else 0
    biased = torch.stack([next_token_probs(core.model, x[:head] + pre + x[head:]) for pre in prefixes]).max(0).values
    delta = p - biased
    alpha = torch.where(delta >= 0, torch.ones_like(delta), torch.exp(lam * delta))
    return alpha * p / (alpha * p).sum()


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("lam", [50.0, 5000.0])
def test_loglikelihood_is_the_formula_by_hand(request, fixture, lam):
    path = request.getfixturevalue(fixture)
    options = {"bias_types": ["gender", "religion", "race-color"], "decay_constant": lam}
    model, resolved = wrapped(path, options, batch_size=3)  # batches of several lengths: right padding
    core = model.inner
    assert resolved["prefixes"][0] == TEMPLATE.format("gender")
    assert resolved["prefixes"][0].endswith("because of their gender:\n")
    plain = load_model(path).loglikelihood(REQUESTS)
    got = model.loglikelihood(REQUESTS)
    for r, res, before in zip(REQUESTS, got, plain):
        ctx, cont = core.encode_loglikelihood(r)
        whole = ctx + cont
        expected = 0.0
        for t in range(len(ctx), len(whole)):
            expected += float(torch.log(debiased_by_hand(core, whole[:t], resolved["prefix_token_ids"], lam)[whole[t]]))
        # float32 differences between the cached and the one-sequence forward passes grow with λ
        tol = float32_debiased_logprob(len(cont), expected, decay_constant=lam)
        assert res.logprob == pytest.approx(expected, abs=tol)
        assert res.n_tokens == len(cont)
        if lam == 5000.0 and len(cont) > 1:
            assert abs(res.logprob - before.logprob) > tol  # it does change the scores


def test_token_scores_use_the_debiased_distribution(tiny_gpt2):
    model, resolved = wrapped(tiny_gpt2, {"bias_types": ["age"], "decay_constant": 5000})
    core = model.inner
    text = "People in the city like to walk."
    (res,) = model.token_scores([TokenScoresRequest(text)])
    ctx, cont = core.encode_loglikelihood(LoglikelihoodRequest("", text))
    whole = ctx + cont
    for k, t in enumerate(range(len(ctx), len(whole))):
        p = debiased_by_hand(core, whole[:t], resolved["prefix_token_ids"], 5000.0)
        want = float(torch.log(p[whole[t]]))
        assert res.logprobs[k] == pytest.approx(want, abs=float32_debiased_logprob(1, want, decay_constant=5000.0))
        assert res.mu[k] == pytest.approx(float((p * torch.log(p)).sum()), abs=float32_entropy(decay_constant=5000.0))


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_greedy_generation_batched_equals_alone(request, fixture):
    path = request.getfixturevalue(fixture)
    options = {"bias_types": ["gender", "age"], "decay_constant": 5000}
    reqs = [GenerateRequest(prompt=p, max_new_tokens=5) for p in PROMPTS]
    batched = wrapped(path, options, batch_size=4)[0].generate(reqs)
    alone = wrapped(path, options, batch_size=1)[0].generate(reqs)
    assert [r.text for r in batched] == [r.text for r in alone]
    assert all(1 <= r.n_tokens <= 5 for r in batched)

    # the first generated token is the argmax of p̃ computed by hand (left padding is undone)
    model, resolved = wrapped(path, options, batch_size=4)
    core = model.inner
    firsts = model.generate([GenerateRequest(prompt=p, max_new_tokens=1) for p in PROMPTS])
    for p, res in zip(PROMPTS, firsts):
        x = core.encode_prompt(GenerateRequest(prompt=p, max_new_tokens=1))
        token = int(debiased_by_hand(core, x, resolved["prefix_token_ids"], 5000.0).argmax())
        assert res.text == core.tokenizer.decode([token], skip_special_tokens=True)


def test_sampled_generation_through_the_wrapper(tiny_llama):
    model, _ = wrapped(tiny_llama, {"bias_types": ["gender"]})
    reqs = [GenerateRequest(prompt=p, max_new_tokens=4, temperature=1.0, top_p=0.9, seed=3) for p in PROMPTS]
    first, again = model.generate(reqs), model.generate(reqs)
    assert [r.text for r in first] == [r.text for r in again]


@pytest.mark.parametrize("lam", [50.0, 1e9])
def test_empty_prefix_changes_nothing(tiny_gpt2, lam):
    """sdb(x) = x gives Δ = 0, so α = 1 everywhere and p̃ = p, whatever λ."""
    # λ = 1e9 turns any Δ < 0 into a visible change, so there the plain and the prefixed forward passes
    # must be bit-equal: one request per batch gives them the same shape (forward passes of one row in
    # batches of other shapes differ in their last bits on some BLAS, e.g. under MKL_CBWR=COMPATIBLE)
    batch_size = 8 if lam == 50.0 else 1
    model, resolved = wrapped(tiny_gpt2, {"prefixes": [""], "decay_constant": lam}, batch_size=batch_size)
    assert resolved["prefix_token_ids"] == [[]]
    plain = load_model(tiny_gpt2, batch_size=batch_size)
    for a, b in zip(model.loglikelihood(REQUESTS), plain.loglikelihood(REQUESTS)):
        # Δ = 0 leaves the float32 rounding of renormalising (at λ = 50, also that of Δ between batches)
        tol = float32_logprob(b.n_tokens, b.logprob) if lam > 50.0 else \
            float32_debiased_logprob(b.n_tokens, b.logprob, decay_constant=lam)
        assert a.logprob == pytest.approx(b.logprob, abs=tol)
        assert a.is_greedy == b.is_greedy
    if lam == 50.0:  # generation's plain scores come from transformers' cached forward (not bit-equal)
        reqs = [GenerateRequest(prompt=p, max_new_tokens=5) for p in PROMPTS]
        assert [r.text for r in model.generate(reqs)] == [r.text for r in plain.generate(reqs)]


def test_not_applicable_to_the_mock_model():
    mock = load_model("mock")
    before = mock.info()
    mitigation = SelfDebias({})
    reason = mitigation.applicable(mock)
    assert reason is not None and "not a Hugging Face" in reason and "\n" not in reason
    for call in (lambda: mitigation.prepare(mock), lambda: mitigation.wrap(mock, {})):
        with pytest.raises(NotApplicableError, match="not a Hugging Face"):
            call()
    assert mock.info() == before
    assert not hasattr(mock, "steering")


def test_options_and_defaults(tiny_gpt2):
    assert SelfDebias({}).prefix_texts() == [TEMPLATE.format(d) for d in BIAS_TYPES.values()]
    assert SelfDebias.targets == ("fairness.stereotype_pairs", "fairness.stereoset")
    assert SelfDebias({}).options.decay_constant == 50.0
    for bad, text in [({"bias_types": ["gendr"]}, "unknown bias type"), ({"decay_constant": 0}, "decay_constant"),
                      ({"lambda": 3}, "unknown option"), ({"prefixes": []}, "at least one")]:
        with pytest.raises(BadInputError, match=text) as info:
            SelfDebias(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(BadInputError, match="not both"):
        SelfDebias({"bias_types": ["age"], "prefixes": ["x"]}).prepare(load_model(tiny_gpt2))
    with pytest.raises(BadInputError, match="prefix_token_ids"):
        SelfDebias({}).wrap(load_model(tiny_gpt2), {"prefix_token_ids": [[10**9]], "decay_constant": 50})


def test_report_lists_the_mitigation_and_changes_the_hash(tiny_gpt2):
    common = dict(probes=["fairness.stereotype_pairs"], limit=6, progress=False, use_cache=False)
    plain = trustslm.audit(load_model(tiny_gpt2), **common)
    model, resolved = wrapped(tiny_gpt2, {"bias_types": ["gender"]})
    debiased = trustslm.audit(model, **common)
    assert plain.model.mitigations == []
    (step,) = debiased.model.mitigations
    assert step["name"] == "self-debias" and step["options"]["bias_types"] == ["gender"]
    assert debiased.model.hash != plain.model.hash
    assert debiased.model.name.endswith("+self-debias")
    other, _ = wrapped(tiny_gpt2, {"bias_types": ["age"]})
    assert other.info().hash != debiased.model.hash  # other prefixes: another identity


def test_prefixed_sequences_are_cut_to_the_context_window(tmp_path):
    """A prefixed row longer than the window loses its oldest text tokens (after the BOS); the
    positions that keep a prefixed counterpart follow the formula, the others are unchanged."""
    from tests.conftest import build_tiny_model

    path = build_tiny_model(tmp_path / "short", "gpt2", positions=24)
    model, resolved = wrapped(path, {"prefixes": ["The nurse said:\n"], "decay_constant": 5000})
    core = model.inner
    (prefix,) = resolved["prefix_token_ids"]
    r = LoglikelihoodRequest("", "The cat sat on the mat and looked at the dog.")
    ctx, cont = core.encode_loglikelihood(r)
    row = (ctx + cont)[:-1]
    drop = len(row) + len(prefix) - core.max_length
    assert 0 < drop < len(row) - 1  # the case under test
    (got,) = model.loglikelihood([r])
    expected = 0.0
    for j in range(len(row)):  # position j predicts (ctx + cont)[j + 1]
        target = (ctx + cont)[j + 1]
        p = next_token_probs(core.model, row[: j + 1])
        if j >= 1 + drop:
            q = next_token_probs(core.model, row[:1] + prefix + row[1 + drop: j + 1])
            delta = p - q
            alpha = torch.where(delta >= 0, torch.ones_like(delta), torch.exp(5000.0 * delta))
            p = alpha * p / (alpha * p).sum()
        expected += float(torch.log(p[target]))
    tol = float32_debiased_logprob(len(row), expected, decay_constant=5000.0)
    assert got.logprob == pytest.approx(expected, abs=tol)
