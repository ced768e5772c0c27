"""Reading data files with one-line errors, and describing them for the report.

A data file is untrusted: it is read only if it is a regular file of at most
:data:`~trustslm.core.limits.MAX_DATA_FILE_BYTES`, as strict UTF-8, and each JSON value in it is
bounded in nesting depth and holds no lone surrogate (:func:`trustslm.core.textfiles.check_tree`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.core.hashing import sha256_file
from trustslm.core.limits import MAX_DATA_FILE_BYTES
from trustslm.core.textfiles import decode_text, one_line, parse_json, read_bounded_bytes
from trustslm.core.types import DatasetRecord


def read_text(path: Path) -> str:
    """The file's text: a missing, non-regular, oversized, non-UTF-8 or blank file is a DataError."""
    path = Path(path)
    text = decode_text(read_bounded_bytes(path, "data", MAX_DATA_FILE_BYTES, DataError), str(path), DataError)
    if not text.strip():
        raise DataError(f"data file is empty: {path}")
    return text


def read_json(path: Path) -> Any:
    """The JSON value in a data file (one document, e.g. StereoSet's or AdvGLUE's ``.json``)."""
    return parse_json(read_text(path), str(path), DataError)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per non-blank line."""
    rows = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        row = parse_json(line, f"{path} line {n}", DataError)
        if not isinstance(row, dict):
            raise DataError(f"{path} line {n}: expected a JSON object")
        rows.append(row)
    if not rows:
        raise DataError(f"data file is empty: {path}")
    return rows


def read_csv(path: Path, *, required: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file with a header naming at least ``required``."""
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))  # keeps newlines inside quoted fields
    try:
        columns = reader.fieldnames or []  # reads the header row: a field over csv's size limit raises
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {one_line(str(exc))}") from None
    missing = [c for c in required if c not in columns]
    if missing:
        found = one_line(", ".join(c for c in columns if c))[:200]
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {found})")
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {one_line(str(exc))}") from None
    if not rows:
        raise DataError(f"{path} holds no rows")
    return rows


def require_fields(path: Path, rows: list[dict[str, Any]], fields: tuple[str, ...]) -> None:
    for n, row in enumerate(rows, start=1):
        missing = [f for f in fields if f not in row or row[f] in (None, "")]
        if missing:
            raise DataError(f"{path} item {n}: missing field(s) {', '.join(missing)}")


def dataset_record(name: str, path: Path, fmt: str, n_items: int, n_used: int,
                   sha256: str | None = None) -> DatasetRecord:
    """A data file (or folder: one sha256 over its files' names and sha256) for the report;
    ``sha256`` when the caller has just checked the bytes (a pinned benchmark)."""
    if sha256 is not None:
        digest = sha256
    elif Path(path).is_dir():
        from trustslm.core.hashing import sha256_json

        digest = sha256_json({f.name: sha256_file(f) for f in sorted(Path(path).iterdir()) if f.is_file()})
    elif str(path).startswith("hf:"):
        from trustslm.core.hashing import sha256_text

        digest = sha256_text(str(path))  # a hub dataset: named, not hashed here
    else:
        digest = sha256_file(path)
    return DatasetRecord(name=name, path=str(path), sha256=digest, n_items=n_items, n_used=n_used, format=fmt)
