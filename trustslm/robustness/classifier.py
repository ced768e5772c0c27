"""A language model used as a classifier, and as a TextAttack victim.

The prediction for a prompt is the label word with the highest log-likelihood after it; the class
probabilities TextAttack's goal functions need are the softmax of the label words'
log-likelihoods (the multiple-choice scoring of lm-evaluation-harness, normalised over the
choices). Every model call goes through the engine's ``call`` (batched, deduplicated, cached).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trustslm.data.tasks import Task
from trustslm.models.base import LoglikelihoodRequest


def label_requests(task: Task, inputs: dict[str, str] | tuple[str, ...] | str) -> list[LoglikelihoodRequest]:
    prompt = task.prompt(inputs)
    return [LoglikelihoodRequest(context=prompt, continuation=word) for word in task.labels]


def label_logprobs(task: Task, inputs: Any, results: Any) -> list[float]:
    """Each label word's log-likelihood after the prompt, from results already had."""
    return [results[r].logprob for r in label_requests(task, inputs)]


def predict(task: Task, inputs: Any, results: Any) -> int:
    """The class whose label word is most likely after the prompt."""
    logprobs = label_logprobs(task, inputs, results)
    return max(range(len(logprobs)), key=logprobs.__getitem__)


def probabilities(task: Task, inputs_list: Sequence[Any], call: Callable[[list], Any]) -> np.ndarray:
    """Class probabilities, one row per input, from one batched ``call``."""
    results = call([r for inputs in inputs_list for r in label_requests(task, inputs)])
    logprobs = np.array([label_logprobs(task, inputs, results) for inputs in inputs_list], dtype=float)
    if not len(logprobs):
        return np.zeros((0, len(task.labels)))
    z = np.exp(logprobs - logprobs.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def victim(textattack: Any, task: Task, call: Callable[[list], Any]) -> Any:
    """A TextAttack ``ModelWrapper`` over ``call``: TextAttack gives it a list of texts (a string
    per example, or a tuple for two-field tasks) and gets class probabilities back (TextAttack's
    goal function counts the queries)."""

    class EngineVictim(textattack.models.wrappers.ModelWrapper):
        def __init__(self) -> None:
            self.model = None

        def __call__(self, text_input_list: list) -> np.ndarray:
            return probabilities(task, [_fields(t) for t in text_input_list], call)

    return EngineVictim()


def _fields(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
