"""Compare two reports of the same probes: every metric, probe, dimension and overall score, old
against new, with a paired-bootstrap interval of the change.

Pairing. Two reports are comparable probe by probe when both ran the probe with the same kind
(installed here), version and options, on the same data (the datasets' sha256 and the items used;
options that name files, :class:`~trustslm.probes.base.FileOption`, are compared through the
datasets' sha256, not their paths: two models trained on the same canaries keep them in different
folders), and both wrote
its unit table (``units.jsonl``). Unit ``i`` is then the same item in both, so one set of
bootstrap resamples of the unit indices is applied to both tables and each resample gives a
change; the spread of those changes is the uncertainty of the change itself, smaller than the
two reports' intervals taken apart because the items' own difficulty cancels (the paired
bootstrap: Efron and Tibshirani 1993, ch. 10; Koehn 2004 for NLP metrics). Breakdown rows are
resampled within their group, and only where group membership is the same in both reports. A
probe's unit table must reproduce its reported values, or the pair is refused as edited or written
by another version.

Scores (probe, dimension, overall) are recomputed on the same resamples with the installed probe
specs' scoring rules, so they are compared only where the installed spec has the reports' version.
They are recomputed through the engine's own functions (:mod:`trustslm.scoring.aggregate`:
``normalise`` and ``weighted_mean`` for a probe's score, ``combine`` for the dimension and overall
scores), on the point values as on the replicates, and a score the recomputation does not
reproduce (an edited report, or another version's rule) is not compared, with the reason
(:func:`recomputed_scores` gives the recomputed values).

Direction. ``regression`` is how much worse the new value is: ``old - new`` for a metric where
higher is better, ``new - old`` where lower is better, and the growth of the distance from the
target for a target metric (``|new - t| - |old - t|``). A change is ``worse`` when the 95% interval
of the regression lies above 0, ``better`` when below, else ``no significant change``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, PrivateAttr

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.core.specs import ProbeSpec, ScoringRule
from trustslm.core.types import DIMENSIONS, Metric, ProbeResult, TrustReport
from trustslm.gate.ids import report_with_current_ids
from trustslm.probes.base import FileOption, marked_options
from trustslm.scoring import CONFIDENCE
from trustslm.scoring.aggregate import Scored, combine, normalise, weighted_mean
from trustslm.scoring.metric_def import MetricDef
from trustslm.scoring.metrics import (
    at_level,
    group_label,
    metric_value,
    percentile_interval,
    probe_rng,
    resampled_values,
)

DEFAULT_COMPARE_RESAMPLES = 1000
#: How far a recomputed score may be from the reported one: reports round scores to 4 decimals.
SCORE_TOLERANCE = 1e-3

Verdict = Literal["better", "worse", "no significant change", "not compared", "only in old", "only in new"]


class Change(BaseModel):
    """One row of a comparison: a metric (``PROBE.METRIC[GROUP]``), a probe score (``PROBE``), a
    dimension or ``overall``."""

    model_config = ConfigDict(frozen=True)
    target: str
    level: Literal["metric", "probe", "dimension", "overall"]
    dimension: str | None
    probe_id: str | None = None
    old: float | None
    new: float | None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    regression: float | None = None
    regression_ci_low: float | None = None
    regression_ci_high: float | None = None
    higher_is_better: bool | None = True
    best: float | None = None
    verdict: Verdict
    reason: str | None = None
    _regression_replicates: np.ndarray | None = PrivateAttr(default=None)

    def p_value(self, tolerance: float) -> float | None:
        """One-sided bootstrap p-value of 'the regression is at most ``tolerance``': the share of
        resamples whose regression is at most the tolerance (the percentile-interval test; add-one
        so it is never 0)."""
        reps = self._regression_replicates
        if reps is None:
            return None
        finite = reps[np.isfinite(reps)]
        if finite.size == 0:
            return None
        return float((1 + np.sum(finite <= tolerance)) / (finite.size + 1))


class ReportDiff(BaseModel):
    model_config = ConfigDict(frozen=True)
    old: dict[str, Any]
    new: dict[str, Any]
    resamples: int
    confidence_level: float
    changes: list[Change]

    def find(self, target: str) -> Change:
        for c in self.changes:
            if c.target == target:
                return c
        raise KeyError(f"the comparison has no row {target!r}")


def _side(report: TrustReport, path: str | None) -> dict[str, Any]:
    return {"path": path, "model": report.model.name, "model_hash": report.model.hash, "seed": report.run.seed,
            "started_at": report.run.started_at}


def regression_of(old: np.ndarray | float, new: np.ndarray | float, higher_is_better: bool | None,
                  best: float | None) -> Any:
    """How much worse ``new`` is than ``old`` (arrays or floats)."""
    if higher_is_better is None:
        t = 0.0 if best is None else best
        return np.abs(np.asarray(new) - t) - np.abs(np.asarray(old) - t)
    return (np.asarray(old) - np.asarray(new)) if higher_is_better else (np.asarray(new) - np.asarray(old))


def _paired_change(target: str, level, dimension, old_value, new_value, hib, best, reps_old, reps_new,
                   *, basic: bool = False, reason: str | None = None, probe_id: str | None = None) -> Change:
    diff = None if old_value is None or new_value is None else float(new_value - old_value)
    if reps_old is None or reps_new is None or diff is None:
        verdict = "not compared"
        if old_value is None and new_value is not None:
            verdict = "only in new"
        elif new_value is None and old_value is not None:
            verdict = "only in old"
        reg = None if diff is None else float(regression_of(old_value, new_value, hib, best))
        return Change(target=target, level=level, dimension=dimension, probe_id=probe_id, old=old_value, new=new_value,
                      difference=diff, regression=reg, higher_is_better=hib, best=best, verdict=verdict,
                      reason=reason if verdict == "not compared" else None)
    d_reps = reps_new - reps_old
    r_reps = regression_of(reps_old, reps_new, hib, best)
    reg = float(regression_of(old_value, new_value, hib, best))
    if basic:  # reflect about the estimate, as the metric's own interval does (scoring.metrics)
        d_reps, r_reps = 2 * diff - d_reps, 2 * reg - r_reps
    lo, hi = percentile_interval(d_reps)
    rlo, rhi = percentile_interval(r_reps)
    if not np.isfinite(rlo):
        verdict, why = "not compared", "no resample had a value"
    elif rlo > 0:
        verdict, why = "worse", None
    elif rhi < 0:
        verdict, why = "better", None
    else:
        verdict, why = "no significant change", None
    change = Change(target=target, level=level, dimension=dimension, probe_id=probe_id, old=old_value, new=new_value, difference=diff,
                    ci_low=_f(lo), ci_high=_f(hi), regression=reg, regression_ci_low=_f(rlo),
                    regression_ci_high=_f(rhi), higher_is_better=hib, best=best, verdict=verdict, reason=why)
    change._regression_replicates = r_reps
    return change


def _f(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def metric_ref(probe_id: str, m: Metric) -> str:
    return f"{probe_id}.{m.name}" + (f"[{m.group}]" if m.group else "")


def _close(reported: float | None, recomputed: float) -> bool:
    if reported is None:  # the runner leaves out a metric it could not compute
        return not np.isfinite(recomputed)
    return bool(np.isclose(reported, recomputed, rtol=1e-6, atol=1e-9))


def compared_options(options: dict[str, Any], kind: str, registry: Registry) -> dict[str, Any]:
    """A probe's options as two runs of it are compared: those naming files
    (:class:`~trustslm.probes.base.FileOption`) are left out, their data being compared by sha256
    (:func:`data_key`). A kind not installed here is a :class:`BadInputError` or ``ImportError``."""
    files = marked_options(registry.probe_kind(kind).Options, FileOption)
    return {k: v for k, v in options.items() if k not in files}


def options_differ(old: ProbeResult, new: ProbeResult, registry: Registry) -> list[str]:
    """The options two results of a probe ran with differently (file options aside), sorted."""
    o, n = (compared_options(r.options, r.kind, registry) for r in (old, new))
    return sorted(k for k in set(o) | set(n) if o.get(k) != n.get(k))


def data_key(result: ProbeResult) -> list[tuple[str, int]]:
    """What a probe read: each dataset's sha256 and the items used, in order."""
    return [(d.sha256, d.n_used) for d in result.datasets]


def _why_not_paired(pid: str, old: ProbeResult, new: ProbeResult, units_old, units_new,
                    registry: Registry) -> str | None:
    if old.status != "ok" or new.status != "ok":
        bad = old if old.status != "ok" else new
        which = "old" if bad is old else "new"
        return f"{pid} {bad.status} in the {which} report: {bad.reason}"
    if old.kind != new.kind or old.version != new.version:
        return f"{pid} ran as {old.kind} v{old.version} in the old report and {new.kind} v{new.version} in the new"
    try:
        keys = options_differ(old, new, registry)
    except (BadInputError, ImportError):  # a kind not installed here: compare the values only
        return f"probe kind {old.kind} is not installed here"
    if keys:
        return f"{pid} ran with different options ({', '.join(keys)})"
    if data_key(old) != data_key(new):
        return f"{pid} read different data (sha256 or items used differ)"
    if units_old is None or units_new is None:
        which = "old" if units_old is None else "new"
        return f"the {which} report has no unit table for {pid} (units.jsonl, written since trustslm 0.1 with the report)"
    if len(units_old) != len(units_new):
        return f"{pid} has {len(units_old)} units in the old report and {len(units_new)} in the new"
    return None


def _values_reproduce(defs: tuple[MetricDef, ...], result: ProbeResult, units) -> bool:
    for defn in defs:
        if not defn.overall:
            continue
        try:
            reported = result.metric(defn.name).value
        except KeyError:
            continue
        if not _close(reported, metric_value(defn, units)):
            return False
    return True


def compare(old: TrustReport, new: TrustReport, *, registry: Registry | None = None,
            resamples: int = DEFAULT_COMPARE_RESAMPLES, seed: int = 0, old_path: str | None = None,
            new_path: str | None = None, targets: set[str] | None = None, progress: bool = False) -> ReportDiff:
    """Every metric and score of ``old`` and ``new`` side by side, with paired intervals where the
    two reports are comparable (see the module docstring) and the reason where they are not.

    ``targets`` (``overall``, dimension names, probe ids, metric references) limits the resampling
    to what they need (a dimension needs its probes' scored metrics); other rows get their values
    only. Resampling a whole report takes minutes for the probes whose statistics are not plain
    means, so the gate asks only for its rules' targets."""
    registry = registry or Registry()
    old, new = report_with_current_ids(old, registry), report_with_current_ids(new, registry)
    wanted = _wanted(targets, old, new, registry)
    changes: list[Change] = []
    probe_reps: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    probe_why: dict[str, str] = {}
    old_results = {r.probe_id: r for r in old.results}
    new_results = {r.probe_id: r for r in new.results}
    from tqdm.auto import tqdm

    pids = list(dict.fromkeys([*old_results, *new_results]))
    for pid in tqdm(pids, desc="comparing", unit="probe", disable=not progress, leave=False):
        o, n = old_results.get(pid), new_results.get(pid)
        if o is None or n is None:
            one = o or n
            assert one is not None
            for m in one.metrics:
                changes.append(_paired_change(metric_ref(pid, m), "metric", one.dimension,
                                              m.value if o else None, m.value if n else None,
                                              m.higher_is_better, m.target, None, None, probe_id=pid))
            probe_reps[pid] = None
            probe_why[pid] = f"{pid} is only in the {'old' if o else 'new'} report"
            if one.score is not None:
                changes.append(_paired_change(pid, "probe", one.dimension, o.score.score if o and o.score else None,
                                              n.score.score if n and n.score else None, True, None, None, None,
                                              probe_id=pid))
            continue
        rows, reps = _compare_probe(pid, o, n, old.units.get(pid), new.units.get(pid), registry, resamples, seed,
                                    wanted)
        changes.extend(rows)
        probe_reps[pid] = reps
        if reps is None:
            probe_why[pid] = next((c.reason for c in rows if c.reason), f"{pid} was not compared")
    old_dims, old_overall = combine(_probe_scores(old, {p: r[0] for p, r in probe_reps.items() if r}, resamples))
    new_dims, new_overall = combine(_probe_scores(new, {p: r[1] for p, r in probe_reps.items() if r}, resamples))
    dim_reps: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for dim in DIMENSIONS:
        od, nd = old.dimensions.get(dim), new.dimensions.get(dim)
        if (od is None or od.score is None) and (nd is None or nd.score is None):
            continue
        reps, why = None, None
        if od is None or od.score is None or nd is None or nd.score is None:
            why = f"{dim} was measured in only one report"
        elif od.probes != nd.probes:
            why = f"{dim} was measured by different probes ({', '.join(od.probes)} / {', '.join(nd.probes)})"
        elif not _follows(old_dims.get(dim), od.score) or not _follows(new_dims.get(dim), nd.score):
            side = "old" if not _follows(old_dims.get(dim), od.score) else "new"
            why = f"the {side} report's {dim} score does not follow from its probe scores under the aggregation rule"
        elif any(probe_reps.get(p) is None for p in od.probes):
            bad = next(p for p in od.probes if probe_reps.get(p) is None)
            why = probe_why.get(bad, f"{bad} was not compared")
        else:
            reps = (old_dims[dim].replicates, new_dims[dim].replicates)
        dim_reps[dim] = reps
        changes.append(_paired_change(dim, "dimension", dim, od.score if od else None, nd.score if nd else None,
                                      True, None, *(reps or (None, None)), reason=why))
    why = None
    if old.overall.dimensions_measured != new.overall.dimensions_measured:
        why = "the reports measured different dimensions"
    elif not _overall_follows(old, old_dims, old_overall) or not _overall_follows(new, new_dims, new_overall):
        side = "old" if not _overall_follows(old, old_dims, old_overall) else "new"
        why = f"the {side} report's overall score does not follow from its dimension scores under the aggregation rule"
    elif any(dim_reps.get(d) is None for d in old.overall.dimensions_measured):
        bad = next(d for d in old.overall.dimensions_measured if dim_reps.get(d) is None)
        why = next((c.reason for c in changes if c.target == bad), f"{bad} was not compared")
    reps = None
    if why is None and old_overall is not None and new_overall is not None:
        reps = (old_overall.replicates, new_overall.replicates)
    if old.overall.score is not None or new.overall.score is not None:
        changes.append(_paired_change("overall", "overall", None, old.overall.score, new.overall.score, True, None,
                                      *(reps or (None, None)), reason=why))
    return ReportDiff(old=_side(old, old_path), new=_side(new, new_path), resamples=resamples,
                      confidence_level=CONFIDENCE, changes=changes)


def _compare_probe(pid: str, o: ProbeResult, n: ProbeResult, u_old, u_new, registry: Registry, resamples: int,
                   seed: int, wanted: set[str] | None) -> tuple[list[Change], tuple[np.ndarray, np.ndarray] | None]:
    why = _why_not_paired(pid, o, n, u_old, u_new, registry)
    defs: tuple[MetricDef, ...] = registry.probe_kind(o.kind).metrics if why is None else ()
    if why is None:
        for side, result, units in (("old", o, u_old), ("new", n, u_new)):
            if not _values_reproduce(defs, result, units):
                why = f"the {side} report's unit table for {pid} does not reproduce its values (edited, or another version)"
                break
    reps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    basic: set[str] = set()
    group_why: dict[str, str] = {}
    if why is None:
        reps, basic, group_why = _paired_replicates(pid, defs, u_old, u_new, resamples, seed, wanted)
    rows: list[Change] = []
    old_m = {(m.name, m.group): m for m in o.metrics}
    new_m = {(m.name, m.group): m for m in n.metrics}
    for key in dict.fromkeys([*old_m, *new_m]):
        mo, mn = old_m.get(key), new_m.get(key)
        m = mo or mn
        assert m is not None
        ref = metric_ref(pid, m)
        pair = reps.get(ref)
        reason = why or group_why.get(ref)
        if reason is None and pair is None:
            untested = wanted is not None and ref not in wanted
            reason = "not resampled: not needed by the compared targets" if untested else "the metric has no bootstrap"
        rows.append(_paired_change(ref, "metric", o.dimension, mo.value if mo else None, mn.value if mn else None,
                                   m.higher_is_better, m.target, *(pair or (None, None)), basic=ref in basic,
                                   reason=reason, probe_id=pid))
    score_pair, score_why = None, why
    if why is None:
        score_pair, score_why = _score_replicates(pid, o, n, reps, registry)
    if o.score is not None or n.score is not None:
        rows.append(_paired_change(pid, "probe", o.dimension, o.score.score if o.score else None,
                                   n.score.score if n.score else None, True, None, *(score_pair or (None, None)),
                                   reason=score_why, probe_id=pid))
    return rows, score_pair


def _paired_replicates(pid, defs, u_old, u_new, resamples, seed, wanted=None):
    n = len(u_old)
    rng = probe_rng(seed, pid, salt="compare")
    idx = rng.integers(0, n, size=(resamples, n))
    reps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    basic: set[str] = set()
    group_why: dict[str, str] = {}
    for defn in defs:
        if not defn.bootstrap:
            continue
        is_basic = defn.interval == "basic"

        def put(ref: str, d: MetricDef, a, b, i, _basic=is_basic):
            if wanted is not None and ref not in wanted:
                return
            ro, rn = resampled_values(d, a, i), resampled_values(d, b, i)
            if _basic:
                basic.add(ref)
            reps[ref] = (ro, rn)

        if defn.overall:
            put(f"{pid}.{defn.name}", defn, u_old, u_new, idx)
        for col in defn.by:
            if col not in u_old.columns or col not in u_new.columns:
                continue
            a, b = u_old[col].map(_label_or_nan), u_new[col].map(_label_or_nan)
            same = bool((a.fillna("\0") == b.fillna("\0")).all())
            for value in sorted(set(u_old[col].dropna().unique()) | set(u_new[col].dropna().unique()), key=str):
                ref = f"{pid}.{defn.name}[{col}={group_label(value)}]"
                if not same:
                    group_why[ref] = f"units fall into {col} groups differently in the two reports (it depends on the model)"
                    continue
                mask = (u_old[col] == value).to_numpy()
                so, sn = u_old[mask].reset_index(drop=True), u_new[mask].reset_index(drop=True)
                sub_rng = probe_rng(seed, pid, salt=f"compare|{defn.name}|{col}={group_label(value)}")
                put(ref, defn, so, sn, sub_rng.integers(0, len(so), size=(resamples, len(so))))
        for level in defn.at:
            put(f"{pid}.{defn.name}[{defn.at_name}={level:g}]", at_level(defn, level), u_old, u_new, idx)
    return reps, basic, group_why


def _wanted(targets: set[str] | None, old: TrustReport, new: TrustReport, registry: Registry) -> set[str] | None:
    """The metric references whose resamples ``targets`` need."""
    if targets is None:
        return None
    results = [*old.results, *new.results]
    dims = set(DIMENSIONS) if "overall" in targets else {t for t in targets if t in DIMENSIONS}
    probes = {t for t in targets if any(r.probe_id == t for r in results)}
    probes |= {r.probe_id for r in results if r.dimension in dims}
    refs = set(targets) - dims - probes - {"overall"}
    for pid in probes:
        spec = registry.specs.get(pid)
        if spec is not None:
            refs |= {f"{pid}.{name}" for name in spec.scoring}
    return refs


def _label_or_nan(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return group_label(value)


def _score_replicates(pid: str, o: ProbeResult, n: ProbeResult, reps, registry: Registry):
    if o.score is None or n.score is None:
        return None, f"{pid} has no score in {'the old' if o.score is None else 'the new'} report"
    spec = registry.specs.get(pid)
    if spec is None:
        return None, f"{pid} is not installed here, so its scoring rules are unknown"
    if spec.version != o.version:
        return None, f"the installed {pid} is v{spec.version}; the reports used v{o.version}"
    parts_o: list[tuple[Scored, float]] = []
    parts_n: list[tuple[Scored, float]] = []
    for name, rule in spec.scoring.items():
        ref = f"{pid}.{name}"
        mo, mn = _value_or_none(o, name), _value_or_none(n, name)
        if mo is None and mn is None:  # not measurable in either report: the runner left it out of both scores
            continue
        if mo is None or mn is None:
            return None, f"{ref} was measured in only one report, so the two scores weigh different metrics"
        if ref not in reps:
            return None, f"{ref} has no paired resamples"
        ro, rn = reps[ref]
        parts_o.append((_scored_metric(mo, rule, ro), rule.weight))
        parts_n.append((_scored_metric(mn, rule, rn), rule.weight))
    if not parts_o:
        return None, f"{pid} scores no metric"
    so, sn = weighted_mean(parts_o), weighted_mean(parts_n)
    for side, scored, result in (("old", so, o), ("new", sn, n)):
        if not _follows(scored, result.score.score):
            return None, f"{pid}'s score in the {side} report does not follow from its metrics under the installed scoring rules"
    return (so.replicates, sn.replicates), None


def _scored_metric(m: Metric, rule: ScoringRule, replicates: np.ndarray) -> Scored:
    """A metric's 0-100 score and its replicates, as the engine scores it."""
    return Scored(normalise(m.value, rule, m.higher_is_better), normalise(replicates, rule, m.higher_is_better))


def _probe_point(result: ProbeResult, spec: ProbeSpec) -> Scored | None:
    """A probe's score recomputed from its metric values under ``spec``'s scoring rules (no replicates)."""
    parts = [(_scored_metric(m, rule, np.empty(0)), rule.weight) for name, rule in spec.scoring.items()
             if (m := _value_or_none(result, name)) is not None]
    return weighted_mean(parts) if parts else None


def _probe_scores(report: TrustReport, replicates: dict[str, np.ndarray], resamples: int) -> dict[str, tuple[str, Scored]]:
    """The report's probe scores with their paired replicates (NaN where a probe has none), as
    :func:`~trustslm.scoring.aggregate.combine` takes them."""
    missing = np.full(resamples, np.nan)
    return {r.probe_id: (r.dimension, Scored(r.score.score, replicates.get(r.probe_id, missing)))
            for r in report.results if r.score is not None}


def _follows(recomputed: Scored | None, reported: float | None) -> bool:
    if recomputed is None or reported is None:
        return recomputed is None and reported is None
    return abs(recomputed.value - reported) <= SCORE_TOLERANCE


def _overall_follows(report: TrustReport, dims: dict[str, Scored], overall: Scored | None) -> bool:
    return list(dims) == list(report.overall.dimensions_measured) and _follows(overall, report.overall.score)


def recomputed_scores(report: TrustReport, *, registry: Registry | None = None) -> dict[str, float]:
    """The report's scores as the gate recomputes them (target -> value): each probe's from its
    metric values under the installed spec's scoring rules (left out where the installed spec is
    missing or of another version), each dimension's and the overall from the report's probe
    scores under the aggregation rule. They equal the report's own up to its rounding
    (:data:`SCORE_TOLERANCE`) unless the report was edited or made under other rules."""
    registry = registry or Registry()
    report = report_with_current_ids(report, registry)
    out: dict[str, float] = {}
    for r in report.results:
        spec = registry.specs.get(r.probe_id)
        if r.score is None or spec is None or spec.version != r.version:
            continue
        point = _probe_point(r, spec)
        if point is not None:
            out[r.probe_id] = point.value
    dims, overall = combine(_probe_scores(report, {}, 0))
    out.update({dim: s.value for dim, s in dims.items()})
    if overall is not None:
        out["overall"] = overall.value
    return out


def _value_or_none(result: ProbeResult, name: str) -> Metric | None:
    try:
        m = result.metric(name)
    except KeyError:
        return None
    return m if m.value is not None else None
