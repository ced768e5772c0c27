"""Reading data files with one-line errors, and describing them for the report."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.core.hashing import sha256_file
from trustslm.core.types import DatasetRecord


def read_text(path: Path) -> str:
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"data path is not a file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise DataError(f"data file is empty: {path}")
    return text


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise DataError(f"{path} line {n}: not valid JSON") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {n}: expected a JSON object")
        rows.append(row)
    if not rows:
        raise DataError(f"data file is empty: {path}")
    return rows


def read_csv(path: Path, *, required: tuple[str, ...]) -> list[dict[str, str]]:
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))  # keeps newlines inside quoted fields
    columns = reader.fieldnames or []
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(c for c in columns if c)})")
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    if not rows:
        raise DataError(f"{path} holds no rows")
    return rows


def require_fields(path: Path, rows: list[dict[str, Any]], fields: tuple[str, ...]) -> None:
    for n, row in enumerate(rows, start=1):
        missing = [f for f in fields if f not in row or row[f] in (None, "")]
        if missing:
            raise DataError(f"{path} item {n}: missing field(s) {', '.join(missing)}")


def dataset_record(name: str, path: Path, fmt: str, n_items: int, n_used: int) -> DatasetRecord:
    """A data file (or folder: one sha256 over its files' names and sha256) for the report."""
    if Path(path).is_dir():
        from trustslm.core.hashing import sha256_json

        digest = sha256_json({f.name: sha256_file(f) for f in sorted(Path(path).iterdir()) if f.is_file()})
    elif str(path).startswith("hf:"):
        from trustslm.core.hashing import sha256_text

        digest = sha256_text(str(path))  # a hub dataset: named, not hashed here
    else:
        digest = sha256_file(path)
    return DatasetRecord(name=name, path=str(path), sha256=digest, n_items=n_items, n_used=n_used, format=fmt)
