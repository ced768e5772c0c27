"""Comparing reports of two runs that should agree."""

from __future__ import annotations

import json
from typing import Any

#: What differs between two runs of the same audit by nature: times and cache counts.
RUN_VARYING = ("started_at", "wall_time_s", "resumed", "cache_hits", "cache_misses")
RESULT_VARYING = ("wall_time_s", "speed")


def comparable(report: Any) -> dict[str, Any]:
    """A report (a TrustReport or its JSON dict) without the fields that differ between runs by nature."""
    data = json.loads(report.model_dump_json()) if hasattr(report, "model_dump_json") else json.loads(json.dumps(report))
    for key in RUN_VARYING:
        data["run"].pop(key, None)
    for r in data["results"]:
        for key in RESULT_VARYING:
            r.pop(key, None)
    return data
