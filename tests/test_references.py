"""Reference models (issue 23): real models audited with the default profile, shipped with the
package, set beside every report's scores where the probes ran alike, and named as stale where
they did not. The shipped references must match what the installed probes run: changing a probe's
version, default options or data without rerunning ``bench/references.py`` (or marking the
reference stale, with why) fails here."""

from __future__ import annotations

import json
import shutil

import pytest

import trustslm
from trustslm.models.mock import ScriptedModel
from trustslm.report.files import write_outputs
from trustslm.report.html import render_html
from trustslm.report.markdown import render_markdown
from trustslm.report.standing import REFERENCE_DIR, load_references, stale_probes, standing

#: The four real models that install from the package index (bench/real_models.py).
SHIPPED = {"smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"}
LIKELIHOOD = ["fairness.stereotype_pairs", "fairness.winobias", "truthfulness.truthfulqa_mc"]


def test_the_shipped_references_are_the_real_models_with_their_provenance():
    refs = load_references()
    assert {r.name for r in refs} == SHIPPED  # all four, each audited whole
    for ref in refs:
        meta = ref.meta
        assert meta["backend"] in ("transformers", "llama.cpp") and meta["profile"] == "full"
        assert meta["audit_wall_time_s"] > 0 and meta["parameters"] > 1e8
        assert meta["trustslm_version"] == ref.report.trustslm_version
        assert not list(ref.path.glob("samples*")), "references ship no samples"
        text = (ref.path / "report.json").read_text()
        assert "/root/" not in text and "/home/" not in text and "/tmp/" not in text  # no maker's paths
        assert sum(r.status == "ok" for r in ref.report.results) >= 10


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_reference_is_not_stale_unless_marked(name):
    ref = {r.name: r for r in load_references()}[name]
    stale = stale_probes(ref)
    unmarked = {pid: why for pid, why in stale.items() if pid not in ref.marked_stale}
    assert not unmarked, (f"the reference {name} is stale for {unmarked}: rerun python bench/references.py "
                          f"--models {name}, or mark it stale in its reference.json (marked_stale: {{probe: why}})")


@pytest.fixture(scope="module")
def fake_refs(tmp_path_factory):
    """Two mock models' audits laid out as shipped references."""
    root = tmp_path_factory.mktemp("refs")
    cache = tmp_path_factory.mktemp("cache")
    for name, params, script in (("small", 135_000_000, None),
                                 ("large", 1_500_000_000, {"name": "large", "default_response": "No."})):
        report = trustslm.audit(ScriptedModel(script), probes=LIKELIHOOD, limit=20,
                                bootstrap_resamples=100, cache_dir=cache, progress=False)
        folder = root / name
        write_outputs(report, folder)
        for extra in ("samples.jsonl", "report.md", "report.html"):
            (folder / extra).unlink()
        (folder / "reference.json").write_text(json.dumps({"name": name, "model": f"Model {name}",
                                                           "parameters": params, "backend": "mock"}))
    return root


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    return trustslm.audit("mock", probes=LIKELIHOOD, limit=20, bootstrap_resamples=100,
                          cache_dir=tmp_path_factory.mktemp("c"), progress=False)


def test_markers_for_comparable_probes_and_dimensions(fake_refs, candidate):
    st = standing(candidate, load_references(fake_refs))
    for pid in LIKELIHOOD:
        assert [m.reference for m in st.probes[pid]] == ["Model small", "Model large"]
    assert set(st.dimensions) == {"fairness", "truthfulness"}
    assert not st.stale
    ref = load_references(fake_refs)[0]
    assert st.probes["fairness.winobias"][0].score == ref.result("fairness.winobias").score.score
    assert st.sizes_text(st.probes["fairness.winobias"]) == "2 references (135M-1.5B parameters)"


def test_a_probe_that_ran_differently_shows_the_references_as_stale(fake_refs, candidate, tmp_path):
    changed = candidate.model_copy(update={"results": [
        r.model_copy(update={"version": "99"}) if r.probe_id == "fairness.winobias" else r for r in candidate.results]})
    st = standing(changed, load_references(fake_refs))
    assert "fairness.winobias" not in st.probes
    assert [why for _, why in st.stale["fairness.winobias"]] == ["probe version 2 in the reference, 99 here"] * 2
    assert "fairness" not in st.dimensions  # a dimension is compared only where all its probes are
    # other data: fewer items used
    fewer = trustslm.audit("mock", probes=["fairness.winobias"], limit=10, bootstrap_resamples=50,
                           cache_dir=tmp_path, progress=False)
    st2 = standing(fewer, load_references(fake_refs))
    assert "other data" in st2.stale["fairness.winobias"][0][1]
    if load_references():  # the shipped ones ran every probe on all its items: stale for 20 of them
        md = render_markdown(changed)
        assert "Reference models stale for this probe, not compared: SmolLM2-135M-Instruct (other data" in md


def test_stale_rendering_and_markers_in_md_and_html(fake_refs, candidate, monkeypatch):
    monkeypatch.setattr("trustslm.report.standing.REFERENCE_DIR", fake_refs)
    md, html = render_markdown(candidate), render_html(candidate)
    assert "Reference models: Model small" in md and "2 references (135M-1.5B parameters)" in md
    assert html.count('class="ref-marker"') == 2 * 2 + 2 * len(LIKELIHOOD)  # 2 dimensions + 3 probes, 2 each
    changed = candidate.model_copy(update={"results": [
        r.model_copy(update={"version": "99"}) if r.probe_id == "fairness.winobias" else r for r in candidate.results]})
    md = render_markdown(changed)
    assert "Reference models stale for this probe, not compared: Model small (probe version" in md
    assert "Not compared, as stale (the probe ran differently): fairness.winobias" in md


def test_marked_stale_and_changed_data_are_caught(fake_refs, tmp_path):
    root = tmp_path / "refs"
    shutil.copytree(fake_refs, root)
    meta_file = root / "small" / "reference.json"
    meta = json.loads(meta_file.read_text())
    meta["marked_stale"] = {"fairness.winobias": "rerun pending"}
    meta_file.write_text(json.dumps(meta))
    [large, small] = sorted(load_references(root), key=lambda r: r.name)
    assert small.marked_stale == {"fairness.winobias": "rerun pending"}
    # what the installed trustslm runs by default: these were audited with limit 20, so the
    # options are the same but the items used differ only through the report's datasets
    report = json.loads((root / "large" / "report.json").read_text())
    for r in report["results"]:
        if r["probe_id"] == "fairness.winobias":
            r["version"] = "0"
        if r["probe_id"] == "fairness.stereotype_pairs":
            r["datasets"][0]["sha256"] = "0" * 64
    (root / "large" / "report.json").write_text(json.dumps(report))
    [large, _] = sorted(load_references(root), key=lambda r: r.name)
    stale = stale_probes(large)
    assert "probe version 0 in the reference" in stale["fairness.winobias"]
    assert "changed (sha256)" in stale["fairness.stereotype_pairs"]
    assert "truthfulness.truthfulqa_mc" not in stale


def test_a_reference_is_current_with_the_default_suites_options_not_the_specs(tmp_path):
    report = trustslm.audit("mock", probes=["fairness.bbq"], bootstrap_resamples=50, cache_dir=tmp_path / "c",
                            progress=False)
    assert report.result("fairness.bbq").options["limit"] == 14  # smoke@2: 14 items of each category
    folder = tmp_path / "refs" / "one"
    write_outputs(report, folder)
    (folder / "reference.json").write_text(json.dumps({"name": "one", "model": "Model one",
                                                       "parameters": 1, "backend": "mock"}))
    [ref] = load_references(tmp_path / "refs")
    assert stale_probes(ref) == {}
    data = json.loads((folder / "report.json").read_text())
    data["results"][0]["options"]["limit"] = None  # as the spec alone runs it: every item
    (folder / "report.json").write_text(json.dumps(data))
    [ref] = load_references(tmp_path / "refs")
    assert stale_probes(ref) == {"fairness.bbq": "default options changed (limit)"}


def test_a_bad_reference_folder_is_a_one_line_error(tmp_path):
    from trustslm.core.errors import BadInputError

    (tmp_path / "x").mkdir()
    with pytest.raises(BadInputError, match="reference.json"):
        load_references(tmp_path)
    (tmp_path / "x" / "reference.json").write_text("[1]")
    with pytest.raises(BadInputError, match="JSON object"):
        load_references(tmp_path)


def test_a_fine_tuned_tiny_model_report_shows_the_reference_markers(finetuned_pair, tmp_path):
    """The issue's case: a fine-tuned model's report, on the default probes' full data, shows where
    it stands against the shipped references."""
    if not (REFERENCE_DIR / "smollm2-135m-instruct").is_dir():
        pytest.skip("the SmolLM2 reference is not shipped yet")
    report = trustslm.audit(str(finetuned_pair["root"] / "plain"), probes=LIKELIHOOD, progress=False,
                            bootstrap_resamples=200, out=tmp_path / "out")
    st = standing(report)
    assert set(st.probes) == set(LIKELIHOOD), st.stale
    html = (tmp_path / "out" / "report.html").read_text()
    md = (tmp_path / "out" / "report.md").read_text()
    # one marker per comparable reference on each probe's bar (and on a dimension's, where the
    # dimension is made of the same probes on both sides: not here, the references ran them all)
    markers = sum(map(len, st.probes.values())) + sum(map(len, st.dimensions.values()))
    assert markers >= len(LIKELIHOOD) and html.count('class="ref-marker"') == markers
    assert "Reference models: SmolLM2-135M-Instruct" in md


def test_an_audit_stopped_and_resumed_counts_every_runs_time(tmp_path, monkeypatch):
    """bench/references.py: a run killed from outside (its session ended) has written its elapsed
    time every heartbeat, and the run that finishes the audit reports the sum of the runs."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import references

    monkeypatch.setattr(references, "HEARTBEAT_S", 0.1)
    runs_file = tmp_path / "model" / "runs.json"
    script = tmp_path / "first.py"  # the first run: bench/references.py itself, killed while its audit runs
    script.write_text(
        "import sys, subprocess\n"
        f"sys.path.insert(0, {str(Path(references.__file__).parent)!r})\n"
        "import references\nreferences.HEARTBEAT_S = 0.1\n"
        f"references._run_timed([sys.executable, '-c', 'import time; time.sleep(60)'], __import__('pathlib').Path({str(runs_file)!r}))\n")
    first = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    time.sleep(1.5)
    os.killpg(first.pid, signal.SIGKILL)  # the run and its audit, as a session's end stops them
    first.wait()
    [stopped] = json.loads(runs_file.read_text())
    assert not stopped["finished"] and 0.5 <= stopped["wall_time_s"] <= 1.6
    rc, returned = references._run_timed([sys.executable, "-c", "import time; time.sleep(0.5)"], runs_file)
    runs = json.loads(runs_file.read_text())
    assert rc == 0 and returned == runs and [r["finished"] for r in runs] == [False, True]
    assert runs[1]["wall_time_s"] >= 0.5 and runs[0] == stopped
