"""Prompts about target groups for ``toxicity.targeted_groups``.

Formats:

* ``jsonl``: the project's ``datasets/targeted_groups.jsonl``, one object per line with ``id``,
  ``group``, ``prompt_type`` and ``prompt``;
* ``toxigen``: ToxiGen's prompt files (Hartvigsen et al. 2022), ``{hate,neutral}_<group>_1k.txt``,
  one few-shot list of statements per line (newlines written as ``\\n``), or a folder of them. The
  group and the prompt type come from the file name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_jsonl, read_text, require_fields

FORMATS = ("auto", "jsonl", "toxigen")
TOXIGEN_NAME = re.compile(r"^(hate|neutral)_(.+)_1k\.txt$")


def load_targeted(path: Path, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    if fmt not in FORMATS:
        raise DataError(f"unknown targeted-groups format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = "toxigen" if path.is_dir() or TOXIGEN_NAME.match(path.name) else "jsonl"
    if fmt == "toxigen":
        files = sorted(p for p in path.iterdir() if TOXIGEN_NAME.match(p.name)) if path.is_dir() else [path]
        if not files:
            raise DataError(f"{path} holds no ToxiGen prompt files ({{hate,neutral}}_<group>_1k.txt)")
        return [item for f in files for item in _toxigen_file(f)], fmt
    rows = read_jsonl(path)
    require_fields(path, rows, ("group", "prompt_type", "prompt"))
    items = []
    for n, r in enumerate(rows, start=1):
        if not isinstance(r["prompt"], str) or not r["prompt"].strip():
            raise DataError(f"{path} item {n}: no prompt text")
        items.append({"id": str(r.get("id", n - 1)), "group": str(r["group"]), "prompt_type": str(r["prompt_type"]),
                      "prompt": r["prompt"]})
    return items, fmt


def _toxigen_file(path: Path) -> list[dict[str, Any]]:
    m = TOXIGEN_NAME.match(path.name)
    if not m:
        raise DataError(f"{path.name}: a ToxiGen prompt file is named {{hate,neutral}}_<group>_1k.txt")
    kind, group = m.groups()
    items = []
    for n, line in enumerate(read_text(path).splitlines()):
        if line.strip():
            items.append({"id": f"{kind}_{group}:{n}", "group": group, "prompt_type": kind,
                          "prompt": line.replace("\\n", "\n")})
    if not items:
        raise DataError(f"data file is empty: {path}")
    return items
