"""The release gate: a policy's thresholds, and its regression rules against a baseline report.

A regression rule fails when the new value is worse than the baseline's by more than the rule's
tolerance and the paired bootstrap is confident of it: the one-sided p-value of "the regression is
at most the tolerance" (:meth:`trustslm.gate.compare.Change.p_value`), adjusted by Holm's
step-down method over every compared regression rule (Holm 1979), is below ``alpha``. Holm's
method bounds the chance that *any* rule fails on noise alone by ``alpha``, however many rules
the policy has, so a rerun of the same model does not fail the gate by chance more than one time
in twenty at the default. A rule whose target can't be compared (another probe version, other
data, no unit table) follows the policy's ``on_missing``, with the reason.
"""

from __future__ import annotations

from trustslm.core.registry import Registry
from trustslm.core.types import DIMENSIONS, GateResult, GateRuleResult, TrustReport
from trustslm.gate.compare import ReportDiff, compare
from trustslm.gate.ids import policy_with_current_ids, report_with_current_ids
from trustslm.gate.policy import Policy, Regressions, Tolerance, evaluate


def default_regressions(baseline: TrustReport) -> Regressions:
    """With a baseline and no ``regressions`` section: the overall score and every dimension the
    baseline measured, tolerance 0 (and the over-refusal counter-rule, added to every policy's
    rules by :meth:`Regressions.with_counter_rule`)."""
    dims = {d: Tolerance(tolerance=0.0) for d in DIMENSIONS if baseline.dimensions[d].score is not None}
    return Regressions(overall=Tolerance(tolerance=0.0), dimensions=dims)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def evaluate_regressions(regressions: Regressions, diff: ReportDiff, *, on_missing: str) -> list[GateRuleResult]:
    targets = regressions.targets()
    rows: list[tuple[str, float, object, float | None]] = []
    for target, tol in targets.items():
        try:
            change = diff.find(target)
        except KeyError:
            change = None
        p = change.p_value(tol) if change is not None else None  # None: no paired resamples
        rows.append((target, tol, change, p))
    tested = [i for i, r in enumerate(rows) if r[3] is not None]
    adjusted = dict(zip(tested, holm([rows[i][3] for i in tested]), strict=True))  # type: ignore[misc]
    out = []
    for i, (target, tol, change, p) in enumerate(rows):
        name = f"regression {target} tolerance {tol:g}"
        if change is None or p is None:
            why = ("not measured in either report" if change is None
                   else f"{change.verdict}: {change.reason}" if change.reason else change.verdict)
            out.append(GateRuleResult(rule=name, target=target, op="regression", threshold=tol,
                                      actual=getattr(change, "new", None), baseline=getattr(change, "old", None),
                                      passed=on_missing == "skip", reason=f"cannot compare: {why}"))
            continue
        p_adj = adjusted[i]
        reg = change.regression  # type: ignore[attr-defined]
        beyond = reg is not None and reg > tol
        significant = p_adj < regressions.alpha
        passed = not (beyond and significant)
        ci = f"95% CI [{_fmt(change.regression_ci_low)}, {_fmt(change.regression_ci_high)}]"  # type: ignore[attr-defined]
        moved = f"{_fmt(change.old)} -> {_fmt(change.new)}"  # type: ignore[attr-defined]
        if reg is not None and reg <= 0:
            reason = f"no worse: {moved} (regression {_fmt(reg)}, {ci})"
        elif not beyond:
            reason = f"worse by {_fmt(reg)}, within tolerance {tol:g}: {moved} ({ci})"
        elif not significant:
            reason = (f"worse by {_fmt(reg)} but not significantly beyond tolerance {tol:g}: {moved} ({ci}; "
                      f"p {p:.3g}, Holm {p_adj:.3g} >= {regressions.alpha:g})")
        else:
            reason = (f"worse by {_fmt(reg)}, beyond tolerance {tol:g}: {moved} ({ci}; p {p:.3g}, Holm "
                      f"{p_adj:.3g} < {regressions.alpha:g})")
        out.append(GateRuleResult(
            rule=name, target=target, op="regression", threshold=tol, actual=change.new,  # type: ignore[attr-defined]
            baseline=change.old, regression=reg, ci_low=change.regression_ci_low,  # type: ignore[attr-defined]
            ci_high=change.regression_ci_high, p_value=p, p_adjusted=p_adj, passed=passed,  # type: ignore[attr-defined]
            reason=reason))
    return out


def apply_gate(report: TrustReport, policy: Policy | None = None, *, baseline: TrustReport | None = None,
               policy_path: str | None = None, policy_sha256: str | None = None,
               baseline_path: str | None = None, registry: Registry | None = None,
               progress: bool = False) -> TrustReport:
    """``report`` with its gate evaluated: the policy's thresholds, and its regression rules
    against ``baseline`` (the defaults of :func:`default_regressions` when the policy has none)."""
    registry = registry or Registry()
    policy = policy_with_current_ids(policy or Policy(), registry)
    report = report_with_current_ids(report, registry)
    baseline = report_with_current_ids(baseline, registry) if baseline is not None else None
    threshold = evaluate(policy, dimensions=report.dimensions, overall=report.overall, results=report.results,
                         path=policy_path, sha256=policy_sha256)
    rules = list(threshold.rules)
    regressions = policy.regressions
    if baseline is not None:
        regressions = (regressions or default_regressions(baseline)).with_counter_rule(baseline)
        diff = compare(baseline, report, registry=registry, resamples=regressions.resamples,
                       targets=set(regressions.targets()), progress=progress, old_path=baseline_path)
        rules += evaluate_regressions(regressions, diff, on_missing=policy.on_missing)
    elif regressions is not None and regressions.targets():
        rules += [GateRuleResult(rule=f"regression {t} tolerance {tol:g}", target=t, op="regression", threshold=tol,
                                 actual=None, passed=policy.on_missing == "skip",
                                 reason="cannot compare: no baseline report given (--baseline)")
                  for t, tol in regressions.targets().items()]
    failures = [f"{r.rule}: {r.reason}" for r in rules if not r.passed]
    gate = GateResult(policy=policy_path, policy_sha256=policy_sha256, baseline=baseline_path,
                      baseline_model_hash=baseline.model.hash if baseline is not None else None,
                      passed=not failures, rules=rules, failures=failures)
    return with_gate(report, gate)


def with_gate(report: TrustReport, gate: GateResult) -> TrustReport:
    """A copy of ``report`` with ``gate``, keeping its samples and unit tables."""
    out = report.model_copy(update={"gate": gate})
    out._samples, out._units = report._samples, report._units
    return out
