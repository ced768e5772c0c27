"""Running TextAttack recipes against the model, one example at a time, through the engine.

Before each example TextAttack's ``set_seed`` (Python, NumPy, torch) is called with a seed made
from the run seed, the recipe and the example's id: an attack on one example does not depend on
which others run, and ``Attacker`` given that example and that ``random_seed`` attacks it the
same way (the tests check the summaries agree).
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from trustslm.data.tasks import TASKS
from trustslm.robustness.classifier import victim

#: Recipe name -> TextAttack recipe class (the ones that run offline).
RECIPES = {"deepwordbug": "DeepWordBugGao2018", "pruthi": "Pruthi2019"}


def example_seed(seed: int, recipe: str, item_id: str) -> int:
    digest = hashlib.sha256(f"{seed}|{recipe}|{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def build_attack(textattack: Any, recipe: str, task_name: str, call: Callable, query_budget: int) -> Any:
    attack = getattr(textattack.attack_recipes, RECIPES[recipe]).build(victim(textattack, TASKS[task_name], call))
    attack.goal_function.query_budget = query_budget
    return attack


def example_of(item: dict[str, Any]) -> OrderedDict:
    return OrderedDict((f, item["inputs"][f]) for f in TASKS[item["task"]].fields)


def attack_items(items: list[dict[str, Any]], recipes: list[str], call: Callable, *, seed: int, query_budget: int,
                 progress: bool = True) -> list[dict[str, Any]]:
    """Attack every item with every recipe; one outcome dict per (recipe, item)."""
    from tqdm import tqdm

    from trustslm.core.errors import ProbeSkipped
    from trustslm.robustness.textattack_env import TextAttackUnavailable, load_textattack

    try:
        textattack = load_textattack()
    except TextAttackUnavailable as exc:
        raise ProbeSkipped(str(exc)) from None
    # "Unknown if model of class NoneType compatible with goal function": our victim has no torch model
    logging.getLogger("textattack.shared.utils.install").setLevel(logging.ERROR)
    outcomes = []
    bar = tqdm(total=len(items) * len(recipes), desc="adversarial attacks", unit="example", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    try:
        for recipe in recipes:
            for item in items:  # a fresh Attack each time: no cache carries over between examples
                attack = build_attack(textattack, recipe, item["task"], call, query_budget)
                textattack.shared.utils.set_seed(example_seed(seed, recipe, item["id"]))
                result = attack.attack(example_of(item), item["label"])
                outcomes.append({"recipe": recipe, "id": item["id"], "task": item["task"], **describe(result)})
                bar.update(1)
    finally:
        bar.close()
    return outcomes


def describe(result: Any) -> dict[str, Any]:
    """An AttackResult as TextAttack's metrics read it: status, queries, perturbed word %."""
    name = type(result).__name__
    status = {"SuccessfulAttackResult": "successful", "FailedAttackResult": "failed",
              "SkippedAttackResult": "skipped"}.get(name, name)
    original, perturbed = result.original_result.attacked_text, result.perturbed_result.attacked_text
    n_words = len(original.words)
    changed = len(original.all_words_diff(perturbed)) if status == "successful" else 0
    return {"status": status, "queries": int(result.perturbed_result.num_queries),
            "perturbed_pct": changed * 100.0 / n_words if n_words else 0.0,
            "original": original.text, "perturbed": perturbed.text,
            "label": int(result.original_result.ground_truth_output),
            "prediction_before": int(result.original_result.output),
            "prediction_after": int(result.perturbed_result.output)}
