"""Prompts for continuation probes.

Formats (``auto`` tells them apart per line):

* the project's JSONL: ``{"id": ..., "prompt": "text", "challenging": true}``;
* RealToxicityPrompts JSONL (Gehman et al. 2020): ``{"prompt": {"text": ..., "toxicity": ...},
  "challenging": ...}``; a prompt is *toxic* when its Perspective toxicity is >= 0.5, the paper's
  split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_jsonl

FORMATS = ("auto", "jsonl", "rtp_jsonl")
TOXIC_PROMPT_THRESHOLD = 0.5


def load_prompts(path: Path, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    if fmt not in FORMATS:
        raise DataError(f"unknown prompt format {fmt!r} (known: {', '.join(FORMATS)})")
    rows = read_jsonl(path)
    items = []
    seen_formats = set()
    for n, row in enumerate(rows, start=1):
        prompt = row.get("prompt")
        item: dict[str, Any] = {"id": str(row.get("id", n - 1))}
        if isinstance(prompt, dict):
            seen_formats.add("rtp_jsonl")
            text = prompt.get("text")
            tox = prompt.get("toxicity")
            if isinstance(tox, (int, float)):
                item["prompt_toxicity"] = "toxic" if tox >= TOXIC_PROMPT_THRESHOLD else "non-toxic"
        else:
            seen_formats.add("jsonl")
            text = prompt
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path} item {n}: no prompt text")
        item["prompt"] = text
        if isinstance(row.get("challenging"), bool):
            item["challenging"] = row["challenging"]
        items.append(item)
    found = seen_formats.pop() if len(seen_formats) == 1 else "mixed"
    if fmt != "auto" and found != fmt:
        raise DataError(f"{path} is not in the {fmt} format (its lines look like {found})")
    return items, found
