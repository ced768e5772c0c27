"""The release gate as JUnit XML, for CI systems that show test results (Jenkins, GitLab, Azure).

The layout follows the de facto JUnit XML format as Jenkins' xunit plugin schema ``junit-10.xsd``
describes it (the schema pytest tests its own output against): one ``<testsuites>`` holding one
``<testsuite name="trustslm gate">``, with one ``<testcase>`` per gate rule. A rule that did not
pass carries a ``<failure type="gate">`` whose message is the rule's reason; the body adds the
numbers (for regression rules: baseline, new value, regression, its interval and p-values). The
suite's ``<properties>`` name the model, the policy and the baseline. A report with no rules gives
a suite with zero tests.

Model names and reasons are untrusted text: ElementTree escapes markup, and characters XML 1.0
cannot hold at all (most C0 controls, lone surrogates, U+FFFE/U+FFFF) are removed.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from trustslm.core.types import GateRuleResult, TrustReport

SUITE_NAME = "trustslm gate"
# Anything outside XML 1.0's Char production: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """``value`` as text XML 1.0 can hold (``None`` is empty)."""
    return "" if value is None else _NOT_XML_CHAR.sub("", str(value))


def _classname(model_name: str) -> str:
    part = re.sub(r"[^A-Za-z0-9_]+", "_", model_name).strip("_")
    return f"trustslm.gate.{part or 'model'}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.6g}"


def failure_details(rule: GateRuleResult) -> str:
    """The numbers behind a rule's verdict, one ``key: value`` per line."""
    lines = [f"rule: {rule.rule}", f"target: {rule.target}"]
    if rule.op == "regression":
        lines += [
            f"baseline: {_num(rule.baseline)}",
            f"new: {_num(rule.actual)}",
            f"regression: {_num(rule.regression)} (tolerance {_num(rule.threshold)})",
            f"95% interval of the regression: [{_num(rule.ci_low)}, {_num(rule.ci_high)}]",
            f"p-value: {_num(rule.p_value)}",
            f"p-value (Holm-adjusted): {_num(rule.p_adjusted)}",
        ]
    else:
        lines += [f"{rule.op}: {_num(rule.threshold)}", f"actual: {_num(rule.actual)}"]
    lines.append(f"reason: {rule.reason}")
    return "\n".join(lines)


def render_junit(report: TrustReport) -> str:
    """The report's gate as a JUnit XML document (text; write it as UTF-8)."""
    gate = report.gate
    rules = gate.rules
    n_failed = sum(not r.passed for r in rules)
    wall = report.run.wall_time_s
    time_s = f"{wall if math.isfinite(wall) and wall > 0 else 0.0:.3f}"  # the schema's time: digits, 3 decimals
    counts = {"tests": str(len(rules)), "failures": str(n_failed), "errors": "0"}
    root = ET.Element("testsuites", {"name": "trustslm", **counts, "time": time_s})
    suite = ET.SubElement(root, "testsuite", {
        "name": SUITE_NAME, **counts, "skipped": "0", "time": time_s,
        "timestamp": xml_text(report.run.started_at),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("trustslm.version", report.trustslm_version),
        ("model.name", report.model.name),
        ("model.hash", report.model.hash),
        ("policy.path", gate.policy),
        ("policy.sha256", gate.policy_sha256),
        ("baseline.path", gate.baseline),
        ("baseline.model_hash", gate.baseline_model_hash),
        ("gate.passed", "true" if gate.passed else "false"),
    ):
        ET.SubElement(props, "property", {"name": name, "value": xml_text(value)})
    classname = _classname(xml_text(report.model.name))
    for rule in rules:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": xml_text(rule.rule)})
        if not rule.passed:
            failure = ET.SubElement(case, "failure", {"message": xml_text(rule.reason), "type": "gate"})
            failure.text = xml_text(failure_details(rule))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
