"""The release gate as a SARIF 2.1.0 log (OASIS Static Analysis Results Interchange Format), for
GitHub code scanning and other SARIF viewers.

One run, whose ``tool.driver`` is trustslm with one reporting descriptor per kind of gate rule
present in the report (``TSLM001`` threshold minimum, ``TSLM002`` threshold maximum, ``TSLM003``
regression against a baseline). A result is a finding, so **only failed rules are results**
(level ``error``); passed rules are not reported, and an all-pass gate is a log with no results.

GitHub requires every result to have a physical location. Given the policy file's text and the
gate's policy path, a result points at the policy line where the rule's target (the metric, the
dimension, ``overall``; under ``regressions:`` for regression rules) is a key, or at line 1 when
none is found; otherwise it points at ``report.json`` line 1. ``partialFingerprints`` hash the rule
text, so the same rule failing again is the same alert. The run's ``properties`` give the model's
name and hash, the gate's verdict and each probe's risk tags (OWASP Top 10 for LLM Applications
2025, NIST AI 600-1; a result's ``properties.tags`` are those of the probes its rule covers). Untrusted text (model names, reasons) is JSON-escaped; lone
surrogates, which UTF-8 cannot encode, become U+FFFD.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any
from urllib.parse import quote

from trustslm.core.types import GateRuleResult, TrustReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://github.com/trustslm/trustslm"
FINGERPRINT_KEY = "trustslmRule/v1"

#: rule kind -> (id, name, short description, full description, help)
RULE_KINDS: dict[str, tuple[str, str, str, str, str]] = {
    "min": ("TSLM001", "ThresholdMin", "A gate value is below the policy's minimum.",
            "A score or metric of the audited model is below the minimum the gate policy sets for it "
            "(overall, dimension or metric threshold with 'min').",
            "The release gate failed: a trust score or metric is below its 'min' in the gate policy. Read the "
            "report (report.md or report.html) for the value, its 95% interval and the probes behind it; improve "
            "the model, or change the threshold in the policy file if it was set wrongly."),
    "max": ("TSLM002", "ThresholdMax", "A gate value is above the policy's maximum.",
            "A score or metric of the audited model is above the maximum the gate policy sets for it "
            "(overall, dimension or metric threshold with 'max').",
            "The release gate failed: a score or metric is above its 'max' in the gate policy. Read the report "
            "(report.md or report.html) for the value, its 95% interval and the probes behind it; improve the "
            "model, or change the threshold in the policy file if it was set wrongly."),
    "regression": ("TSLM003", "Regression", "The model regressed against the baseline report.",
                   "A score or metric is worse than in the baseline report by more than the policy's "
                   "tolerance, judged on the same items with a paired bootstrap.",
                   "The release gate failed: compared with the baseline report on the same items, a score or "
                   "metric got worse by more than the policy's tolerance. The result's properties give the "
                   "baseline and new values, the regression, its 95% paired-bootstrap interval and the p-values "
                   "(raw and Holm-adjusted)."),
}

_SURROGATE = re.compile("[\ud800-\udfff]")
_KEY = re.compile(r"^(?P<indent>\s*)(?:-\s+)?(?P<q>[\"']?)(?P<key>[^\"'#\s][^#]*?)(?P=q)\s*:(?:\s|$)")


def _strip_comment(line: str) -> str:
    return re.sub(r"(^|\s)#.*$", "", line)


def policy_line(policy_text: str, rule: GateRuleResult) -> int:
    """The 1-based line of ``policy_text`` where ``rule``'s target is a key (inside a
    ``regressions:`` section for a regression rule, outside one otherwise); 1 when none is."""
    target_key = re.compile(r"(?:^|[\s{,-])([\"']?)" + re.escape(rule.target) + r"\1\s*:(?:\s|$|[{\[])")
    want_regression = rule.op == "regression"
    stack: list[tuple[int, str]] = []  # (indent, key) of the open block mappings above this line
    for number, raw in enumerate(policy_text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line.strip():
            continue
        m = _KEY.match(line)
        indent = len(m["indent"]) if m else len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        own = [m["key"].strip()] if m else []
        if target_key.search(line):
            # the keys above the target: the open mappings, plus this line's key when the target is inside its flow mapping
            above = [k for _, k in stack] + ([] if m and m["key"].strip() == rule.target else own)
            if ("regressions" in above) == want_regression:
                return number
        if m:
            stack.append((indent, m["key"].strip()))
    return 1


def _uri(path: str) -> str:
    return quote(path.replace("\\", "/"), safe="/:@!$&'()*+,;=-._~")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def rule_tags(report: TrustReport, target: str) -> list[str]:
    """The taxonomy tags of the probes a gate rule's target covers (a metric's probe; a
    dimension's probes; every probe for ``overall``), as ``owasp_llm_2025/LLM01``, sorted."""
    if target == "overall":
        probes = {r.probe_id for r in report.results}
    elif target in report.dimensions:
        probes = {r.probe_id for r in report.results if r.dimension == target}
    else:
        probes = {r.probe_id for r in report.results if target.startswith(r.probe_id + ".")}
    return sorted({f"{name}/{code}" for r in report.results if r.probe_id in probes
                   for name, codes in r.taxonomy.items() for code in codes})


def _result(rule: GateRuleResult, index: int, rule_id: str, uri: str, line: int,
            tags: list[str] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"target": rule.target, "op": rule.op, "threshold": rule.threshold, "actual": rule.actual}
    if tags:
        props["tags"] = tags  # the SARIF property bag's standard tags (section 3.8.1)
    if rule.op == "regression":
        props.update(baseline=rule.baseline, regression=rule.regression, ciLow=rule.ci_low, ciHigh=rule.ci_high,
                     pValue=rule.p_value, pAdjusted=rule.p_adjusted)
    return {
        "ruleId": rule_id,
        "ruleIndex": index,
        "level": "error",
        "message": {"text": _sentence(f"{rule.rule}: {rule.reason}")},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": line}}}],
        "partialFingerprints": {FINGERPRINT_KEY: hashlib.sha256(rule.rule.encode("utf-8")).hexdigest()},
        # JSON has no NaN/inf: leave such values (and missing ones) out
        "properties": {k: v for k, v in props.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))},
    }


def render_sarif(report: TrustReport, *, policy_text: str | None = None) -> str:
    """The report's failed gate rules as a SARIF 2.1.0 log (JSON text)."""
    gate = report.gate
    kinds = [k for k in RULE_KINDS if any(r.op == k for r in gate.rules)]
    descriptors = [
        {"id": RULE_KINDS[k][0], "name": RULE_KINDS[k][1],
         "shortDescription": {"text": RULE_KINDS[k][2]}, "fullDescription": {"text": RULE_KINDS[k][3]},
         "help": {"text": RULE_KINDS[k][4]},
         "defaultConfiguration": {"level": "error"}}
        for k in kinds
    ]
    on_policy = policy_text is not None and bool(gate.policy)
    results = []
    for rule in gate.rules:
        if rule.passed:
            continue
        if on_policy:
            uri, line = _uri(gate.policy), policy_line(policy_text, rule)
        else:
            uri, line = "report.json", 1
        results.append(_result(rule, kinds.index(rule.op), RULE_KINDS[rule.op][0], uri, line,
                               rule_tags(report, rule.target)))
    run = {
        "tool": {"driver": {"name": "trustslm", "version": report.trustslm_version,
                            "informationUri": INFORMATION_URI, "rules": descriptors}},
        "results": results,
        "properties": {k: v for k, v in {
            "modelName": report.model.name,
            "modelHash": report.model.hash,
            "gatePassed": gate.passed,
            "policy": gate.policy,
            "policySha256": gate.policy_sha256,
            "baseline": gate.baseline,
            "taxonomy": {r.probe_id: r.taxonomy for r in report.results if r.taxonomy} or None,
        }.items() if v is not None},
    }
    log = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
    # lone surrogates (possible in untrusted text) cannot be written as UTF-8: replace them
    return _SURROGATE.sub("\ufffd", json.dumps(log, indent=2, ensure_ascii=False)) + "\n"
