"""Untrusted model folders: every bad input is a one-line error with exit code 2, and nothing in
the folder is ever executed."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

QUICK = ["--probes", "fairness.stereotype_pairs", "--limit", "2", "--no-progress"]


class _Payload:
    """Unpickling this creates a marker file: proof that a pickle was (not) loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _audit(model: Path | str, tmp_path: Path):
    return run_cli("audit", str(model), "--out", str(tmp_path / "out"), *QUICK)


def test_path_that_does_not_exist(tmp_path):
    proc = _audit(tmp_path / "nope", tmp_path)
    assert_one_line_error(proc, contains="does not exist")


def test_hub_id_without_allow_download(tmp_path):
    proc = _audit("some-org/some-model", tmp_path)
    assert_one_line_error(proc, contains="--allow-download")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(_audit(tmp_path / "empty", tmp_path), contains="empty")


def test_pickle_only_folder_is_refused_and_not_unpickled(tmp_path):
    model = tmp_path / "pickled"
    model.mkdir()
    marker = tmp_path / "PWNED"
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    line = assert_one_line_error(_audit(model, tmp_path), contains="pickle")
    assert "--allow-pickle" in line
    assert not marker.exists()


def test_truncated_safetensors(tmp_path, tiny_gpt2):
    model = tmp_path / "truncated"
    shutil.copytree(tiny_gpt2, model)
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert_one_line_error(_audit(model, tmp_path), contains="truncated")


def test_garbage_safetensors_header(tmp_path, tiny_gpt2):
    model = tmp_path / "garbage"
    shutil.copytree(tiny_gpt2, model)
    (model / "model.safetensors").write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 64)
    assert_one_line_error(_audit(model, tmp_path), contains="safetensors")


def test_config_with_auto_map_is_refused_and_its_code_not_run(tmp_path, tiny_gpt2):
    model = tmp_path / "remote-code"
    shutil.copytree(tiny_gpt2, model)
    marker = tmp_path / "CODE_RAN"
    (model / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    cfg = json.loads((model / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (model / "config.json").write_text(json.dumps(cfg))
    assert_one_line_error(_audit(model, tmp_path), contains="auto_map")
    assert not marker.exists()


def test_tokenizer_config_with_auto_map_is_refused(tmp_path, tiny_gpt2):
    model = tmp_path / "remote-tokenizer"
    shutil.copytree(tiny_gpt2, model)
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    cfg["auto_map"] = {"AutoTokenizer": ["tok.EvilTokenizer", None]}
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert_one_line_error(_audit(model, tmp_path), contains="auto_map")


def test_file_named_gguf_that_is_not_gguf(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"this is not a gguf file at all" * 10)
    assert_one_line_error(_audit(fake, tmp_path), contains="not a GGUF file")
    folder = tmp_path / "gguf-folder"
    folder.mkdir()
    shutil.copy(fake, folder / "model.gguf")
    assert_one_line_error(_audit(folder, tmp_path), contains="not a GGUF file")


def test_gguf_magic_but_corrupt_body(tmp_path):
    fake = tmp_path / "corrupt.gguf"
    fake.write_bytes(b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", 10**12, 10**12) + b"\0" * 32)
    assert_one_line_error(_audit(fake, tmp_path), contains="GGUF")


def test_config_that_is_not_json(tmp_path, tiny_gpt2):
    model = tmp_path / "badconfig"
    shutil.copytree(tiny_gpt2, model)
    (model / "config.json").write_text("{not json")
    assert_one_line_error(_audit(model, tmp_path), contains="config.json")


def test_sharded_index_naming_a_missing_shard(tmp_path, tiny_gpt2):
    model = tmp_path / "sharded"
    shutil.copytree(tiny_gpt2, model)
    index = {"metadata": {}, "weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    assert_one_line_error(_audit(model, tmp_path), contains="missing shard")


def test_pickle_weights_load_only_with_allow_pickle(tmp_path, tiny_gpt2):
    """With --allow-pickle a torch .bin checkpoint (weights only) does load."""
    import torch
    from safetensors.torch import load_file

    model = tmp_path / "binmodel"
    shutil.copytree(tiny_gpt2, model)
    state = load_file(str(model / "model.safetensors"))
    (model / "model.safetensors").unlink()
    torch.save(state, model / "pytorch_model.bin")
    assert_one_line_error(_audit(model, tmp_path), contains="pickle")
    proc = run_cli("audit", str(model), "--out", str(tmp_path / "out2"), "--allow-pickle", *QUICK)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out2" / "report.json").read_text())
    assert [f["path"] for f in report["model"]["files"] if f["path"].endswith(".bin")] == ["pytorch_model.bin"]


@pytest.mark.parametrize("policy_text, needle", [
    ("overall: {min: 50}\nthresholds: {}\n", "unknown key 'thresholds'"),
    ("dimensions: {fairnes: {min: 50}}\n", "unknown dimension 'fairnes'"),
    ("overall: {minimum: 50}\n", "unknown key 'overall.minimum'"),
    ("[1, 2]\n", "must be a mapping"),
])
def test_bad_policy_files(tmp_path, policy_text, needle):
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    proc = run_cli("audit", "mock", "--out", str(tmp_path / "o"), "--policy", str(policy), *QUICK)
    assert_one_line_error(proc, contains=needle)


def test_unknown_probe_suggests_close_names(tmp_path):
    proc = run_cli("audit", "mock", "--out", str(tmp_path / "o"), "--probes", "fairness.stereotype_pair")
    assert_one_line_error(proc, contains="did you mean fairness.stereotype_pairs")


def test_unknown_option_names_the_known_ones(tmp_path):
    proc = run_cli("audit", "mock", "--out", str(tmp_path / "o"), "--probes", "fairness.stereotype_pairs",
                   "--set", "fairness.stereotype_pairs.dataa=x.csv")
    assert_one_line_error(proc, contains="unknown option 'dataa'")


def test_bad_usage_is_one_line_exit_2():
    proc = run_cli("audit")
    assert_one_line_error(proc, contains="required")


def test_missing_data_file(tmp_path):
    proc = run_cli("audit", "mock", "--out", str(tmp_path / "o"), "--probes", "fairness.stereotype_pairs",
                   "--set", f"fairness.stereotype_pairs.data={tmp_path / 'missing.csv'}")
    assert_one_line_error(proc, contains="data file not found")


def test_csv_missing_a_column(tmp_path):
    bad = tmp_path / "pairs.csv"
    bad.write_text("sent_more,bias_type\nA man.,gender\n")
    proc = run_cli("audit", "mock", "--out", str(tmp_path / "o"), "--probes", "fairness.stereotype_pairs",
                   "--set", f"fairness.stereotype_pairs.data={bad}")
    assert_one_line_error(proc, contains="missing column(s) sent_less")
