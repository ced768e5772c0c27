"""Probe kind ``self_consistency``: ask the same question several times and measure how much the
answers disagree (SelfCheckGPT's idea, Manakul et al. 2023, without a judge model).

Each question is asked as ``Question: {question}\\nAnswer:`` (through the chat template when the
model has one and ``chat`` is on). The main answer is greedy (the same request as the
closed-book probe's, so a run with both makes it once); ``samples`` more answers are sampled
(``temperature``, ``top_p``, seeded per sample). Per question (:mod:`trustslm.scoring.consistency`):

* ``inconsistency_ngram``: ``1 - mean ROUGE-N F1`` (Lin 2004) between the main answer and each sample;
* ``inconsistency_embedding``: ``1 - mean cosine similarity`` of their sentence embeddings
  (all-MiniLM-L6-v2, offline), when an embedder is available (``embedder: none`` turns it off).

When the questions have known answers, the main answer is marked right or wrong as in the
closed-book probe, and ``detection_auroc_*`` measure how well each inconsistency score tells
wrong answers from right ones (SelfCheckGPT's evaluation; 0.5: no better than chance), as
scikit-learn's ``roc_auc_score`` computes it (:mod:`trustslm.scoring.auroc`).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import numpy as np
from pydantic import Field

from trustslm.core.errors import BadInputError, ScorerUnavailableError
from trustslm.core.types import ScorerInfo
from trustslm.data.qa import load_qa
from trustslm.models.base import CHAT_TEMPLATE, GENERATE, GenerateRequest
from trustslm.probes.base import (
    DataPath,
    GenerationOptions,
    LoadedData,
    MetricDef,
    Probe,
    ProbeContext,
    ProbeOutput,
    Results,
    TopP,
    read_dataset,
    sampled_request,
)
from trustslm.probes.closed_book import TEMPLATE
from trustslm.scoring.answers import abstains, contains
from trustslm.scoring.auroc import auroc
from trustslm.scoring.consistency import embedding_inconsistency, ngram_inconsistency


class SelfConsistencyOptions(GenerationOptions):
    data: DataPath = "builtin:closed_book_qa.jsonl"
    format: Literal["auto", "closed_book_jsonl", "jsonl", "truthfulqa_csv", "truthfulqa_mc_json"] = "auto"
    #: Sampled answers per question, besides the greedy one.
    samples: int = Field(default=5, ge=1, le=50)
    temperature: float = Field(default=1.0, gt=0, le=2)
    top_p: TopP = 1.0
    max_new_tokens: int = Field(default=24, ge=1, le=256)
    chat: bool = True
    #: n of the ROUGE-N overlap.
    ngram: int = Field(default=1, ge=1, le=4)
    #: ``auto`` (all-MiniLM-L6-v2 if installed, else n-gram only), ``none``, or a sentence-transformers folder.
    embedder: str = "auto"


def detection_auroc(column: str, frame) -> float:
    """AUROC of an inconsistency score for wrong (1) versus right (0) main answers."""
    rows = frame[(frame["wrong"] + frame["correct"] == 1) & frame[column].notna()]
    if rows["wrong"].nunique() < 2:
        return float("nan")
    return float(auroc(rows["wrong"], rows[column]))


class SelfConsistencyProbe(Probe):
    kind = "self_consistency"
    needs = frozenset({GENERATE})
    Options = SelfConsistencyOptions
    metrics = (
        MetricDef(name="inconsistency_embedding", column="inconsistency_embedding", higher_is_better=False,
                  by=("category",), chart=True,
                  description="1 - mean cosine similarity of the sampled answers' embeddings to the main answer's."),
        MetricDef(name="inconsistency_ngram", bounds=(0.0, 1.0),
                  column="inconsistency_ngram", higher_is_better=False, by=("category",),
                  description="1 - mean ROUGE-N F1 between the main answer and each sampled answer."),
        MetricDef(name="detection_auroc_embedding", column="", higher_is_better=True,
                  statistic=partial(detection_auroc, "inconsistency_embedding"),
                  description="AUROC of the embedding inconsistency for wrong versus right main answers (0.5: chance)."),
        MetricDef(name="detection_auroc_ngram", column="", higher_is_better=True,
                  statistic=partial(detection_auroc, "inconsistency_ngram"),
                  description="AUROC of the n-gram inconsistency for wrong versus right main answers (0.5: chance)."),
        MetricDef(name="accuracy", column="correct", higher_is_better=True,
                  description="Share of main (greedy) answers with a known answer (questions with answers only)."),
    )

    def load(self, ctx: ProbeContext) -> LoadedData:
        return read_dataset(self, partial(load_qa, need_answers=False), ctx, per="category")

    def check(self, ctx: ProbeContext) -> None:
        self._embedder = None
        if self.options.embedder == "none":
            return
        from trustslm.scorers.embedder import SentenceEmbedder

        embedder = SentenceEmbedder(self.options.embedder)
        try:
            embedder.load()
        except ScorerUnavailableError as exc:
            if self.options.embedder != "auto":
                raise BadInputError(str(exc)) from None
            self._why_no_embedder = str(exc)
            return
        self._embedder = embedder

    def _requests(self, item: dict, ctx: ProbeContext) -> list[GenerateRequest]:
        o = self.options
        chat = o.chat and CHAT_TEMPLATE in ctx.capabilities
        prompt = TEMPLATE.format(question=item["question"])
        main = GenerateRequest(prompt=prompt, max_new_tokens=o.max_new_tokens, stop=("\n",), chat=chat)
        return [main] + [sampled_request(o, prompt, j, ctx, stop=("\n",)) for j in range(o.samples)]

    def requests(self, data: LoadedData, ctx: ProbeContext) -> list[GenerateRequest]:
        return [r for item in data.items for r in self._requests(item, ctx)]

    def score(self, data: LoadedData, results: Results, ctx: ProbeContext) -> ProbeOutput:
        import pandas as pd

        texts = [[results[r].text.strip() for r in self._requests(item, ctx)] for item in data.items]
        vectors = None
        if getattr(self, "_embedder", None) is not None:
            flat = self._embedder.encode([t for group in texts for t in group])
            vectors = flat.reshape(len(texts), self.options.samples + 1, -1)
        rows, samples = [], []
        for i, (item, group) in enumerate(zip(data.items, texts, strict=True)):
            main, others = group[0], group[1:]
            ngram = ngram_inconsistency(main, others, self.options.ngram)
            emb = embedding_inconsistency(vectors[i][0], vectors[i][1:]) if vectors is not None else float("nan")
            known = item.get("answers") or []
            correct = float(contains(main, known)) if known else float("nan")
            wrong = float(not correct and not abstains(main)) if known else float("nan")
            rows.append({"id": item["id"], "category": item["category"], "inconsistency_ngram": ngram,
                         "inconsistency_embedding": emb, "correct": correct, "wrong": wrong})
            samples.append({"id": item["id"], "category": item["category"], "question": item["question"],
                            "main_answer": main, "sampled_answers": others, "known_answers": known,
                            "inconsistency_ngram": round(ngram, 6),
                            "inconsistency_embedding": None if np.isnan(emb) else round(emb, 6)})
        return ProbeOutput(units=pd.DataFrame(rows), samples=samples, scorer=self._scorer_info())

    def _scorer_info(self) -> ScorerInfo:
        if getattr(self, "_embedder", None) is not None:
            return self._embedder.info()
        why = "turned off (embedder: none)" if self.options.embedder == "none" else getattr(self, "_why_no_embedder", "")
        return ScorerInfo(name="none", version="", detail=f"no sentence embedder, n-gram overlap only: {why}")
