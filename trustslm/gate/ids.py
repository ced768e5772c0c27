"""Former probe ids in reports and policies, read as the current ones (``fairness.stereotype_pairs``
for ``bias.stereotype_pairs``), so a baseline written before a rename still compares and an old
policy still names its metrics. Each former id read gives one deprecation notice
(:meth:`trustslm.core.registry.Registry.canonical`)."""

from __future__ import annotations

from typing import Any

from trustslm.core.registry import Registry
from trustslm.core.types import TrustReport
from trustslm.gate.policy import _METRIC_REF, Policy


def report_with_current_ids(report: TrustReport, registry: Registry) -> TrustReport:
    """``report`` itself when it names no former probe id, else a copy naming the current ones
    (results, samples and unit tables); the report given is not changed."""
    if not any(r.probe_id in registry.aliases for r in report.results):
        return report
    results = [r.model_copy(update={"probe_id": registry.canonical(r.probe_id)}) for r in report.results]
    out = report.model_copy(update={"results": results})
    out._samples = [{**s, "probe_id": registry.canonical(s["probe_id"], warn=False)} if "probe_id" in s else s
                    for s in report._samples]
    out._units = {registry.canonical(k, warn=False): v for k, v in report._units.items()}
    return out


def _metric_ref(ref: str, registry: Registry) -> str:
    m = _METRIC_REF.match(ref)
    if m is None or m["probe"] not in registry.aliases:
        return ref
    return ref.replace(m["probe"], registry.canonical(m["probe"]), 1)


def policy_with_current_ids(policy: Policy, registry: Registry) -> Policy:
    """``policy`` with former probe ids in its metric names replaced by the current ones."""
    def fix(metrics: dict[str, Any]) -> dict[str, Any]:
        return {_metric_ref(k, registry): v for k, v in metrics.items()}

    update: dict[str, Any] = {"metrics": fix(policy.metrics)}
    if policy.regressions is not None:
        update["regressions"] = policy.regressions.model_copy(update={"metrics": fix(policy.regressions.metrics)})
    return policy.model_copy(update=update)
