"""Training and membership texts: a ``.txt`` file (one text per non-empty line) or JSONL with a
``text`` field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_jsonl, read_text

FORMATS = ("auto", "txt", "jsonl")


def load_texts(path: Path, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    """Items ``{"id", "text"}`` and the format they were read as."""
    if fmt not in FORMATS:
        raise DataError(f"unknown text format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".json") else "txt"
    if fmt == "jsonl":
        rows = read_jsonl(path)
        items = []
        for n, row in enumerate(rows, start=1):
            text = row.get("text")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{path} item {n}: no 'text' field")
            items.append({"id": str(row.get("id", n - 1)), "text": text})
    else:
        lines = [line.strip() for line in read_text(path).splitlines()]
        items = [{"id": str(i), "text": t} for i, t in enumerate(t for t in lines if t)]
    if not items:
        raise DataError(f"data file is empty: {path}")
    return items, fmt
