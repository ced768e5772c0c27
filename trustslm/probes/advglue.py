"""Probe kind ``advglue``: accuracy on AdvGLUE's adversarial examples (Wang et al. 2021), and
against their clean originals where the data gives them.

Each example is posed as its GLUE task (lm-evaluation-harness's prompts; the answer is the label
word with the highest log-likelihood, :mod:`trustslm.robustness.classifier`). ``accuracy`` is
the share of adversarial examples answered right, AdvGLUE's robustness measure, overall and per
AdvGLUE task. Where an item also holds its clean text (``original_<field>``), the same question
is asked of the original, and ``accuracy_drop`` is clean minus adversarial accuracy over those
items (paired, so the examples are the same).
"""

from __future__ import annotations

from typing import Literal

from trustslm.data.classification import load_classification
from trustslm.data.tasks import TASKS
from trustslm.models.base import LOGLIKELIHOOD
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
from trustslm.robustness.classifier import label_requests, predict


class AdvGLUEOptions(ProbeOptions):
    data: DataPath = "builtin:advglue_style.json"
    format: Literal["auto", "jsonl", "advglue"] = "auto"


class AdvGLUEProbe(Probe):
    kind = "advglue"
    needs = frozenset({LOGLIKELIHOOD})
    Options = AdvGLUEOptions
    metrics = (
        MetricDef(name="accuracy", bounds=(0.0, 1.0),
                  column="correct", higher_is_better=True, by=("source",), chart=True,
                  description="Share of adversarial examples answered right (AdvGLUE's measure), per AdvGLUE task."),
        MetricDef(name="clean_accuracy", column="clean_correct", higher_is_better=True,
                  by=("source",), description="Share of the clean originals answered right (items that give one)."),
        MetricDef(name="accuracy_drop", column="drop", higher_is_better=False,
                  by=("source",), description="Clean minus adversarial accuracy, over the items that give an original."),
    )

    def load(self, ctx: ProbeContext) -> LoadedData:
        return read_dataset(self, load_classification, ctx, per="source")

    def requests(self, data: LoadedData, ctx: ProbeContext) -> list:
        out = []
        for item in data.items:
            task = TASKS[item["task"]]
            out += label_requests(task, item["inputs"])
            if item["original"]:
                out += label_requests(task, {**item["inputs"], **item["original"]})
        return out

    def score(self, data: LoadedData, results: Results, ctx: ProbeContext) -> ProbeOutput:
        import pandas as pd

        rows, samples = [], []
        for item in data.items:
            task = TASKS[item["task"]]
            pred = predict(task, item["inputs"], results)
            row = {"source": item["source"], "correct": float(pred == item["label"]), "clean_correct": float("nan"),
                   "drop": float("nan")}
            sample = {"id": item["id"], "source": item["source"], "label": item["label"], "prediction": pred,
                      "inputs": item["inputs"]}
            if item["original"]:
                clean = predict(task, {**item["inputs"], **item["original"]}, results)
                row["clean_correct"] = float(clean == item["label"])
                row["drop"] = row["clean_correct"] - row["correct"]
                sample.update(original=item["original"], clean_prediction=clean)
            rows.append(row)
            samples.append(sample)
        return ProbeOutput(units=pd.DataFrame(rows), samples=samples)
