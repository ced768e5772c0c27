"""A second model backend, not Hugging Face, in one module, as a third-party package would ship
one: registered as ``fake`` in the ``trustslm.models`` entry-point group (see the dist-info beside
this package) and named ``fake:NAME`` with ``--model-arg vocab=N --model-arg seed=S``.

A hashed unigram model over words: each word's log-probability depends only on the word, the
vocabulary size and the seed. It scores (log-likelihoods and per-token log-probabilities) but
does not generate, has no full-vocabulary statistics and no tokenizer it could cut text with, so
the probes needing those are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import math

from pydantic import Field

from trustslm.core.types import ModelInfo
from trustslm.models.base import (
    LOGLIKELIHOOD,
    TOKEN_LOGPROBS,
    BackendOptions,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelAdapter,
    TokenScoresRequest,
    TokenScoresResult,
)


class UnigramOptions(BackendOptions):
    vocab: int = Field(default=5000, ge=2, description="Vocabulary size the words are hashed into.")
    seed: int = Field(default=0, ge=0, description="Seeds the hash, so two seeds are two models.")


class UnigramModel(ModelAdapter):
    backend = "fake-unigram"
    Options = UnigramOptions
    capabilities = frozenset({LOGLIKELIHOOD, TOKEN_LOGPROBS})

    def __init__(self, name: str, options: UnigramOptions):
        self.name, self.options, self.batch_size = name, options, options.batch_size

    @classmethod
    def create(cls, spec: str, options: UnigramOptions) -> UnigramModel:
        return cls(spec or "unigram", options)

    def info(self) -> ModelInfo:
        # identity left unset on purpose: the engine computes it from these fields
        return ModelInfo(spec=f"fake:{self.name}", kind="fake", name=self.name, hash=hashlib.sha256(
            self.name.encode()).hexdigest(), backend=self.backend, backend_versions={"fake-trustslm-plugin": "0.1.0"},
            backend_options={"vocab": self.options.vocab, "seed": self.options.seed},
            capabilities=sorted(self.capabilities))

    def _word_logprob(self, word: str) -> float:
        digest = hashlib.sha256(f"{self.options.seed}|{word}".encode()).digest()
        bucket = int.from_bytes(digest[:8], "big") % self.options.vocab
        return -math.log(self.options.vocab) + (bucket / self.options.vocab - 0.5)

    def _loglikelihood_batch(self, batch: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        out = []
        for r in batch:
            words = r.continuation.split()
            out.append(LoglikelihoodResult(logprob=sum(map(self._word_logprob, words)), is_greedy=False,
                                           n_tokens=len(words)))
        return out

    def _token_scores_batch(self, batch: list[TokenScoresRequest]) -> list[TokenScoresResult]:
        return [TokenScoresResult(logprobs=[self._word_logprob(w) for w in r.text.split()]) for r in batch]
