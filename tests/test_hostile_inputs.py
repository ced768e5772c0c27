"""Hostile files outside model folders (data, configs, policies, mock scripts, reports) and bad output
paths: every one is a one-line BadInputError (exit code 2 from the CLI) found before any model loads,
nothing in them runs, and what is read stays within the bounds of :mod:`trustslm.core.limits`."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

import trustslm
from trustslm.core.errors import BadInputError, DataError, PolicyError
from trustslm.core.limits import (
    MAX_DATA_FILE_BYTES,
    MAX_NESTING_DEPTH,
    MAX_REPORT_FILE_BYTES,
    MAX_YAML_FILE_BYTES,
    MAX_YAML_NODES,
)

QUICK = ["--probes", "fairness.stereotype_pairs", "--limit", "2", "--no-progress"]


def _raises_one_line(error: type[BadInputError], call, contains: str | None = None) -> str:
    """``call()`` raises ``error`` (a BadInputError) with a one-line message holding ``contains``."""
    assert issubclass(error, BadInputError)
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message and "\r" not in message, message
    if contains:
        assert contains in message, message
    return message


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def _laughs(levels: int = 9, width: int = 9) -> str:
    """The YAML "billion laughs": ``width ** levels`` nodes from a few hundred bytes."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile-report") / "report"
    trustslm.audit("mock", probes=["fairness.stereotype_pairs", "toxicity.continuation"], limit=3, progress=False,
                   out=out, use_cache=False)
    return out


def _report_copy(report_dir: Path, tmp_path: Path, edit) -> Path:
    """A copy of the report folder whose report.json went through ``edit(data)``."""
    folder = tmp_path / "report"
    shutil.copytree(report_dir, folder)
    data = json.loads((folder / "report.json").read_text())
    edit(data)
    (folder / "report.json").write_text(json.dumps(data))
    return folder


# -- deep nesting ------------------------------------------------------------------------------------
def test_deeply_nested_jsonl_data_is_one_line_data_error(tmp_path):
    from trustslm.data.files import read_jsonl

    data = tmp_path / "prompts.jsonl"
    data.write_text('{"id": "a", "prompt": "hi"}\n' + '{"prompt": ' * 5000 + "1" + "}" * 5000 + "\n")
    _raises_one_line(DataError, lambda: read_jsonl(data), contains="line 2: nested deeper than")


def test_nesting_up_to_the_bound_is_read(tmp_path):
    from trustslm.data.files import read_jsonl

    data = tmp_path / "ok.jsonl"
    data.write_text('{"a": ' + _deep_json(MAX_NESTING_DEPTH - 1) + "}\n")
    assert len(read_jsonl(data)) == 1
    data.write_text('{"a": ' + _deep_json(MAX_NESTING_DEPTH) + "}\n")
    _raises_one_line(DataError, lambda: read_jsonl(data), contains=f"nested deeper than {MAX_NESTING_DEPTH}")


@pytest.mark.parametrize("what", ["policy", "config", "mock script"])
def test_deeply_nested_yaml_is_one_line_error(tmp_path, what):
    from trustslm.engine.options import load_config
    from trustslm.gate.policy import load_policy
    from trustslm.models.mock import ScriptedModel

    path = tmp_path / "file.yaml"
    path.write_text("overall: " + _deep_json(3000) + "\n")
    load = {"policy": load_policy, "config": load_config, "mock script": ScriptedModel}[what]
    error = PolicyError if what == "policy" else BadInputError
    _raises_one_line(error, lambda: load(path), contains="nested deeper than")


def test_deeply_nested_report_is_one_line_error(tmp_path, report_dir):
    from trustslm.report.files import load_report_dir

    folder = _report_copy(report_dir, tmp_path, lambda d: None)
    text = (folder / "report.json").read_text()
    (folder / "report.json").write_text(text.replace('"options": {', '"options": {"x": ' + _deep_json(5000) + ", ", 1))
    _raises_one_line(BadInputError, lambda: load_report_dir(folder), contains="nested deeper than")


def test_deeply_nested_units_line_is_one_line_error(tmp_path, report_dir):
    from trustslm.report.files import load_report_dir

    folder = _report_copy(report_dir, tmp_path, lambda d: None)
    with open(folder / "units.jsonl", "a") as f:
        f.write(_deep_json(5000) + "\n")
    _raises_one_line(BadInputError, lambda: load_report_dir(folder), contains="nested deeper than")


# -- YAML aliases ------------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["policy", "config", "mock script"])
def test_yaml_billion_laughs_is_refused_quickly(tmp_path, what):
    from trustslm.engine.options import load_config
    from trustslm.gate.policy import load_policy
    from trustslm.models.mock import ScriptedModel

    path = tmp_path / "laughs.yaml"
    path.write_text(_laughs())  # 9 ** 9 = 387 million nodes once expanded
    assert 9**9 > MAX_YAML_NODES
    load = {"policy": load_policy, "config": load_config, "mock script": ScriptedModel}[what]
    error = PolicyError if what == "policy" else BadInputError
    started = time.monotonic()
    _raises_one_line(error, lambda: load(path), contains="aliases are expanded")
    assert time.monotonic() - started < 10


def test_yaml_recursive_alias_is_refused(tmp_path):
    from trustslm.engine.options import load_config

    path = tmp_path / "config.yaml"
    path.write_text("toxicity.continuation: &a {k: *a}\n")
    _raises_one_line(BadInputError, lambda: load_config(path), contains="recursive")


def test_yaml_aliases_within_the_bound_still_work(tmp_path):
    from trustslm.engine.options import load_config

    path = tmp_path / "config.yaml"
    path.write_text("base: &b {k: 2}\ntoxicity.continuation: *b\n")
    options, _ = load_config(path)
    assert options["toxicity.continuation"] == {"k": 2}


def test_yaml_python_tags_never_run(tmp_path):
    from trustslm.engine.options import load_config

    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "config.yaml"
    path.write_text(f"toxicity.continuation: !!python/object/apply:pathlib.Path.touch [{str(marker)!r}]\n")
    _raises_one_line(BadInputError, lambda: load_config(path), contains="not readable YAML")
    assert not marker.exists()


def test_yaml_values_json_cannot_hold_are_refused(tmp_path):
    """A date stays text; a tag that builds bytes or a set (which the cache key can't hash) is refused."""
    from trustslm.engine.options import load_config

    path = tmp_path / "config.yaml"
    path.write_text("toxicity.continuation: {data: 2024-01-31}\n")
    assert load_config(path)[0]["toxicity.continuation"]["data"] == "2024-01-31"
    path.write_text("toxicity.continuation: {data: !!binary aGk=}\n")
    _raises_one_line(BadInputError, lambda: load_config(path), contains="bytes")


# -- lone surrogates ---------------------------------------------------------------------------------
def test_lone_surrogate_in_data_fails_before_the_model_and_the_cache(tmp_path, _isolated_cache):
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"id": "a", "prompt": "fine"}\n{"id": "b", "prompt": "bad \\ud800 text"}\n')
    _raises_one_line(DataError, lambda: trustslm.audit(
        "mock", probes=["toxicity.continuation"], options={"toxicity.continuation": {"data": str(data)}},
        progress=False, out=tmp_path / "out"), contains="lone surrogate")
    assert not (tmp_path / "out").exists()
    assert not list(_isolated_cache.iterdir())  # the cache was never opened


def test_lone_surrogate_in_an_option_is_one_line_error(tmp_path):
    _raises_one_line(BadInputError, lambda: trustslm.audit(
        "mock", probes=["toxicity.continuation"], options={"toxicity.continuation": {"data": "x\udcff.jsonl"}},
        progress=False), contains="lone surrogate")


def test_lone_surrogate_in_a_report_is_one_line_error(tmp_path, report_dir):
    from trustslm.core.types import TrustReport

    folder = _report_copy(report_dir, tmp_path, lambda d: d["model"].update(name="\ud800"))
    _raises_one_line(BadInputError, lambda: TrustReport.load(folder / "report.json"), contains="lone surrogate")


def test_argument_that_is_not_utf8_is_exit_2(tmp_path):
    proc = run_cli("audit", "mock", "--out", str(tmp_path / os.fsdecode(b"out-\xff")), *QUICK)
    assert_one_line_error(proc, contains="not UTF-8")
    assert not any(tmp_path.iterdir())


# -- unreadable files --------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["data", "policy", "config", "mock script", "report"])
def test_a_folder_where_a_file_is_expected(tmp_path, what):
    from trustslm.core.types import TrustReport
    from trustslm.data.files import read_jsonl
    from trustslm.engine.options import load_config
    from trustslm.gate.policy import load_policy
    from trustslm.models.mock import ScriptedModel

    folder = tmp_path / "a-folder.yaml"
    folder.mkdir()
    load = {"data": read_jsonl, "policy": load_policy, "config": load_config, "mock script": ScriptedModel,
            "report": TrustReport.load}[what]
    _raises_one_line(BadInputError, lambda: load(folder), contains="is a folder, not a file")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.parametrize("what", ["data", "policy", "report"])
def test_a_file_without_read_permission(tmp_path, what):
    from trustslm.core.types import TrustReport
    from trustslm.data.files import read_text
    from trustslm.gate.policy import load_policy

    path = tmp_path / "locked"
    path.write_text("overall: {min: 1}\n")
    path.chmod(0)
    load = {"data": read_text, "policy": load_policy, "report": TrustReport.load}[what]
    _raises_one_line(BadInputError, lambda: load(path), contains="not readable")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_fifo_as_data_is_refused_without_waiting(tmp_path):
    from trustslm.data.files import read_text

    fifo = tmp_path / "data.jsonl"
    os.mkfifo(fifo)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_raises_one_line(DataError, lambda: read_text(fifo))),
                              daemon=True)
    worker.start()
    worker.join(10)
    assert result and "not a regular file" in result[0]


# -- size bounds -------------------------------------------------------------------------------------
def _sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (and a reader that read it whole would be slow)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


@pytest.mark.parametrize("what, limit", [("data", MAX_DATA_FILE_BYTES), ("policy", MAX_YAML_FILE_BYTES),
                                         ("config", MAX_YAML_FILE_BYTES), ("report", MAX_REPORT_FILE_BYTES)])
def test_files_over_their_bound_are_refused_unread(tmp_path, what, limit):
    from trustslm.core.types import TrustReport
    from trustslm.data.files import read_text
    from trustslm.engine.options import load_config
    from trustslm.gate.policy import load_policy

    path = _sparse(tmp_path / "big", limit + 1)
    load = {"data": read_text, "policy": load_policy, "config": load_config, "report": TrustReport.load}[what]
    started = time.monotonic()
    _raises_one_line(BadInputError, lambda: load(path), contains="larger than")
    assert time.monotonic() - started < 2


# -- reports the renderers can't show ----------------------------------------------------------------
@pytest.mark.parametrize("edit, needle", [
    (lambda d: d["dimensions"].pop("fairness"), "dimension 'fairness' is missing"),
    (lambda d: d["dimensions"]["fairness"].pop("ci_low"), "lacks its score or interval"),
    (lambda d: d["dimensions"]["privacy"].update(score=50.0), "not measured but has a score"),
    (lambda d: d["overall"].update(ci_high=None), "overall score lacks its interval"),
    (lambda d: d["dimensions"].update(bogus=d["dimensions"]["privacy"]), "unknown dimension"),
], ids=["missing-dimension", "missing-interval", "score-not-measured", "overall-interval", "unknown-dimension"])
def test_inconsistent_report_is_refused_on_load(tmp_path, report_dir, edit, needle):
    from trustslm.core.types import TrustReport

    folder = _report_copy(report_dir, tmp_path, edit)
    _raises_one_line(BadInputError, lambda: TrustReport.load(folder / "report.json"), contains=needle)


def test_report_render_of_a_report_missing_a_dimension_is_exit_2(tmp_path, report_dir):
    folder = _report_copy(report_dir, tmp_path, lambda d: d["dimensions"].pop("toxicity"))
    proc = run_cli("report", "render", str(folder), "--format", "html")
    assert_one_line_error(proc, contains="dimension 'toxicity' is missing")
    assert proc.stdout == ""


def test_malformed_unit_table_is_one_line_error(tmp_path, report_dir):
    from trustslm.report.files import load_report_dir

    folder = _report_copy(report_dir, tmp_path, lambda d: None)
    (folder / "units.jsonl").write_text(json.dumps({"probe_id": "p", "units": {"columns": ["a", "b"],
                                                                                "data": [[1]]}}) + "\n")
    _raises_one_line(BadInputError, lambda: load_report_dir(folder), contains="one value per column")


# -- mock scripts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("script, needle", [
    ({"capabilities": "generate"}, "capabilities must be a list"),
    ({"capabilities": [["generate"]]}, "capabilities must be a list"),
    ({"generate": {"match": "x"}}, "generate must be a list"),
    ({"generate": ["just a string"]}, "generate rule 1 must be a mapping"),
    ({"generate": [{"match": "x", "reponse": "typo"}]}, "generate rule 1 must be a mapping"),
    ({"generate": [{"match": "x", "responses": []}]}, "non-empty list"),
    ({"generate": [{"match": ["x"], "response": "y"}]}, "match, regex and response must be strings"),
    ({"generate": [{"regex": "(unclosed", "response": "y"}]}, "bad regex"),
    ({"generate": [{"regex": "x", "match": "x", "response": "y"}]}, "a regex rule has one response, and no match"),
    ({"loglikelihood": ["a", "b"]}, "loglikelihood must map"),
    ({"loglikelihood": {"a": "very likely"}}, "must be a number"),
    ({"name": {"nested": 1}}, "name must be a string"),
    ({"default_response": None}, "default_response must be a string"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_invalid_mock_script_is_refused_when_loaded(tmp_path, script, needle):
    import yaml

    from trustslm.models.mock import ScriptedModel

    _raises_one_line(BadInputError, lambda: ScriptedModel(script), contains=needle)
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    _raises_one_line(BadInputError, lambda: ScriptedModel(path), contains=needle)


def test_invalid_mock_script_in_the_cli_is_exit_2_before_the_audit(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text("generate:\n  - match: x\n    responses: []\n")
    proc = run_cli("audit", f"mock:{script}", "--out", str(tmp_path / "out"), *QUICK)
    assert_one_line_error(proc, contains="non-empty list")
    assert not (tmp_path / "out").exists()


# -- outputs -----------------------------------------------------------------------------------------
def test_out_naming_a_file_fails_before_the_model_is_looked_at(tmp_path):
    """The model named does not exist: the error is about --out, so --out was checked first."""
    out = tmp_path / "report.txt"
    out.write_text("keep me")
    proc = run_cli("audit", str(tmp_path / "no-such-model"), "--out", str(out), *QUICK)
    line = assert_one_line_error(proc, contains=str(out))
    assert "does not exist" not in line and out.read_text() == "keep me"


@pytest.mark.parametrize("flag", ["--out", "--junit", "--sarif"])
def test_output_paths_that_cannot_be_written_fail_first(tmp_path, monkeypatch, flag):
    """In-process CLI: a file where a folder is needed (or a folder where a file is) is refused
    before the audit runs (which would take minutes on a real model)."""
    from trustslm.cli import main as cli

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    ran = []
    monkeypatch.setattr(trustslm.api, "audit", lambda *a, **k: ran.append(1))
    target = str(blocker / "sub") if flag == "--out" else str(folder)
    args = ["audit", "mock", "--out", str(tmp_path / "out"), flag, target, *QUICK]
    code = cli.main(args)
    assert code == 2 and not ran


def test_error_lines_escape_line_breaks_and_escape_sequences(tmp_path, capsys):
    from trustslm.cli import main as cli

    hostile = tmp_path / "re\npo\x1b[2Jrt\u202e"  # a line break, a terminal escape, a bidi override
    code = cli.main(["gate", str(hostile), "--policy", str(hostile / "policy.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "\x1b" not in err and "\u202e" not in err, err
    assert err.startswith("trustslm: error:") and "re\\npo\\x1b[2Jrt\\u202e" in err


def test_policy_sha256_is_of_the_bytes_parsed(tmp_path):
    import hashlib

    from trustslm.gate.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_bytes(b"overall: {min: 10}\n")
    _, digest = load_policy(path)
    assert digest == hashlib.sha256(b"overall: {min: 10}\n").hexdigest()


def test_policy_metric_name_with_a_line_break_is_refused(tmp_path):
    from trustslm.gate.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text('metrics:\n  "fairness.stereotype_pairs.pct_stereotype[x=\\n]": {max: 1}\n')
    _raises_one_line(PolicyError, lambda: load_policy(path), contains="must look like")


def test_csv_header_over_the_field_limit_is_one_line_error(tmp_path):
    from trustslm.data.files import read_csv

    path = tmp_path / "pairs.csv"
    path.write_text("x" * 200_000 + ",sent_more\n1,2\n")
    _raises_one_line(DataError, lambda: read_csv(path, required=("sent_more",)), contains="malformed CSV")


def test_deeply_nested_json_document_data_is_one_line_error(tmp_path):
    from trustslm.data.bias import load_stereoset

    path = tmp_path / "stereoset.json"
    path.write_text('{"data": ' + _deep_json(5000) + "}")
    _raises_one_line(DataError, lambda: load_stereoset(path, "stereoset_json"))
