"""The model interface every probe talks to (after lm-evaluation-harness's ``LM``).

Two request types, batch in and batch out, results in request order:

* :class:`LoglikelihoodRequest` -> :class:`LoglikelihoodResult`: the log-probability of a
  continuation given a context, and whether greedy decoding would have produced it.
* :class:`GenerateRequest` -> :class:`GenerationResult`: a continuation of a prompt.

Requests are frozen and hashable, so the runner can remove duplicates and key its cache on them.
Sampling is seeded per request (``seed``, ``sample_index``), so a sampled continuation does not
depend on which other requests shared its batch.

A backend is one module: a :class:`ModelAdapter` subclass with its typed :attr:`ModelAdapter.Options`
(a :class:`BackendOptions` subclass), a :meth:`ModelAdapter.create` that builds it from the text after
``KIND:`` and those options, the :data:`capabilities <KNOWN_CAPABILITIES>` it has and the batch
methods they call for, and an :meth:`ModelAdapter.info` describing what its outputs depend on.
It is registered under its kind in the ``trustslm.models`` entry-point group; the user names it
as ``KIND:ARG`` with ``--model-arg KEY=VALUE`` (``model_args={...}`` in the API) for its options.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trustslm.core.errors import BadInputError, ProbeSkipped
from trustslm.core.hashing import canonical_json
from trustslm.core.types import ModelInfo

#: Capabilities a model can declare and a probe can need.
#: :class:`LoglikelihoodRequest`: log P(continuation | context).
LOGLIKELIHOOD = "loglikelihood"
#: :class:`GenerateRequest`: continuations, greedy or seeded samples.
GENERATE = "generate"
#: ``chat=True`` requests are wrapped in the model's own chat template.
CHAT_TEMPLATE = "chat_template"
#: :class:`TokenScoresRequest`: each token's log-probability (``TokenScoresResult.logprobs``).
TOKEN_LOGPROBS = "token_logprobs"
#: :class:`TokenScoresRequest` also gives the mean and standard deviation of log p over the whole
#: vocabulary at each position (``mu``, ``sigma``; Min-K%++ needs them).
VOCAB_STATS = "vocab_stats"
#: :meth:`ModelAdapter.split_tokens` cuts text at the model's own token boundaries. A backend
#: without one raises :class:`~trustslm.core.errors.ProbeSkipped` there instead of guessing.
TOKENIZER = "tokenizer"
KNOWN_CAPABILITIES = frozenset({LOGLIKELIHOOD, GENERATE, CHAT_TEMPLATE, TOKEN_LOGPROBS, VOCAB_STATS, TOKENIZER})
#: Requests per forward pass, unless the user sets one.
DEFAULT_BATCH_SIZE = 32
#: A generation batch's token budget, unless the user sets one: this many tokens per row of the
#: batch size (``batch_size * 256``, 8,192 at the default 32). Twice that was tried: a random
#: 1,200 of the SmolLM2 audit's generation requests took 0.92 of the time, but the whole audit
#: only 0.98 (within run-to-run noise) with a fifth more peak memory (docs/measured.md).
GENERATION_TOKENS_PER_ROW = 256
#: A generation batch holds at most this many times the batch size in rows, however short they are.
MOST_ROWS_PER_BATCH_SIZE = 4


def request_key(request) -> str:
    """Canonical JSON of a request, leaving out fields at their default value, so adding a field
    with a default changes neither cache keys nor the sampling seeds derived from them."""
    data = {"kind": request.kind}
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        if f.default is dataclasses.MISSING or value != f.default:
            data[f.name] = list(value) if isinstance(value, tuple) else value
    return canonical_json(data)


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """log P(continuation | context). An empty context conditions on the BOS (or EOS) token.

    Word-boundary spaces belong in the continuation (``context="Paris is", continuation=" big"``);
    trailing spaces of the context are moved there, as lm-evaluation-harness does.
    ``chat=True`` wraps the context as a user turn in the model's chat template.
    """

    context: str
    continuation: str
    chat: bool = False

    kind: ClassVar[str] = "loglikelihood"

    def key(self) -> str:
        return request_key(self)


@dataclass(frozen=True)
class GenerateRequest:
    """Continue ``prompt`` for at most ``max_new_tokens`` tokens.

    ``temperature == 0`` is greedy decoding. Otherwise tokens are sampled (after temperature,
    ``top_k`` and ``top_p`` filtering) with a generator seeded from ``seed`` and ``sample_index``,
    so the k samples of one prompt are k distinct requests with reproducible outputs.
    The text is cut at the first of the ``stop`` strings. ``add_bos`` starts the prompt with the
    BOS token when the tokenizer does not add it (the form ``trustslm finetune`` trains on).
    """

    prompt: str
    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    chat: bool = False
    system_prompt: str | None = None
    seed: int = 0
    sample_index: int = 0
    add_bos: bool = False

    kind: ClassVar[str] = "generate"

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError("temperature >= 0, 0 < top_p <= 1 and top_k >= 0 are required")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def key(self) -> str:
        if self.greedy:  # the seed does not change a greedy continuation
            return request_key(dataclasses.replace(self, seed=0, sample_index=0))
        return request_key(self)


@dataclass(frozen=True)
class TokenScoresRequest:
    """Per-token scores of ``text`` conditioned on the BOS token (as an empty-context
    log-likelihood): each token's log-probability (capability ``token_logprobs``) and, from a
    model with capability ``vocab_stats``, the mean and standard deviation of log p(z) over the
    vocabulary at its position (z drawn from the model's distribution), which
    membership-inference attacks such as Min-K%++ need."""

    text: str

    kind: ClassVar[str] = "token_scores"

    def key(self) -> str:
        return request_key(self)


Request = Union[LoglikelihoodRequest, GenerateRequest, TokenScoresRequest]


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float
    is_greedy: bool
    n_tokens: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LoglikelihoodResult:
        return cls(**data)


@dataclass(frozen=True)
class GenerationResult:
    text: str
    n_tokens: int
    finish_reason: str  # "stop" (EOS or a stop string) or "length"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GenerationResult:
        return cls(**data)


@dataclass(frozen=True)
class TokenScoresResult:
    logprobs: list[float]
    mu: list[float] | None = None  # None from a model without the vocab_stats capability
    sigma: list[float] | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TokenScoresResult:
        return cls(**data)


Result = Union[LoglikelihoodResult, GenerationResult, TokenScoresResult]
RESULT_TYPES: dict[str, type] = {
    "loglikelihood": LoglikelihoodResult, "generate": GenerationResult, "token_scores": TokenScoresResult,
}

#: Called after each finished batch with the batch's positions in the request list and its results.
BatchCallback = Callable[[Sequence[int], Sequence[Result]], None]


class BackendOptions(BaseModel):
    """Base of every backend's options (``--model-arg KEY=VALUE``): unknown options are errors.
    Values from the command line arrive as strings and are converted by the field types."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    batch_size: int | Literal["auto"] = Field(
        default=DEFAULT_BATCH_SIZE,
        description="Requests per forward pass, or 'auto': the backend's largest that fits (halved on out-of-memory).")

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> int | str:
        if isinstance(value, str) and value.strip() == "auto":
            return "auto"
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a positive integer or 'auto', got {value!r}") from None
        if isinstance(value, bool) or number != value and str(number) != str(value).strip() or number < 1:
            raise ValueError(f"expected a positive integer or 'auto', got {value!r}")
        return number

    batch_tokens: int | None = Field(
        default=None, ge=1,
        description="Generation batches by token budget: requests join a batch while its rows x (longest prompt + "
                    "largest max_new_tokens) stay within this many tokens (default: batch_size x "
                    f"{GENERATION_TOKENS_PER_ROW}), and at most {MOST_ROWS_PER_BATCH_SIZE} x batch_size rows.")

    def fixed_batch_size(self, auto: int = DEFAULT_BATCH_SIZE) -> int:
        """The batch size to start with: the one given, or ``auto`` (the backend's starting guess)."""
        return auto if self.batch_size == "auto" else int(self.batch_size)


class ModelAdapter(ABC):
    """Batch in, batch out; results in request order.

    Implementations sort each call's requests by length, cut them into batches of
    ``batch_size`` and call ``on_batch`` after each batch. Batches are contiguous runs of one
    deterministic order, so a call interrupted after k batches and resumed with the remaining
    requests forms exactly the batches the uninterrupted call would have formed.

    A backend implements the batch method of each capability it declares
    (``_loglikelihood_batch``, ``_generate_batch``, ``_token_scores_batch``), :meth:`split_tokens`
    if it has the ``tokenizer`` capability, :meth:`info`, and :meth:`create` with its
    :attr:`Options`.
    """

    #: What the backend can do (see :data:`KNOWN_CAPABILITIES`); probes needing more are skipped.
    capabilities: frozenset[str] = frozenset()
    batch_size: int = DEFAULT_BATCH_SIZE
    #: The token budget of a generation batch (None: ``batch_size * GENERATION_TOKENS_PER_ROW``).
    batch_tokens: int | None = None
    #: The backend's name, for :attr:`ModelInfo.backend` and error messages (default: the class name).
    backend: ClassVar[str] = ""
    #: The backend's typed options; :meth:`from_spec` checks them.
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    #: Why a capability this backend can have is missing for this model (e.g. a server without
    #: echoed log-probs): capability -> reason, quoted when a probe needing it is skipped.
    missing_reasons: dict[str, str] = {}

    @classmethod
    def from_spec(cls, spec: str, options: Mapping[str, Any] | BackendOptions | None = None) -> ModelAdapter:
        """The adapter ``spec`` names (the text after ``KIND:``), built with ``options`` checked
        against :attr:`Options`; an unknown or bad option is a one-line ``BadInputError``."""
        checked = cls.check_options(options)
        adapter = cls.create(spec, checked)
        adapter.batch_tokens = checked.batch_tokens
        return adapter

    @classmethod
    def check_options(cls, options: Mapping[str, Any] | BackendOptions | None) -> BackendOptions:
        """``options`` as :attr:`Options`; an unknown or bad option is a one-line ``BadInputError``."""
        if isinstance(options, cls.Options):
            return options
        from trustslm.core.textfiles import first_validation_error

        name = cls.backend or cls.__name__
        try:
            return cls.Options.model_validate(dict(options or {}))
        except ValidationError as exc:
            loc, msg, kind = first_validation_error(exc)
            known = ", ".join(sorted(cls.Options.model_fields))
            if kind == "extra_forbidden":
                raise BadInputError(f"{name} model: unknown option {loc!r} (options: {known})") from None
            raise BadInputError(f"{name} model option {loc}: {msg}") from None

    @classmethod
    def create(cls, spec: str, options: Any) -> ModelAdapter:
        """Build the adapter from the text after ``KIND:`` and its checked :attr:`Options`
        (backends override this; :meth:`from_spec` calls it)."""
        raise BadInputError(f"the {cls.backend or cls.__name__} model can't be built from a name")

    @abstractmethod
    def info(self) -> ModelInfo:
        """Provenance of the model (copied into the report), with its identity: build the
        :class:`ModelInfo` with every field its outputs depend on and return
        ``info.with_identity()``. An adapter that leaves ``identity`` unset gets it computed
        from its info (:func:`model_info`)."""

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], *, on_batch: BatchCallback | None = None
    ) -> list[LoglikelihoodResult]:
        return self._run(requests, self._loglikelihood_batch, on_batch)  # type: ignore[return-value]

    def generate(
        self, requests: Sequence[GenerateRequest], *, on_batch: BatchCallback | None = None
    ) -> list[GenerationResult]:
        return self._run(requests, self._generate_batch, on_batch)  # type: ignore[return-value]

    def token_scores(
        self, requests: Sequence[TokenScoresRequest], *, on_batch: BatchCallback | None = None
    ) -> list[TokenScoresResult]:
        return self._run(requests, self._token_scores_batch, on_batch)  # type: ignore[return-value]

    def split_tokens(self, text: str, k: int) -> tuple[str, str]:
        """``text`` cut after its first ``k`` tokens: (head, rest), with head + rest == text
        where the tokenizer allows. Backends with the ``tokenizer`` capability implement it; the
        base version says there is none (a probe that counts tokens is skipped with that reason)."""
        raise ProbeSkipped(f"the model ({self.backend or type(self).__name__}) has no tokenizer to count tokens with")

    # -- for implementations ------------------------------------------------------------------
    def batch_order(self, requests: Sequence[Request]) -> list[int]:
        """Positions of ``requests`` in processing order: longest first (so memory problems show
        at once), generation grouped by its length budget, ties broken by the request key."""
        lengths = [self.request_length(r) for r in requests]

        def sort_key(i: int) -> tuple:
            r = requests[i]
            budget = r.max_new_tokens if isinstance(r, GenerateRequest) else 0
            return (-budget, -lengths[i], r.key())

        return sorted(range(len(requests)), key=sort_key)

    def request_length(self, request: Request) -> int:
        """Length used for sorting; tokens for real models."""
        if isinstance(request, LoglikelihoodRequest):
            return len(request.context) + len(request.continuation)
        if isinstance(request, TokenScoresRequest):
            return len(request.text)
        return len(request.prompt)

    def plan_batches(self, requests: Sequence[Request]) -> list[list[int]]:
        """Positions of ``requests`` cut into the batches this adapter computes them in: contiguous
        runs of :meth:`batch_order`. Scoring requests go :attr:`batch_size` at a time. Generation
        goes by token budget: a request joins the batch while the batch's rows times (its longest
        prompt + its largest ``max_new_tokens``), the tokens its cache holds at the end, stay within
        :attr:`batch_tokens`, and the batch has fewer than ``MOST_ROWS_PER_BATCH_SIZE x batch_size``
        rows; so short prompts fill wide batches and long ones narrow batches (rows that end early
        leave the batch: :mod:`trustslm.models.decode`). An executor that hands batches to
        replicas (:mod:`trustslm.engine.executors`) sends each of these as one call of the public
        method, so a result is computed in the batch a single process would compute it in."""
        order = self.batch_order(requests)
        size = max(1, int(self.batch_size))
        if not any(isinstance(r, GenerateRequest) for r in requests):
            return [order[start : start + size] for start in range(0, len(order), size)]
        budget = self.batch_tokens or size * GENERATION_TOKENS_PER_ROW
        most = size * MOST_ROWS_PER_BATCH_SIZE
        batches: list[list[int]] = []
        current: list[int] = []
        width = new = 0
        for i in order:
            r = requests[i]
            length, budget_new = self.request_length(r), getattr(r, "max_new_tokens", 0)
            w, n = max(width, length), max(new, budget_new)
            if current and (len(current) >= most or (len(current) + 1) * (w + n) > budget):
                batches.append(current)
                current, w, n = [], length, budget_new
            current.append(i)
            width, new = w, n
        if current:
            batches.append(current)
        return batches

    def _run(self, requests, batch_fn, on_batch) -> list[Result]:
        """Every batch of :meth:`plan_batches` through ``batch_fn``. A backend that finds a batch
        too large for its memory raises :class:`BatchTooLarge`: the batch size is halved and
        the remaining requests are planned again (``batch_size=auto``, as lm-evaluation-harness
        finds its largest batch); requests already computed are kept."""
        requests = list(requests)
        results: list[Result | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        while pending:
            batches = self.plan_batches([requests[i] for i in pending])
            try:
                for local in batches:
                    idx = [pending[j] for j in local]
                    out = batch_fn([requests[i] for i in idx])
                    if len(out) != len(idx):
                        raise RuntimeError(f"{type(self).__name__} returned {len(out)} results for {len(idx)}")
                    for i, res in zip(idx, out):
                        results[i] = res
                    if on_batch is not None:
                        on_batch(idx, out)
            except BatchTooLarge:
                if self.batch_size <= 1:
                    raise RuntimeError(f"{type(self).__name__}: one request does not fit in memory") from None
                self.batch_size = max(1, self.batch_size // 2)
            pending = [i for i in pending if results[i] is None]
        return results  # type: ignore[return-value]

    def _loglikelihood_batch(self, batch: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """One batch (already ordered by :meth:`batch_order`); adapters with the
        ``loglikelihood`` capability implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no log-likelihoods")

    def _generate_batch(self, batch: list[GenerateRequest]) -> list[GenerationResult]:
        """One batch (already ordered by :meth:`batch_order`); adapters with the ``generate``
        capability implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not generate")

    def _token_scores_batch(self, batch: list[TokenScoresRequest]) -> list[TokenScoresResult]:
        """One batch; adapters with the ``token_logprobs`` capability implement it (and fill
        ``mu`` and ``sigma`` when they also have ``vocab_stats``)."""
        raise NotImplementedError(f"{type(self).__name__} has no token scores")

    def close(self) -> None:
        """Free memory held by the model."""


class BatchTooLarge(Exception):
    """Raised by a backend's batch method when the batch does not fit in memory (CUDA out of
    memory): :meth:`ModelAdapter._run` halves the batch size and goes on."""


def request_seed(request: GenerateRequest, bits: int = 63) -> int:
    """The sampling seed of a request, from its key (``seed`` and ``sample_index`` included): the
    same request gets the same seed on every backend and in every batch. ``bits`` bounds it for
    backends with narrower seeds (llama.cpp and servers take 31 bits)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(request.key().encode("utf-8")).digest()[:8], "big") >> (64 - bits)


def model_info(model: ModelAdapter) -> ModelInfo:
    """``model.info()`` with its identity, computed from the info where the adapter set none
    (the request cache keys on it)."""
    info = model.info()
    return info if info.identity else info.with_identity()


def split_words(text: str, k: int) -> tuple[str, str]:
    """``text`` cut after its first ``k`` words (runs of non-space): head + rest == text."""
    import re

    if k <= 0:
        return "", text
    for n, m in enumerate(re.finditer(r"\S+", text), start=1):
        if n == k:
            return text[: m.end()], text[m.end():]
    return text, ""


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop string; returns the text and whether it was cut."""
    cut = min((pos for s in stop if s and (pos := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
