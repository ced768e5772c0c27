"""The vLLM backend, where it can run: a CUDA GPU and the vllm package. Everywhere else (this
project's CI included) the module is skipped, and the backend is unverified: docs/backends.md
says so. What runs here without a GPU: the options and the one-line refusal."""

from __future__ import annotations

import pytest

from trustslm.core.errors import BadInputError
from trustslm.models.vllm_backend import VLLMModel


def _gpu_and_vllm() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def test_options_are_checked_and_a_missing_vllm_is_one_line(tiny_llama):
    with pytest.raises(BadInputError, match="unknown option 'n_ctx'"):
        VLLMModel.check_options({"n_ctx": "512"})
    if not _gpu_and_vllm():
        with pytest.raises(BadInputError) as err:
            VLLMModel.from_spec(str(tiny_llama), {})
        assert "\n" not in str(err.value)


@pytest.mark.skipif(not _gpu_and_vllm(), reason="needs a CUDA GPU and vllm")
def test_vllm_agrees_with_transformers_on_a_tiny_model(tiny_llama):
    from trustslm.models.base import GenerateRequest, LoglikelihoodRequest
    from trustslm.models.resolve import load_model

    pairs = [LoglikelihoodRequest("the cat sat on", " the mat"), LoglikelihoodRequest("", "a dog ran")]
    ours = load_model(str(tiny_llama), backend="vllm", model_args={"dtype": "float32"})
    hf = load_model(str(tiny_llama), model_args={"device": "cuda", "dtype": "float32"})
    for a, b in zip(ours.loglikelihood(pairs), hf.loglikelihood(pairs)):
        assert a.n_tokens == b.n_tokens and a.logprob == pytest.approx(b.logprob, abs=1e-3)
    sample = GenerateRequest("the cat", max_new_tokens=8, temperature=1.0, seed=1)
    assert ours.generate([sample]) == ours.generate([GenerateRequest("x", max_new_tokens=2), sample])[1:]
