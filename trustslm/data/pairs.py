"""Sentence pairs for likelihood-based stereotype probes.

Formats:

* ``crows_pairs_csv``: the CrowS-Pairs CSV (Nangia et al. 2020) with columns ``sent_more``,
  ``sent_less``, ``stereo_antistereo``, ``bias_type`` (extra columns ignored);
* ``jsonl``: one object per line with the same keys (and an optional ``id``), the format of the
  project's ``datasets/stereotype_pairs.jsonl``.

``auto`` picks by file suffix. ``sent_more`` is always the more stereotypical sentence, as in the
released CrowS-Pairs file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_csv, read_jsonl, require_fields

FIELDS = ("sent_more", "sent_less", "bias_type")
FORMATS = ("auto", "crows_pairs_csv", "jsonl")


def load_pairs(path: Path, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    """The pairs in ``path`` (or ``hf:REPO...`` on the hub) and the format they were read as."""
    from trustslm.data.hub import is_hub, load_hub_rows

    if is_hub(str(path)):
        rows: list[dict[str, Any]] = load_hub_rows(str(path))
        require_fields(Path(str(path)), rows, FIELDS)
        return _items(rows, Path(str(path))), "hub"
    if fmt == "auto":
        fmt = "crows_pairs_csv" if path.suffix.lower() == ".csv" else "jsonl"
    if fmt == "crows_pairs_csv":
        rows: list[dict[str, Any]] = read_csv(path, required=FIELDS)
    elif fmt == "jsonl":
        rows = read_jsonl(path)
    else:
        raise DataError(f"unknown pair format {fmt!r} (known: {', '.join(FORMATS)})")
    require_fields(path, rows, FIELDS)
    return _items(rows, path), fmt


def _items(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    items = []
    for n, row in enumerate(rows):
        if row["sent_more"] == row["sent_less"]:
            raise DataError(f"{path} item {n + 1}: sent_more and sent_less are the same sentence")
        ident = row.get("id") or row.get("") or str(n)
        items.append({
            "id": str(ident),
            "sent_more": str(row["sent_more"]),
            "sent_less": str(row["sent_less"]),
            "bias_type": str(row["bias_type"]),
            "stereo_antistereo": str(row.get("stereo_antistereo") or "stereo"),
        })
    return items
