"""Labelled classification items for the robustness probes.

Formats:

* ``jsonl``: one object per line with ``task`` (a name in :data:`trustslm.data.tasks.TASKS`),
  the task's input fields (``sentence``; ``text``; ``sentence1``/``sentence2``...), an integer
  ``label`` and optionally ``id``; an item may also hold ``original_<field>`` values, the clean
  text an adversarial field was made from;
* ``advglue``: AdvGLUE's ``dev.json`` (Wang et al. 2021), ``{"sst2": [...], "qqp": [...], "mnli":
  [...], "mnli-mm": [...], "qnli": [...], "rte": [...]}``, each item with ``idx``, its GLUE fields
  and ``label``; each AdvGLUE task is posed as the matching task (``sst2`` as ``sentiment``...).

Every item becomes ``{"id", "task", "source", "label", "inputs": {field: text}, "original":
{field: text} (possibly empty)}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_json, read_jsonl
from trustslm.data.tasks import ADVGLUE_TASKS, TASKS

FORMATS = ("auto", "jsonl", "advglue")


def load_classification(path: Path, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    if fmt not in FORMATS:
        raise DataError(f"unknown classification format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = "advglue" if path.suffix == ".json" else "jsonl"
    if fmt == "advglue":
        doc = read_json(path)
        if not isinstance(doc, dict) or not doc:
            raise DataError(f"{path}: AdvGLUE's dev.json is an object of task name -> list of items")
        unknown = sorted(set(doc) - set(ADVGLUE_TASKS))
        if unknown:
            raise DataError(f"{path}: unknown AdvGLUE task(s) {unknown} (known: {', '.join(ADVGLUE_TASKS)})")
        rows = []
        for source, items in doc.items():
            if not isinstance(items, list):
                raise DataError(f"{path}: {source} is not a list of items")
            rows += [{**r, "task": ADVGLUE_TASKS[source], "source": source,
                      "id": f"{source}:{r.get('idx', n)}"} for n, r in enumerate(items) if isinstance(r, dict)]
    else:
        rows = read_jsonl(path)
    return [_item(path, n, row) for n, row in enumerate(rows, start=1)], fmt


def _item(path: Path, n: int, row: dict[str, Any]) -> dict[str, Any]:
    task = TASKS.get(str(row.get("task")))
    if task is None:
        raise DataError(f"{path} item {n}: unknown task {row.get('task')!r} (known: {', '.join(TASKS)})")
    inputs = {}
    for field in task.fields:
        value = row.get(field)
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{path} item {n}: task {task.name} needs a non-empty {field!r}")
        inputs[field] = value
    label = row.get("label")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(task.labels):
        raise DataError(f"{path} item {n}: label must be an integer from 0 to {len(task.labels) - 1} for {task.name}")
    original = {f: row[f"original_{f}"] for f in task.fields if isinstance(row.get(f"original_{f}"), str)}
    return {"id": str(row.get("id", n - 1)), "task": task.name, "source": str(row.get("source", task.name)),
            "label": label, "inputs": inputs, "original": original}
