"""The gate's CI formats: JUnit XML checked against Jenkins' junit-10.xsd, SARIF 2.1.0 against the
OASIS JSON schema (both vendored in tests/schemas, see its README), plus their content."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tolerances import decimals

import trustslm
from trustslm.core.types import GateResult, GateRuleResult
from trustslm.report.junit import render_junit
from trustslm.report.sarif import FINGERPRINT_KEY, policy_line, render_sarif

SCHEMAS = Path(__file__).resolve().parent / "schemas"

POLICY = """\
# release gate for the demo model
overall: {min: 60}
dimensions:
  fairness: {min: 70}
  toxicity:
    max: 99   # unusual, but a max
metrics:
  fairness.stereotype_pairs.pct_stereotype: {max: 0.55}
  "fairness.stereotype_pairs.pct_stereotype[bias_type=gender]": {max: 0.6}
on_missing: fail
regressions:
  overall: 2
  dimensions:
    fairness: {tolerance: 3}
  metrics:
    fairness.stereotype_pairs.pct_stereotype: 0.02
"""
# 1-based lines of POLICY's keys
L_OVERALL, L_FAIRNESS, L_TOXICITY, L_METRIC, L_METRIC_GROUP = 2, 4, 5, 8, 9
L_REG_OVERALL, L_REG_FAIRNESS, L_REG_METRIC = 12, 14, 16

HOSTILE = 'evil<model> & "co"\x01\x1b[31m\ufffe'


@pytest.fixture(scope="module")
def base_report(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRUSTSLM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return trustslm.audit("mock", probes=["fairness.stereotype_pairs"], progress=False, limit=6)


@pytest.fixture(scope="module")
def junit_schema():
    xmlschema = pytest.importorskip("xmlschema")
    return xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd")


@pytest.fixture(scope="module")
def sarif_validator():
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMAS / "sarif-2.1.0.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def threshold(rule, target, op, bound, actual, passed, reason=None):
    cmp = ">=" if op == "min" else "<="
    reason = reason or (f"{actual:.4g} {cmp} {bound:g}" if passed else
                        f"{actual:.4g} is {'below' if op == 'min' else 'above'} {bound:g}")
    return GateRuleResult(rule=f"{rule} {op} {bound:g}", target=target, op=op, threshold=bound, actual=actual,
                          passed=passed, reason=reason)


def regression(target, tol, base, new, reg, passed, p):
    return GateRuleResult(rule=f"regression {target} max {tol:g}", target=target, op="regression", threshold=tol,
                          actual=new, passed=passed, baseline=base, regression=reg, ci_low=reg - 1.0,
                          ci_high=reg + 1.0, p_value=p, p_adjusted=min(1.0, 3 * p),
                          reason=f"regressed by {reg:.3g} > {tol:g} (p_adj={min(1.0, 3 * p):.3g})" if not passed
                          else f"regression {reg:.3g} within {tol:g}")


MIXED_RULES = [
    threshold("overall", "overall", "min", 60, 55.5, False),
    threshold("dimension fairness", "fairness", "min", 70, 80.0, True),
    threshold("dimension toxicity", "toxicity", "max", 99, 99.5, False),
    threshold("metric fairness.stereotype_pairs.pct_stereotype", "fairness.stereotype_pairs.pct_stereotype", "max", 0.55,
              0.7, False),
    threshold("metric fairness.stereotype_pairs.pct_stereotype[bias_type=gender]",
              "fairness.stereotype_pairs.pct_stereotype[bias_type=gender]", "max", 0.6, 0.5, True),
    regression("overall", 2, 70.0, 64.0, 6.0, False, 0.001),
    regression("fairness", 3, 80.0, 79.0, 1.0, True, 0.8),
    regression("fairness.stereotype_pairs.pct_stereotype", 0.02, 0.5, 0.7, 0.2, False, 0.004),
]


def with_gate(report, rules, *, policy="policies/release.yaml", model_name=None):
    failures = [f"{r.rule}: {r.reason}" for r in rules if not r.passed]
    gate = GateResult(policy=policy, policy_sha256=hashlib.sha256(POLICY.encode()).hexdigest(),
                      baseline="baseline/report.json" if any(r.op == "regression" for r in rules) else None,
                      baseline_model_hash="ab" * 32, passed=not failures, rules=rules, failures=failures)
    update = {"gate": gate}
    if model_name is not None:
        update["model"] = report.model.model_copy(update={"name": model_name})
    return report.model_copy(update=update)


def assert_valid_sarif(validator, text):
    errors = sorted(validator.iter_errors(json.loads(text)), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


# -- JUnit ------------------------------------------------------------------------------------------

def test_junit_mixed_gate_validates_and_counts(base_report, junit_schema):
    report = with_gate(base_report, MIXED_RULES)
    text = render_junit(report)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    junit_schema.validate(text)
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "trustslm gate"
    cases = suite.findall("testcase")
    failed = [r for r in MIXED_RULES if not r.passed]
    assert len(cases) == len(MIXED_RULES) == int(suite.get("tests")) == int(root.get("tests"))
    assert len(suite.findall("testcase/failure")) == len(failed) == int(suite.get("failures")) == 5
    assert suite.get("errors") == "0" and suite.get("skipped") == "0"
    assert suite.get("timestamp") == base_report.run.started_at
    assert float(suite.get("time")) == pytest.approx(base_report.run.wall_time_s, abs=decimals(3))  # 3 decimals
    assert [c.get("name") for c in cases] == [r.rule for r in MIXED_RULES]
    assert {c.get("classname") for c in cases} == {"trustslm.gate.mock"}
    for case, rule in zip(cases, MIXED_RULES):
        failure = case.find("failure")
        if rule.passed:
            assert failure is None
            continue
        assert failure.get("type") == "gate"
        assert failure.get("message") == rule.reason
        if rule.op == "regression":
            body = failure.text
            for needle in (f"baseline: {rule.baseline:.6g}", f"new: {rule.actual:.6g}",
                           f"regression: {rule.regression:.6g}", f"[{rule.ci_low:.6g}, {rule.ci_high:.6g}]",
                           f"p-value: {rule.p_value:.6g}", f"(Holm-adjusted): {rule.p_adjusted:.6g}"):
                assert needle in body
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["model.name"] == "mock" and props["model.hash"] == base_report.model.hash
    assert props["policy.path"] == "policies/release.yaml"
    assert props["policy.sha256"] == report.gate.policy_sha256
    assert props["baseline.path"] == "baseline/report.json"
    assert props["gate.passed"] == "false"


def test_junit_all_pass_and_empty(base_report, junit_schema):
    passing = [r for r in MIXED_RULES if r.passed]
    root = ET.fromstring(render_junit(with_gate(base_report, passing)))
    junit_schema.validate(root)
    assert len(root.findall("testsuite/testcase")) == len(passing)
    assert root.findall(".//failure") == [] and root.find("testsuite").get("failures") == "0"

    text = render_junit(base_report)  # the audit had no policy: no rules
    junit_schema.validate(text)
    suite = ET.fromstring(text).find("testsuite")
    assert suite.get("tests") == "0" and suite.findall("testcase") == []


def test_junit_hostile_text(base_report, junit_schema):
    rule = threshold("overall", "overall", "min", 60, 10.0, False, reason='bad <b>"x"</b> & \x00\x07 \ud800 end')
    report = with_gate(base_report, [rule], model_name=HOSTILE)
    text = render_junit(report)
    junit_schema.validate(text)
    root = ET.fromstring(text.encode("utf-8"))
    case = root.find("testsuite/testcase")
    assert case.get("classname") == "trustslm.gate.evil_model_co_31m"
    assert case.find("failure").get("message") == 'bad <b>"x"</b> &   end'
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["model.name"] == 'evil<model> & "co"[31m'


def test_junit_validator_bites(junit_schema):
    import xmlschema

    bad = ('<?xml version="1.0" encoding="UTF-8"?><testsuites><testsuite name="s" tests="1" failures="0" '
           'errors="0"><testcase classname="c"/></testsuite></testsuites>')
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        junit_schema.validate(bad)
    with pytest.raises(xmlschema.XMLSchemaValidationError):  # time with too many decimals
        junit_schema.validate(bad.replace('errors="0"', 'errors="0" time="1.23456"')
                              .replace('<testcase classname="c"/>', '<testcase name="t"/>'))


# -- SARIF ------------------------------------------------------------------------------------------

def test_sarif_mixed_gate_validates_and_points_at_policy(base_report, sarif_validator):
    report = with_gate(base_report, MIXED_RULES)
    text = render_sarif(report, policy_text=POLICY)
    assert_valid_sarif(sarif_validator, text)
    log = json.loads(text)
    assert log["version"] == "2.1.0" and log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "trustslm" and driver["version"] == base_report.trustslm_version
    assert [r["id"] for r in driver["rules"]] == ["TSLM001", "TSLM002", "TSLM003"]
    assert all(r["help"]["text"] and r["shortDescription"]["text"] for r in driver["rules"])  # GitHub needs help
    failed = [r for r in MIXED_RULES if not r.passed]
    results = run["results"]
    assert len(results) == len(failed)
    expected_lines = {"overall min 60": L_OVERALL, "dimension toxicity max 99": L_TOXICITY,
                      "metric fairness.stereotype_pairs.pct_stereotype max 0.55": L_METRIC,
                      "regression overall max 2": L_REG_OVERALL,
                      "regression fairness.stereotype_pairs.pct_stereotype max 0.02": L_REG_METRIC}
    for res, rule in zip(results, failed):
        assert res["level"] == "error"
        assert res["message"]["text"].startswith(f"{rule.rule}: {rule.reason}")
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["ruleId"] == {"min": "TSLM001", "max": "TSLM002", "regression": "TSLM003"}[rule.op]
        (loc,) = res["locations"]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == "policies/release.yaml"
        assert loc["physicalLocation"]["region"]["startLine"] == expected_lines[rule.rule], rule.rule
        assert res["partialFingerprints"][FINGERPRINT_KEY] == hashlib.sha256(rule.rule.encode()).hexdigest()
    assert results[3]["properties"]["pAdjusted"] == pytest.approx(0.003)
    assert run["properties"]["modelName"] == "mock"
    assert run["properties"]["modelHash"] == base_report.model.hash
    assert run["properties"]["gatePassed"] is False
    # the same rules render the same fingerprints (reruns match up)
    assert json.loads(render_sarif(report, policy_text=POLICY))["runs"][0]["results"] == results


def test_policy_lines_of_every_key():
    got = {(r.op, r.target): policy_line(POLICY, r) for r in MIXED_RULES}
    assert got[("min", "fairness")] == L_FAIRNESS
    assert got[("max", "fairness.stereotype_pairs.pct_stereotype[bias_type=gender]")] == L_METRIC_GROUP
    assert got[("regression", "fairness")] == L_REG_FAIRNESS
    flow = "regressions: {overall: {max: 1}}\noverall: {min: 50}\n"
    assert policy_line(flow, regression("overall", 1, 1, 1, 1, False, 0.1)) == 1
    assert policy_line(flow, threshold("overall", "overall", "min", 50, 1, False)) == 2
    unknown = threshold("dimension privacy", "privacy", "min", 50, 1, False)
    assert policy_line(POLICY, unknown) == 1


def test_sarif_without_policy_points_at_report(base_report, sarif_validator):
    report = with_gate(base_report, MIXED_RULES, policy=None)
    for text in (render_sarif(report, policy_text=POLICY), render_sarif(with_gate(base_report, MIXED_RULES))):
        assert_valid_sarif(sarif_validator, text)
        for res in json.loads(text)["runs"][0]["results"]:
            loc = res["locations"][0]["physicalLocation"]
            assert loc["artifactLocation"]["uri"] == "report.json" and loc["region"]["startLine"] == 1


def test_sarif_all_pass_and_hostile(base_report, sarif_validator):
    passing = [r for r in MIXED_RULES if r.passed]
    text = render_sarif(with_gate(base_report, passing), policy_text=POLICY)
    assert_valid_sarif(sarif_validator, text)
    run = json.loads(text)["runs"][0]
    assert run["results"] == [] and run["properties"]["gatePassed"] is True

    empty = json.loads(render_sarif(base_report))
    assert_valid_sarif(sarif_validator, json.dumps(empty))
    assert empty["runs"][0]["results"] == [] and empty["runs"][0]["tool"]["driver"]["rules"] == []

    rule = threshold("overall", "overall", "min", 60, 10.0, False, reason='bad <b>"x"</b> & \x00 \ud800 end')
    rule = rule.model_copy(update={"actual": float("nan")})
    hostile = with_gate(base_report, [rule], model_name=HOSTILE, policy="my policies/gate #1.yaml")
    text = render_sarif(hostile, policy_text=POLICY)
    text.encode("utf-8")  # writable as UTF-8
    json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))  # no NaN
    assert_valid_sarif(sarif_validator, text)
    run = json.loads(text)["runs"][0]
    assert run["properties"]["modelName"] == HOSTILE
    assert run["results"][0]["message"]["text"] == 'overall min 60: bad <b>"x"</b> & \x00 \ufffd end.'
    assert run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "my%20policies/gate%20%231.yaml"


def test_sarif_validator_bites(base_report, sarif_validator):
    log = json.loads(render_sarif(with_gate(base_report, MIXED_RULES), policy_text=POLICY))
    no_version = {k: v for k, v in log.items() if k != "version"}
    assert list(sarif_validator.iter_errors(no_version))
    bad_level = json.loads(json.dumps(log))
    bad_level["runs"][0]["results"][0]["level"] = "fatal"
    assert list(sarif_validator.iter_errors(bad_level))
    bad_line = json.loads(json.dumps(log))
    bad_line["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    assert list(sarif_validator.iter_errors(bad_line))


def _readme_workflow() -> str:
    readme = (Path(__file__).resolve().parent.parent / "docs" / "gate.md").read_text(encoding="utf-8")
    section = readme[readme.index("## GitHub Actions"):]
    start = section.index("```yaml\n") + len("```yaml\n")
    return section[start:section.index("```", start)]


def test_the_policy_in_this_file_is_a_valid_policy(tmp_path):
    from trustslm.gate.policy import load_policy

    (tmp_path / "p.yaml").write_text(POLICY)
    policy, _ = load_policy(tmp_path / "p.yaml")
    assert policy.regressions.targets() == {"overall": 2.0, "fairness": 3.0,
                                            "fairness.stereotype_pairs.pct_stereotype": 0.02}


def test_the_readme_github_workflow_is_valid_and_uploads_both_outputs():
    """The README's workflow against the GitHub workflow schema that check-jsonschema vendors
    (SchemaStore's), and what it must do: cache the model, run the gate, upload JUnit and SARIF."""
    import importlib.resources

    import jsonschema
    import yaml

    schema = json.loads((importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
                         / "github-workflows.json").read_text(encoding="utf-8"))
    workflow = yaml.safe_load(_readme_workflow())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    jsonschema.Draft7Validator(schema).validate(workflow)
    steps = workflow["jobs"]["trust-gate"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/cache@") for u in uses)
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert "~/.cache/huggingface" in cache["with"]["path"] and "~/.cache/trustslm" in cache["with"]["path"]
    run = next(s["run"] for s in steps if "trustslm audit" in s.get("run", ""))
    assert "--baseline" in run and "--junit trust-report/junit.xml" in run and "--sarif trust-report/gate.sarif" in run
    sarif = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert sarif["with"]["sarif_file"] == "trust-report/gate.sarif"
    artifact = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert artifact["with"]["path"] == "trust-report/"  # holds junit.xml, the report and samples
    bad = dict(workflow, jobs={"trust-gate": {"steps": steps}})  # a job without runs-on
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(bad)
