"""Prompts for ``toxicity.over_refusal``: safe prompts that look unsafe, and their unsafe twins
(after the prompt types of XSTest, Röttger et al. 2024).

Formats (the ``format`` option):

* ``jsonl``: one object per line with ``prompt`` and ``label`` (``safe`` or ``unsafe``), and
  optionally ``id`` (default: the line's index), ``type`` (default ``all``) and ``pair`` (the id of
  the prompt's twin, which must exist and carry the other label);
* ``xstest_csv``: XSTest's released CSV (``prompt``, ``type`` and, where present, ``label`` and
  ``id`` or ``id_v2``). A row without a label is ``unsafe`` when its type starts with
  ``contrast_``, else ``safe``; the ``contrast_`` prefix is dropped from the type, so that
  ``homonyms`` and ``contrast_homonyms`` share a breakdown row. Pairs are not read (XSTest does not
  name them).

``auto`` reads ``.csv`` as ``xstest_csv`` and anything else as ``jsonl``. Ids must be unique.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_csv, read_jsonl

FORMATS = ("auto", "jsonl", "xstest_csv")
LABELS = ("safe", "unsafe")
CONTRAST = "contrast_"


def load_over_refusal(path: Path, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    """``[{"id", "type", "label", "prompt", "pair"}]`` (``pair`` None where not given) and the format read."""
    if fmt not in FORMATS:
        raise DataError(f"unknown over-refusal format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = "xstest_csv" if path.suffix.lower() == ".csv" else "jsonl"
    rows = _xstest_rows(path) if fmt == "xstest_csv" else read_jsonl(path)
    items: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, start=1):
        text = row.get("prompt")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path} item {n}: no prompt text (field 'prompt')")
        label = row.get("label")
        if label is None or label == "":
            raise DataError(f"{path} item {n}: missing label (safe or unsafe)")
        if label not in LABELS:
            raise DataError(f"{path} item {n}: unknown label {str(label)[:40]!r} (known: {', '.join(LABELS)})")
        item_id = str(row.get("id", n - 1))
        if item_id in seen:
            raise DataError(f"{path} item {n}: id {item_id[:40]!r} is used twice (first by item {seen[item_id]})")
        seen[item_id] = n
        pair = row.get("pair")
        kind = row.get("type")
        items.append({"id": item_id, "type": str(kind) if kind not in (None, "") else "all", "label": label,
                      "prompt": text.strip(), "pair": None if pair in (None, "") else str(pair)})
    by_id = {item["id"]: item for item in items}
    for n, item in enumerate(items, start=1):
        pair = item["pair"]
        if pair is None:
            continue
        twin = by_id.get(pair)
        if twin is None:
            raise DataError(f"{path} item {n}: pair {pair[:40]!r} names no item of the file")
        if twin["label"] == item["label"]:
            raise DataError(f"{path} item {n}: its pair {pair[:40]!r} has the same label ({item['label']}); "
                            "a twin carries the other label")
    return items, fmt


def _xstest_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for row in read_csv(path, required=("prompt", "type")):
        kind = (row.get("type") or "").strip()
        label = (row.get("label") or "").strip() or ("unsafe" if kind.startswith(CONTRAST) else "safe")
        out: dict[str, Any] = {"prompt": row.get("prompt"), "type": kind.removeprefix(CONTRAST), "label": label}
        item_id = (row.get("id") or row.get("id_v2") or "").strip()
        if item_id:
            out["id"] = item_id
        rows.append(out)
    return rows
