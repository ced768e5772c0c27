"""A decoding-time mitigation returns a new adapter; the adapter it wraps answers as before.

Before this was so, ``SteeredModel`` appended its steering to the wrapped ``HFModel``: the plain
model object was steered from then on while it still reported the plain model's hash, so what
was cached for it afterwards was stored under the wrong identity.
"""

from __future__ import annotations

from trustslm.core.types import ModelInfo
from trustslm.models.base import GenerateRequest, LoglikelihoodRequest
from trustslm.workflows.load import load_model

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the sun and the moon"]


def _penalty(tmp_path, adapter, words: list[str], penalty: float):
    from trustslm.mitigations.toxicity import ToxicTokenPenalty

    (tmp_path / "words.txt").write_text("\n".join(words) + "\n")
    mitigation = ToxicTokenPenalty({"words": str(tmp_path / "words.txt"), "penalty": penalty})
    resolved, _ = mitigation.prepare(adapter)
    return mitigation.wrap(adapter, resolved)


def _outputs(adapter):
    scores = adapter.loglikelihood([LoglikelihoodRequest("", t) for t in TEXTS])
    texts = adapter.generate([GenerateRequest("the", max_new_tokens=8, temperature=1.0, seed=s) for s in range(4)])
    return [r.logprob for r in scores], [r.text for r in texts]


def _words_of(texts: list[str]) -> list[str]:
    return sorted({w for t in texts for w in t.split() if w.isalpha()})[:20]


def test_wrapping_with_a_steering_mitigation_leaves_the_plain_adapter_unchanged(tiny_gpt2, tmp_path):
    plain = load_model(str(tiny_gpt2))
    info: ModelInfo = plain.info()
    logprobs, generated = _outputs(plain)
    words = _words_of(generated + TEXTS)

    steered = _penalty(tmp_path, plain, words, penalty=50.0)
    steered_logprobs, steered_generated = _outputs(steered)
    # the steering is in force on the wrapper (so the check below is not vacuous)
    assert all(s < p - 1.0 for s, p in zip(steered_logprobs, logprobs))
    assert steered_generated != generated
    assert steered.info().hash != info.hash

    # and nowhere else: the plain adapter's outputs and identity are what they were
    assert _outputs(plain) == (logprobs, generated)
    assert plain.info() == info
    assert plain.steering == ()


def test_a_second_wrap_leaves_the_first_wrapper_unchanged(tiny_gpt2, tmp_path):
    plain = load_model(str(tiny_gpt2))
    _, generated = _outputs(plain)
    words = _words_of(generated + TEXTS)
    once = _penalty(tmp_path, plain, words[:5], penalty=5.0)
    once_outputs = _outputs(once)
    twice = _penalty(tmp_path, once, words[5:], penalty=5.0)

    assert _outputs(twice)[0] != once_outputs[0]     # both penalties apply to the second wrapper
    assert [m["name"] for m in twice.info().mitigations] == ["toxic-token-penalty"] * 2
    assert _outputs(once) == once_outputs            # the first wrapper still steers once
    assert len(once.info().mitigations) == 1
