"""GGUF files run by llama.cpp in this process (``--backend llama.cpp``, ``llamacpp:FILE.gguf``),
through llama-cpp-python (the ``llamacpp`` extra, built from source: see docs/backends.md).

The file is audited with the kernels and quantisation it ships with: weights stay quantised and
llama.cpp quantises activations on the fly in its quantised matrix products, so figures can
differ a little from the same file dequantised to float32 by transformers (``--backend hf``).

What this backend does, and how it follows :mod:`trustslm.models.hf` so that the two agree on
the same file:

* **Log-likelihoods** come from the logits of every position (``logits_all``): the pair is
  encoded whole and split as lm-evaluation-harness does, an empty context conditions on BOS (EOS
  where there is none), the continuation's token log-probs (log-softmax in float64) are summed,
  and ``is_greedy`` checks each continuation token is the argmax. Requests are processed one at
  a time in lexicographic token order, and a request reuses the key/value cache of the longest
  prefix it shares with the previous one (multiple-choice options, pairs of sentences), so a
  shared prefix is computed once.
* **Token scores** give each token's log-probability and, from the full distribution, the mean
  and standard deviation of log p (``vocab_stats``, for Min-K%++).
* **Generation** samples with llama.cpp's sampler, seeded per request
  (:func:`~trustslm.models.base.request_seed`), with exactly the request's temperature, top-k and
  top-p (min-p, typical-p and repetition penalties off); greedy at temperature 0.
* **Chat**: the chat template embedded in the GGUF (``tokenizer.chat_template``), rendered in
  Jinja's sandbox within the step budget of :mod:`trustslm.models.chat_guard`; a template that
  fails on a plain conversation is not used (the probes needing it are skipped).

The file is checked like any GGUF (:mod:`trustslm.models.validate`), hashed, and loaded from the
private staging folder that holds exactly the hashed file. The report records its sha256 and its
quantisation type (``dtype``, e.g. ``Q4_1``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from trustslm.core.errors import BadInputError, ModelFormatError
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
from trustslm.models.hf import HFTokenRules


class LlamaCppOptions(BackendOptions):
    """Options of a GGUF file run by llama.cpp (``--model-arg KEY=VALUE``)."""

    cache_dir: Path | None = Field(default=None, description="Where file hashes are remembered.")
    n_ctx: int = Field(default=2048, ge=16, le=131072, description="Context window in tokens (longer inputs keep their end).")
    n_threads: int | None = Field(default=None, ge=1, description="CPU threads (default: all cores).")
    device: str = Field(default="cpu", pattern=r"^(cpu|gpu)$",
                        description="cpu, or gpu: every layer offloaded (a llama-cpp-python built with CUDA or Metal).")


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise BadInputError("the llama.cpp backend needs llama-cpp-python: pip install 'trustslm[llamacpp]' "
                            "(it builds from source; see docs/backends.md for the build flags)") from None
    return llama_cpp


class LlamaCppModel(ModelAdapter):
    """A GGUF file, run one request at a time by llama.cpp with its own kernels."""

    backend = "llama.cpp"
    Options = LlamaCppOptions

    def __init__(self, path: Path, *, spec: str, files: list[FileRecord], model_hash: str, options: LlamaCppOptions,
                 name: str | None = None):
        llama_cpp = _llama_cpp()
        from trustslm.models.staging import hide_staging, staged

        self._spec, self._files, self._hash, self._path = spec, files, model_hash, path
        self._name = name or path.stem
        self.batch_size = options.fixed_batch_size()
        self.n_ctx = options.n_ctx
        self._device = options.device
        threads = options.n_threads or os.cpu_count() or 1
        with staged({path.name: path}, path.parent, contain=False) as where:
            try:
                self.llm = llama_cpp.Llama(
                    model_path=str(where / path.name), n_ctx=options.n_ctx, logits_all=True, verbose=False,
                    n_threads=threads, n_threads_batch=threads, n_gpu_layers=-1 if options.device == "gpu" else 0,
                    n_batch=min(512, options.n_ctx),
                )
            except Exception as exc:  # llama.cpp refuses a broken file with a ValueError or RuntimeError
                first = hide_staging((str(exc).strip().splitlines() or [type(exc).__name__])[0], where, path.parent)
                raise ModelFormatError(f"llama.cpp could not load {path}: {first}") from None
        self._versions = {"llama_cpp_python": llama_cpp.__version__}
        llm = self.llm
        self.bos_id = llm.token_bos()
        self.eos_id = llm.token_eos()
        self.prefix_token_id = self.bos_id if self.bos_id >= 0 else self.eos_id
        self.metadata: dict[str, str] = dict(llm.metadata)
        from trustslm.models.gguf_info import describe_gguf

        self._storage = describe_gguf(path)
        self.quantization = self._storage.file_type  # llama.cpp's name for general.file_type, e.g. Q4_1
        self._template_text = self.metadata.get("tokenizer.chat_template")
        self._formatter = None
        #: Why the embedded chat template is not used (it failed on a plain conversation), or None.
        self.chat_template_problem: str | None = None
        caps = {LOGLIKELIHOOD, GENERATE, TOKEN_LOGPROBS, VOCAB_STATS, TOKENIZER}
        if self._template_text and self._template_works():
            caps.add(CHAT_TEMPLATE)
        self.capabilities = frozenset(caps)
        self._encodings: dict[str, Any] = {}

    @classmethod
    def create(cls, text: str, options: LlamaCppOptions) -> LlamaCppModel:
        """A ``.gguf`` file, a folder holding one, or the demo name (its packaged GGUF file)."""
        from trustslm.core.resources import cache_dir as default_cache_dir
        from trustslm.models import demo
        from trustslm.models.hf import describe_files
        from trustslm.models.validate import inspect_model_path

        _llama_cpp()
        name = None
        if demo.is_demo_name(text) and not Path(text).exists():
            path, name = demo.locate_demo_gguf(), demo.DEMO_NAME
        else:
            path = Path(text).expanduser()
        layout = inspect_model_path(path)
        if layout.gguf_file is None:
            raise ModelFormatError(f"{path}: the llama.cpp backend needs a .gguf file (this is a Hugging Face folder; "
                                   "use --backend hf)")
        cache = Path(options.cache_dir) if options.cache_dir is not None else default_cache_dir()
        files, model_hash = describe_files(layout, memo_dir=cache)
        return cls(layout.gguf_file, spec=text, files=files, model_hash=model_hash, options=options, name=name)

    def info(self) -> ModelInfo:
        import llama_cpp

        return ModelInfo(
            spec=self._spec, kind="gguf", name=self._name, path=str(self._path.parent), files=self._files,
            hash=self._hash, parameters=int(llama_cpp.llama_model_n_params(self.llm.model)),
            dtype=self.quantization, quantisation=self._storage, capabilities=sorted(self.capabilities),
            chat_template=CHAT_TEMPLATE in self.capabilities, backend=self.backend,
            backend_versions=self._versions, backend_options={"n_ctx": self.n_ctx},
            device=self._device,
            chat_template_sha256=_sha256(self._template_text) if CHAT_TEMPLATE in self.capabilities else None,
        ).with_identity()

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.close()
        self._encodings.clear()

    # -- tokens and the chat template --------------------------------------------------------
    def _encode(self, text: str, *, specials: bool) -> list[int]:
        """Tokens of ``text``; ``specials``: the model's own BOS where its metadata asks for one
        (transformers' ``add_special_tokens``). Special-token text is parsed only in chat text."""
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=specials, special=False))

    def _template_works(self) -> bool:
        import warnings

        from trustslm.models.chat_guard import PROBE_CONVERSATION, ChatTemplateError, bounded_render

        try:
            bounded_render(lambda: self._render(list(PROBE_CONVERSATION)))
        except ChatTemplateError as exc:
            self.chat_template_problem = str(exc)
            warnings.warn(f"{self._name}: {exc}; the model is audited without its chat template", stacklevel=2)
            return False
        return True

    def _render(self, messages: list[dict[str, str]]) -> str:
        """The embedded template rendered in Jinja's immutable sandbox (llama-cpp-python's
        ``Jinja2ChatFormatter``), with the generation prompt."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def piece(token: int) -> str:
                return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace") if token >= 0 else ""

            self._formatter = Jinja2ChatFormatter(self._template_text, eos_token=piece(self.eos_id),
                                                  bos_token=piece(self.bos_id), add_generation_prompt=True)
        return self._formatter(messages=messages).prompt

    def _chat_tokens(self, user: str, system: str | None = None) -> list[int] | None:
        if CHAT_TEMPLATE not in self.capabilities:
            return None
        from trustslm.models.chat_guard import bounded_render

        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        text = bounded_render(lambda: self._render(messages))
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def encode_loglikelihood(self, r: LoglikelihoodRequest) -> tuple[list[int], list[int]]:
        """(context tokens, continuation tokens), by the rules of :class:`~trustslm.models.hf.HFModel`."""
        key = r.key()
        if key in self._encodings:
            return self._encodings[key]
        context, continuation = r.context, r.continuation
        chat = self._chat_tokens(context) if r.chat else None
        if chat is not None:
            whole = chat + self._encode(continuation, specials=False)
            enc = (chat, whole[len(chat):])
        elif context == "":
            cont = self._encode(continuation, specials=False)
            enc = (cont[:1], cont[1:]) if cont and cont[0] == self.prefix_token_id else ([self.prefix_token_id], cont)
        else:
            n_spaces = len(context) - len(context.rstrip())
            if n_spaces:
                continuation = context[-n_spaces:] + continuation
                context = context[:-n_spaces]
            whole = self._encode(context + continuation, specials=True)
            ctx = self._encode(context, specials=True)
            enc = (ctx, whole[len(ctx):])
        self._encodings[key] = enc
        return enc

    def encode_prompt(self, r: GenerateRequest) -> list[int]:
        key = r.key()
        if key in self._encodings:
            return self._encodings[key]
        enc = self._chat_tokens(r.prompt, r.system_prompt) if r.chat else None
        if enc is None:
            prompt = f"{r.system_prompt}\n\n{r.prompt}" if r.system_prompt else r.prompt
            enc = self._encode(prompt, specials=True)
        if not enc or (r.add_bos and enc[0] != self.prefix_token_id):
            enc = [self.prefix_token_id] + enc
        room = self.n_ctx - r.max_new_tokens
        enc = enc[-room:] if room > 0 else enc[-1:]
        self._encodings[key] = enc
        return enc

    #: Tokens, as the hf backend counts them (the same encode_loglikelihood/encode_prompt names).
    request_length = HFTokenRules.request_length

    def batch_order(self, requests: Sequence[Request]) -> list[int]:
        """Scoring requests in lexicographic token order, so requests sharing a prefix are
        neighbours and the prefix's key/value cache is reused; generation as the base orders it."""
        if not requests or isinstance(requests[0], GenerateRequest):
            return super().batch_order(requests)

        def tokens(i: int) -> tuple[list[int], str]:
            r = requests[i]
            r = LoglikelihoodRequest("", r.text) if isinstance(r, TokenScoresRequest) else r
            ctx, cont = self.encode_loglikelihood(r)  # type: ignore[arg-type]
            return ctx + cont, requests[i].key()

        return sorted(range(len(requests)), key=tokens)

    def split_tokens(self, text: str, k: int) -> tuple[str, str]:
        """``text`` cut after its first ``k`` tokens: the decoded head, when ``text`` starts with it."""
        if k <= 0:
            return "", text
        ids = self._encode(text, specials=False)
        if len(ids) <= k:
            return text, ""
        head = self.llm.detokenize(ids[:k]).decode("utf-8", errors="ignore")
        if text.startswith(head):
            return head, text[len(head):]
        head = head.lstrip(" ")  # a tokenizer that adds a leading space (SentencePiece)
        return (head, text[len(head):]) if text.startswith(head) else (text, "")

    # -- scoring ----------------------------------------------------------------------------
    def _logits(self, tokens: list[int]) -> Any:
        """Logits after each of ``tokens`` (row i predicts token i + 1), reusing the key/value
        cache of the longest prefix shared with what was evaluated last."""
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens]
        shared = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(tokens) - 1)  # at least one token is evaluated: its logits are fresh
        llm.n_tokens = shared
        llm.eval(tokens[shared:])
        return llm.scores[: len(tokens)]

    def _score(self, ctx: list[int], cont: list[int]) -> tuple[Any, list[int]]:
        """Log-softmax rows (float64) predicting each scored continuation token, and those tokens."""
        import numpy as np

        whole = (ctx + cont)[-(self.n_ctx + 1):]
        cont = cont[-(len(whole) - 1):] if cont else []
        if not cont:
            return np.zeros((0, 0)), []
        inp = whole[:-1]
        logits = np.asarray(self._logits(inp)[len(inp) - len(cont):], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True)), cont

    def _loglikelihood_batch(self, batch: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        out = []
        for r in batch:
            logprobs, cont = self._score(*self.encode_loglikelihood(r))
            if not cont:
                out.append(LoglikelihoodResult(logprob=0.0, is_greedy=True, n_tokens=0))
                continue
            rows = range(len(cont))
            lp = float(sum(logprobs[i, t] for i, t in zip(rows, cont)))
            greedy = all(int(logprobs[i].argmax()) == t for i, t in zip(rows, cont))
            out.append(LoglikelihoodResult(logprob=lp, is_greedy=greedy, n_tokens=len(cont)))
        return out

    def _token_scores_batch(self, batch: list[TokenScoresRequest]) -> list[TokenScoresResult]:
        import numpy as np

        out = []
        for r in batch:
            logprobs, cont = self._score(*self.encode_loglikelihood(LoglikelihoodRequest("", r.text)))
            if not cont:
                out.append(TokenScoresResult(logprobs=[], mu=[], sigma=[]))
                continue
            probs = np.exp(logprobs)
            mu = (probs * logprobs).sum(axis=1)
            sigma = np.sqrt(np.clip((probs * logprobs**2).sum(axis=1) - mu**2, 0, None))
            token_lp = [float(logprobs[i, t]) for i, t in enumerate(cont)]
            out.append(TokenScoresResult(logprobs=token_lp, mu=mu.tolist(), sigma=sigma.tolist()))
        return out

    # -- generation -------------------------------------------------------------------------
    def _generate_batch(self, batch: list[GenerateRequest]) -> list[GenerationResult]:
        out = []
        for r in batch:
            self.llm.reset()  # the prompt is evaluated whole: a sample must not depend on what ran before it
            done = self.llm.create_completion(
                prompt=self.encode_prompt(r), max_tokens=r.max_new_tokens, temperature=r.temperature,
                top_p=r.top_p, top_k=r.top_k, min_p=0.0, typical_p=1.0, repeat_penalty=1.0,
                frequency_penalty=0.0, presence_penalty=0.0, seed=request_seed(r, bits=31),
                stop=list(r.stop) or None,
            )
            choice = done["choices"][0]
            text, stopped = apply_stop(choice["text"], r.stop)
            n = min(int(done["usage"]["completion_tokens"]), r.max_new_tokens)
            finish = "stop" if stopped or choice.get("finish_reason") == "stop" else "length"
            out.append(GenerationResult(text=text, n_tokens=n, finish_reason=finish))
        return out


def _sha256(text: str | None) -> str | None:
    from trustslm.core.hashing import sha256_text

    return sha256_text(text) if text else None
