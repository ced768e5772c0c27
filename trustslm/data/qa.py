"""Loaders of question-answering data for the truthfulness probes.

* TruthfulQA (Lin et al. 2022), three forms mapped to the same items:
  - its CSV (``Question``, ``Best Answer``, ``Correct Answers``, ``Incorrect Answers``, answers
    separated by ``;``, optional ``Category``). MC1 is the best answer against the incorrect
    ones, MC2 the correct answers against the incorrect ones, each answer ending in a full stop,
    as the TruthfulQA repository builds its multiple-choice scores from this file
    (``utilities.split_multi_answer``, ``format_best``);
  - ``mc_task.json`` (``question``, ``mc1_targets`` and ``mc2_targets`` as ``{answer: 0|1}``),
    the multiple-choice form behind the hub's ``truthful_qa`` / ``multiple_choice`` config that
    lm-evaluation-harness reads;
  - the hub's rows (``hf:truthfulqa/truthful_qa:multiple_choice:validation``), whose targets are
    ``{"choices": [...], "labels": [...]}``.
* Closed-book questions (the project's JSONL): ``question``, ``answers`` (a list, or one string
  with ``|`` between alternatives: ``seven|7``), optional ``kind`` and ``distractors``.

Every item has ``id``, ``category`` and ``question``; TruthfulQA items add ``mc1``/``mc2`` as
``(choices, labels)``, closed-book items ``answers`` and ``distractors``.
:func:`multiple_choice_items` turns either into ``choices`` + ``label`` (one right answer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_csv, read_json, read_jsonl, require_fields
from trustslm.data.hub import is_hub, load_hub_rows

TRUTHFULQA_FORMATS = ("truthfulqa_csv", "truthfulqa_mc_json")
CLOSED_BOOK_FORMATS = ("closed_book_jsonl", "jsonl")


def _split_answers(text: str) -> list[str]:
    """TruthfulQA's ``split_multi_answer``: split on ``;``, strip, end each answer with a full stop."""
    return [a if a.endswith(".") else a + "." for a in (p.strip() for p in str(text).split(";")) if a]


def _targets(value: Any, where: str, name: str) -> tuple[list[str], list[int]]:
    """``{answer: label}`` (mc_task.json) or ``{"choices": [...], "labels": [...]}`` (hub)."""
    if isinstance(value, dict) and set(value) == {"choices", "labels"}:
        choices, labels = list(value["choices"]), list(value["labels"])
    elif isinstance(value, dict):
        choices, labels = list(value), list(value.values())
    else:
        raise DataError(f"{where}: {name} must be an object of answers and 0/1 labels")
    if len(choices) != len(labels) or any(lab not in (0, 1) for lab in labels):
        raise DataError(f"{where}: {name} needs one 0/1 label per answer")
    return [str(c) for c in choices], [int(lab) for lab in labels]


def _mc_item(where: str, n: int, question: str, mc1: tuple, mc2: tuple, category: str) -> dict[str, Any]:
    if not question.strip():
        raise DataError(f"{where} item {n}: empty question")
    for name, (choices, labels) in (("MC1", mc1), ("MC2", mc2)):
        if 1 not in labels:
            raise DataError(f"{where} item {n}: no correct answer for {name}")
        if 0 not in labels:
            raise DataError(f"{where} item {n}: no incorrect answer for {name}")
    if sum(mc1[1]) != 1:
        raise DataError(f"{where} item {n}: MC1 needs exactly one correct answer")
    return {"id": str(n - 1), "category": category or "all", "question": question.strip(), "mc1": mc1, "mc2": mc2}


def load_truthfulqa(path: Path | str, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    if is_hub(str(path)):
        rows = load_hub_rows(str(path), default_split="validation")
        return [_mc_item(str(path), n, str(r.get("question", "")), _targets(r.get("mc1_targets"), str(path), "mc1_targets"),
                         _targets(r.get("mc2_targets"), str(path), "mc2_targets"), "all")
                for n, r in enumerate(rows, start=1)], "hub"
    path = Path(path)
    if fmt == "auto":
        fmt = "truthfulqa_mc_json" if path.suffix.lower() == ".json" else "truthfulqa_csv"
    if fmt == "truthfulqa_mc_json":
        rows = read_json(path)
        if not isinstance(rows, list) or not rows:
            raise DataError(f"{path}: expected a JSON list of questions (TruthfulQA's mc_task.json)")
        items = []
        for n, r in enumerate(rows, start=1):
            if not isinstance(r, dict) or "question" not in r:
                raise DataError(f"{path} item {n}: expected an object with question, mc1_targets, mc2_targets")
            where = f"{path} item {n}"
            items.append(_mc_item(str(path), n, str(r["question"]), _targets(r.get("mc1_targets"), where, "mc1_targets"),
                                  _targets(r.get("mc2_targets"), where, "mc2_targets"), str(r.get("category", ""))))
        return items, fmt
    if fmt != "truthfulqa_csv":
        raise DataError(f"unknown TruthfulQA format {fmt!r} (known: {', '.join(TRUTHFULQA_FORMATS)})")
    rows = read_csv(path, required=("Question", "Best Answer", "Correct Answers", "Incorrect Answers"))
    items = []
    for n, r in enumerate(rows, start=1):
        if None in r:  # DictReader puts the cells of a row longer than the header under None
            raise DataError(f"{path} row {n}: more cells than columns (malformed CSV)")
        if None in r.values():  # ... and None in the columns a shorter row lacks (e.g. after an unclosed quote)
            raise DataError(f"{path} row {n}: fewer cells than columns (malformed CSV)")
        best = _split_answers(r["Best Answer"] or "")
        true, false = _split_answers(r["Correct Answers"] or ""), _split_answers(r["Incorrect Answers"] or "")
        if not best or not true:
            raise DataError(f"{path} item {n}: no correct answer")
        if not false:
            raise DataError(f"{path} item {n}: no incorrect answer")
        mc1 = ([best[0], *false], [1] + [0] * len(false))
        mc2 = ([*true, *false], [1] * len(true) + [0] * len(false))
        items.append(_mc_item(str(path), n, r["Question"] or "", mc1, mc2, (r.get("Category") or "").strip()))
    return items, fmt


def load_closed_book(path: Path | str, fmt: str = "auto", *, need_answers: bool = True) -> tuple[list[dict[str, Any]], str]:
    """``need_answers=False``: questions without answers are kept (with ``answers`` empty)."""
    path = Path(path)
    if fmt not in ("auto", *CLOSED_BOOK_FORMATS):
        raise DataError(f"unknown closed-book format {fmt!r} (known: {', '.join(CLOSED_BOOK_FORMATS)})")
    rows = read_jsonl(path)
    require_fields(path, rows, ("question",))
    items = []
    for n, r in enumerate(rows, start=1):
        raw = r.get("answers", r.get("answer"))
        answers = raw if isinstance(raw, list) else ([] if raw is None else str(raw).split("|"))
        answers = [str(a).strip() for a in answers if str(a).strip()]
        if not answers and need_answers:
            raise DataError(f"{path} item {n}: a question without answers")
        distractors = r.get("distractors", [])
        if not isinstance(distractors, list):
            raise DataError(f"{path} item {n}: distractors must be a list")
        distractors = [str(d).strip() for d in distractors if str(d).strip()]
        known = {a.lower() for a in answers}
        if any(d.lower() in known for d in distractors):
            raise DataError(f"{path} item {n}: a distractor is also a correct answer")
        items.append({"id": str(r.get("id", n - 1)), "category": str(r.get("kind", r.get("category", "all"))),
                      "question": str(r["question"]).strip(), "answers": answers, "distractors": distractors})
    return items, "jsonl"


def load_qa(path: Path | str, fmt: str = "auto", *, need_answers: bool = True) -> tuple[list[dict[str, Any]], str]:
    """Either kind of file: TruthfulQA (CSV, ``.json``, hub) or closed-book JSONL (``.jsonl``)."""
    if fmt in CLOSED_BOOK_FORMATS or (fmt == "auto" and not is_hub(str(path)) and Path(path).suffix.lower() == ".jsonl"):
        return load_closed_book(path, fmt, need_answers=need_answers)
    return load_truthfulqa(path, fmt)


def multiple_choice_items(items: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """One right answer among several: TruthfulQA's MC1 choices, or a closed-book question's first
    answer followed by its distractors (an item without distractors is bad input)."""
    out = []
    for n, item in enumerate(items, start=1):
        form = "closed_book"
        if "mc1" in item:
            choices, labels = item["mc1"]
            label, form = labels.index(1), "truthfulqa"
        else:
            if not item["distractors"]:
                raise DataError(f"{where} item {n}: no distractors, so no multiple-choice form")
            choices, label = [item["answers"][0], *item["distractors"]], 0
        out.append({"id": item["id"], "category": item["category"], "question": item["question"],
                    "choices": list(choices), "label": label, "form": form})
    return out
