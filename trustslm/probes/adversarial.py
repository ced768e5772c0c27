"""Probe kind ``adversarial_classification``: the model as a zero-shot classifier (label words
scored by log-likelihood, :mod:`trustslm.robustness.classifier`), attacked with TextAttack's
recipes (DeepWordBug, Gao et al. 2018; Pruthi et al. 2019), with TextAttack's metrics:

* original accuracy: share of examples the model gets right (the others are *skipped*);
* accuracy under attack: share of all examples still right after the attack (*failed* attacks);
* attack success rate: successful / (successful + failed) attacks;
* perturbed word %: words changed / words in the input, over successful attacks;
* queries: model queries per attacked (not skipped) example.

Each example is attacked by TextAttack's ``Attack.attack`` with Python's, NumPy's and torch's
random generators seeded from the run seed, the recipe and the example's id, so an attack is
reproducible and resumable. Every query goes through the engine (batched, deduplicated,
cached).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

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
    ProbeSkipped,
    Results,
    read_dataset,
)
from trustslm.robustness.classifier import label_requests


class AdversarialOptions(ProbeOptions):
    data: DataPath = "builtin:robustness_classification.jsonl"
    format: Literal["auto", "jsonl", "advglue"] = "auto"
    recipes: list[Literal["deepwordbug", "pruthi"]] = Field(default_factory=lambda: ["deepwordbug", "pruthi"],
                                                           min_length=1)
    #: Most model queries per attacked example (TextAttack's ``query_budget``).
    query_budget: int = Field(default=300, ge=1)
    #: Attack the first N examples of each task (None: all); ``--limit`` caps it further.
    per_task: int | None = Field(default=5, ge=1)


class AdversarialClassificationProbe(Probe):
    kind = "adversarial_classification"
    needs = frozenset({LOGLIKELIHOOD})
    Options = AdversarialOptions
    metrics = (
        MetricDef(name="attack_success_rate", bounds=(0.0, 1.0), column="success", higher_is_better=False,
                  by=("recipe", "task"), chart=True,
                  description="Successful attacks / (successful + failed), TextAttack's AttackSuccessRate."),
        MetricDef(name="accuracy", column="clean_correct", higher_is_better=True, by=("task",),
                  description="Original accuracy: share of examples classified right before any attack."),
        MetricDef(name="accuracy_under_attack", column="attack_correct", higher_is_better=True, by=("recipe", "task"),
                  description="Share of all examples still classified right after the attack."),
        MetricDef(name="perturbed_word_pct", column="perturbed_pct", higher_is_better=True,
                  by=("recipe",), description="Words changed, as % of the input's words, over successful attacks."),
        MetricDef(name="queries_per_example", column="queries", higher_is_better=None,
                  by=("recipe",), description="Model queries per attacked (not skipped) example."),
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.outcomes: list[dict[str, Any]] = []

    def load(self, ctx: ProbeContext) -> LoadedData:
        import dataclasses

        from trustslm.robustness.textattack_env import unavailable

        why = unavailable()
        if why:
            raise ProbeSkipped(why)
        caps = [n for n in (self.options.per_task, ctx.limit) if n is not None]
        return read_dataset(self, load_classification, dataclasses.replace(ctx, limit=min(caps, default=None)),
                            per="task")

    def requests(self, data: LoadedData, ctx: ProbeContext) -> list:
        return [r for item in data.items for r in label_requests(TASKS[item["task"]], item["inputs"])]

    def adapt(self, data: LoadedData, call, ctx: ProbeContext) -> None:
        from trustslm.robustness.attack import attack_items

        self.outcomes = attack_items(data.items, self.options.recipes, call, seed=ctx.seed,
                                     query_budget=self.options.query_budget, progress=ctx.progress)

    def score(self, data: LoadedData, results: Results, ctx: ProbeContext) -> ProbeOutput:
        import pandas as pd

        rows, samples = [], []
        for o in self.outcomes:
            status = o["status"]
            rows.append({"recipe": o["recipe"], "task": o["task"], "clean_correct": float(status != "skipped"),
                         "attack_correct": float(status == "failed"),
                         "success": {"successful": 1.0, "failed": 0.0}.get(status, float("nan")),
                         "perturbed_pct": o["perturbed_pct"] if status == "successful" else float("nan"),
                         "queries": float(o["queries"]) if status != "skipped" else float("nan")})
            samples.append(o)
        return ProbeOutput(units=pd.DataFrame(rows), samples=samples)
