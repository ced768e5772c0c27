"""The release gate: a model compared with its predecessor fails only on real regressions.

Fast tests use scripted models that answer the project's closed-book questions (all right, or a
third wrong); the slow ones use two tiny GPT-2s fine-tuned on the same data, one with DP-SGD and
one without (which memorises its canaries: worse on privacy)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PRIVACY_OPTIONS, PRIVACY_PROBES, REPO, assert_one_line_error, run_cli

import trustslm
from trustslm.gate.compare import _paired_change, _paired_replicates
from trustslm.gate.release import holm
from trustslm.probes.closed_book import ClosedBookQAProbe
from trustslm.report.files import write_outputs

QA = ["truthfulness.closed_book_qa"]
POLICY = """\
overall: {min: 10}
regressions:
  alpha: 0.05
  dimensions:
    truthfulness: 2.0
  metrics:
    truthfulness.closed_book_qa.accuracy: 0.05
"""


def _qa_script(path: Path, wrong_every: int | None) -> Path:
    """A mock that answers each closed-book question with its answer, or with its first
    distractor on every ``wrong_every``-th question."""
    items = [json.loads(line) for line in (REPO / "datasets" / "closed_book_qa.jsonl").read_text().splitlines() if line]
    rules = [{"match": it["question"],
              "response": it["distractors"][0] if wrong_every and i % wrong_every == 0 else it["answers"][0]}
             for i, it in enumerate(items)]
    path.write_text(yaml.safe_dump({"name": f"qa-mock-{wrong_every or 'good'}", "generate": rules}))
    return path


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    good, bad = _qa_script(root / "good.yaml", None), _qa_script(root / "bad.yaml", 3)
    for name, script, seed in (("good", good, 0), ("good_rerun", good, 1), ("bad", bad, 0)):
        trustslm.audit(f"mock:{script}", probes=QA, limit=4, seed=seed, out=root / name, progress=False)
    (root / "policy.yaml").write_text(POLICY)
    return root


def _gate(*args, cwd=None):
    return run_cli("gate", *args, "--no-progress", cwd=cwd)


def test_the_gate_fails_on_the_worse_model_and_names_the_regression(qa, tmp_path):
    proc = _gate(str(qa / "bad"), "--baseline", str(qa / "good"), "--policy", str(qa / "policy.yaml"),
                 "--junit", str(tmp_path / "gate.xml"), "--sarif", str(tmp_path / "gate.sarif"))
    assert proc.returncode == 1, proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.strip().startswith("FAIL")]
    assert any("regression truthfulness tolerance 2" in line for line in failed), proc.stdout
    assert any("regression truthfulness.closed_book_qa.accuracy tolerance 0.05" in line for line in failed)
    assert not any("overall min" in line for line in failed)  # the threshold still passes
    report = trustslm.evaluate_gate(qa / "bad", baseline=qa / "good", policy=qa / "policy.yaml")
    rule = next(r for r in report.gate.rules if r.target == "truthfulness.closed_book_qa.accuracy")
    # 40 questions, every third answered wrong: 14 wrong, accuracy 26/40
    assert rule.baseline == pytest.approx(1.0) and rule.actual == pytest.approx(26 / 40)
    assert rule.regression == pytest.approx(14 / 40) and rule.ci_low > 0.05 and rule.p_adjusted < 0.05
    suite = ET.parse(tmp_path / "gate.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) == len(report.gate.rules) and int(suite.get("failures")) == 2
    sarif = json.loads((tmp_path / "gate.sarif").read_text())
    results = sarif["runs"][0]["results"]
    assert len(results) == 2
    lines = {r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results}
    assert lines == {5, 7}  # the rules' lines in the policy file


def test_the_same_model_passes_against_itself(qa):
    proc = _gate(str(qa / "good"), "--baseline", str(qa / "good"), "--policy", str(qa / "policy.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = trustslm.evaluate_gate(qa / "good", baseline=qa / "good", policy=qa / "policy.yaml")
    regressions = [r for r in report.gate.rules if r.op == "regression"]
    assert len(regressions) == 2 and all(r.regression == 0 and r.ci_low == r.ci_high == 0 for r in regressions)


def test_a_rerun_with_another_seed_does_not_fail(qa):
    """The rerun samples the model again (another seed); the gate must not call that a regression."""
    report = trustslm.evaluate_gate(qa / "good_rerun", baseline=qa / "good", policy=qa / "policy.yaml")
    assert report.gate.passed, report.gate.failures


def test_the_default_rules_compare_overall_and_every_dimension(qa):
    report = trustslm.evaluate_gate(qa / "bad", baseline=qa / "good")
    assert [r.target for r in report.gate.rules] == ["overall", "truthfulness"]
    assert not report.gate.passed and all(r.threshold == 0 for r in report.gate.rules)
    assert report.gate.baseline == str(qa / "good") and report.gate.baseline_model_hash


def test_audit_with_a_baseline_writes_the_gate_into_the_report(qa, tmp_path):
    out = tmp_path / "new"
    proc = run_cli("audit", f"mock:{qa / 'bad.yaml'}", "--probes", QA[0], "--limit", "4", "--out", str(out),
                   "--baseline", str(qa / "good" / "report.json"), "--policy", str(qa / "policy.yaml"),
                   "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert "gate: FAILED" in proc.stdout and "FAIL regression truthfulness" in proc.stdout
    saved = json.loads((out / "report.json").read_text())["gate"]
    assert saved["baseline"].endswith("report.json") and not saved["passed"]
    assert "baseline" in (out / "report.md").read_text() and (out / "units.jsonl").is_file()


def _copy_report(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("report.json", "samples.jsonl", "units.jsonl"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_reports_that_cannot_be_paired_say_why_and_follow_on_missing(qa, tmp_path):
    other = _copy_report(qa / "good", tmp_path / "other")
    data = json.loads((other / "report.json").read_text())
    data["results"][0]["version"] = "99"
    (other / "report.json").write_text(json.dumps(data))
    report = trustslm.evaluate_gate(qa / "good", baseline=other)
    assert not report.gate.passed
    assert all("cannot compare" in r.reason and "v99" in r.reason for r in report.gate.rules), report.gate.rules
    skip = tmp_path / "skip.yaml"
    skip.write_text("on_missing: skip\n")
    assert trustslm.evaluate_gate(qa / "good", baseline=other, policy=skip).gate.passed

    no_units = _copy_report(qa / "good", tmp_path / "no_units")
    (no_units / "units.jsonl").unlink()
    reasons = [r.reason for r in trustslm.evaluate_gate(qa / "good", baseline=no_units).gate.rules]
    assert all("no unit table" in r for r in reasons), reasons


def test_edited_unit_tables_are_refused(qa, tmp_path):
    edited = _copy_report(qa / "good", tmp_path / "edited")
    record = json.loads((edited / "units.jsonl").read_text())
    col = record["units"]["columns"].index("correct")
    for row in record["units"]["data"][:10]:
        row[col] = 0.0
    (edited / "units.jsonl").write_text(json.dumps(record) + "\n")
    reasons = [r.reason for r in trustslm.evaluate_gate(qa / "good", baseline=edited).gate.rules]
    assert all("does not reproduce" in r for r in reasons), reasons


def test_diff_tables_group_by_dimension_with_paired_intervals(qa):
    proc = run_cli("diff", str(qa / "good"), str(qa / "bad"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    assert "## Overall" in md and "## truthfulness" in md and "## fairness" not in md
    row = next(line for line in md.splitlines() if line.startswith("| truthfulness.closed_book_qa.accuracy |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["1.000", "0.650", "-0.350"] and cells[5] == "**worse**"
    proc = run_cli("diff", str(qa / "bad"), str(qa / "good"), "--format", "json", "--no-progress")
    diff = json.loads(proc.stdout)
    acc = next(c for c in diff["changes"] if c["target"] == "truthfulness.closed_book_qa.accuracy")
    assert acc["verdict"] == "better" and acc["difference"] == pytest.approx(0.35)
    assert acc["ci_low"] > 0 and acc["ci_high"] <= 0.5 + 1e-9
    assert {c["level"] for c in diff["changes"]} == {"metric", "probe", "dimension", "overall"}


@pytest.mark.parametrize("args, message", [
    (["gate", "REPORT"], "give --policy, --baseline or both"),
    (["gate", "REPORT", "--baseline", "nowhere/report.json"], "report file not found"),
    (["gate", "REPORT", "--policy", "POLICY_BAD_KEY"], "unknown key"),
    (["gate", "REPORT", "--policy", "POLICY_NEGATIVE"], "greater than or equal to 0"),
    (["diff", "REPORT", "nowhere"], "report file not found"),
    (["diff", "REPORT", "REPORT", "--resamples", "5"], "at least 200"),
])
def test_bad_gate_inputs_are_one_line_errors(qa, tmp_path, args, message):
    (tmp_path / "bad_key.yaml").write_text("regressions:\n  dimension: {truthfulness: 1}\n")
    (tmp_path / "negative.yaml").write_text("regressions:\n  overall: -1\n")
    subst = {"REPORT": str(qa / "good"), "POLICY_BAD_KEY": str(tmp_path / "bad_key.yaml"),
             "POLICY_NEGATIVE": str(tmp_path / "negative.yaml")}
    proc = run_cli(*[subst.get(a, a) for a in args], "--no-progress")
    assert_one_line_error(proc, 2, message)


def test_a_baseline_that_is_not_a_report_is_refused_before_the_audit(qa, tmp_path):
    (tmp_path / "report.json").write_text('{"schema_version": "0.1"}')
    proc = run_cli("audit", "mock", "--probes", QA[0], "--limit", "1", "--out", str(tmp_path / "o"),
                   "--baseline", str(tmp_path), "--no-progress")
    assert_one_line_error(proc, 2, "schema_version")
    assert not (tmp_path / "o").exists()


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def _fails(u_old, u_new, tolerance=0.0, alpha=0.05, resamples=1000, seed=0):
    defs = tuple(d for d in ClosedBookQAProbe.metrics if d.name == "accuracy")
    reps = _paired_replicates("p", defs, u_old, u_new, resamples, seed, {"p.accuracy"})[0]["p.accuracy"]
    old, new = u_old["correct"].mean(), u_new["correct"].mean()
    change = _paired_change("p.accuracy", "metric", "truthfulness", old, new, True, None, *reps)
    return change.regression > tolerance and change.p_value(tolerance) < alpha


def test_rerun_noise_fails_at_most_alpha_of_the_time_and_real_drops_are_caught():
    """Simulated reruns: 100 questions of varied difficulty, each answered right with its own
    probability in both runs (null), or 20 points less often in the new one."""
    rng = np.random.default_rng(7)

    def units(p):
        return pd.DataFrame({"correct": (rng.random(p.size) < p).astype(float), "category": "x"})

    null = drop = tolerated = 0
    sims = 200
    for i in range(sims):
        p = rng.beta(2, 2, size=100)
        base = units(p)
        null += _fails(base, units(p), seed=i)
        drop += _fails(base, units(np.clip(p - 0.2, 0, 1)), seed=i)
        tolerated += _fails(base, units(np.clip(p - 0.05, 0, 1)), tolerance=0.15, seed=i)
    assert null / sims <= 0.08           # nominal 0.05; 200 runs: sd 0.015
    assert drop / sims >= 0.9
    assert tolerated / sims <= 0.02      # a drop well inside the tolerance
    same = units(rng.beta(2, 2, size=100))
    assert not _fails(same, same)


def test_the_pytest_fixture_fails_a_test_on_a_failed_gate(qa, pytester):
    pytester.makepyfile(f"""
        def test_good(trust_gate):
            trust_gate(None, report=r"{qa / 'good'}", baseline=r"{qa / 'good'}")

        def test_bad(trust_gate):
            trust_gate(None, report=r"{qa / 'bad'}", baseline=r"{qa / 'good'}")
    """)
    result = pytester.runpytest()  # the plugin comes from its pytest11 entry point
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*trust gate failed for qa-mock-3 (2 of 2 rules)*",
                                 "*regression truthfulness tolerance 0*"])


@pytest.mark.slow
def test_trained_models_worse_on_privacy_fail_the_gate_and_reruns_do_not(finetuned_pair, tmp_path):
    reports = finetuned_pair["reports"]
    plain, dp = reports["plain"], reports["dp"]
    failed = trustslm.evaluate_gate(plain, baseline=dp)
    assert not failed.gate.passed
    assert any(f.startswith("regression privacy tolerance 0: worse by") for f in failed.gate.failures), \
        failed.gate.failures
    assert trustslm.evaluate_gate(dp, baseline=dp).gate.passed
    rerun = trustslm.audit(str(finetuned_pair["root"] / "dp"), probes=PRIVACY_PROBES, options=PRIVACY_OPTIONS,
                           seed=1, progress=False)
    moved = [(m.name, m.group) for r0, r1 in zip(dp.results, rerun.results, strict=True)
             for m, m1 in zip(r0.metrics, r1.metrics, strict=True) if m.value != m1.value]
    assert moved, "the rerun must differ somewhere, or this test shows nothing"
    gated = trustslm.evaluate_gate(rerun, baseline=dp)
    assert gated.gate.passed, gated.gate.failures
    # and through files, as CI uses it
    write_outputs(dp, tmp_path / "dp")
    write_outputs(plain, tmp_path / "plain")
    proc = run_cli("gate", str(tmp_path / "plain"), "--baseline", str(tmp_path / "dp"), "--no-progress")
    assert proc.returncode == 1 and "FAIL regression privacy" in proc.stdout, proc.stdout + proc.stderr


def test_trustslm_card_writes_the_report_into_the_model_card_once(qa, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "README.md").write_text("---\nlicense: apache-2.0\n---\n# My model\n\nHand-written text.\n")
    texts = []
    for _ in range(2):
        proc = run_cli("card", str(model), "--report", str(qa / "bad"))
        assert proc.returncode == 0 and "model card updated" in proc.stdout, proc.stderr
        texts.append((model / "README.md").read_text())
    text = texts[1]
    assert texts[0] == text and text.count("<!-- trustslm:trust-report:start -->") == 1
    assert "# My model\n\nHand-written text.\n" in text and "license: apache-2.0" in text
    assert "trustslm_truthfulness" in text
    assert_one_line_error(run_cli("card", str(tmp_path / "missing"), "--report", str(qa / "bad")), 2)
