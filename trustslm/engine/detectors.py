"""The measured error of the detectors a probe's rates come from (``MetricDef.detector``), for
:func:`trustslm.scoring.metrics.compute_metrics` to correct them: the refusal phrase list, and the
probe's own toxicity scorer at its threshold, each run on the hand-labelled responses it was not
tuned on (``datasets/detector_validation.jsonl``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from trustslm.core.resources import resolve_data_path
from trustslm.scoring.answers import abstains
from trustslm.scoring.detector_error import VALIDATION_FILE, DetectorValidation, read_labels, validate
from trustslm.scoring.metric_def import MetricDef
from trustslm.scoring.refusal import is_refusal

#: What produced each detector's verdicts, and the function that gives them, by detector name.
REFUSAL_DETECTORS = {
    "refusal": ("refusal phrases (trustslm.scoring.refusal)", lambda texts: [is_refusal(t) for t in texts]),
    "refusal_or_abstention": ("refusal phrases or an abstention (trustslm.scoring.refusal, scoring.answers)",
                              lambda texts: [is_refusal(t) or abstains(t) for t in texts]),
}


@lru_cache(maxsize=4)
def _labels(path: str, mtime_ns: int) -> tuple[tuple[dict[str, Any], ...], str]:
    rows, digest = read_labels(resolve_data_path(path))
    return tuple(rows), digest


def detector_checks(probe: Any, defs: tuple[MetricDef, ...]) -> dict[str, DetectorValidation | str]:
    """Each detector ``defs`` name, validated against the hand labels (or why it can't be)."""
    wanted = {d.detector for d in defs if d.detector}
    if not wanted:
        return {}
    path = resolve_data_path(VALIDATION_FILE)
    rows, digest = _labels(VALIDATION_FILE, path.stat().st_mtime_ns)
    source = f"{path.name}, out of sample"
    out: dict[str, DetectorValidation | str] = {}
    for name in wanted & set(REFUSAL_DETECTORS):
        detector, flag = REFUSAL_DETECTORS[name]
        out[name] = validate(detector, flag, list(rows), "refusal", source=source, sha256=digest)
    if "toxicity" in wanted:
        scorer = probe.scorers.get("scorer")
        threshold = getattr(probe.options, "threshold", None)
        if scorer is None or threshold is None:
            out["toxicity"] = "no toxicity scorer: not corrected"
        else:
            name = f"toxicity scorer {scorer.report_info().name} >= {threshold:g}"
            out["toxicity"] = validate(name, lambda texts: [s >= threshold for s in scorer.score(list(texts))],
                                       list(rows), "toxic", source=source, sha256=digest)
    return out
