"""A pytest plugin: put a model's trust gate in an existing test suite.

Installed with trustslm (the ``pytest11`` entry point ``trustslm``), it adds the ``trust_gate``
fixture: a function that audits a model (or takes a report), applies a policy and a baseline, and
fails the calling test, listing the failed rules, when the gate fails::

    def test_release_candidate_is_trustworthy(trust_gate):
        report = trust_gate("models/candidate", policy="trust-policy.yaml",
                            baseline="reports/v1.2/report.json", probes=["fairness.*", "toxicity.*"])
        assert report.dimensions["toxicity"].score > 70   # the report is returned for more checks

Importing this module imports neither torch nor transformers; an audit does, when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def check_gate(model: Any, *, policy: str | Path | None = None, baseline: str | Path | None = None,
               **audit_options: Any):
    """Audit ``model`` (a model folder, ``"smollm2"``, ``"mock"``, an adapter) or take a report (a
    :class:`~trustslm.core.types.TrustReport` or a ``report.json`` path, given as
    ``report=...``), gate it, and fail the current test when the gate fails. Returns the report."""
    from trustslm import api
    from trustslm.core.types import TrustReport

    report = audit_options.pop("report", None)
    if report is None:
        audit_options.setdefault("progress", False)
        report = api.audit(model, policy=policy, baseline=baseline, **audit_options)
    else:
        if not isinstance(report, TrustReport):
            report = api.load_report(report)
        report = api.evaluate_gate(report, policy=policy, baseline=baseline)
    if not report.gate.passed:
        lines = "\n".join(f"  - {f}" for f in report.gate.failures)
        pytest.fail(f"trust gate failed for {report.model.name} ({len(report.gate.failures)} of "
                    f"{len(report.gate.rules)} rules):\n{lines}", pytrace=False)
    return report


@pytest.fixture
def trust_gate():
    """:func:`check_gate`: audit and gate a model, failing the test when the gate fails."""
    return check_gate
