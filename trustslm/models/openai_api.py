"""A model served behind an OpenAI-compatible HTTP API (llama.cpp's and llama-cpp-python's servers,
vLLM, Ollama, LM Studio, ...): ``trustslm audit http://127.0.0.1:8000/v1 --model-arg model=NAME``.

After lm-evaluation-harness's ``TemplateAPI`` / ``LocalCompletionsAPI`` (``lm_eval/models/
api_models.py``, ``openai_completions.py``): generation is ``POST /completions`` (``/chat/completions``
for chat requests, with the system prompt as a system message), a log-likelihood is ``POST
/completions`` of context + continuation with ``echo: true, logprobs: 1, max_tokens: 1`` whose
echoed per-token log-probs after the context are summed. As in Inspect's model providers, the
backend only makes the calls; retries (connection errors, timeouts, 429 and 5xx, exponential
backoff with jitter, a bounded ``Retry-After``) and concurrency (a thread pool inside each batch)
are generic. HTTP is the standard library's (``urllib.request``); redirects are not followed (they
would carry the API key to another address), every response body is read up to
:data:`~trustslm.core.limits.MAX_RESPONSE_BYTES` and no further, and the API key (read from the
environment variable ``api_key_env`` names) is sent as ``Authorization: Bearer`` only: it is
never part of the options, the identity, the report, the cache or a message (each message is
redacted).

**At start** (:meth:`OpenAIModel.create`), ``GET /models`` names the served model, then tiny
requests find what the server can do: ``/completions`` (capability ``generate``),
``/chat/completions`` (``chat_template``) and echoed prompt log-probs (``loglikelihood`` and
``token_logprobs``). A capability that is missing has its reason in ``missing_reasons``, which the
report quotes for each probe skipped. A server that is unreachable or answers garbage at start is
a one-line ``BadInputError`` (exit 2); during the run, a request that still fails after its
retries, or an answer that is not what was asked for, is a one-line ``BackendError`` (exit 3), and
the batches finished before it are already in the cache for ``--resume``.

**Echoed log-probs are checked before they are trusted.** What llama-cpp-python's server
(0.3.36, the same code as 0.3.35's ``Llama._create_completion``) returns with ``echo``: it pairs the
i-th echoed token with the i-th row of its logits, after dropping a leading BOS token from the
tokens but not from the rows (row i is the distribution of the token after position i). For a
model whose tokenizer adds a BOS token the two line up and the values are right, except that the
first prompt token's log-prob is set to null (OpenAI's convention) although it was computed. For
a model that adds none (SmolLM2, GPT-2 and Qwen tokenizers: ``tokenizer.ggml.add_bos_token =
false``) every value is one position late: the value reported for token i is log p(token i |
tokens 0..i), the probability of the token coming again, and ``top_logprobs[i]`` is the
distribution of token i + 1 (llama-cpp-python issues #1983, #1276). Measured on SmolLM2-135M-Instruct
Q4_1 (``tests/test_openai_backend.py`` checks it) for "The capital of France is Paris": the server
reports " capital" -9.600, " of" -10.462, " France" -11.226, " is" -11.795, " Paris" -8.453, with
top_logprobs " of" -0.412, " the" -1.988, " is" -0.432, " Paris" -0.264, "." -0.376; in-process
llama.cpp (``Llama(logits_all=True)``, log-softmax of the logits) gives exactly those numbers as
row i at token i, and the right values, row i - 1 at token i, are -11.450, -0.412, -2.521, -0.432,
-0.264 (transformers on the same weights, ``load_model("smollm2")``: -11.539, -0.338, -2.439,
-0.451, -0.258). The right value of token i + 1 is in the output only when it is among the top
``logprobs`` entries of position i, so it can't be recovered in general, and is not: the start-up
check asks the server to generate one token greedily after a short text (``echo: false``, whose
log-prob every server computes at the right position: " Paris" -0.264 above), then echoes the text
with that token appended and compares the two log-probs of the same token (-8.453 here). Within
0.1 nats (:data:`ALIGNMENT_TOLERANCE`) the echoed values are used; otherwise ``loglikelihood`` and
``token_logprobs`` are refused with the reason, naming the off-by-one when ``top_logprobs`` at the
position before hold the generated token's value (the signature above). Started with
``--kv_overrides tokenizer.ggml.add_bos_token=bool:true`` the same server passes the check (its
log-likelihoods then agree with in-process llama.cpp with the same override within 1e-3; the
model then sees its BOS token, ``<|im_start|>`` for SmolLM2, before every prompt). A server that
echoes no prompt log-probs (llama.cpp's own ``llama-server`` gives them for generated tokens
only) is refused the same way. Note also that llama.cpp's numbers move with the way a prompt is
split into decode batches, which llama-cpp-python's server decides from the prefix it has cached
from the request before: the same greedy request gave ``,`` -0.4242 after an unrelated request
and -0.4214 right after itself, and a seeded sample repeated back to back diverged after a few
tokens, so its results are reproducible from the same sequence of requests, not from any. With
``--model-arg tokenizer=PATH`` (the served model's Hugging Face tokenizer folder or GGUF file) the
context/continuation boundary is found by token counts, as in :mod:`trustslm.models.hf`; without
it, by the echoed ``text_offset`` (tokens starting at or after the context's end).

An empty context conditions on whatever the server starts the prompt with (its BOS token when the
model adds one); the server gives no log-prob for the first prompt token, so that token is not
scored (``n_tokens`` counts the tokens scored). Log-likelihoods of ``chat=True`` requests need the
chat template rendered here: with a local tokenizer that has one, the context is rendered with it;
without, ``chat_template`` is declared only when the server has no log-likelihoods (so no probe
mixes a server-rendered chat generation with a plain log-likelihood). A generation request's
``add_bos`` puts the local tokenizer's BOS text before the prompt when the server adds none
(without a tokenizer the prompt is sent as it is).

**Identity.** The request cache keys on a digest of the URL, the served model id, the server's
``/models`` entry for it (fields that change from one request to the next, and a ``created`` that
is merely the response's time, left out), the local tokenizer's files, the chat template used for
chat log-likelihoods and ``extra_body``; never the key. It can't see what the
server does not report: a server that swaps weights, quantization, context size or its own
sampling defaults under the same id and metadata serves its old cached results with ``--resume``.
Change the model id (``--model_alias`` of llama-cpp-python, ``--served-model-name`` of vLLM) or
skip ``--resume`` when the model behind a URL changes.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from trustslm.core.errors import BackendError, BadInputError, TrustSLMError
from trustslm.core.hashing import sha256_json, sha256_text
from trustslm.core.limits import MAX_RESPONSE_BYTES
from trustslm.core.textfiles import check_tree, one_line
from trustslm.core.types import FileRecord, ModelInfo
from trustslm.models.base import (
    CHAT_TEMPLATE,
    GENERATE,
    LOGLIKELIHOOD,
    TOKEN_LOGPROBS,
    TOKENIZER,
    VOCAB_STATS,
    BackendOptions,
    GenerateRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelAdapter,
    Request,
    TokenScoresRequest,
    TokenScoresResult,
    apply_stop,
    request_seed,
)

#: The longest wait a server's ``Retry-After`` can ask for; a longer one is cut to this.
MAX_RETRY_AFTER_S = 60.0
#: The longest backoff between two tries.
MAX_BACKOFF_S = 60.0
#: Echoed and generated log-probs of the same token may differ by this much and still agree: a
#: server's numbers move with the way it splits a prompt into decode batches (llama.cpp on a Q4_1
#: model: up to 0.04 nats here); an off-by-one error is several nats.
ALIGNMENT_TOLERANCE = 0.1
#: Texts the start-up check generates one token after (the second if the first is inconclusive).
CHECK_TEXTS = ("The capital of France is", "One, two, three, four,")
#: At most this many stop strings are sent (OpenAI's limit); all of them are applied here.
MAX_STOP_SENT = 4
#: Fields of a request body the backend sets itself; ``extra_body`` can't override them.
RESERVED_FIELDS = frozenset({"model", "prompt", "messages", "max_tokens", "echo", "logprobs", "temperature",
                             "top_p", "top_k", "stop", "seed", "stream", "n", "best_of"})
#: Files of a Hugging Face tokenizer folder that are loaded (and hashed) when present.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "spiece.model", "vocab.txt",
                   "chat_template.jinja", "chat_template.json", "config.json")


class OpenAIOptions(BackendOptions):
    """Options of a served model (``--model-arg KEY=VALUE``)."""

    model: str | None = Field(default=None, min_length=1, max_length=1000,
                              description="The served model's id (default: the only, else the first, id of GET /models).")
    api_key_env: str = Field(default="OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
                             description="Name of the environment variable holding the API key, sent as "
                                         "'Authorization: Bearer'; unset or empty: no key is sent.")
    concurrency: int = Field(default=4, ge=1, le=256, description="Requests in flight at once (within each batch).")
    max_retries: int = Field(default=5, ge=0, le=100, description="Retries of a request after a connection error, "
                                                                  "a timeout, HTTP 429 or 5xx.")
    retry_backoff: float = Field(default=1.0, ge=0, le=60, description="Seconds of the first backoff; each retry "
                                                                       "doubles it (with jitter), up to 60 s.")
    timeout: float = Field(default=120.0, gt=0, le=3600, description="Seconds one request may take.")
    tokenizer: Path | None = Field(default=None, description="The served model's tokenizer: a Hugging Face "
                                   "tokenizer folder or a .gguf file (local files only). Gives token counts "
                                   "and the 'tokenizer' capability.")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="JSON object of extra fields sent with "
                                       "every generation request (e.g. {\"repeat_penalty\": 1.0} for "
                                       "llama-cpp-python's server); recorded in the identity.")
    cache_dir: Path | None = Field(default=None, description="Where file hashes are remembered.")

    @field_validator("extra_body", mode="before")
    @classmethod
    def _parse_extra_body(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not a JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        reserved = sorted(RESERVED_FIELDS & set(value))
        if reserved:
            raise ValueError(f"sets fields the backend sets itself: {', '.join(reserved)}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must hold JSON values only ({exc})") from None
        return value


# -- the server's address -------------------------------------------------------------------------
def check_url(spec: str) -> str:
    """``spec`` as the server's base URL (http or https, no trailing slash), or a one-line
    ``BadInputError``. Credentials and query strings are refused: the key goes in an environment
    variable, so it can't end up in the report, the cache or a log."""
    text = spec.strip()
    if not text or any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise BadInputError("openai model: the server's address is not a URL (it is empty or holds spaces or "
                            "control characters)")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError as exc:
        raise BadInputError(f"openai model: not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BadInputError("openai model: the server's address must be an http:// or https:// URL "
                            f"naming a host (got scheme {one_line(parts.scheme[:16])!r})")
    host = parts.hostname
    shown = f"{parts.scheme.lower()}://{'[' + host + ']' if ':' in host else host}{f':{port}' if port else ''}{parts.path}"
    if has_credentials:
        raise BadInputError(f"openai model: a URL with credentials is refused ({one_line(shown)}): put the API key "
                            "in an environment variable and name it with --model-arg api_key_env=NAME")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise BadInputError(f"openai model: a URL with a query string or fragment is refused ({one_line(shown)}): "
                            "pass an API key through --model-arg api_key_env=NAME")
    return shown.rstrip("/")


# -- HTTP ------------------------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send the Authorization header elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


class _Failure(Exception):
    """One try failed; ``retry`` says whether another may succeed, ``wait`` what the server asked for."""

    def __init__(self, message: str, *, retry: bool, wait: float | None = None, refused: bool = False):
        super().__init__(message)
        self.retry, self.wait, self.refused = retry, wait, refused


class HTTPClient:
    """JSON over HTTP to one base URL, with retries; thread-safe (a connection per request)."""

    def __init__(self, base_url: str, *, api_key: str | None, timeout: float, max_retries: int, backoff: float):
        self.base_url = base_url
        self._key = api_key or None
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self._opener = urllib.request.build_opener(_NoRedirect())
        #: Set when a request of the batch failed for good: the others stop retrying.
        self.abort = threading.Event()

    def redact(self, text: str) -> str:
        """``text`` as one line without the API key in it."""
        if self._key:
            text = text.replace(self._key, "<redacted>")
        return one_line(text)

    def get(self, path: str, *, retries: int | None = None, retry_refused: bool = True) -> Any:
        return self._call("GET", path, None, retries, retry_refused)

    def post(self, path: str, body: dict, *, retries: int | None = None, retry_refused: bool = True) -> Any:
        return self._call("POST", path, body, retries, retry_refused)

    def _call(self, method: str, path: str, body: dict | None, retries: int | None, retry_refused: bool) -> Any:
        retries = self.max_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return self._once(method, path, body)
            except _Failure as exc:
                if (not exc.retry or attempt >= retries or self.abort.is_set()
                        or (exc.refused and not retry_refused)):
                    tries = f" (after {attempt + 1} tries)" if attempt else ""
                    raise _Failure(f"{exc}{tries}", retry=False) from None
                delay = min(MAX_BACKOFF_S, self.backoff * 2**attempt)
                delay = delay / 2 + random.uniform(0, delay / 2)
                if exc.wait is not None:
                    delay = max(delay, min(exc.wait, MAX_RETRY_AFTER_S))
                attempt += 1
                self.abort.wait(delay)  # returns at once when another request of the batch failed for good

    def _once(self, method: str, path: str, body: dict | None) -> Any:
        url = self.base_url + path
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self._key:
            req.add_header("Authorization", f"Bearer {self._key}")
        where = f"{method} {path}"
        deadline = time.monotonic() + self.timeout
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = _read_bounded(resp, deadline, where)
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                detail = _error_detail(_read_bounded(exc, deadline, where, limit=64 * 1024))
            except _Failure:
                detail = ""
            finally:
                exc.close()
            message = f"{where} answered HTTP {status}{': ' + detail if detail else ''}"
            if 300 <= status < 400:
                message += " (a redirect, not followed: give the address it redirects to)"
            elif status in (401, 403):
                message += " (the API key is read from the environment variable api_key_env names)"
            retry = status in (408, 429) or (status >= 500 and status not in (501, 505))
            raise _Failure(self.redact(message), retry=retry, wait=_retry_after(exc.headers)) from None
        except _Failure:
            raise
        except (TimeoutError, OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            refused = isinstance(reason, ConnectionRefusedError)
            text = str(reason) or type(reason).__name__
            if isinstance(reason, TimeoutError) or "timed out" in text:
                text = f"no answer within {self.timeout:g} s"
            raise _Failure(self.redact(f"{where} failed: {text}"), retry=True, refused=refused) from None
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            at_end = isinstance(exc, json.JSONDecodeError) and exc.pos > 0 and (
                exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string"))
            what = "truncated JSON" if at_end else "not JSON"
            snippet = raw[:80].decode("utf-8", "replace")
            raise _Failure(self.redact(f"{where} answered {what} ({len(raw)} bytes: {snippet!r})"),
                           retry=False) from None
        try:  # the project's one check of parsed data: nesting depth and lone surrogates
            check_tree(value, f"{where} answered JSON that")
        except BadInputError as exc:
            raise _Failure(self.redact(str(exc)), retry=False) from None
        return value


def _read_bounded(resp, deadline: float, where: str, *, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """The body, read in chunks up to ``limit`` bytes and ``deadline``; never a byte more."""
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise _Failure(f"{where} failed: the answer took longer than the timeout", retry=True)
        chunk = resp.read(min(65536, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _Failure(f"{where} answered more than {limit} bytes (MAX_RESPONSE_BYTES)", retry=False)


def _error_detail(raw: bytes) -> str:
    """The message of an error body (OpenAI's ``{"error": {"message": ...}}``, FastAPI's
    ``{"detail": ...}``), or the body's start, cut to 200 characters."""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            err = data.get("error", data.get("detail", data.get("message")))
            if isinstance(err, dict):
                err = err.get("message", err)
            text = err if isinstance(err, str) else json.dumps(err)[:200]
    except (ValueError, RecursionError):
        pass
    text = " ".join(text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _retry_after(headers) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), or None."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# -- the adapter -----------------------------------------------------------------------------------
class OpenAIModel(ModelAdapter):
    """A model behind an OpenAI-compatible server (see the module's docstring)."""

    backend = "openai"
    Options = OpenAIOptions

    def __init__(self, url: str, options: OpenAIOptions):
        self.url = url
        self.options = options
        self.batch_size = options.batch_size
        self.missing_reasons: dict[str, str] = {}
        key = os.environ.get(options.api_key_env) or None
        self.client = HTTPClient(url, api_key=key, timeout=options.timeout, max_retries=options.max_retries,
                                 backoff=options.retry_backoff)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.tokenizer: Any = None
        self._tokenizer_files: list[FileRecord] = []
        self._tokenizer_hash: str | None = None
        self._local_chat = False  # chat log-likelihoods rendered with the local tokenizer's template
        self._server_adds_bos: bool | None = None
        self.model_id = ""
        self.model_entry: dict[str, Any] = {}
        self.alignment_check: dict[str, Any] = {}

    # -- start ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, spec: str, options: OpenAIOptions) -> OpenAIModel:
        """Connect to the server at ``spec``, pick the model and find out what it can do; any
        problem is a one-line ``BadInputError`` naming the URL (never the key)."""
        model = cls(check_url(spec), options)
        try:
            model._start()
        except (_Failure, BackendError) as exc:
            model.close()
            raise BadInputError(model.client.redact(f"openai model at {model.url}: {exc}")) from None
        except BaseException:
            model.close()
            raise
        return model

    def _start(self) -> None:
        if self.options.tokenizer is not None:
            self._load_tokenizer(Path(self.options.tokenizer).expanduser())
        self.model_id, self.model_entry = self._pick_model()
        caps: set[str] = set()
        reason = self._probe_completions()
        if reason is None:
            caps.add(GENERATE)
        else:
            self.missing_reasons[GENERATE] = reason
        chat_reason = self._probe_chat()
        if GENERATE in caps:
            ll_reason = self._probe_logprobs()
        else:
            ll_reason = "the server's /completions endpoint does not work (see generate)"
        if ll_reason is None:
            caps |= {LOGLIKELIHOOD, TOKEN_LOGPROBS}
        else:
            self.missing_reasons[LOGLIKELIHOOD] = self.missing_reasons[TOKEN_LOGPROBS] = ll_reason
        if chat_reason is None:
            if LOGLIKELIHOOD not in caps:
                caps.add(CHAT_TEMPLATE)
            elif self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None):
                caps.add(CHAT_TEMPLATE)
                self._local_chat = True
            else:
                chat_reason = ("chat log-likelihoods need the chat template here: give the served model's "
                               "tokenizer with --model-arg tokenizer=PATH (one with a chat template)")
        if chat_reason is not None:
            self.missing_reasons[CHAT_TEMPLATE] = chat_reason
        self.missing_reasons[VOCAB_STATS] = "a server gives log-probs of a few top tokens, not of the whole vocabulary"
        if self.tokenizer is not None:
            caps.add(TOKENIZER)
        else:
            self.missing_reasons[TOKENIZER] = "no local tokenizer (--model-arg tokenizer=PATH)"
        self.capabilities = frozenset(caps)
        self.missing_reasons = {k: self.client.redact(v) for k, v in self.missing_reasons.items()}

    def _pick_model(self) -> tuple[str, dict[str, Any]]:
        """The served model's id and its ``/models`` entry, without the fields that change from one
        request to the next."""
        first = self.client.get("/models", retries=min(2, self.options.max_retries), retry_refused=False)
        entries = _model_entries(first, self.url)
        ids = [e["id"] for e in entries]
        if self.options.model is None:
            model_id = ids[0]
        elif self.options.model in ids:
            model_id = self.options.model
        else:
            shown = ", ".join(repr(i) for i in ids[:10]) + (", ..." if len(ids) > 10 else "")
            raise BadInputError(one_line(f"openai model at {self.url}: the server does not serve "
                                         f"{self.options.model!r} (it serves {shown})"))
        entry = next(e for e in entries if e["id"] == model_id)
        again = next((e for e in _model_entries(self.client.get("/models", retries=2), self.url)
                      if e.get("id") == model_id), {})
        stable = {k: v for k, v in entry.items() if again.get(k) == v}
        created = stable.get("created")
        if isinstance(created, (int, float)) and abs(created - time.time()) < 120:
            del stable["created"]  # the time of the response (vLLM), not of the model
        return model_id, stable

    def _probe_completions(self) -> str | None:
        try:
            out = self.client.post("/completions", {"model": self.model_id, "prompt": "Hello", "max_tokens": 1,
                                                    "temperature": 0}, retries=2)
            _choice_text(out, "/completions")
        except (_Failure, BackendError) as exc:
            return f"POST /completions does not work: {exc}"
        return None

    def _probe_chat(self) -> str | None:
        try:
            out = self.client.post("/chat/completions", {
                "model": self.model_id, "messages": [{"role": "user", "content": "Hello."}], "max_tokens": 1,
                "temperature": 0}, retries=2)
            _chat_text(out)
        except (_Failure, BackendError) as exc:
            return f"POST /chat/completions does not work: {exc}"
        return None

    def _probe_logprobs(self) -> str | None:
        """Whether echoed prompt log-probs are there and aligned (see the module's docstring):
        None, or why they are not used."""
        reason = "no check text was conclusive"
        for text in CHECK_TEXTS:
            try:
                reason, conclusive = self._check_alignment(text)
            except (_Failure, BackendError) as exc:
                return f"echoed log-probs could not be checked: {exc}"
            if conclusive:
                break
        if reason is None and self.tokenizer is not None:
            reason = self._check_tokenizer()
        return reason

    def _check_alignment(self, text: str) -> tuple[str | None, bool]:
        gen = self.client.post("/completions", {"model": self.model_id, "prompt": text, "max_tokens": 1,
                                                "temperature": 0, "logprobs": 1}, retries=2)
        choice = _one_choice(gen, "/completions")
        token = choice.get("text")
        lp = choice.get("logprobs")
        values = lp.get("token_logprobs") if isinstance(lp, dict) else None
        if not isinstance(token, str) or not isinstance(values, list) or not values or not _is_number(values[0]):
            return "the server returns no log-probs (logprobs: 1 gave none)", True
        if not token.strip():
            return "the start-up check generated only white space", False
        generated = float(values[0])
        echo = self.client.post("/completions", {"model": self.model_id, "prompt": text + token, "max_tokens": 1,
                                                 "temperature": 0, "logprobs": 1, "echo": True}, retries=2)
        entries = _echo_entries(_one_choice(echo, "/completions"), text + token, where="/completions")
        if entries is None or sum(1 for e in entries if e.offset < len(text)) < 2:
            return ("the server returns no log-probs for the prompt (with echo: true it gives those of the "
                    "generated token only)"), True
        at = [i for i, e in enumerate(entries) if e.offset == len(text)]
        if not at or entries[at[0]].token != token or entries[at[0]].logprob is None:
            return "the start-up check was inconclusive (the generated token was tokenized differently)", False
        i = at[0]
        echoed = entries[i].logprob
        self.alignment_check = {"text": text, "token": token, "generated_logprob": generated,
                                "echoed_logprob": echoed}
        if abs(echoed - generated) <= ALIGNMENT_TOLERANCE:
            return None, True
        prev = entries[i - 1].top if i > 0 else None
        shifted = bool(prev) and any(abs(v - generated) <= ALIGNMENT_TOLERANCE for v in prev.values())
        detail = (f"after {text!r} the server generates {token!r} with log-prob {generated:.3f} but its echoed "
                  f"log-prob for the same token is {echoed:.3f}")
        if shifted:
            return (f"the server's echoed prompt log-probs are off by one position ({detail}, and the value "
                    "sits at the position before: llama-cpp-python's server on a model whose tokenizer adds "
                    "no BOS token; audit the GGUF file in-process instead)"), True
        return f"the server's echoed prompt log-probs disagree with its generated ones ({detail})", True

    def _check_tokenizer(self) -> str | None:
        """The local tokenizer must count the server's tokens: a boundary found by the wrong
        tokenizer would score the wrong tokens."""
        text = CHECK_TEXTS[0] + " Paris, and the capital of Italy is Rome."
        out = self.client.post("/completions", {"model": self.model_id, "prompt": text, "max_tokens": 1,
                                                "temperature": 0, "logprobs": 1, "echo": True}, retries=2)
        entries = _echo_entries(_one_choice(out, "/completions"), text, where="/completions")
        n_server = sum(1 for e in (entries or []) if e.offset < len(text))
        n_local = len(self._encode(text))
        if n_server != n_local:
            raise BadInputError(one_line(f"openai model at {self.url}: the tokenizer given ({self.options.tokenizer}) "
                                         f"splits a check text into {n_local} tokens, the server into {n_server}: "
                                         "give the served model's own tokenizer"))
        usage = out.get("usage") if isinstance(out, dict) else None
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if isinstance(prompt_tokens, int):
            self._server_adds_bos = prompt_tokens > n_local
        return None

    # -- the local tokenizer ----------------------------------------------------------------------
    def _load_tokenizer(self, path: Path) -> None:
        from trustslm.core.hashing import sha256_file
        from trustslm.core.limits import MAX_SIDE_FILE_BYTES
        from trustslm.core.resources import cache_dir
        from trustslm.models.validate import check_config, check_gguf, check_size, require_regular

        memo = Path(self.options.cache_dir) if self.options.cache_dir is not None else cache_dir()
        if not path.exists():
            raise BadInputError(f"openai model: the tokenizer {path} does not exist")
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise BadInputError(f"openai model: the tokenizer must be a folder or a .gguf file, not {path.name}")
            require_regular(path)
            check_gguf(path)
            files = {path.name: path}
            kwargs: dict[str, Any] = {"gguf_file": path.name}
            folder = path.parent
        else:
            files = {}
            for name in TOKENIZER_FILES:
                f = path / name
                if f.exists() or f.is_symlink():
                    require_regular(f, shown=f"{name} in {path}")
                    check_size(f, MAX_SIDE_FILE_BYTES)
                    if name.endswith(".json"):
                        check_config(f)
                    files[name] = f
            if not any(n in files for n in ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model",
                                            "vocab.txt")):
                raise BadInputError(f"openai model: {path} holds no tokenizer files (tokenizer.json, vocab.json, ...)")
            kwargs, folder = {}, path
        self._tokenizer_files = [FileRecord(path=name, sha256=sha256_file(f, memo_dir=memo), size=f.stat().st_size)
                                 for name, f in sorted(files.items())]
        self._tokenizer_hash = sha256_json([[r.path, r.sha256] for r in self._tokenizer_files])
        try:
            import transformers
            from transformers import AutoTokenizer

            from trustslm.models.staging import staged

            transformers.logging.set_verbosity_error()
            with staged(files, folder, contain=False) as where:
                self.tokenizer = AutoTokenizer.from_pretrained(str(where), local_files_only=True,
                                                               trust_remote_code=False, **kwargs)
        except TrustSLMError:
            raise
        except Exception as exc:  # transformers raises many types on a bad tokenizer
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BadInputError(one_line(f"openai model: the tokenizer {path} does not load: {first}")) from None

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def split_tokens(self, text: str, k: int) -> tuple[str, str]:
        if self.tokenizer is None:
            return super().split_tokens(text, k)
        if k <= 0:
            return "", text
        try:
            offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        except (NotImplementedError, TypeError, ValueError):  # slow tokenizers have no offsets
            ids = self._encode(text)
            head = self.tokenizer.decode(ids[:k])
            return head, text[len(head):] if text.startswith(head) else self.tokenizer.decode(ids[k:])
        if len(offsets) <= k:
            return text, ""
        return text[: offsets[k][0]], text[offsets[k][0]:]

    def request_length(self, request: Request) -> int:
        if isinstance(request, LoglikelihoodRequest):
            text = request.context + request.continuation
        elif isinstance(request, TokenScoresRequest):
            text = request.text
        else:
            text = request.prompt
        return len(self._encode(text)) if self.tokenizer is not None else len(text)

    # -- identity -----------------------------------------------------------------------------
    def info(self) -> ModelInfo:
        template = getattr(self.tokenizer, "chat_template", None) if self._local_chat else None
        options = {"url": self.url, "model": self.model_id, "tokenizer_sha256": self._tokenizer_hash}
        if self.options.extra_body:
            options["extra_body"] = self.options.extra_body
        return ModelInfo(
            spec=self.url,
            kind="served",
            name=self.model_id,
            path=None,
            files=self._tokenizer_files,
            hash=sha256_json({"url": self.url, "model": self.model_id, "entry": self.model_entry,
                              "tokenizer": self._tokenizer_hash}),
            capabilities=sorted(self.capabilities),
            chat_template=CHAT_TEMPLATE in self.capabilities,
            backend=self.backend,
            backend_versions={},
            backend_options=options,
            device=None,
            chat_template_sha256=sha256_text(template if isinstance(template, str) else json.dumps(template))
            if template else None,
        ).with_identity()

    # -- batches --------------------------------------------------------------------------------
    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` with up to ``concurrency`` in flight; results in order. The first
        failure stops the others (no more retries) and is raised as a one-line ``BackendError``."""
        self.client.abort.clear()
        try:
            if self.options.concurrency == 1 or len(items) <= 1:
                return [fn(x) for x in items]
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.options.concurrency,
                                                    thread_name_prefix="trustslm-openai")
                pool = self._pool
            futures = [pool.submit(fn, x) for x in items]
            try:
                done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # Ctrl-C: stop retrying, drop what has not started
                self.client.abort.set()
                for f in futures:
                    f.cancel()
                raise
            failed = next((f for f in futures if f in done and f.exception() is not None), None)
            if failed is not None:
                self.client.abort.set()
                for f in pending:
                    f.cancel()
                wait(pending)
                raise failed.exception()  # type: ignore[misc]
            return [f.result() for f in futures]
        except (_Failure, BackendError) as exc:
            raise BackendError(self.client.redact(f"openai model at {self.url}: {exc}")) from None
        finally:
            self.client.abort.clear()

    def _loglikelihood_batch(self, batch: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        return self._map(self._loglikelihood_one, batch)

    def _token_scores_batch(self, batch: list[TokenScoresRequest]) -> list[TokenScoresResult]:
        return self._map(self._token_scores_one, batch)

    def _generate_batch(self, batch: list[GenerateRequest]) -> list[GenerationResult]:
        return self._map(self._generate_one, batch)

    def _scored_tokens(self, context: str, continuation: str) -> list[_Entry]:
        """The echoed entries of ``continuation``'s tokens after ``context``."""
        prompt = context + continuation
        body = {"model": self.model_id, "prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": 1,
                "echo": True}
        choice = _one_choice(self.client.post("/completions", body), "/completions")
        entries = _echo_entries(choice, prompt, where="/completions")
        if entries is None:
            raise BackendError("the server's echo answer has no log-probs for the prompt")
        in_prompt = _prompt_entries(choice, prompt, entries)
        if self.tokenizer is not None:
            # counted from the end: a server may leave special tokens out of what it echoes
            n_cont = len(self._encode(prompt)) - len(self._encode(context))
            if len(in_prompt) < n_cont:
                raise BackendError(f"the server echoed {len(in_prompt)} prompt tokens where the tokenizer given "
                                   f"counts {n_cont} in the continuation alone")
            return in_prompt[len(in_prompt) - n_cont:] if n_cont > 0 else []
        return [e for e in in_prompt if e.offset >= len(context)]

    def _chat_context(self, context: str) -> str:
        from trustslm.models.chat_guard import bounded_render

        messages = [{"role": "user", "content": context}]
        return bounded_render(lambda: self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False))

    def _loglikelihood_one(self, r: LoglikelihoodRequest) -> LoglikelihoodResult:
        context, continuation = r.context, r.continuation
        if r.chat:
            if not self._local_chat:
                raise BackendError("a chat log-likelihood needs the chat template (--model-arg tokenizer=PATH)")
            context = self._chat_context(context)
        else:
            n_spaces = len(context) - len(context.rstrip())
            if n_spaces:  # the word-boundary space belongs to the continuation (lm-evaluation-harness)
                context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        if not continuation:
            return LoglikelihoodResult(logprob=0.0, is_greedy=True, n_tokens=0)
        scored = [e for e in self._scored_tokens(context, continuation) if e.logprob is not None]
        greedy = all(e.top is None or e.logprob >= max(e.top.values(), default=e.logprob) - 1e-6 for e in scored)
        return LoglikelihoodResult(logprob=float(sum(e.logprob for e in scored)), is_greedy=greedy,
                                   n_tokens=len(scored))

    def _token_scores_one(self, r: TokenScoresRequest) -> TokenScoresResult:
        if not r.text:
            return TokenScoresResult(logprobs=[])
        return TokenScoresResult(logprobs=[float(e.logprob) for e in self._scored_tokens("", r.text)
                                           if e.logprob is not None])

    def _generate_one(self, r: GenerateRequest) -> GenerationResult:
        body: dict[str, Any] = {**self.options.extra_body, "model": self.model_id, "max_tokens": r.max_new_tokens,
                                "temperature": r.temperature, "top_p": r.top_p, "seed": request_seed(r, bits=31)}
        if r.top_k > 0:
            body["top_k"] = r.top_k
        if r.stop:
            body["stop"] = list(r.stop[:MAX_STOP_SENT])
        if r.chat:
            messages = ([{"role": "system", "content": r.system_prompt}] if r.system_prompt else []) + [
                {"role": "user", "content": r.prompt}]
            out = self.client.post("/chat/completions", {**body, "messages": messages})
            text, finish = _chat_text(out)
        else:
            prompt = f"{r.system_prompt}\n\n{r.prompt}" if r.system_prompt else r.prompt
            if r.add_bos and self.tokenizer is not None and self._server_adds_bos is False:
                bos = getattr(self.tokenizer, "bos_token", None)
                if isinstance(bos, str) and bos and not prompt.startswith(bos):
                    prompt = bos + prompt
            out = self.client.post("/completions", {**body, "prompt": prompt})
            text, finish = _choice_text(out, "/completions")
        text, cut = apply_stop(text, r.stop)
        usage = out.get("usage") if isinstance(out, dict) else None
        n = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if not (isinstance(n, int) and not isinstance(n, bool)):
            n = len(self._encode(text)) if self.tokenizer is not None else len(text.split())
        return GenerationResult(text=text, n_tokens=max(0, min(int(n), r.max_new_tokens)),
                                finish_reason="length" if finish == "length" and not cut else "stop")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __getstate__(self) -> dict:  # an executor may copy the adapter to a replica
        state = dict(self.__dict__)
        state["_pool"] = None
        state.pop("_pool_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pool_lock = threading.Lock()


# -- reading answers -------------------------------------------------------------------------------
class _Entry:
    """One echoed token: its text, where it starts in the prompt, its log-prob (None for the
    first) and the top log-probs at its position."""

    __slots__ = ("token", "offset", "logprob", "top")

    def __init__(self, token: str, offset: int, logprob: float | None, top: dict[str, float] | None):
        self.token, self.offset, self.logprob, self.top = token, offset, logprob, top


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _model_entries(data: Any, url: str) -> list[dict[str, Any]]:
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BadInputError(f"openai model at {url}: GET /models did not answer a model list")
    entries = [e for e in items if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"]]
    if not entries:
        raise BadInputError(f"openai model at {url}: GET /models lists no model ids")
    return entries


def _one_choice(data: Any, where: str) -> dict[str, Any]:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        n = len(choices) if isinstance(choices, list) else "no"
        raise BackendError(f"POST {where} answered {n} choices for one prompt")
    return choices[0]


def _choice_text(data: Any, where: str) -> tuple[str, str | None]:
    choice = _one_choice(data, where)
    text = choice.get("text")
    if not isinstance(text, str):
        raise BackendError(f"POST {where} answered a choice without text")
    return text, choice.get("finish_reason")


def _chat_text(data: Any) -> tuple[str, str | None]:
    choice = _one_choice(data, "/chat/completions")
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise BackendError("POST /chat/completions answered a message whose content is not text")
    if not isinstance(message, dict):
        raise BackendError("POST /chat/completions answered a choice without a message")
    return content or "", choice.get("finish_reason")


def _prompt_entries(choice: dict[str, Any], prompt: str, entries: list[_Entry]) -> list[_Entry]:
    """The entries of the prompt's tokens, without the generated one(s) after them. Where the
    echoed tokens spell the prompt, by their offsets; otherwise (llama-cpp-python echoes special
    tokens as empty strings and leaves its BOS token out wherever it occurs) by the generated text,
    which the echoed ``text`` ends with."""
    if "".join(e.token for e in entries).startswith(prompt):
        return [e for e in entries if e.offset < len(prompt)]
    text = choice.get("text")
    if isinstance(text, str) and text.startswith(prompt):
        generated = text[len(prompt):]
        for k in range(1 if generated else 0, min(4, len(entries)) + 1):
            if "".join(e.token for e in entries[len(entries) - k:]) == generated:
                return entries[: len(entries) - k]
    return [e for e in entries if e.offset < len(prompt)]


def _echo_entries(choice: dict[str, Any], prompt: str, *, where: str) -> list[_Entry] | None:
    """The echoed tokens of ``choice`` with their offsets into ``prompt`` (a leading token that
    is not part of the prompt, such as a BOS token some servers show, shifts the offsets it
    reports and is dropped), or None when it has no per-token log-probs."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")
    offsets, tops = lp.get("text_offset"), lp.get("top_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        return None
    n = len(tokens)
    if not isinstance(offsets, list) or len(offsets) != n:
        offsets = None
    if not isinstance(tops, list) or len(tops) != n:
        tops = [None] * n
    entries: list[_Entry] = []
    position = 0
    for i in range(n):
        tok, value, top = tokens[i], values[i], tops[i]
        if not isinstance(tok, str):
            raise BackendError(f"POST {where} answered a token that is not text")
        if value is not None and not (_is_number(value) or (isinstance(value, float) and value == -math.inf)):
            raise BackendError(f"POST {where} answered a log-prob that is not a number")
        off = offsets[i] if offsets is not None else position
        if not (isinstance(off, int) and not isinstance(off, bool)):
            raise BackendError(f"POST {where} answered a text offset that is not an integer")
        top_values = ({str(k): float(v) for k, v in top.items() if _is_number(v)}
                      if isinstance(top, dict) else None)
        entries.append(_Entry(tok, off, None if value is None else float(value), top_values))
        position += len(tok)
    if entries and offsets is not None and entries[0].token and not prompt.startswith(entries[0].token):
        # A server that lists a token outside the prompt first (a BOS token shown as "<s>") counts
        # the prompt from after it: the prompt starts at the first token it starts with.
        base = next((e.offset for e in entries[1:] if e.token and prompt.startswith(e.token)), None)
        if base:
            entries = [e for e in entries if e.offset >= base]
            for e in entries:
                e.offset -= base
    return entries
