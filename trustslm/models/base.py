"""The model interface every probe talks to (after lm-evaluation-harness's ``LM``).

Two request types, batch in and batch out, results in request order:

* :class:`LoglikelihoodRequest` -> :class:`LoglikelihoodResult`: the log-probability of a
  continuation given a context, and whether greedy decoding would have produced it.
* :class:`GenerateRequest` -> :class:`GenerationResult`: a continuation of a prompt.

Requests are frozen and hashable, so the runner can remove duplicates and key its cache on them.
Sampling is seeded per request (``seed``, ``sample_index``), so a sampled continuation does not
depend on which other requests shared its batch.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Union

from trustslm.core.hashing import canonical_json
from trustslm.core.types import ModelInfo

#: Capabilities a model can declare and a probe can need.
LOGLIKELIHOOD = "loglikelihood"
GENERATE = "generate"
CHAT_TEMPLATE = "chat_template"
TOKEN_SCORES = "token_scores"
KNOWN_CAPABILITIES = frozenset({LOGLIKELIHOOD, GENERATE, CHAT_TEMPLATE, TOKEN_SCORES})
#: Requests per forward pass, unless the user sets one.
DEFAULT_BATCH_SIZE = 32


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
    log-likelihood): each token's log-probability, and the mean and standard deviation of
    log p(z) over the vocabulary at its position (z drawn from the model's distribution), which
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
    mu: list[float]
    sigma: list[float]

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


class ModelAdapter(ABC):
    """Batch in, batch out; results in request order.

    Implementations sort each call's requests by length, cut them into batches of
    ``batch_size`` and call ``on_batch`` after each batch. Batches are contiguous runs of one
    deterministic order, so a call interrupted after k batches and resumed with the remaining
    requests forms exactly the batches the uninterrupted call would have formed.
    """

    capabilities: frozenset[str] = frozenset()
    batch_size: int = DEFAULT_BATCH_SIZE

    @abstractmethod
    def info(self) -> ModelInfo:
        """Identity and provenance of the model (copied into the report)."""

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
        where the tokenizer allows. The base version counts whitespace-separated words."""
        return split_words(text, k)

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

    def _run(self, requests, batch_fn, on_batch) -> list[Result]:
        requests = list(requests)
        results: list[Result | None] = [None] * len(requests)
        order = self.batch_order(requests)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out = batch_fn([requests[i] for i in idx])
            if len(out) != len(idx):
                raise RuntimeError(f"{type(self).__name__} returned {len(out)} results for {len(idx)}")
            for i, res in zip(idx, out):
                results[i] = res
            if on_batch is not None:
                on_batch(idx, out)
        return results  # type: ignore[return-value]

    @abstractmethod
    def _loglikelihood_batch(self, batch: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """One batch (already ordered by :meth:`batch_order`)."""

    @abstractmethod
    def _generate_batch(self, batch: list[GenerateRequest]) -> list[GenerationResult]:
        """One batch (already ordered by :meth:`batch_order`)."""

    def _token_scores_batch(self, batch: list[TokenScoresRequest]) -> list[TokenScoresResult]:
        """One batch; adapters with the ``token_scores`` capability implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no token scores")

    def close(self) -> None:
        """Free memory held by the model."""


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
