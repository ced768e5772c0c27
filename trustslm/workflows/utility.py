"""What a mitigation costs in plain usefulness, measured on both models with the same items:

* ``perplexity`` on held-out text (default ``datasets/heldout_text.txt``, 40 neutral sentences
  written for this): ``exp(sum of token negative log-likelihoods / tokens)``, each text
  conditioned on the BOS token, as the probes' log-likelihoods are;
* ``qa_accuracy`` on the project's closed-book QA set (``datasets/closed_book_qa.jsonl``), asked
  and scored exactly as ``truthfulness.closed_book_qa`` does (greedy answer, a known answer
  appears as whole words), so the requests are shared with that probe's cache.

Each change has a 95% paired-bootstrap interval over the items (the same resampled items for
both models; percentile interval).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from trustslm.models.base import CHAT_TEMPLATE, GenerateRequest, LoglikelihoodRequest, ModelAdapter

HELDOUT_TEXT = "builtin:heldout_text.txt"
QA_SET = "builtin:closed_book_qa.jsonl"


class UtilityChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    data: str
    n: int
    higher_is_better: bool
    before: float
    after: float
    difference: float
    ci_low: float
    ci_high: float

    @property
    def cost(self) -> str:
        """"worse", "better" or "no significant change" (the 95% interval of the difference)."""
        worse = self.ci_high < 0 if self.higher_is_better else self.ci_low > 0
        better = self.ci_low > 0 if self.higher_is_better else self.ci_high < 0
        return "worse" if worse else "better" if better else "no significant change"


class UtilityUnits(BaseModel):
    """Per-item values of one model: (nll, tokens) per text and right (1/0) per question."""

    nll: list[float]
    tokens: list[int]
    correct: list[float]


def _texts(source: str) -> tuple[list[str], Path]:
    from trustslm.core.errors import DataError
    from trustslm.core.resources import resolve_data_path

    path = resolve_data_path(source)
    try:
        texts = [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"can't read held-out text {path}: {exc}") from None
    if not texts:
        raise DataError(f"held-out text {path} has no lines")
    return texts, path


def measure(model: ModelAdapter, *, text: str = HELDOUT_TEXT, qa: str = QA_SET, qa_limit: int | None = None,
            cache: Any = None, progress: bool = False) -> UtilityUnits:
    """The per-item utility values of ``model`` (requests go through the run cache when given)."""
    from trustslm.core.resources import resolve_data_path
    from trustslm.data.qa import load_closed_book
    from trustslm.engine.execute import execute
    from trustslm.probes.closed_book import TEMPLATE, ClosedBookOptions
    from trustslm.scoring.answers import contains

    texts, _ = _texts(text)
    items, _ = load_closed_book(resolve_data_path(qa))
    items = items if qa_limit is None else items[:qa_limit]  # 0: QA accuracy not measured
    chat = CHAT_TEMPLATE in model.capabilities
    ll_requests = [LoglikelihoodRequest("", t) for t in texts]
    qa_requests = [GenerateRequest(prompt=TEMPLATE.format(question=q["question"]),
                                   max_new_tokens=ClosedBookOptions().max_new_tokens, stop=("\n",), chat=chat)
                   for q in items]
    results, _ = execute(model, [*ll_requests, *qa_requests], model_hash=model.info().hash, cache=cache,
                         resume=cache is not None, progress=progress)
    nll = [-results[r.key()].logprob for r in ll_requests]
    tokens = [results[r.key()].n_tokens for r in ll_requests]
    correct = [float(contains(results[r.key()].text, q["answers"])) for r, q in zip(qa_requests, items)]
    return UtilityUnits(nll=nll, tokens=tokens, correct=correct)


def _perplexity(nll: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    return np.exp(nll.sum(axis=-1) / np.maximum(tokens.sum(axis=-1), 1))


def compare_utility(before: UtilityUnits, after: UtilityUnits, *, seed: int = 0, resamples: int = 2000,
                    text: str = HELDOUT_TEXT, qa: str = QA_SET) -> list[UtilityChange]:
    """Perplexity and QA accuracy of both models with paired-bootstrap intervals of the change."""
    rng = np.random.default_rng(seed)
    out = []
    nb, na = np.asarray(before.nll), np.asarray(after.nll)
    tb, ta = np.asarray(before.tokens), np.asarray(after.tokens)
    if len(nb):
        idx = rng.integers(0, len(nb), size=(resamples, len(nb)))
        diffs = _perplexity(na[idx], ta[idx]) - _perplexity(nb[idx], tb[idx])
        pb, pa = float(_perplexity(nb, tb)), float(_perplexity(na, ta))
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        out.append(UtilityChange(name="perplexity", description="perplexity on held-out text (lower is better)",
                                 data=text, n=len(nb), higher_is_better=False, before=pb, after=pa,
                                 difference=pa - pb, ci_low=float(lo), ci_high=float(hi)))
    cb, ca = np.asarray(before.correct), np.asarray(after.correct)
    if len(cb):
        idx = rng.integers(0, len(cb), size=(resamples, len(cb)))
        diffs = ca[idx].mean(axis=1) - cb[idx].mean(axis=1)
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        out.append(UtilityChange(name="qa_accuracy", description="closed-book QA accuracy (higher is better)",
                                 data=qa, n=len(cb), higher_is_better=True, before=float(cb.mean()),
                                 after=float(ca.mean()), difference=float(ca.mean() - cb.mean()),
                                 ci_low=float(lo), ci_high=float(hi)))
    return [c for c in out if all(math.isfinite(v) for v in (c.before, c.after))]
