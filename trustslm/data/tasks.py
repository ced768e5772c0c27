"""Classification tasks posed to a language model: a prompt template over named input fields,
and one label word per class; the model's answer is the label word with the highest
log-likelihood after the prompt (the multiple-choice scoring of lm-evaluation-harness).

The GLUE-style prompts follow lm-evaluation-harness's ``glue`` tasks (sst2, qqp, mnli, qnli,
rte); ``topic`` is the project's, for AG-News-style four-way topic classification.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    fields: tuple[str, ...]
    template: str
    #: Label words in class order (class i is ``labels[i]``), each scored after the prompt.
    labels: tuple[str, ...]

    def prompt(self, values: dict[str, str] | tuple[str, ...] | str) -> str:
        if isinstance(values, str):
            values = (values,)
        if not isinstance(values, dict):
            values = dict(zip(self.fields, values))
        return self.template.format(**{f: values[f] for f in self.fields})


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("sentiment", ("sentence",), "{sentence}\nQuestion: Is this sentence positive or negative?\nAnswer:",
         (" negative", " positive")),
    Task("topic", ("text",), "{text}\nQuestion: Is this news about world, sports, business or science?\nAnswer:",
         (" world", " sports", " business", " science")),
    Task("entailment", ("sentence1", "sentence2"), "{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:",
         (" True", " False")),
    Task("paraphrase", ("question1", "question2"),
         "Question 1: {question1}\nQuestion 2: {question2}\nQuestion: Do both questions ask the same thing?\nAnswer:",
         (" no", " yes")),
    Task("nli", ("premise", "hypothesis"), "{premise}\nQuestion: {hypothesis} True, False or Neither?\nAnswer:",
         (" True", " Neither", " False")),
    Task("qnli", ("question", "sentence"),
         "{question}\n{sentence}\nQuestion: Does this response answer the question?\nAnswer:",
         (" yes", " no")),
)}

#: AdvGLUE's task names and the task each is posed as (their label orders agree).
ADVGLUE_TASKS = {"sst2": "sentiment", "qqp": "paraphrase", "mnli": "nli", "mnli-mm": "nli", "qnli": "qnli",
                 "rte": "entailment"}
