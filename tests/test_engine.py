"""The engine on the scripted mock: what a user of the API and the CLI sees."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ENGINE_PROBES, assert_one_line_error, run_cli

import trustslm
from trustslm.models.mock import ScriptedModel

QUICK = {"toxicity.continuation": {"k": 2}}


def test_audit_returns_a_typed_report_with_a_frame():
    report = trustslm.audit("mock", probes=ENGINE_PROBES, progress=False, limit=6, options=QUICK)
    assert isinstance(report, trustslm.TrustReport)
    assert [r.status for r in report.results] == ["ok", "ok"]
    frame = report.to_frame()
    assert {"probe_id", "metric", "value", "ci_low", "ci_high", "n"} <= set(frame.columns)
    assert set(frame["probe_id"]) == {"fairness.stereotype_pairs", "toxicity.continuation"}
    html = report._repr_html_()
    assert "<svg" in html and "fairness" in html


def test_unmeasured_dimensions_say_so_and_carry_no_number():
    report = trustslm.audit("mock", probes=["fairness.stereotype_pairs"], progress=False, limit=6)
    assert report.dimensions["fairness"].status == "measured"
    for dim in ("robustness", "privacy", "toxicity", "truthfulness"):
        assert report.dimensions[dim].status == "not measured"
        assert report.dimensions[dim].score is None
    assert report.overall.dimensions_measured == ["fairness"]
    assert report.overall.score == report.dimensions["fairness"].score


def test_probe_whose_needs_the_model_cant_meet_is_skipped_with_its_reason():
    model = ScriptedModel({"capabilities": ["loglikelihood"]})
    report = trustslm.audit(model, probes=ENGINE_PROBES, progress=False, limit=4, options=QUICK)
    tox = report.result("toxicity.continuation")
    assert tox.status == "skipped"
    assert "generate" in tox.reason
    assert report.dimensions["toxicity"].status == "not measured"
    assert report.result("fairness.stereotype_pairs").status == "ok"
    assert model.calls["generate"] == 0


def test_a_failing_probe_loses_no_other_result(tmp_path):
    class Broken(ScriptedModel):
        def _generate_batch(self, batch):  # returns text the scorer chokes on
            out = super()._generate_batch(batch)
            return [type(o)(text=None, n_tokens=0, finish_reason="stop") for o in out]  # type: ignore[arg-type]

    report = trustslm.audit(Broken(), probes=ENGINE_PROBES, progress=False, limit=4, options=QUICK, out=tmp_path)
    assert report.result("toxicity.continuation").status == "error"
    assert report.result("fairness.stereotype_pairs").status == "ok"
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["results"][0]["status"] == "ok"


def test_same_seed_same_report_and_samples(tmp_path):
    a = trustslm.audit("mock", probes=ENGINE_PROBES, progress=False, limit=5, options=QUICK, out=tmp_path / "a", seed=7)
    b = trustslm.audit("mock", probes=ENGINE_PROBES, progress=False, limit=5, options=QUICK, out=tmp_path / "b", seed=7)
    assert [r.model_dump(exclude={"wall_time_s", "speed"}) for r in a.results] == \
           [r.model_dump(exclude={"wall_time_s", "speed"}) for r in b.results]
    assert (tmp_path / "a" / "samples.jsonl").read_text() == (tmp_path / "b" / "samples.jsonl").read_text()


def test_outputs_written(tmp_path):
    trustslm.audit("mock", probes=ENGINE_PROBES, progress=False, limit=3, options=QUICK, out=tmp_path)
    for name in ("report.json", "report.md", "report.html", "samples.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert {s["probe_id"] for s in samples} == {"fairness.stereotype_pairs", "toxicity.continuation"}
    assert sum(s["probe_id"] == "toxicity.continuation" for s in samples) == 3 * 2


def test_options_from_config_file_and_set(tmp_path):
    (tmp_path / "data").mkdir()
    pairs = tmp_path / "data" / "p.jsonl"
    pairs.write_text(json.dumps({"sent_more": "A.", "sent_less": "B.", "bias_type": "x"}) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text("fairness.stereotype_pairs:\n  data: data/p.jsonl\ntoxicity.continuation:\n  k: 3\n")
    report = trustslm.audit("mock", probes=ENGINE_PROBES, config=config, progress=False, limit=2,
                            options={"toxicity.continuation": {"k": 1}})
    assert report.result("fairness.stereotype_pairs").datasets[0].n_items == 1  # relative to the config
    assert report.result("toxicity.continuation").options["k"] == 1          # --set wins
    assert report.run.config["toxicity.continuation"]["k"] == 1


def test_gate_passes_and_fails_with_named_rules(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("overall: {min: 1}\ndimensions: {fairness: {min: 1}}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dimensions: {fairness: {min: 101}}\nmetrics:\n  fairness.stereotype_pairs.pct_stereotype: {max: 0.0}\n"
                   "  fairness.stereotype_pairs.pct_stereotype[bias_type=gender]: {max: 2}\n")
    assert trustslm.audit("mock", probes=["fairness.stereotype_pairs"], policy=ok, progress=False, limit=5).gate.passed
    report = trustslm.audit("mock", probes=["fairness.stereotype_pairs"], policy=bad, progress=False, limit=30)
    assert not report.gate.passed
    assert any("dimension fairness min 101" in f for f in report.gate.failures)
    assert any("pct_stereotype max 0" in f for f in report.gate.failures)
    assert len(report.gate.failures) == 2  # the breakdown rule passed


def test_gate_on_a_dimension_not_measured(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("dimensions: {privacy: {min: 50}}\n")
    report = trustslm.audit("mock", probes=["fairness.stereotype_pairs"], policy=policy, progress=False, limit=3)
    assert not report.gate.passed and "not measured" in report.gate.failures[0]
    policy.write_text("dimensions: {privacy: {min: 50}}\non_missing: skip\n")
    assert trustslm.audit("mock", probes=["fairness.stereotype_pairs"], policy=policy, progress=False, limit=3).gate.passed


def test_cli_exit_codes_for_the_gate(tmp_path):
    ok, bad = tmp_path / "ok.yaml", tmp_path / "bad.yaml"
    ok.write_text("overall: {min: 1}\n")
    bad.write_text("overall: {min: 101}\n")
    args = ["audit", "mock", "--probes", "fairness.stereotype_pairs", "--limit", "3", "--no-progress"]
    passed = run_cli(*args, "--out", str(tmp_path / "a"), "--policy", str(ok))
    assert passed.returncode == 0, passed.stderr
    assert "gate: PASSED" in passed.stdout
    failed = run_cli(*args, "--out", str(tmp_path / "b"), "--policy", str(bad))
    assert failed.returncode == 1
    assert "overall min 101" in failed.stdout
    assert json.loads((tmp_path / "b" / "report.json").read_text())["gate"]["passed"] is False


def test_cli_audit_prints_summary_and_progress_goes_to_stderr(tmp_path):
    proc = run_cli("audit", "mock", "--probes", ",".join(ENGINE_PROBES), "--limit", "3", "--set", "toxicity.continuation.k=2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "fairness" in proc.stdout and "not measured" in proc.stdout
    assert "requests" in proc.stderr  # the progress bar
    assert "requests" not in proc.stdout


def test_probes_list_is_fast_and_does_not_import_torch():
    code = ("import sys; from trustslm.cli.main import main; main(['probes', 'list', '--format', 'json']);"
            "print('HEAVY' if {'torch', 'transformers', 'pandas'} & set(sys.modules) else 'LIGHT')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    body, verdict = proc.stdout.rsplit("]", 1)
    assert verdict.strip() == "LIGHT"
    rows = json.loads(body + "]")
    ids = {r["id"]: r for r in rows}
    assert ids["fairness.stereotype_pairs"]["needs"] == ["loglikelihood"]
    assert ids["toxicity.continuation"]["dimension"] == "toxicity"


def test_import_trustslm_does_not_import_torch():
    code = "import sys, trustslm; print(sorted({'torch', 'transformers', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_report_render(tmp_path):
    trustslm.audit("mock", probes=ENGINE_PROBES, progress=False, limit=3, options=QUICK, out=tmp_path)
    md = run_cli("report", "render", str(tmp_path / "report.json"), "--format", "md")
    assert md.returncode == 0 and md.stdout.startswith("# Trust report: mock")
    html = run_cli("report", "render", str(tmp_path / "report.json"), "--format", "html",
                   "-o", str(tmp_path / "again.html"))
    assert html.returncode == 0
    assert (tmp_path / "again.html").read_text() == (tmp_path / "report.html").read_text()
    missing = run_cli("report", "render", str(tmp_path / "nope.json"))
    assert_one_line_error(missing, contains="not found")


def test_html_escapes_untrusted_strings(tmp_path):
    model = ScriptedModel({"name": "<script>alert(1)</script>"})
    trustslm.audit(model, probes=["fairness.stereotype_pairs"], progress=False, limit=2, out=tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_limit_must_be_positive():
    from trustslm.core.errors import BadInputError

    with pytest.raises(BadInputError):
        trustslm.audit("mock", probes=ENGINE_PROBES, limit=0, progress=False)
