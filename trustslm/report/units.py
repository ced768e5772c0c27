"""``units.jsonl``: each probe's unit table, the rows its metrics were computed from.

One JSON object per probe: ``{"probe_id": ..., "units": <the table in pandas' "split" layout>}``.
The release gate reads them back to recompute the metrics of two reports on the same bootstrap
resamples (:mod:`trustslm.gate.compare`). NaN is written as null and read back as NaN.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING

from trustslm.core.errors import BadInputError
from trustslm.core.limits import MAX_REPORT_SIDE_FILE_BYTES
from trustslm.core.textfiles import iter_bounded_lines, one_line, parse_json

if TYPE_CHECKING:
    import pandas as pd

FILE_NAME = "units.jsonl"


def dump_units(units: dict[str, pd.DataFrame]) -> str:
    lines = []
    for probe_id, frame in units.items():
        table = json.loads(frame.reset_index(drop=True).to_json(orient="split", index=False, double_precision=15))
        lines.append(json.dumps({"probe_id": probe_id, "units": table}, ensure_ascii=False) + "\n")
    return "".join(lines)


def read_units(path: str | Path) -> dict[str, pd.DataFrame]:
    """The unit tables in ``path``; a malformed line is a one-line :class:`BadInputError`. The file is
    read as a bounded stream (:data:`~trustslm.core.limits.MAX_REPORT_SIDE_FILE_BYTES`), each line
    bounded in nesting depth, and a table must be pandas' "split" layout (columns, and rows as long)."""
    path = Path(path)
    out: dict[str, pd.DataFrame] = {}
    for i, line in iter_bounded_lines(path, "units", MAX_REPORT_SIDE_FILE_BYTES):
        if not line.strip():
            continue
        record = parse_json(line, f"{path}, line {i}")
        probe_id, table = _unit_record(record, f"{path}, line {i}")
        out[probe_id] = _frame(table, f"{path}, line {i}")
    return out


def _unit_record(record: object, where: str) -> tuple[str, dict]:
    """(probe id, table) of one line, checked before pandas sees the table."""
    if not isinstance(record, dict) or not isinstance(record.get("probe_id"), str):
        raise BadInputError(f"{where}: not a unit table (expected an object with a probe_id string)")
    table = record.get("units")
    if not isinstance(table, dict) or set(table) != {"columns", "data"}:
        raise BadInputError(f"{where}: not a unit table (units must be an object of columns and data)")
    columns, data = table["columns"], table["data"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        raise BadInputError(f"{where}: not a unit table (columns must be distinct names)")
    if not isinstance(data, list) or not all(isinstance(row, list) and len(row) == len(columns) for row in data):
        raise BadInputError(f"{where}: not a unit table (each row must hold one value per column)")
    return record["probe_id"], table


def _frame(table: dict, where: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_json(StringIO(json.dumps(table)), orient="split", dtype=False, convert_dates=False)
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise BadInputError(f"{where}: not a unit table ({type(exc).__name__}: {one_line(str(exc))[:200]})") from None
