"""How well a toxicity scorer agrees with labelled texts: ``trustslm scorers check``.

Labels come from JSONL files, one text per line, as a 0/1 label or a probability-like score (e.g.
Perspective API's ``toxicity``). Fields are found by name: ``text`` and ``toxicity`` or ``label``
at the top level, or RealToxicityPrompts' nested ``prompt.text`` / ``prompt.toxicity``; or given
as dotted paths. Reported, each with a 95% percentile-bootstrap interval over texts:

* AUROC of the scorer's probability against the label made binary at ``threshold`` (0.5, the
  Perspective convention RealToxicityPrompts uses), with scikit-learn's ``roc_auc_score``; none
  when every label is on one side;
* Pearson's r between the scorer's probability and the label score (scipy's ``pearsonr``), when
  the labels are scores rather than 0/1;
* the share of texts on which the scorer and the label agree at ``threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from trustslm.core.errors import DataError
from trustslm.core.types import ScorerInfo

TEXT_FIELDS = ("text", "prompt.text", "comment_text")
LABEL_FIELDS = ("toxicity", "label", "prompt.toxicity", "toxic")


class ScorerCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    scorer: ScorerInfo
    files: list[str]
    text_field: str
    label_field: str
    threshold: float
    n: int
    n_toxic: int
    auroc: float | None
    auroc_ci: tuple[float, float] | None
    pearson: float | None
    pearson_ci: tuple[float, float] | None
    agreement: float
    seconds: float


def _get(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _pick(row: dict[str, Any], given: str | None, candidates: tuple[str, ...], what: str, where: str) -> str:
    if given:
        return given
    for name in candidates:
        if _get(row, name) is not None:
            return name
    raise DataError(f"{where}: no {what} field found (looked for {', '.join(candidates)}); name it with --{what}-field")


def read_labelled(paths: Sequence[Path], text_field: str | None = None,
                  label_field: str | None = None) -> tuple[list[str], np.ndarray, str, str]:
    """Texts and their labels from JSONL files; one-line DataErrors for anything missing."""
    from trustslm.data.files import read_jsonl

    texts: list[str] = []
    labels: list[float] = []
    for path in paths:
        rows = read_jsonl(Path(path))
        text_field = _pick(rows[0], text_field, TEXT_FIELDS, "text", str(path))
        label_field = _pick(rows[0], label_field, LABEL_FIELDS, "label", str(path))
        for n, row in enumerate(rows, start=1):
            text, label = _get(row, text_field), _get(row, label_field)
            if not isinstance(text, str):
                raise DataError(f"{path} line {n}: {text_field} is missing or not a string")
            try:
                value = float(label)
            except (TypeError, ValueError):
                raise DataError(f"{path} line {n}: {label_field} is missing or not a number") from None
            if not 0.0 <= value <= 1.0:
                raise DataError(f"{path} line {n}: {label_field} must be between 0 and 1 (got {value})")
            texts.append(text)
            labels.append(value)
    return texts, np.asarray(labels, dtype=float), text_field or "", label_field or ""


def agreement_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5, *,
                      resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """AUROC, Pearson's r and agreement with their bootstrap intervals (see the module docstring)."""
    from scipy.stats import pearsonr
    from sklearn.metrics import roc_auc_score

    y = labels >= threshold
    two_sided = bool(y.any() and not y.all())  # an AUROC needs both classes
    continuous = bool(np.any((labels > 0) & (labels < 1)))
    if not two_sided and not continuous:
        raise DataError(f"every label is on one side of the threshold {threshold}: nothing to measure")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(resamples, len(y)))
    aucs, rs = [], []
    for row in idx:
        if two_sided and y[row].any() and not y[row].all():
            aucs.append(roc_auc_score(y[row], scores[row]))
        if continuous and np.ptp(scores[row]) > 0:
            rs.append(pearsonr(scores[row], labels[row]).statistic)

    def ci(values: list[float]) -> tuple[float, float]:
        lo, hi = np.quantile(values, [0.025, 0.975])
        return float(lo), float(hi)

    pearson = float(pearsonr(scores, labels).statistic) if continuous and np.ptp(scores) > 0 else None
    return {
        "n": int(len(y)), "n_toxic": int(y.sum()),
        "auroc": float(roc_auc_score(y, scores)) if two_sided else None,
        "auroc_ci": ci(aucs) if two_sided else None,
        "pearson": pearson, "pearson_ci": ci(rs) if pearson is not None and rs else None,
        "agreement": float(np.mean((scores >= threshold) == y)),
    }


def check_scorer(scorer: str, labels: Sequence[str | Path], *, text_field: str | None = None,
                 label_field: str | None = None, threshold: float = 0.5, limit: int | None = None,
                 progress: bool = True) -> ScorerCheck:
    """Score every labelled text with ``scorer`` (a scorer spec, as a probe's option takes) and
    measure the agreement."""
    import time

    from tqdm.auto import tqdm

    from trustslm.core.registry import Registry
    from trustslm.scorers.base import make_scorer

    paths = [Path(p) for p in labels]
    texts, y, text_field, label_field = read_labelled(paths, text_field, label_field)
    if limit is not None:
        texts, y = texts[:limit], y[:limit]
    s = make_scorer(scorer, Registry())
    start = time.perf_counter()
    scores: list[float] = []
    step = 256
    for i in tqdm(range(0, len(texts), step), desc="scoring", unit="batch", disable=not progress):
        scores += s.score(texts[i:i + step])
    seconds = time.perf_counter() - start
    metrics = agreement_metrics(np.asarray(scores), y, threshold)
    return ScorerCheck(scorer=s.info(), files=[str(p) for p in paths], text_field=text_field,
                       label_field=label_field, threshold=threshold, seconds=round(seconds, 2), **metrics)
