"""Report renderers by name (entry-point group ``trustslm.renderers``): the report files and
``trustslm report render --format NAME`` find them there, a third-party plugin's too."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

import trustslm
from trustslm.core.registry import Registry
from trustslm.report.files import write_outputs

PLUGIN_DIR = Path(__file__).parent / "fake_plugin"
BUILTIN = ["html", "html-fragment", "junit", "md", "sarif"]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    trustslm.audit("mock", probes=["fairness.stereotype_pairs"], limit=3, out=out, progress=False,
                   cache_dir=tmp_path_factory.mktemp("cache"))
    return out


def test_a_plugins_renderer_renders_through_report_render(report_dir, tmp_path):
    env = {"PYTHONPATH": str(PLUGIN_DIR)}
    proc = run_cli("report", "render", str(report_dir), "--format", "probe-csv", env=env)
    assert proc.returncode == 0, proc.stderr
    score = trustslm.load_report(report_dir).result("fairness.stereotype_pairs").score.score
    assert proc.stdout == f"probe_id,status,score\nfairness.stereotype_pairs,ok,{score}\n"
    # without the plugin the name is unknown: one line naming the formats there are
    unknown = assert_one_line_error(run_cli("report", "render", str(report_dir), "--format", "probe-csv"), 2)
    assert f"unknown report format 'probe-csv'; known: {', '.join(BUILTIN)}" in unknown


def test_every_builtin_renderer_renders_through_report_render(report_dir, tmp_path, capsys):
    from trustslm.cli.main import main

    assert Registry().renderer_names() == BUILTIN
    for name in BUILTIN:
        assert main(["report", "render", str(report_dir), "--format", name, "-o", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_text() == Registry().renderer(name)(trustslm.load_report(report_dir))
    assert (tmp_path / "md").read_text() == (report_dir / "report.md").read_text()


def test_the_report_files_are_rendered_by_the_registered_renderers(report_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    registry = Registry({"trustslm.renderers": [
        EntryPoint(name="md", value="fake_trustslm_plugin.renderer:render_probe_csv", group="trustslm.renderers"),
        EntryPoint(name="html", value="trustslm.report.html:render_html", group="trustslm.renderers")]})
    report = trustslm.load_report(report_dir)
    write_outputs(report, tmp_path, registry=registry)
    assert (tmp_path / "report.md").read_text().startswith("probe_id,status,score\n")
    assert (tmp_path / "report.html").read_text() == (report_dir / "report.html").read_text()
