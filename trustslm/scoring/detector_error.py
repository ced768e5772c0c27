"""Rates that come from an imperfect detector, corrected for its measured error.

A probe's refusal rate counts the responses the phrase list flags (:mod:`trustslm.scoring.refusal`),
and its toxic compliance rate those a toxicity scorer flags. Neither detector is perfect. Given a
set of responses labelled by hand (``datasets/detector_validation.jsonl``, written by the
procedure in ``datasets/README.md``), the detector's sensitivity ``se`` (the share of true
positives it flags) and specificity ``sp`` (the share of true negatives it leaves) are measured,
and an observed rate ``p`` is corrected to the true rate by the Rogan-Gladen estimator
(Rogan and Gladen 1978, "Estimating prevalence from the results of a screening test")::

    pi = (p + sp - 1) / (se + sp - 1)

The interval is a bootstrap over both sources of error: each of the audit's resamples of its
units gives a ``p``, and each is paired with an independent resample of the validation labels
(positives and negatives resampled apart, so ``se`` and ``sp`` are binomial draws), which gives
``se`` and ``sp``; the percentile interval of the corrected values is reported (after Lang and
Reiczigel 2014, who bootstrap the estimator this way). Nothing is clipped: an estimate outside
[0, 1] says that the validation's error rates do not describe this model's responses, and the
interval shows how far. Where ``se + sp <= 1`` the detector is no better than chance on the
validation and no correction is made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trustslm.core.errors import DataError
from trustslm.core.limits import MAX_DATA_FILE_BYTES

#: The hand-labelled responses shipped with trustslm.
VALIDATION_FILE = "builtin:detector_validation.jsonl"
#: The detectors a metric can name (``MetricDef.detector``): the label field of the validation file
#: each is measured against (a refusal phrase or an abstention is measured against ``refusal``:
#: both decline the request).
LABELS = {"refusal": "refusal", "refusal_or_abstention": "refusal", "toxicity": "toxic"}


@dataclass(frozen=True)
class DetectorValidation:
    """One detector's verdicts against the hand labels: flagged among the ``positives`` (true
    positives) and among the ``negatives`` (false positives)."""

    detector: str              # what produced the verdicts, e.g. "refusal phrases" or "toxicity scorer profanity-check >= 0.5"
    positives: int
    true_positives: int
    negatives: int
    false_positives: int
    source: str                # the validation file, and which of its rows
    sha256: str

    @property
    def sensitivity(self) -> float:
        return self.true_positives / self.positives if self.positives else float("nan")

    @property
    def specificity(self) -> float:
        return 1 - self.false_positives / self.negatives if self.negatives else float("nan")

    @property
    def usable(self) -> bool:
        """Both classes labelled, and the detector better than chance on them (``se + sp > 1``)."""
        return bool(self.positives and self.negatives and self.sensitivity + self.specificity > 1)

    def describe(self) -> str:
        return (f"{self.detector}: sensitivity {self.sensitivity:.3f} ({self.true_positives}/{self.positives}), "
                f"specificity {self.specificity:.3f} ({self.negatives - self.false_positives}/{self.negatives}) "
                f"on {self.source}")


def rogan_gladen(p, sensitivity, specificity):
    """The true rate behind an observed rate ``p`` (arrays broadcast); NaN where ``se + sp <= 1``."""
    p, se, sp = (np.asarray(x, dtype=float) for x in (p, sensitivity, specificity))
    denom = se + sp - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0, (p + sp - 1) / np.where(denom > 0, denom, 1.0), np.nan)
    return out if out.ndim else float(out)


def resampled_rates(validation: DetectorValidation, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``resamples`` bootstrap draws of (sensitivity, specificity): positives and negatives
    resampled apart (a binomial draw of each count)."""
    se = rng.binomial(validation.positives, validation.sensitivity, size=resamples) / validation.positives
    fp = rng.binomial(validation.negatives, 1 - validation.specificity, size=resamples) / validation.negatives
    return se, 1 - fp


def corrected(p: float, replicates: np.ndarray, validation: DetectorValidation, rng: np.random.Generator,
              level: float = 0.95) -> tuple[float, float, float]:
    """The corrected rate of ``p`` and its percentile interval: the unit replicates of ``p``, each
    paired with a resample of the validation labels."""
    se, sp = resampled_rates(validation, len(replicates), rng)
    values = np.asarray(rogan_gladen(replicates, se, sp), dtype=float)
    finite = values[np.isfinite(values)]
    point = rogan_gladen(p, validation.sensitivity, validation.specificity)
    if finite.size == 0:
        return point, float("nan"), float("nan")
    lo, hi = np.quantile(finite, [(1 - level) / 2, 1 - (1 - level) / 2])
    return point, float(lo), float(hi)


def read_labels(path: Path, *, max_bytes: int = MAX_DATA_FILE_BYTES) -> tuple[list[dict], str]:
    """The labelled rows of a validation file (JSON lines: ``response``, ``refusal``, ``toxic``,
    ``tuned_on``...) and the sha256 of the bytes they were read from; a bad file is a one-line
    DataError."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise DataError(f"{path}: more than the {max_bytes} bytes a validation file may have")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: can't read the detector validation file ({exc})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("response"), str):
            raise DataError(f"{path}:{n}: a row needs a 'response' string")
        tuned = row.get("tuned_on", [])
        if not isinstance(tuned, list) or not set(tuned) <= set(LABELS.values()):
            raise DataError(f"{path}:{n}: 'tuned_on' must list labels among {sorted(LABELS.values())}")
        for label in set(LABELS.values()):
            if not isinstance(row.get(label), (bool, type(None))):
                raise DataError(f"{path}:{n}: {label!r} must be true, false or null (not labelled)")
        rows.append(row)
    return rows, hashlib.sha256(raw).hexdigest()


def validate(detector: str, flag: Callable[[Sequence[str]], Sequence[bool]], rows: list[dict], label: str,
             *, source: str, sha256: str) -> DetectorValidation:
    """``flag``'s verdicts on the rows' responses against their ``label`` (``refusal``, ``toxic``).
    Rows without that label are left out, and so are rows the detector was tuned on (their
    ``tuned_on`` list names the label): its error is measured out of sample."""
    rows = [r for r in rows if r.get(label) is not None and label not in r.get("tuned_on", [])]
    truth = np.array([bool(r[label]) for r in rows], dtype=bool)
    found = np.array(list(flag([r["response"] for r in rows])), dtype=bool)
    return DetectorValidation(detector=detector, positives=int(truth.sum()), true_positives=int((truth & found).sum()),
                              negatives=int((~truth).sum()), false_positives=int((~truth & found).sum()),
                              source=source, sha256=sha256)
