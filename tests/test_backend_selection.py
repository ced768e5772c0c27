"""Choosing a backend and its device: ``--backend``, ``--device``, ``--dtype``, ``--batch-size auto``,
and the batch loop that halves a batch which does not fit in memory."""

from __future__ import annotations

import pytest
from conftest import assert_one_line_error, run_cli

from trustslm.core.errors import BadInputError
from trustslm.models.base import DEFAULT_BATCH_SIZE, BatchTooLarge, LoglikelihoodRequest
from trustslm.models.hf import HFModel, resolve_device
from trustslm.models.mock import ScriptedModel
from trustslm.models.resolve import backend_for


def test_backend_names_and_urls_pick_the_backend():
    assert backend_for("some/folder")[0] is HFModel
    assert backend_for("mock")[0] is ScriptedModel
    cls, arg = backend_for("model.gguf", backend="llama.cpp")
    assert (cls.__name__, arg) == ("LlamaCppModel", "model.gguf")
    cls, arg = backend_for("http://127.0.0.1:8000/v1")
    assert (cls.__name__, arg) == ("OpenAIModel", "http://127.0.0.1:8000/v1")
    assert backend_for("llamacpp:model.gguf", backend="llamacpp")[1] == "model.gguf"
    assert backend_for("folder", backend="transformers")[0] is HFModel
    with pytest.raises(BadInputError, match=r"unknown backend 'tensorrt' \(backends: .*llama\.cpp"):
        backend_for("folder", backend="tensorrt")
    with pytest.raises(BadInputError, match="contradicts"):
        backend_for("mock:x.yaml", backend="llama.cpp")


def test_auto_device_and_dtype_resolve_to_what_this_machine_has():
    import torch

    device, dtype = resolve_device("auto", "auto")
    if torch.cuda.is_available():
        assert device == "cuda" and dtype in ("bfloat16", "float16")
    elif not torch.backends.mps.is_available():
        assert (device, dtype) == ("cpu", "float32")
    assert resolve_device("cpu", "bfloat16") == ("cpu", "bfloat16")
    if not torch.cuda.is_available():
        with pytest.raises(BadInputError, match="device 'cuda' is not available here"):
            resolve_device("cuda", "auto")


def test_the_cli_refuses_bad_backend_choices_in_one_line(tmp_path):
    out = str(tmp_path / "r")
    assert_one_line_error(run_cli("audit", "mock", "--backend", "tensorrt", "--out", out), 2, "unknown backend")
    proc = run_cli("audit", "mock", "--dtype", "float16", "--out", out, "--no-progress")
    assert_one_line_error(proc, 2, "unknown option 'dtype'")
    assert_one_line_error(run_cli("audit", "mock", "--batch-size", "0", "--out", out), 2, "--batch-size")
    proc = run_cli("audit", "mock", "--device", "cpu", "--model-arg", "device=cuda", "--out", out)
    assert_one_line_error(proc, 2, "contradicts")


class _SmallMemory(ScriptedModel):
    """Raises BatchTooLarge for any batch above ``fits`` requests, like a GPU running out of memory."""

    def __init__(self, fits: int):
        super().__init__(batch_size=64)
        self.fits, self.sizes = fits, []

    def _loglikelihood_batch(self, batch):
        if len(batch) > self.fits:
            raise BatchTooLarge("CUDA out of memory")
        self.sizes.append(len(batch))
        return super()._loglikelihood_batch(batch)


def test_a_batch_too_large_is_halved_and_every_request_computed_once():
    requests = [LoglikelihoodRequest(f"context {i}", f" word{i}") for i in range(100)]
    expected = ScriptedModel(batch_size=7).loglikelihood(requests)
    model = _SmallMemory(fits=10)
    seen = []
    got = model.loglikelihood(requests, on_batch=lambda idx, out: seen.extend(idx))
    assert got == expected
    assert model.batch_size == 8  # 64 -> 32 -> 16 -> 8
    assert sorted(seen) == list(range(100)) and set(model.sizes) == {8, 4}  # 100 = 12 x 8 + 4
    assert ScriptedModel.from_spec("", {"batch_size": "auto"}).batch_size == DEFAULT_BATCH_SIZE
