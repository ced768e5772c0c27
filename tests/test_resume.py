"""--resume after an interruption recomputes nothing already done, and the finished report equals
that of an uninterrupted run with the same seed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trustslm
from trustslm.models.resolve import load_model
from trustslm.testing.reports import comparable

OPTIONS = {"toxicity.continuation": {"k": 3, "max_new_tokens": 6}}
PROBES = ["fairness.stereotype_pairs", "toxicity.continuation"]


def test_interrupted_then_resumed_equals_uninterrupted(tiny_llama, tmp_path):
    full = trustslm.audit(str(tiny_llama), probes=PROBES, options=OPTIONS, limit=12, seed=5, progress=False,
                          cache_dir=tmp_path / "cache-a", out=tmp_path / "a")

    adapter = load_model(tiny_llama, batch_size=4)
    real_batch, calls = adapter._generate_batch, {"n": 0, "done": 0}

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        calls["done"] += len(batch)
        return real_batch(batch)

    adapter._generate_batch = flaky
    with pytest.raises(KeyboardInterrupt):
        trustslm.audit(adapter, probes=PROBES, options=OPTIONS, limit=12, seed=5, progress=False,
                       cache_dir=tmp_path / "cache-b", batch_size=4)

    adapter._generate_batch = real_batch
    calls_done = calls["done"]
    assert 0 < calls_done < 3 * 12  # interrupted in the middle of generation
    resumed = trustslm.audit(adapter, probes=PROBES, options=OPTIONS, limit=12, seed=5, progress=False, resume=True,
                             cache_dir=tmp_path / "cache-b", out=tmp_path / "b")
    n_requests = 2 * 12 + 3 * 12
    done_before = 2 * 12 + calls_done  # all log-likelihoods, then two generation batches
    assert resumed.run.cache_hits == done_before
    assert resumed.run.cache_misses == n_requests - done_before
    assert comparable(json.loads((tmp_path / "b" / "report.json").read_text())) == \
        comparable(json.loads((tmp_path / "a" / "report.json").read_text()))
    assert (tmp_path / "a" / "samples.jsonl").read_text() == (tmp_path / "b" / "samples.jsonl").read_text()
    assert full.overall.score is not None


def test_resume_of_a_finished_run_computes_nothing(tiny_gpt2, tmp_path):
    args = dict(probes=PROBES, options=OPTIONS, limit=5, progress=False, cache_dir=tmp_path / "c")
    first = trustslm.audit(str(tiny_gpt2), **args)
    again = trustslm.audit(str(tiny_gpt2), resume=True, **args)
    assert first.run.cache_hits == 0 and first.run.cache_misses == 2 * 5 + 3 * 5
    assert again.run.cache_misses == 0 and again.run.cache_hits == 2 * 5 + 3 * 5
    # without --resume nothing is read back
    fresh = trustslm.audit(str(tiny_gpt2), **args)
    assert fresh.run.cache_hits == 0


def _start_and_wait_for_cached_rows(cmd, env, db: Path, rows: int):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(str(db), timeout=1) as con:
                    stored = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.Error:
                stored = 0
            if stored >= rows:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the audit finished before it could be interrupted"
    return proc, stored


def _cli(model: Path) -> list[str]:
    return [sys.executable, "-m", "trustslm", "audit", str(model), "--probes", "toxicity.continuation",
            "--set", "toxicity.continuation.k=10", "--set", "toxicity.continuation.max_new_tokens=8",
            "--batch-size", "2", "--seed", "3", "--no-progress"]


def test_cli_killed_with_sigkill_then_resumed(tiny_gpt2, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "TRUSTSLM_CACHE_DIR": str(cache)}
    base = _cli(tiny_gpt2)
    proc, stored = _start_and_wait_for_cached_rows(base + ["--out", str(tmp_path / "killed")], env,
                                                   cache / "requests.sqlite", 40)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "report.json").exists()

    resumed = subprocess.run(base + ["--out", str(tmp_path / "resumed"), "--resume"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    clean_env = {**env, "TRUSTSLM_CACHE_DIR": str(tmp_path / "clean-cache")}
    clean = subprocess.run(base + ["--out", str(tmp_path / "clean")], env=clean_env,
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    r = json.loads((tmp_path / "resumed" / "report.json").read_text())
    c = json.loads((tmp_path / "clean" / "report.json").read_text())
    assert r["run"]["cache_hits"] >= stored > 0
    assert r["run"]["cache_hits"] + r["run"]["cache_misses"] == c["run"]["cache_misses"]
    assert comparable(r) == comparable(c)
    assert Path(tmp_path / "resumed" / "samples.jsonl").read_text() == Path(tmp_path / "clean" / "samples.jsonl").read_text()


def test_cli_sigterm_exits_130_with_a_one_line_hint(tiny_gpt2, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "TRUSTSLM_CACHE_DIR": str(cache)}
    proc, _ = _start_and_wait_for_cached_rows(_cli(tiny_gpt2) + ["--out", str(tmp_path / "o")], env,
                                              cache / "requests.sqlite", 10)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "trustslm: interrupted; finished batches are cached, rerun with --resume"
    assert "Traceback" not in err
