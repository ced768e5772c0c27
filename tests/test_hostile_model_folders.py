"""Hostile model folders (issue 18): what the report lists is exactly what was loaded, and nothing
else in the folder (a redirect in a config, an adapter, an extra chat template, a link out of the
folder, a forged header, a template that never ends) gets in or kills the audit.

Each test builds its hostile input in ``tmp_path`` and asserts something a regression would break:
a marker file a pickle would create, a host file that must not be read, an exit code, one line."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import struct
import time
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

import trustslm
from trustslm.core.errors import (
    BadInputError,
    ModelFormatError,
    ProbeSkipped,
    ScorerUnavailableError,
    UnsafeModelError,
)
from trustslm.models import validate
from trustslm.models.chat_guard import ChatTemplateError
from trustslm.models.resolve import load_model
from trustslm.models.staging import stage_layout
from trustslm.models.validate import inspect_model_path

QUICK = ["--probes", "fairness.stereotype_pairs", "--limit", "2", "--no-progress"]


class _Payload:
    """Unpickling this creates a marker file: proof that a pickle was (not) loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _copy(src: Path, tmp_path: Path, name: str = "model") -> Path:
    return Path(shutil.copytree(src, tmp_path / name))


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _safetensors(path: Path, header: object, body: bytes = b"\0" * 16, raw_header: bytes | None = None) -> None:
    raw = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def _gguf(path: Path, kv: bytes, n_kv: int = 1, n_tensors: int = 0) -> None:
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kv)


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


# -- redirects in configs, adapters, files outside the checked set ------------------------------------------------
def test_transformers_weights_naming_a_pickle_is_refused_and_not_unpickled(tmp_path, tiny_gpt2):
    """transformers 5 unpickles ``adapter_model.bin`` when ``transformers_weights`` names it, even
    with ``use_safetensors=True``; the key is refused, with or without --allow-pickle."""
    model = _copy(tiny_gpt2, tmp_path)
    marker = tmp_path / "PWNED"
    (model / "adapter_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))
    _edit_json(model / "config.json", transformers_weights="adapter_model.bin")
    for allow_pickle in (False, True):
        with pytest.raises(UnsafeModelError, match="transformers_weights"):
            load_model(model, allow_pickle=allow_pickle)
    assert not marker.exists()


def test_transformers_weights_naming_unchecked_subfolder_weights_is_refused(tmp_path, tiny_gpt2):
    model = _copy(tiny_gpt2, tmp_path)
    (model / "sub").mkdir()
    _safetensors(model / "sub" / "model.safetensors", {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
    _edit_json(model / "config.json", transformers_weights="sub/model.safetensors")
    proc = run_cli("audit", str(model), "--out", str(tmp_path / "out"), *QUICK)
    assert_one_line_error(proc, contains="transformers_weights")
    assert not (tmp_path / "out" / "report.json").exists()


def test_the_loaders_see_only_the_checked_files(tmp_path, tiny_gpt2):
    """Whatever else a folder holds (code, pickles, a subfolder of other weights, a README) is not
    in the staging folder transformers loads from, which holds exactly the hashed files and is
    removed after loading."""
    model = _copy(tiny_gpt2, tmp_path)
    (model / "modeling_evil.py").write_text("raise SystemExit('ran')\n")
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(tmp_path / "PWNED"))))
    (model / "sub").mkdir()
    shutil.copy(model / "model.safetensors", model / "sub" / "model.safetensors")
    (model / "README.md").write_text("# card\n")
    layout = inspect_model_path(model)
    with stage_layout(layout) as where:
        staged = {p.relative_to(where).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in where.rglob("*") if p.is_file()}
        seen = sorted(staged)
        assert seen == sorted(layout.load_names())
        assert "pytorch_model.bin" not in seen and "modeling_evil.py" not in seen and "sub/model.safetensors" not in seen
    assert not where.exists()
    info = load_model(model).info()
    assert {f.path: f.sha256 for f in info.files} == staged  # the report hashes exactly the bytes loaded
    assert not (tmp_path / "PWNED").exists()


def test_an_extra_chat_template_is_hashed_and_changes_the_identity(tmp_path, tiny_llama):
    """transformers reads ``additional_chat_templates/*.jinja``: each one is listed, hashed, and
    changes the model's hash and identity (so --resume can't reuse results of the old files)."""
    model = _copy(tiny_llama, tmp_path)
    before = load_model(model).info()
    (model / "additional_chat_templates").mkdir()
    (model / "additional_chat_templates" / "tool_use.jinja").write_text("{{ messages[0]['content'] }}")
    after = load_model(model).info()
    listed = {f.path: f.sha256 for f in after.files}
    assert "additional_chat_templates/tool_use.jinja" in listed
    assert after.hash != before.hash and after.identity != before.identity
    (model / "additional_chat_templates" / "tool_use.jinja").write_text("{{ messages[-1]['content'] }}")
    changed = load_model(model).info()
    assert changed.hash != after.hash and changed.identity != after.identity


def test_a_peft_adapter_is_refused(tmp_path, tiny_gpt2):
    """transformers' peft integration loads ``adapter_config.json``, the adapter's weights (a
    pickle among them) and the base model it names; trustslm refuses the folder with one line."""
    model = _copy(tiny_gpt2, tmp_path)
    marker = tmp_path / "PWNED"
    (model / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x/y"}))
    (model / "adapter_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(UnsafeModelError, match="PEFT adapter"):
        load_model(model)
    assert not marker.exists()


def test_a_file_reference_that_is_a_path_is_refused(tmp_path, tiny_gpt2):
    """``fast_tokenizer_files`` names are joined to the folder by transformers: one naming
    ``../elsewhere/tokenizer.2.json`` would read a file outside it."""
    model = _copy(tiny_gpt2, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(model / "tokenizer.json", outside / "tokenizer.2.json")
    _edit_json(model / "tokenizer_config.json", fast_tokenizer_files=["../elsewhere/tokenizer.2.json"])
    with pytest.raises(UnsafeModelError, match="fast_tokenizer_files"):
        load_model(model)


# -- links -------------------------------------------------------------------------------------------------------
def test_a_tokenizer_file_linked_to_a_host_file_is_refused(tmp_path, tiny_gpt2):
    model = _copy(tiny_gpt2, tmp_path)
    secret = tmp_path / "host-secret.txt"
    secret.write_text("password=hunter2\n")
    (model / "vocab.txt").symlink_to(secret)
    proc = run_cli("audit", str(model), "--out", str(tmp_path / "out"), *QUICK)
    line = assert_one_line_error(proc, contains="outside the model folder")
    assert "hunter2" not in proc.stderr + proc.stdout and str(secret) not in line
    assert not (tmp_path / "out" / "report.json").exists()


def test_weights_linked_outside_the_folder_are_refused(tmp_path, tiny_gpt2):
    model = _copy(tiny_gpt2, tmp_path)
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.move(model / "model.safetensors", elsewhere)
    (model / "model.safetensors").symlink_to(elsewhere)
    with pytest.raises(UnsafeModelError, match="outside the model folder"):
        load_model(model)


def test_a_template_folder_linked_outside_is_refused(tmp_path, tiny_llama):
    model = _copy(tiny_llama, tmp_path)
    outside = tmp_path / "templates"
    outside.mkdir()
    (outside / "x.jinja").write_text("{{ 'outside' }}")
    (model / "additional_chat_templates").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeModelError, match="outside the model folder"):
        load_model(model)


def test_links_inside_the_folder_load_under_their_own_name(tmp_path, tiny_gpt2):
    model = _copy(tiny_gpt2, tmp_path)
    (model / "real").mkdir()
    shutil.move(model / "tokenizer.json", model / "real" / "tok.json")
    (model / "tokenizer.json").symlink_to(Path("real") / "tok.json")
    info, plain = load_model(model).info(), load_model(tiny_gpt2).info()
    assert {f.path: f.sha256 for f in info.files} == {f.path: f.sha256 for f in plain.files}
    assert info.hash == plain.hash  # the same bytes under the same names


def test_a_hugging_face_cache_snapshot_may_link_into_its_blobs(tmp_path, tiny_gpt2):
    """A hub download (``--allow-download``) is a snapshot folder whose files link to ``../../blobs``."""
    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot = repo / "snapshots" / ("a" * 40)
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for f in tiny_gpt2.iterdir():
        blob = repo / "blobs" / f"blob-{f.name}"
        shutil.copy(f, blob)
        (snapshot / f.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    layout = inspect_model_path(snapshot)
    assert sorted(layout.load_names()) == sorted(p.name for p in tiny_gpt2.iterdir())


def test_a_fifo_is_never_handed_to_the_loaders(tmp_path, tiny_gpt2):
    """A FIFO would block whoever opens it; it is not a file of the model."""
    model = _copy(tiny_gpt2, tmp_path)
    os.mkfifo(model / "special_tokens_map.json")
    assert "special_tokens_map.json" not in inspect_model_path(model).load_names()


# -- sentence-transformers embedder folders ---------------------------------------------------------------------
@pytest.mark.parametrize("entry, needle", [
    ({"path": "../outside", "type": "sentence_transformers.models.Pooling"}, "relative path"),
    ({"path": "/etc", "type": "sentence_transformers.models.Pooling"}, "relative path"),
    ({"path": "1_Router", "type": "sentence_transformers.models.Router"}, "does not load (sentence_transformers.models.Router)"),
])
def test_embedder_modules_naming_paths_outside_or_other_modules_are_refused(tmp_path, tiny_gpt2, entry, needle):
    from trustslm.scorers.embedder import SentenceEmbedder

    folder = _copy(tiny_gpt2, tmp_path, "emb")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "config.json").write_text("{}")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", **entry}]
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ScorerUnavailableError, match="sentence embedder: .*" + needle.replace("(", r"\(").replace(")", r"\)")):
        SentenceEmbedder(str(folder)).load()


def test_embedder_module_folder_with_a_pickle_is_refused(tmp_path, tiny_gpt2):
    from trustslm.scorers.embedder import SentenceEmbedder

    folder = _copy(tiny_gpt2, tmp_path, "emb")
    marker = tmp_path / "PWNED"
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ScorerUnavailableError, match="is a pickle"):
        SentenceEmbedder(str(folder)).load()
    assert not marker.exists()


# -- forged headers and bounds ------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry, needle", [
    ({"dtype": "F32", "shape": [4], "data_offsets": ["0", "16"]}, "malformed entry"),        # string offsets
    ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "malformed entry"),           # negative shape
    ({"dtype": "F32", "shape": [-1, -4], "data_offsets": [0, 16]}, "malformed entry"),       # negatives multiply to +
    ({"dtype": "F32", "shape": [True, 4], "data_offsets": [0, 16]}, "malformed entry"),      # a bool is not a dim
    ({"dtype": "F32", "shape": [2 ** 62, 2 ** 62], "data_offsets": [0, 16]}, "impossibly large"),
    ({"dtype": "EVIL", "shape": [4], "data_offsets": [0, 16]}, "unknown dtype"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}, "invalid offsets"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}, "wrong byte length"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16, 32]}, "malformed entry"),
    ("not an entry", "malformed entry"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "extra": 1}, "malformed entry"),
])
def test_forged_safetensors_entries_are_one_line_errors(tmp_path, tiny_gpt2, entry, needle):
    model = _copy(tiny_gpt2, tmp_path)
    _safetensors(model / "model.safetensors", {"w": entry})
    with pytest.raises(ModelFormatError, match=needle):
        inspect_model_path(model)


def test_a_string_offset_header_is_exit_2_on_the_command_line(tmp_path, tiny_gpt2):
    model = _copy(tiny_gpt2, tmp_path)
    _safetensors(model / "model.safetensors", {"w": {"dtype": "F32", "shape": [4], "data_offsets": ["0", "16"]}})
    assert_one_line_error(run_cli("audit", str(model), "--out", str(tmp_path / "out"), *QUICK),
                          contains="malformed entry")


def test_a_safetensors_header_larger_than_the_bound_is_not_read(tmp_path, tiny_gpt2):
    model = _copy(tiny_gpt2, tmp_path)
    path = model / "model.safetensors"
    path.write_bytes(struct.pack("<Q", validate.MAX_SAFETENSORS_HEADER + 1) + b"{}")
    with pytest.raises(ModelFormatError, match="allowed"):
        inspect_model_path(model)


@pytest.mark.parametrize("depth", [validate.MAX_JSON_DEPTH + 1, 100_000])
def test_a_deeply_nested_safetensors_header_is_refused(tmp_path, tiny_gpt2, depth):
    model = _copy(tiny_gpt2, tmp_path)
    raw = b'{"w": ' + b"[" * depth + b"]" * depth + b"}"
    _safetensors(model / "model.safetensors", None, raw_header=raw)
    with pytest.raises(ModelFormatError, match="bad header"):
        inspect_model_path(model)


def test_too_many_tensors_are_refused(tmp_path, tiny_gpt2, monkeypatch):
    monkeypatch.setattr(validate, "MAX_TENSORS", 3)
    model = _copy(tiny_gpt2, tmp_path)
    header = {f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]} for i in range(4)}
    _safetensors(model / "model.safetensors", header)
    with pytest.raises(ModelFormatError, match="4 tensors, more than the 3 allowed"):
        inspect_model_path(model)


def test_a_config_larger_than_the_bound_is_refused(tmp_path, tiny_gpt2):
    model = _copy(tiny_gpt2, tmp_path)
    _edit_json(model / "config.json", padding="x" * validate.MAX_CONFIG_BYTES)
    with pytest.raises(ModelFormatError, match="allowed"):
        inspect_model_path(model)


@pytest.mark.parametrize("name", ["config.json", "tokenizer_config.json", "model.safetensors.index.json"])
def test_deeply_nested_config_files_are_refused(tmp_path, tiny_gpt2, name):
    model = _copy(tiny_gpt2, tmp_path)
    (model / name).write_text('{"model_type": "gpt2", "x": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(ModelFormatError, match="nested|not valid JSON"):
        inspect_model_path(model)


def test_a_broken_tokenizer_file_is_one_line_not_a_traceback(tmp_path, tiny_gpt2):
    """tokenizer.json goes to the Rust tokenizers library, which raises a bare ``Exception``."""
    model = _copy(tiny_gpt2, tmp_path)
    (model / "tokenizer.json").write_text("[" * 10_000)
    with pytest.raises(ModelFormatError, match="could not load a causal language model") as err:
        load_model(model)
    assert "trustslm-load-" not in str(err.value)  # the staging folder is not what the user gave


@pytest.mark.parametrize("kv, needle", [
    (_gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2 ** 40), "elements in a metadata array"),
    (_gguf_string("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 2 ** 40), "elements in a metadata array"),
    (_gguf_string("general.name") + struct.pack("<IQ", 8, 2 ** 50), "bytes in a metadata string"),
    (struct.pack("<Q", 2 ** 60), "bytes in a metadata key"),
    (_gguf_string("x") + struct.pack("<IIQ", 9, 9, 1) + struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1),
     "nested more than"),
    (_gguf_string("x") + struct.pack("<I", 77), "unknown metadata type"),
])
def test_gguf_metadata_beyond_the_bounds_is_refused_quickly(tmp_path, kv, needle):
    path = tmp_path / "evil.gguf"
    _gguf(path, kv)
    start = time.perf_counter()
    with pytest.raises(ModelFormatError, match=needle):
        inspect_model_path(path)
    assert time.perf_counter() - start < 5


def test_gguf_with_too_many_entries_is_exit_2_on_the_command_line(tmp_path):
    path = tmp_path / "evil.gguf"
    _gguf(path, b"", n_kv=2 ** 62)
    assert_one_line_error(run_cli("audit", str(path), "--out", str(tmp_path / "out"), *QUICK),
                          contains="metadata entries")


# -- hostile chat templates ---------------------------------------------------------------------------------------
HOSTILE_TEMPLATES = {
    "include": "{% include 'secrets.html' %}",
    "raise": "{{ raise_exception('no chat for you') }}",
    "endless": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "recursion": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_TEMPLATES))
def test_a_hostile_chat_template_costs_only_the_probes_that_need_it(tmp_path, tiny_llama, kind):
    model = _copy(tiny_llama, tmp_path)
    (model / "chat_template.jinja").write_text(HOSTILE_TEMPLATES[kind])
    start = time.perf_counter()
    with pytest.warns(UserWarning, match="chat template"):
        report = trustslm.audit(str(model), probes=["fairness.stereotype_pairs", "toxicity.instructed"], limit=1,
                                progress=False, out=tmp_path / "out",
                                options={"toxicity.instructed": {"k": 1, "max_new_tokens": 2}})
    assert time.perf_counter() - start < 120
    assert report.result("fairness.stereotype_pairs").status == "ok"
    instructed = report.result("toxicity.instructed")
    assert instructed.status == "skipped" and "chat_template" in instructed.reason
    assert not report.model.chat_template and "chat_template" not in report.model.capabilities
    assert "chat_template.jinja" in {f.path for f in report.model.files}  # still listed and hashed
    assert (tmp_path / "out" / "report.json").is_file()


def test_an_endless_template_on_the_command_line_still_writes_the_report(tmp_path, tiny_llama):
    model = _copy(tiny_llama, tmp_path)
    (model / "chat_template.jinja").write_text(HOSTILE_TEMPLATES["endless"])
    proc = run_cli("audit", str(model), "--out", str(tmp_path / "out"), *QUICK)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["results"][0]["status"] == "ok"


def test_a_template_failing_on_some_messages_fails_those_requests_in_one_line(tmp_path, tiny_llama):
    """A template that passes the load-time check but loops on some content: that request's
    rendering stops at the bound with a ChatTemplateError (a one-line runtime error)."""
    model = _copy(tiny_llama, tmp_path)
    template = ("{% if 'boom' in messages[-1]['content'] %}{% for a in range(100000) %}{% for b in range(100000) %}"
                "{% endfor %}{% endfor %}{% endif %}{{ messages[-1]['content'] }}")
    (model / "chat_template.jinja").write_text(template)
    adapter = load_model(model)
    assert adapter.has_chat_template and adapter._chat_text("hello") == "hello"
    start = time.perf_counter()
    with pytest.raises(ChatTemplateError, match="ran past its bound"):
        adapter._chat_text("boom")
    assert time.perf_counter() - start < 30
    # the probe that asked can't run on this model (a skip, where the engine can tell which probe
    # asked); it is not bad input of the user's
    assert isinstance(ChatTemplateError("x"), ProbeSkipped) and not isinstance(ChatTemplateError("x"), BadInputError)


def test_a_template_failing_on_one_probes_messages_skips_that_probe_only(tmp_path, tiny_llama):
    """The engine renders each probe's prompts while planning, so a template that fails only on
    some content skips the probe whose messages hit it; the other probe keeps its results."""
    model = _copy(tiny_llama, tmp_path)
    (model / "chat_template.jinja").write_text(
        "{% if 'boom' in messages[-1]['content'] %}{{ raise_exception('no') }}{% endif %}"
        "{{ messages[-1]['content'] }}")
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"id": "q1", "question": "boom?", "answers": ["x"]}) + "\n")
    report = trustslm.audit(str(model), probes=["fairness.stereotype_pairs", "truthfulness.closed_book_qa"],
                            options={"truthfulness.closed_book_qa": {"data": str(data)}}, limit=2,
                            progress=False, use_cache=False, bootstrap_resamples=50)
    status = {r.probe_id: r.status for r in report.results}
    assert status == {"fairness.stereotype_pairs": "ok", "truthfulness.closed_book_qa": "skipped"}
    reason = next(r for r in report.results if r.probe_id == "truthfulness.closed_book_qa").reason
    assert "template" in reason and "\n" not in reason
