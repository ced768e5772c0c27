"""bench/real_models.py without downloads: the listing, refusals of wrong files, atomic assembly."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "real_models.py"


@pytest.fixture
def rm():
    spec = importlib.util.spec_from_file_location("real_models_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120)


def test_list_shows_the_four_pinned_models(rm):
    done = run("--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 5  # header + 4 models
    for name, model in rm.MODELS.items():
        assert name in done.stdout and model.sha256 in done.stdout and str(model.size) in done.stdout
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
        assert model.licence and model.provenance
    assert set(rm.MODELS) == {"smollm2-135m-instruct", "gemma3-270m",
                              "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"}


def test_unknown_model_is_an_error():
    done = run("--list", "--only", "no-such-model")
    assert done.returncode == 2 and "unknown model" in done.stderr


@pytest.mark.parametrize("kind", ["short", "same-size-wrong-bytes"])
def test_existing_wrong_file_is_refused_and_deleted(tmp_path, rm, kind):
    name = "smollm2-135m-instruct"
    bad = tmp_path / f"{name}.gguf"
    with open(bad, "wb") as f:
        f.write(b"GGUF\x03\x00\x00\x00" + b"\x00" * 100)
        if kind != "short":
            f.truncate(rm.MODELS[name].size)  # sparse: right size, wrong sha256
    done = run("--dest", str(tmp_path), "--only", name)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 2  # progress line + one refusal line
    assert done.stderr.strip().splitlines()[-1].startswith("refused: ")
    assert "Traceback" not in done.stderr
    assert not bad.exists()
    assert not (tmp_path / "models.json").exists()


def test_verify_refuses_and_deletes_when_imported(tmp_path, rm):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(rm.Refused, match="bytes, expected"):
        rm.verify(bad, "gemma3-270m")
    assert not bad.exists()


def fake_model(rm, tmp_path, payload: bytes, sha256: str | None = None):
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    model = rm.Model(size=len(payload), sha256=sha256 or hashlib.sha256(payload).hexdigest(),
                     parts=[rm.Part("fake", "1", "fake/src.bin")], licence="test", provenance="test")
    return model, src


def test_assembles_atomically_and_writes_summary(tmp_path, rm, monkeypatch, capsys):
    model, src = fake_model(rm, tmp_path, b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 10)
    monkeypatch.setattr(rm, "MODELS", {"fake": model})
    monkeypatch.setattr(rm, "installed_copy", lambda m: src)
    dest = tmp_path / "dest"
    assert rm.main(["--dest", str(dest)]) == 0
    assert (dest / "fake.gguf").read_bytes() == src.read_bytes()
    [entry] = json.loads((dest / "models.json").read_text())["models"]
    assert entry["sha256"] == model.sha256 and entry["gguf_version"] == 3
    assert entry["status"] == "assembled" and entry["licence"] == "test"
    assert "fake.gguf" in capsys.readouterr().out
    assert rm.main(["--dest", str(dest)]) == 0  # second run: re-hashed and kept
    assert json.loads((dest / "models.json").read_text())["models"][0]["status"] == "ok"


@pytest.mark.parametrize("payload, pinned", [
    (b"GGUF\x03\x00\x00\x00rest", "0" * 64),        # wrong sha256
    (b"GGML\x03\x00\x00\x00rest", None),            # right sha256, not a GGUF
], ids=["wrong-sha256", "not-gguf"])
def test_assembly_mismatch_leaves_nothing_behind(tmp_path, rm, monkeypatch, capsys, payload, pinned):
    model, src = fake_model(rm, tmp_path, payload, pinned)
    monkeypatch.setattr(rm, "MODELS", {"fake": model})
    monkeypatch.setattr(rm, "installed_copy", lambda m: src)
    dest = tmp_path / "dest"
    assert rm.main(["--dest", str(dest)]) == 2
    assert list(dest.iterdir()) == []
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("refused: ")
