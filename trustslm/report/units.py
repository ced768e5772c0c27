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
    """The unit tables in ``path``; a malformed line is a one-line :class:`BadInputError`."""
    import pandas as pd

    path = Path(path)
    out: dict[str, pd.DataFrame] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"can't read {path}: {exc}") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            probe_id, table = record["probe_id"], record["units"]
            frame = pd.read_json(StringIO(json.dumps(table)), orient="split", dtype=False, convert_dates=False)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInputError(f"{path}, line {i}: not a unit table ({type(exc).__name__}: {exc})") from None
        out[str(probe_id)] = frame
    return out
