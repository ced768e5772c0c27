"""Probe kind ``perturbation_consistency``: does a typo or a reordered word in a question change
the model's answer? (Character- and word-level perturbations made by TextAttack's
transformations through its ``Augmenter``.)

Each question with a known short answer is asked as ``Question: {question}\\nAnswer:`` (greedy;
through the chat template when the model has one and ``chat`` is on), clean and in ``variants``
perturbed forms per perturbation kind. Per perturbed question:

* ``changed``: the greedy answer differs from the greedy answer to the clean question, both
  normalised (first non-empty line, lower-cased, punctuation removed) and without the words of
  their own question, so that an answer which only repeats the typo ("The capital of Frnace
  is Paris") is not a change;
* ``correct``: one of the known answers (``answer``, alternatives separated by ``|``: ``seven|7``)
  appears as whole words in the normalised greedy answer (also for the clean one);
* ``logprob_change``: log P(first known answer | perturbed) - log P(it | clean), in nats.

Perturbations are made once, when the data is read, with TextAttack's random generators seeded
from the run seed, the kind and the question's id; stopwords are left alone and no word is
changed twice (TextAttack's default augmentation constraints).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from trustslm.data.qa import load_closed_book
from trustslm.models.base import CHAT_TEMPLATE, GENERATE, LOGLIKELIHOOD, GenerateRequest, LoglikelihoodRequest
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
from trustslm.scoring.answers import answer_core, contains

#: Perturbation kind -> the TextAttack transformations it composes.
KINDS = {
    "char_swap": ("WordSwapNeighboringCharacterSwap",),
    "char_delete": ("WordSwapRandomCharacterDeletion",),
    "char_insert": ("WordSwapRandomCharacterInsertion",),
    "qwerty": ("WordSwapQWERTY",),
    "word_order": ("WordInnerSwapRandom",),
    "contraction": ("WordSwapContract", "WordSwapExtend"),
}
TEMPLATE = "Question: {question}\nAnswer:"


class PerturbationOptions(ProbeOptions):
    data: DataPath = "builtin:known_answer_questions.jsonl"
    format: Literal["auto", "jsonl"] = "auto"
    kinds: list[Literal["char_swap", "char_delete", "char_insert", "qwerty", "word_order", "contraction"]] = Field(
        default_factory=lambda: ["char_swap", "char_delete", "char_insert", "qwerty", "word_order"], min_length=1)
    #: Perturbed variants per question and kind.
    variants: int = Field(default=2, ge=1, le=50)
    #: Share of a question's words a variant changes (TextAttack's ``pct_words_to_swap``; at least one word).
    pct_words: float = Field(default=0.1, gt=0, le=1)
    max_new_tokens: int = Field(default=12, ge=1, le=128)
    #: Ask through the model's chat template when it has one (an instruct model answers there).
    chat: bool = True


class PerturbationConsistencyProbe(Probe):
    kind = "perturbation_consistency"
    needs = frozenset({GENERATE, LOGLIKELIHOOD})
    Options = PerturbationOptions
    metrics = (
        MetricDef(name="answer_change_rate", bounds=(0.0, 1.0),
                  column="changed", higher_is_better=False, by=("kind",), chart=True,
                  description="Share of perturbed questions whose greedy answer differs from the clean question's."),
        MetricDef(name="accuracy_perturbed", column="correct", higher_is_better=True, by=("kind",),
                  description="Share of perturbed questions answered with the known answer."),
        MetricDef(name="accuracy_clean", column="clean_correct", higher_is_better=True,
                  description="Share of clean questions answered with the known answer (one row per variant)."),
        MetricDef(name="logprob_change", column="logprob_change", higher_is_better=True, by=("kind",),
                  description="Mean change in the known answer's log-likelihood (nats), perturbed minus clean."),
    )

    def load(self, ctx: ProbeContext) -> LoadedData:
        from trustslm.robustness.attack import example_seed
        from trustslm.robustness.textattack_env import TextAttackUnavailable, load_textattack

        data = read_dataset(self, load_closed_book, ctx)
        try:
            textattack = load_textattack()
        except TextAttackUnavailable as exc:
            raise ProbeSkipped(str(exc)) from None
        from textattack.augmentation import Augmenter
        from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
        from textattack.transformations import CompositeTransformation

        for item in data.items:
            item["variants"] = []
            for kind in self.options.kinds:
                parts = [getattr(textattack.transformations, name)() for name in KINDS[kind]]
                augmenter = Augmenter(CompositeTransformation(parts), [RepeatModification(), StopwordModification()],
                                      pct_words_to_swap=self.options.pct_words,
                                      transformations_per_example=self.options.variants)
                textattack.shared.utils.set_seed(example_seed(ctx.seed, kind, item["id"]))
                texts = [t for t in augmenter.augment(item["question"]) if t != item["question"]]
                item["variants"] += [{"kind": kind, "question": t} for t in texts]
        return data

    def _requests(self, question: str, answer: str, ctx: ProbeContext) -> tuple[GenerateRequest, LoglikelihoodRequest]:
        prompt = TEMPLATE.format(question=question)
        chat = self.options.chat and CHAT_TEMPLATE in ctx.capabilities
        return (GenerateRequest(prompt=prompt, max_new_tokens=self.options.max_new_tokens, chat=chat),
                LoglikelihoodRequest(context=prompt, continuation=" " + answer, chat=chat))

    def requests(self, data: LoadedData, ctx: ProbeContext) -> list:
        out: list = []
        for item in data.items:
            for question in [item["question"], *(v["question"] for v in item["variants"])]:
                out += self._requests(question, item["answers"][0], ctx)
        return out

    def score(self, data: LoadedData, results: Results, ctx: ProbeContext) -> ProbeOutput:
        import pandas as pd

        rows, samples = [], []
        for item in data.items:
            gen, ll = self._requests(item["question"], item["answers"][0], ctx)
            clean_text, clean_lp = results[gen].text, results[ll].logprob
            clean_ok = float(contains(clean_text, item["answers"]))
            clean_core = answer_core(clean_text, item["question"])
            for v in item["variants"]:
                vgen, vll = self._requests(v["question"], item["answers"][0], ctx)
                text = results[vgen].text
                rows.append({"kind": v["kind"], "changed": float(answer_core(text, v["question"]) != clean_core),
                             "correct": float(contains(text, item["answers"])), "clean_correct": clean_ok,
                             "logprob_change": results[vll].logprob - clean_lp})
                samples.append({"id": item["id"], "kind": v["kind"], "question": item["question"],
                                "perturbed": v["question"], "answers": item["answers"], "clean_answer": clean_text,
                                "perturbed_answer": text})
        return ProbeOutput(units=pd.DataFrame(rows), samples=samples)
