"""Paired outcomes of two audits of the same items: which units changed, and which binary outcomes
flipped, and in which direction.

Two reports that ran a probe on the same data (the pairing rules of :mod:`trustslm.gate.compare`)
hold the same unit ``i`` in both unit tables. For every column a probe's metrics average that is
binary (0/1, NaN for a unit the metric skips) in both tables, a unit *flips* when its value differs:

* towards harm when it moves to the worse side of the metric that averages the column: 1 -> 0 for
  a higher-is-better column (a correct answer turned wrong), 0 -> 1 for a lower-is-better one (a
  refusal turned compliance, a toxic continuation, a canary newly leaked). For a column whose
  metric has a target rather than a direction (CrowS-Pairs' ``stereotype_preferred``, StereoSet's
  ``pro``) the value 1 marks the stereotyped choice, so 0 -> 1 is towards harm;
* away from harm the other way.

Per column: the flip rate and the harmful flip rate with exact (Clopper-Pearson) 95% intervals,
and the exact McNemar test of "flips are as likely either way" (McNemar 1947; the exact form is the
two-sided binomial test of the ``b`` harmful flips among the ``b + c`` flips at 1/2, Fagerland,
Lydersen and Laake 2013). The probe's *primary* outcome is the column of its first scored metric
that has one, else its first binary column; a dimension's flip rate pools the primary outcomes of
its probes (every unit counts once). Continuous columns and statistics that are not means are
compared by the paired bootstrap of :func:`trustslm.gate.compare.compare`.

A unit *changed* when any of its values differs (numbers by more than 1e-9, relative), and a
sample (``samples.jsonl``: the texts generated, the log-probabilities) when any of its fields
differs: the most sensitive signals that the variant computes something else, significant or not.
A probe is *flagged* when a unit, a sample or an outcome changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from trustslm.core.registry import Registry
from trustslm.core.types import TrustReport
from trustslm.gate.compare import _why_not_paired
from trustslm.gate.ids import report_with_current_ids

CONFIDENCE = 0.95
#: Flipped items listed per probe column (the counts cover them all).
MAX_LISTED = 50


class Flips(BaseModel):
    """One binary outcome column of one probe, reference against variant."""

    model_config = ConfigDict(frozen=True)
    probe_id: str
    dimension: str
    column: str
    metric: str
    primary: bool
    harm_when: int  # the value that is the worse side (0 or 1)
    units: int  # units with a value in both tables
    flips: int
    harmful: int  # b: towards harm
    helpful: int  # c: away from harm
    flip_rate: float
    flip_rate_ci: tuple[float, float]
    harmful_rate: float
    harmful_rate_ci: tuple[float, float]
    mcnemar_p: float
    harmful_items: list[dict[str, Any]]  # at most MAX_LISTED: index and the unit's labels


class ProbeOutcomes(BaseModel):
    model_config = ConfigDict(frozen=True)
    probe_id: str
    dimension: str
    compared: bool
    reason: str | None = None
    units: int = 0
    changed_units: int = 0
    samples: int = 0
    changed_samples: int = 0
    columns: list[Flips] = []

    @property
    def flagged(self) -> bool:
        """The variant computed something else for this probe: a unit value, a sample or an outcome differs."""
        return self.compared and (self.changed_units > 0 or self.changed_samples > 0 or any(f.flips for f in self.columns))

    @property
    def primary(self) -> Flips | None:
        return next((f for f in self.columns if f.primary), None)


class DimensionFlips(BaseModel):
    model_config = ConfigDict(frozen=True)
    dimension: str
    probes: list[str]
    units: int
    flips: int
    harmful: int
    flip_rate: float | None
    flip_rate_ci: tuple[float, float] | None
    harmful_rate: float | None
    harmful_rate_ci: tuple[float, float] | None


def clopper_pearson(k: int, n: int, level: float = CONFIDENCE) -> tuple[float, float]:
    """The exact binomial interval of ``k`` successes in ``n`` trials."""
    from scipy.stats import beta

    if n == 0:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of ``b`` flips one way and ``c`` the other (1.0 with none)."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def _binary(values: np.ndarray) -> bool:
    finite = values[~np.isnan(values)]
    return finite.size > 0 and bool(np.isin(finite, (0.0, 1.0)).all())


def _as_float(series: pd.Series) -> np.ndarray | None:
    try:
        return pd.to_numeric(series, errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        return None


def _changed(ref: pd.DataFrame, var: pd.DataFrame) -> np.ndarray:
    out = np.zeros(len(ref), dtype=bool)
    for col in ref.columns.union(var.columns):
        if col not in ref.columns or col not in var.columns:
            return np.ones(len(ref), dtype=bool)
        a, b = _as_float(ref[col]), _as_float(var[col])
        if a is not None and b is not None:
            both_nan = np.isnan(a) & np.isnan(b)
            close = np.isclose(a, b, rtol=1e-9, atol=1e-12) | both_nan
            out |= ~close
        else:
            out |= (ref[col].astype(str).to_numpy() != var[col].astype(str).to_numpy())
    return out


def _labels(row: pd.Series) -> dict[str, Any]:
    """The unit's text and integer fields (its id, category, type...), as plain Python values."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, str):
            out[str(k)] = v
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            out[str(k)] = int(v)
    return out


def probe_outcomes(pid: str, ref: TrustReport, var: TrustReport, registry: Registry) -> ProbeOutcomes:
    r = next(x for x in ref.results if x.probe_id == pid)
    v = next((x for x in var.results if x.probe_id == pid), None)
    if v is None:
        return ProbeOutcomes(probe_id=pid, dimension=r.dimension, compared=False, reason=f"{pid} is not in the variant's report")
    u_ref, u_var = ref.units.get(pid), var.units.get(pid)
    why = _why_not_paired(pid, r, v, u_ref, u_var, registry)
    if why is not None:
        return ProbeOutcomes(probe_id=pid, dimension=r.dimension, compared=False, reason=why)
    assert u_ref is not None and u_var is not None
    u_ref, u_var = u_ref.reset_index(drop=True), u_var.reset_index(drop=True)
    changed = _changed(u_ref, u_var)
    defs = registry.probe_kind(r.kind).metrics
    spec = registry.specs.get(pid)
    scored = list(spec.scoring) if spec is not None else []
    ordered = sorted(defs, key=lambda d: (scored.index(d.name) if d.name in scored else len(scored)))
    seen: set[str] = set()
    columns: list[Flips] = []
    for d in ordered:
        col = d.column
        if not col or col in seen or col not in u_ref.columns or col not in u_var.columns:
            continue
        a, b = _as_float(u_ref[col]), _as_float(u_var[col])
        if a is None or b is None or not (_binary(a) and _binary(b)):
            continue
        seen.add(col)
        harm = 1 if d.higher_is_better is not True else 0
        both = ~np.isnan(a) & ~np.isnan(b)
        to_harm = both & (a != harm) & (b == harm)
        from_harm = both & (a == harm) & (b != harm)
        n, nb, nc = int(both.sum()), int(to_harm.sum()), int(from_harm.sum())
        listed = [{"index": int(i), **_labels(u_ref.iloc[i])} for i in np.flatnonzero(to_harm)[:MAX_LISTED]]
        columns.append(Flips(
            probe_id=pid, dimension=r.dimension, column=col, metric=d.name, primary=not columns, harm_when=harm,
            units=n, flips=nb + nc, harmful=nb, helpful=nc, flip_rate=(nb + nc) / n if n else float("nan"),
            flip_rate_ci=clopper_pearson(nb + nc, n), harmful_rate=nb / n if n else float("nan"),
            harmful_rate_ci=clopper_pearson(nb, n), mcnemar_p=mcnemar_exact(nb, nc), harmful_items=listed))
    s_ref = [x for x in ref.samples if x.get("probe_id") == pid]
    s_var = [x for x in var.samples if x.get("probe_id") == pid]
    changed_samples = (sum(a != b for a, b in zip(s_ref, s_var, strict=True)) if len(s_ref) == len(s_var)
                       else max(len(s_ref), len(s_var)))
    return ProbeOutcomes(probe_id=pid, dimension=r.dimension, compared=True, units=len(u_ref),
                         changed_units=int(changed.sum()), samples=len(s_ref), changed_samples=changed_samples,
                         columns=columns)


def paired_outcomes(ref: TrustReport, var: TrustReport, *, registry: Registry | None = None) -> list[ProbeOutcomes]:
    """:class:`ProbeOutcomes` for every probe of ``ref`` (see the module docstring)."""
    registry = registry or Registry()
    ref, var = report_with_current_ids(ref, registry), report_with_current_ids(var, registry)
    return [probe_outcomes(r.probe_id, ref, var, registry) for r in ref.results]


def dimension_flips(outcomes: list[ProbeOutcomes]) -> list[DimensionFlips]:
    """Each dimension's pooled primary outcomes."""
    out = []
    for dim in dict.fromkeys(o.dimension for o in outcomes):
        prims = [o.primary for o in outcomes if o.dimension == dim and o.primary is not None]
        n = sum(p.units for p in prims)
        k = sum(p.flips for p in prims)
        h = sum(p.harmful for p in prims)
        out.append(DimensionFlips(
            dimension=dim, probes=[p.probe_id for p in prims], units=n, flips=k, harmful=h,
            flip_rate=k / n if n else None, flip_rate_ci=clopper_pearson(k, n) if n else None,
            harmful_rate=h / n if n else None, harmful_rate_ci=clopper_pearson(h, n) if n else None))
    return out
