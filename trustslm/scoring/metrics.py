"""Metric values and percentile-bootstrap intervals from a probe's unit table (basic-bootstrap
intervals for statistics that ask for them, see :func:`basic_replicates`).

All metrics of one probe are computed on the same ``B`` resamples of its units, so the
replicates can be carried on to the probe, dimension and overall scores (which then get
intervals of their own). Breakdown rows (``MetricDef.by``) are bootstrapped within their group.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from trustslm.core.types import Metric
from trustslm.scoring import CONFIDENCE, DEFAULT_RESAMPLES
from trustslm.scoring.detector_error import DetectorValidation, corrected
from trustslm.scoring.metric_def import MetricDef
from trustslm.scoring.sequential import corrected_level, stretch_replicates


@dataclass
class ComputedMetric:
    metric: Metric
    replicates: np.ndarray | None  # B bootstrap values (overall rows only)


def probe_rng(seed: int, probe_id: str, salt: str = "") -> np.random.Generator:
    """A generator that depends only on the run seed and the probe (and an optional salt)."""
    digest = hashlib.sha256(f"{probe_id}|{salt}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "big")])


def metric_value(defn: MetricDef, frame: pd.DataFrame) -> float:
    """The metric's value on a unit table (NaN where it can't be computed)."""
    if defn.statistic is not None:
        return float(defn.statistic(frame))
    return float(frame[defn.column].astype(float).mean())


def resampled_values(defn: MetricDef, frame: pd.DataFrame, idx: np.ndarray) -> np.ndarray:
    """The metric's value on each resample of the units (one row of ``idx`` per resample), before
    any basic-interval reflection."""
    if defn.statistic is None:
        values = frame[defn.column].to_numpy(dtype=float)
        if not np.isnan(values).any():
            return values[idx].mean(axis=1)
        with warnings.catch_warnings():  # a resample of only NaN rows has no value: NaN, dropped later
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(values[idx], axis=1)  # NaN marks a unit the metric skips, as pandas' mean does
    if defn.batch_statistic is not None:
        return np.asarray(defn.batch_statistic(frame, idx), dtype=float)
    stat = defn.fast_statistic or defn.statistic
    return np.array([float(stat(frame.iloc[row])) for row in idx])


def percentile_interval(replicates: np.ndarray, level: float = CONFIDENCE) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return float(lo), float(hi)


def basic_replicates(value: float, replicates: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Replicates reflected about the estimate, ``2 * value - r``, clipped to ``bounds``.

    Their percentile interval is the basic bootstrap interval (Davison and Hinkley 1997, eq. 5.6),
    which corrects the bias resampling adds: the highest minus the lowest of several noisy group
    rates is biased upward, and its resamples more so, so that the percentile interval can lie
    wholly above the estimate and never reach 0 even when every group has the same rate. Carried
    on to the scores, the reflected replicates give them the same interval. The reported interval
    is widened to contain the estimate.

    At the end of the range (a parity difference of exactly 0 from groups whose rates vary) every
    reflected replicate lies past the bound, and clipping would collapse the interval to a point
    (issue 23). There the replicates themselves are returned: their percentile interval, widened
    to the estimate, reaches from the bound to how large the statistic could be (conservative,
    as the resamples are biased upward), instead of claiming certainty."""
    reflected = np.clip(2.0 * value - replicates, *bounds)
    finite = reflected[np.isfinite(reflected)]
    spread = replicates[np.isfinite(replicates)]
    if finite.size and spread.size and np.ptp(finite) == 0 and np.ptp(spread) > 0:
        return replicates
    return reflected


def _all_same_binary(column: pd.Series) -> bool:
    v = column.dropna().to_numpy(dtype=float)
    return bool(v.size) and bool(np.isin(v, (0.0, 1.0)).all()) and (v.min() == v.max())


def jeffreys_replicates(k: int, n: int, size: int, salt: str) -> np.ndarray:
    """Draws from Beta(k + 1/2, n - k + 1/2), the Jeffreys posterior of a rate seen k times in n.

    Used for a rate of 0 or 1 (k = 0 or k = n), where every bootstrap resample is the same and the
    percentile interval is the point [0, 0]: "0 of 176" does not mean the rate is certainly 0.
    Their percentile interval, with its end at the estimate (Brown, Cai and DasGupta 2001, sec.
    4.1.2), is the Jeffreys interval: for 0 of n its upper end is about 2.5 / n (0.0142 for 0 of
    176; the rule of three's 3 / n is a one-sided bound). Carried on to the scores, a probe whose
    every unit went one way gets an interval, not a point. Deterministic for given counts."""
    rng = np.random.default_rng([k, n, size, int.from_bytes(hashlib.sha256(salt.encode()).digest()[:8], "big")])
    return rng.beta(k + 0.5, n - k + 0.5, size=size)


def compute_metrics(
    units: pd.DataFrame,
    defs: tuple[MetricDef, ...],
    *,
    seed: int,
    probe_id: str,
    resamples: int = DEFAULT_RESAMPLES,
    looks: int = 1,
    detectors: dict[str, DetectorValidation | str] | None = None,
) -> list[ComputedMetric]:
    """Every metric of ``defs`` on ``units``, with its bootstrap interval. ``looks > 1``: the
    units were drawn in rounds until an interval was narrow enough, so every interval is taken at
    the Bonferroni level over that many looks (:mod:`trustslm.scoring.sequential`).

    ``detectors`` maps a metric's ``detector`` to its validation against hand labels (or to a
    sentence saying why there is none): every row of a metric it validates is followed by its
    ``NAME_corrected`` row (:mod:`trustslm.scoring.detector_error`)."""
    out: list[ComputedMetric] = []
    n = len(units)
    rng = probe_rng(seed, probe_id)
    idx = rng.integers(0, n, size=(resamples, n)) if n else None
    detectors = detectors or {}
    for defn in defs:
        check = detectors.get(defn.detector) if defn.detector else None
        rows: list[tuple[MetricDef, pd.DataFrame, np.ndarray | None, str | None]] = []
        if defn.overall:
            rows.append((defn, units, idx, None))
        for col in defn.by:
            if col not in units.columns:
                continue
            for value in sorted(units[col].dropna().unique(), key=str):
                sub = units[units[col] == value].reset_index(drop=True)
                label = f"{col}={group_label(value)}"
                sub_rng = probe_rng(seed, probe_id, salt=f"{defn.name}|{label}")
                sub_idx = sub_rng.integers(0, len(sub), size=(resamples, len(sub)))
                rows.append((defn, sub, sub_idx, label))
        for level in defn.at:
            rows.append((at_level(defn, level), units, idx, f"{defn.at_name}={level:g}"))
        for d, frame, index, group in rows:
            computed, reps = _one(d, frame, index, group=group, looks=looks)
            if check is not None:
                computed.metric = computed.metric.model_copy(update={"detector": _detector_note(check)})
            out.append(computed)
            if isinstance(check, DetectorValidation) and check.usable and reps is not None \
                    and computed.metric.value is not None and d.statistic is None:
                out.append(_corrected_row(d, computed.metric, reps, check, seed, probe_id, looks))
    return out


def _detector_note(check: DetectorValidation | str) -> str:
    if isinstance(check, str):
        return check
    if not check.usable:
        return f"{check.describe()}; not corrected: the labels do not measure both error rates"
    return check.describe()


def _corrected_row(defn: MetricDef, raw: Metric, reps: np.ndarray, check: DetectorValidation, seed: int,
                   probe_id: str, looks: int) -> ComputedMetric:
    """The Rogan-Gladen row that follows ``raw``: unit resamples paired with resamples of the labels."""
    rng = probe_rng(seed, probe_id, salt=f"detector|{defn.name}|{raw.group}")
    value, lo, hi = corrected(float(raw.value), reps, check, rng, level=corrected_level(looks))  # type: ignore[arg-type]
    metric = Metric(
        name=f"{defn.name}_corrected", value=_finite(value), higher_is_better=defn.higher_is_better,
        target=defn.target, n=raw.n, ci_low=_finite(lo), ci_high=_finite(hi), group=raw.group,
        description=f"{defn.name} corrected for its detector's measured error (Rogan-Gladen; interval over the "
                    "units and the hand labels; not clipped to [0, 1])",
        detector=check.describe(), corrected=True)
    return ComputedMetric(metric, None)


def at_level(defn: MetricDef, level: float) -> MetricDef:
    """The metric of ``defn``'s row at ``level`` (``statistic_at`` and ``batch_statistic_at``
    taken at that level)."""
    batch = None if defn.batch_statistic_at is None else partial(defn.batch_statistic_at, level=level)
    return replace(defn, statistic=partial(defn.statistic_at, level=level), fast_statistic=None,
                   batch_statistic=batch, batch_statistic_at=None, at=())


def group_label(value: object) -> str:
    """How a breakdown value is written in a metric's group (``col=LABEL``)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def _one(defn: MetricDef, frame: pd.DataFrame, idx: np.ndarray | None, group: str | None,
         looks: int = 1) -> tuple[ComputedMetric, np.ndarray | None]:
    """The metric's row, and its (unstretched) bootstrap replicates. Its ``n`` counts the units
    the metric is computed over: for a column mean, those whose value is not NaN."""
    n = len(frame)
    if defn.statistic is None and n and defn.column in frame.columns:
        n = int(frame[defn.column].notna().sum())
    if n == 0 or idx is None:
        metric = Metric(name=defn.name, value=None, higher_is_better=defn.higher_is_better,
                        target=defn.target, n=0, group=group, description=defn.description, chart=defn.chart)
        return ComputedMetric(metric, None), None
    value = metric_value(defn, frame)
    if not defn.bootstrap:
        metric = Metric(name=defn.name, value=_finite(value), higher_is_better=defn.higher_is_better,
                        target=defn.target, n=n, group=group, description=defn.description, chart=defn.chart)
        return ComputedMetric(metric, None), None
    reps = resampled_values(defn, frame, idx)
    jeffreys = defn.statistic is None and _all_same_binary(frame[defn.column])
    if jeffreys:
        reps = jeffreys_replicates(int(frame[defn.column].sum()), n, reps.shape[0], f"{defn.name}|{group}")
    if defn.interval == "basic":
        reps = basic_replicates(value, reps, defn.bounds)
    lo, hi = percentile_interval(reps, corrected_level(looks))
    if (defn.interval == "basic" or jeffreys) and np.isfinite(value):
        lo, hi = min(lo, value), max(hi, value)
    metric = Metric(
        name=defn.name, value=_finite(value), higher_is_better=defn.higher_is_better,
        target=defn.target, n=n, ci_low=_finite(lo), ci_high=_finite(hi), group=group,
        description=defn.description, chart=defn.chart,
    )
    return ComputedMetric(metric, stretch_replicates(reps, looks) if group is None else None), reps


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
