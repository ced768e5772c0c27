"""Probe kind ``calibration``: can the model's confidence in its multiple-choice answers be
trusted?

Each question is asked as ``Question: {question}\\nAnswer:`` (a TruthfulQA question with
TruthfulQA's own six-shot prompt, as the MC probe and lm-evaluation-harness ask it, since version 2)
and every choice scored by its log-likelihood after one space (lm-evaluation-harness style, no chat
template). The choice probabilities are the softmax of those log-likelihoods; the prediction is
the most likely choice, its probability the model's confidence (:mod:`trustslm.scoring.calibration` has the formulas).

* ``ece``: expected calibration error over ``bins`` equal-width confidence bins (Guo et al. 2017);
* ``brier``: multi-class Brier score (Brier 1950), as scikit-learn's ``brier_score_loss``;
* ``accuracy`` and ``mean_confidence`` (their gap is the overconfidence);
* reliability rows (``reliability_accuracy`` and ``reliability_confidence`` per confidence bin),
  drawn as a reliability diagram in the HTML report;
* ``selective_accuracy`` and ``coverage`` when the model abstains below each confidence threshold
  in ``THRESHOLDS`` (accuracy versus coverage).

Data: the project's closed-book questions (the first answer against the three distractors) or
TruthfulQA (its MC1 choices).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from trustslm.data.qa import load_qa, multiple_choice_items
from trustslm.models.base import LOGLIKELIHOOD, LoglikelihoodRequest
from trustslm.probes.base import (
    DataPath,
    LoadedData,
    MetricDef,
    Probe,
    ProbeContext,
    ProbeOptions,
    ProbeOutput,
    Results,
    read_dataset,
)
from trustslm.probes.truthfulqa import context as truthfulqa_context
from trustslm.scoring.calibration import (
    bin_label,
    brier,
    choice_probabilities,
    confidence_bin,
    coverage,
    coverage_resampled,
    expected_calibration_error,
    expected_calibration_error_resampled,
    selective_accuracy,
    selective_accuracy_resampled,
)

TEMPLATE = "Question: {question}\nAnswer:"
#: Abstain below these confidences (0: answer everything).
THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class CalibrationOptions(ProbeOptions):
    data: DataPath = "builtin:closed_book_qa.jsonl"
    format: Literal["auto", "closed_book_jsonl", "jsonl", "truthfulqa_csv", "truthfulqa_mc_json"] = "auto"
    #: Equal-width confidence bins of the ECE and the reliability diagram.
    bins: int = Field(default=10, ge=2, le=100)


def _ece(frame) -> float:
    return expected_calibration_error(frame["confidence"].to_numpy(float), frame["correct"].to_numpy(float),
                                      frame["bin"].to_numpy(int), int(frame["bin"].max()) + 1 if len(frame) else 1)


def _selective_accuracy(frame, level: float) -> float:
    return selective_accuracy(frame["confidence"].to_numpy(float), frame["correct"].to_numpy(float), level)


def _coverage(frame, level: float) -> float:
    return coverage(frame["confidence"].to_numpy(float), level)


def _ece_resampled(frame, idx):
    """:func:`_ece` on every resample at once (``MetricDef.batch_statistic``)."""
    return expected_calibration_error_resampled(frame["confidence"].to_numpy(float), frame["correct"].to_numpy(float),
                                                frame["bin"].to_numpy(int), idx)


def _selective_accuracy_resampled(frame, idx, level: float):
    return selective_accuracy_resampled(frame["confidence"].to_numpy(float), frame["correct"].to_numpy(float),
                                        level, idx)


def _coverage_resampled(frame, idx, level: float):
    return coverage_resampled(frame["confidence"].to_numpy(float), level, idx)


def _requests(item: dict) -> list[LoglikelihoodRequest]:
    # TruthfulQA's questions are asked with its own few-shot prompt (the one the MC probe and
    # lm-evaluation-harness use), so a run of both computes MC1's options once
    if item.get("form") == "truthfulqa":
        context = truthfulqa_context(item["question"])
    else:
        context = TEMPLATE.format(question=item["question"])
    return [LoglikelihoodRequest(context, " " + c) for c in item["choices"]]


class CalibrationProbe(Probe):
    kind = "calibration"
    needs = frozenset({LOGLIKELIHOOD})
    Options = CalibrationOptions
    metrics = (
        MetricDef(name="ece", bounds=(0.0, 1.0), column="", statistic=_ece, higher_is_better=False, target=0.0,
                  batch_statistic=_ece_resampled,
                  description="Expected calibration error: mean |accuracy - confidence| over confidence bins, weighted by size."),
        MetricDef(name="brier", column="brier", higher_is_better=False, target=0.0,
                  description="Multi-class Brier score: sum over choices of (probability - truth)^2, averaged."),
        MetricDef(name="accuracy", column="correct", higher_is_better=True, by=("category",),
                  description="Share of questions whose most likely choice is right."),
        MetricDef(name="mean_confidence", column="confidence", higher_is_better=None,
                  description="Mean probability of the chosen answer (above accuracy: overconfident)."),
        MetricDef(name="reliability_accuracy", column="correct", higher_is_better=None, by=("confidence_bin",),
                  overall=False, chart="reliability",
                  description="Accuracy of the questions in each confidence bin (reliability diagram)."),
        MetricDef(name="reliability_confidence", column="confidence", higher_is_better=None, by=("confidence_bin",),
                  overall=False, description="Mean confidence of the questions in each confidence bin."),
        MetricDef(name="selective_accuracy", column="", higher_is_better=True, overall=False, chart=True,
                  at=THRESHOLDS, at_name="abstain_below", statistic_at=_selective_accuracy,
                  batch_statistic_at=_selective_accuracy_resampled,
                  description="Accuracy on the questions answered when abstaining below a confidence threshold."),
        MetricDef(name="coverage", column="", higher_is_better=None, overall=False,
                  at=THRESHOLDS, at_name="abstain_below", statistic_at=_coverage,
                  batch_statistic_at=_coverage_resampled,
                  description="Share of questions answered when abstaining below a confidence threshold."),
    )

    def load(self, ctx: ProbeContext) -> LoadedData:
        data = read_dataset(self, load_qa, ctx, per="category")
        data.items = multiple_choice_items(data.items, data.datasets[0].path)
        return data

    def requests(self, data: LoadedData, ctx: ProbeContext) -> list[LoglikelihoodRequest]:
        return [r for item in data.items for r in _requests(item)]

    def score(self, data: LoadedData, results: Results, ctx: ProbeContext) -> ProbeOutput:
        import pandas as pd

        n_bins = self.options.bins
        rows, samples = [], []
        for item in data.items:
            lps = [results[r].logprob for r in _requests(item)]
            probs = choice_probabilities(lps)
            pred = int(np.argmax(probs))
            conf = float(probs[pred])
            b = confidence_bin(conf, n_bins)
            rows.append({"id": item["id"], "category": item["category"], "confidence": conf,
                         "correct": float(pred == item["label"]), "brier": brier(probs, item["label"]),
                         "bin": b, "confidence_bin": bin_label(b, n_bins)})
            samples.append({"id": item["id"], "category": item["category"], "question": item["question"],
                            "choices": item["choices"], "label": item["label"], "prediction": pred,
                            "probabilities": [round(float(p), 6) for p in probs]})
        return ProbeOutput(units=pd.DataFrame(rows), samples=samples)
