"""Plugins through entry points: the built-ins and a fake third-party package."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
from conftest import run_cli

import trustslm
from trustslm.core.errors import BadInputError, UnknownNameError
from trustslm.core.registry import Registry

PLUGIN_DIR = Path(__file__).parent / "fake_plugin"


@pytest.fixture
def plugin_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    return PLUGIN_DIR


def test_builtins_come_through_entry_points():
    groups = {ep.name for ep in entry_points(group="trustslm.probe_kinds")}
    assert {"likelihood_pairs", "continuation_toxicity"} <= groups
    specs = Registry().specs
    assert {"fairness.stereotype_pairs", "toxicity.continuation"} <= set(specs)
    assert specs["fairness.stereotype_pairs"].provider == "builtin"


def test_unknown_probe_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean toxicity.continuation"):
        Registry().select(["toxicity.continuaton"])


def test_globs_select_and_an_empty_glob_is_an_error():
    # every fairness probe: ids and folders now name their dimension
    assert [s.id for s in Registry().select(["fairness.*"])] == [
        "fairness.bbq", "fairness.counterfactual_generation", "fairness.stereoset", "fairness.stereotype_pairs",
        "fairness.winobias"]
    assert len(Registry().select(["*"])) >= 2
    with pytest.raises(UnknownNameError):
        Registry().select(["nothing.*"])


def test_fake_third_party_plugin_is_found_and_runs(plugin_on_path):
    registry = Registry()
    assert registry.specs["robustness.reply_length"].provider == "fake"
    report = trustslm.audit("mock", probes=["robustness.reply_length"], progress=False, registry=registry)
    result = report.result("robustness.reply_length")
    assert result.status == "ok"
    assert result.card.summary.startswith("A test fixture")
    assert report.dimensions["robustness"].status == "measured"


def test_fake_plugin_in_the_cli(tmp_path):
    env = {"PYTHONPATH": str(PLUGIN_DIR)}
    listed = run_cli("probes", "list", "--format", "json", env=env)
    assert "robustness.reply_length" in {r["id"] for r in json.loads(listed.stdout)}
    proc = run_cli("audit", "mock", "--probes", "robustness.reply_length", "--out", str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "report.json").read_text())["results"][0]["status"] == "ok"


def _eps(extra: dict[str, list[EntryPoint]]) -> dict[str, list[EntryPoint]]:
    groups = ("trustslm.probes", "trustslm.probe_kinds", "trustslm.scorers", "trustslm.models")
    eps = {g: list(entry_points(group=g)) for g in groups}
    for g, items in extra.items():
        eps[g] = eps[g] + items
    return eps


def test_duplicate_probe_ids_are_refused(tmp_path):
    copy = tmp_path / "specs" / "dup"
    copy.mkdir(parents=True)
    src = Path(trustslm.__file__).parent.parent / "probes" / "fairness" / "stereotype_pairs" / "spec.yaml"
    (copy / "spec.yaml").write_text(src.read_text())
    import sys

    sys.modules.setdefault("dup_specs_module", type(sys)("dup_specs_module"))
    sys.modules["dup_specs_module"].SPECS = tmp_path / "specs"  # type: ignore[attr-defined]
    registry = Registry(_eps({"trustslm.probes": [
        EntryPoint(name="dup", value="dup_specs_module:SPECS", group="trustslm.probes")]}))
    with pytest.raises(BadInputError, match="defined twice"):
        _ = registry.specs


def test_a_spec_that_names_an_unknown_kind(tmp_path):
    spec_dir = tmp_path / "specs" / "x"
    spec_dir.mkdir(parents=True)
    (spec_dir / "spec.yaml").write_text(
        "id: privacy.y\nkind: no_such_kind\ndimension: privacy\nversion: 1\nsummary: s\nscoring: {}\n")
    import sys

    sys.modules.setdefault("bad_kind_module", type(sys)("bad_kind_module"))
    sys.modules["bad_kind_module"].SPECS = tmp_path / "specs"  # type: ignore[attr-defined]
    registry = Registry(_eps({"trustslm.probes": [
        EntryPoint(name="bad", value="bad_kind_module:SPECS", group="trustslm.probes")]}))
    with pytest.raises(UnknownNameError, match="unknown probe kind 'no_such_kind'"):
        trustslm.audit("mock", probes=["privacy.y"], registry=registry, progress=False)


def test_spec_files_are_validated(tmp_path):
    from trustslm.core.specs import load_spec_file

    bad = tmp_path / "spec.yaml"
    bad.write_text("id: Not-An-Id\nkind: k\ndimension: privacy\nversion: 1\nsummary: s\nscoring: {}\n")
    with pytest.raises(BadInputError, match="id"):
        load_spec_file(bad, provider="t")
    bad.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(BadInputError, match="not readable YAML"):
        load_spec_file(bad, provider="t")
