"""Abstention below a calibrated confidence threshold (selective prediction).

The wrapped model answers as before, then scores its own greedy answer: the confidence is the
answer's mean per-token probability, ``exp(log P(answer | prompt) / tokens)`` (the same
confidence ``truthfulness.closed_book_qa`` reports). When the confidence is below the threshold
the answer is replaced by an abstention ("I don't know."). Sampled continuations are left alone:
abstention is for answers, which are given greedily.

The threshold is calibrated once, in ``prepare``, on questions with known answers (``data``;
by default ``datasets/abstention_calibration.jsonl``, 60 questions written for this and
disjoint from the closed-book probe's set). Correctness is regressed on confidence with isotonic
regression (Zadrozny and Elkan 2002; scikit-learn's ``IsotonicRegression``), and the threshold is
the lowest confidence whose calibrated probability of being right reaches ``target`` (default
0.5: answer only when more likely right than wrong). This is selective prediction with a
confidence threshold (Chow 1970; El-Yaniv and Wiener 2010; Kadavath et al. 2022 for language
models). The cost, answers withheld that would have been right, is the accuracy drop
``trustslm mitigate`` reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from trustslm.mitigations.base import DecodingMitigation, MitigationOptions
from trustslm.mitigations.wrapped import WrappedModel
from trustslm.models.base import (
    CHAT_TEMPLATE,
    GENERATE,
    LOGLIKELIHOOD,
    BatchCallback,
    GenerateRequest,
    GenerationResult,
    LoglikelihoodRequest,
    ModelAdapter,
)

ABSTAIN = "I don't know."


class AbstentionOptions(MitigationOptions):
    #: Calibration questions (closed-book JSONL: question, answers).
    data: str = "builtin:abstention_calibration.jsonl"
    #: Answer only when the calibrated probability of being right is at least this.
    target: float = Field(default=0.5, gt=0, lt=1)
    answer: str = Field(default=ABSTAIN, min_length=1)
    max_new_tokens: int = Field(default=24, ge=1, le=256)
    chat: bool = True


def confidences(model: ModelAdapter, requests: Sequence[GenerateRequest],
                answers: Sequence[GenerationResult]) -> list[float]:
    """Mean token probability of each answer given its prompt (NaN for an empty answer)."""
    asks = [(i, LoglikelihoodRequest(r.prompt, a.text, chat=r.chat))
            for i, (r, a) in enumerate(zip(requests, answers)) if a.text.strip()]
    out = [float("nan")] * len(requests)
    for (i, _), ll in zip(asks, model.loglikelihood([q for _, q in asks])):
        out[i] = math.exp(ll.logprob / max(ll.n_tokens, 1))
    return out


def calibrated_threshold(confidence: Sequence[float], correct: Sequence[bool], target: float) -> float:
    """The lowest confidence whose isotonic-calibrated probability of a right answer reaches
    ``target``; above 1 (never answer) when none does."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    conf = np.asarray(confidence, dtype=float)
    ok = np.isfinite(conf)
    conf, y = conf[ok], np.asarray(correct, dtype=float)[ok]
    if conf.size == 0:
        return 2.0
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(conf, y)
    calibrated = iso.predict(conf)
    passing = conf[calibrated >= target]
    return float(passing.min()) if passing.size else 2.0


class AbstainingModel(WrappedModel):
    def __init__(self, inner: ModelAdapter, threshold: float, answer: str, **kw: Any):
        super().__init__(inner, **kw)
        self.threshold, self.answer = threshold, answer

    def decide(self, requests: Sequence[GenerateRequest], answers: Sequence[GenerationResult]) -> list[GenerationResult]:
        greedy = [i for i, r in enumerate(requests) if r.greedy]
        conf = confidences(self.inner, [requests[i] for i in greedy], [answers[i] for i in greedy])
        out = list(answers)
        for i, c in zip(greedy, conf):
            if math.isfinite(c) and c < self.threshold:
                out[i] = GenerationResult(text=self.answer, n_tokens=answers[i].n_tokens, finish_reason="stop")
        return out

    def generate(self, requests: Sequence[GenerateRequest], *,
                 on_batch: BatchCallback | None = None) -> list[GenerationResult]:
        requests = list(requests)
        results: list[GenerationResult | None] = [None] * len(requests)

        def each(idx: Sequence[int], out: Sequence[Any]) -> None:
            decided = self.decide([requests[i] for i in idx], out)
            for i, res in zip(idx, decided):
                results[i] = res
            if on_batch is not None:
                on_batch(idx, decided)

        self.inner.generate(requests, on_batch=each)
        return results  # type: ignore[return-value]


class Abstention(DecodingMitigation):
    name = "abstention"
    dimension = "truthfulness"
    targets = ("truthfulness.closed_book_qa",)
    counter_probes = ("toxicity.over_refusal",)
    summary = "answer \"I don't know.\" when the answer's calibrated confidence is too low"
    Options = AbstentionOptions

    def applicable(self, adapter: ModelAdapter) -> str | None:
        missing = {GENERATE, LOGLIKELIHOOD} - adapter.capabilities
        if missing:
            return f"{adapter.info().name} can't {' or '.join(sorted(missing))}, which abstention needs"
        return None

    def prepare(self, adapter: ModelAdapter) -> tuple[dict[str, Any], str]:
        from trustslm.core.hashing import sha256_file
        from trustslm.core.resources import resolve_data_path
        from trustslm.data.qa import load_closed_book
        from trustslm.probes.closed_book import TEMPLATE
        from trustslm.scoring.answers import contains

        path = resolve_data_path(self.options.data)
        if not path.is_file():
            from trustslm.core.errors import DataError

            raise DataError(f"abstention: calibration data not found: {path}")
        items, _ = load_closed_book(path)
        chat = self.options.chat and CHAT_TEMPLATE in adapter.capabilities
        asks = [GenerateRequest(prompt=TEMPLATE.format(question=q["question"]), max_new_tokens=self.options.max_new_tokens,
                                stop=("\n",), chat=chat) for q in items]
        answers = adapter.generate(asks)
        conf = confidences(adapter, asks, answers)
        correct = [contains(a.text, q["answers"]) for a, q in zip(answers, items)]
        threshold = calibrated_threshold(conf, correct, self.options.target)
        answered = [c >= threshold for c in conf if math.isfinite(c)]
        right_answered = sum(ok for c, ok in zip(conf, correct) if math.isfinite(c) and c >= threshold)
        resolved = {"threshold": threshold, "calibration": {
            "data": str(path.name), "sha256": sha256_file(path), "questions": len(items),
            "accuracy": sum(correct) / len(items), "answered_at_threshold": int(sum(answered)),
            "right_when_answered": int(right_answered)}}
        did = (f"abstain below confidence {threshold:.3f} (calibrated on {len(items)} questions: "
               f"accuracy {sum(correct)}/{len(items)}; {sum(answered)} would be answered, {right_answered} of them right)")
        return resolved, did

    def wrap(self, adapter: ModelAdapter, resolved: dict[str, Any]) -> ModelAdapter:
        threshold = resolved.get("threshold")
        if not isinstance(threshold, (int, float)):
            from trustslm.core.errors import BadInputError

            raise BadInputError("abstention: the resolved threshold is missing")
        return AbstainingModel(adapter, float(threshold), self.options.answer, name=self.name,
                               options=self.options.model_dump(mode="json"), resolved=resolved)
