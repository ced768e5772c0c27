"""Hostile outputs and cache (issue 18): nothing planted in a folder trustslm writes into can
redirect a write; a file's remembered hash and a cached result are used only while they are
still true; masks disclose no personal data; untrusted text is escaped in report.md and on the
terminal; a crash while writing a report never leaves two runs' files together."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

import trustslm
from trustslm.core import hashing
from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.engine.cache import RequestCache, row_digest
from trustslm.engine.execute import execute, result_from_cache
from trustslm.models.base import (
    GenerateRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    TokenScoresRequest,
    TokenScoresResult,
    model_info,
)
from trustslm.models.mock import ScriptedModel
from trustslm.report.files import check_out_dir, load_report_dir, write_outputs

PAIRS = "fairness.stereotype_pairs"
OUTSIDE_TEXT = "the user's own file: must never change\n"


def _outside(tmp_path: Path, name: str = "victim.txt") -> Path:
    """A file outside every folder trustslm writes into: the target of the planted links."""
    victim = tmp_path / "elsewhere" / name
    victim.parent.mkdir(exist_ok=True)
    victim.write_text(OUTSIDE_TEXT)
    return victim


@pytest.fixture
def first_candidate(monkeypatch):
    """Make mkstemp try the name ``planted`` first, as if an attacker had guessed its next
    name: the planted link there must be skipped (O_EXCL), not opened."""
    real = tempfile._get_candidate_names

    def names():
        yield "planted"
        yield from real()

    monkeypatch.setattr(tempfile, "_get_candidate_names", names)


def _small_report(tmp_path: Path, limit: int = 2, **kw):
    return trustslm.audit("mock", probes=[PAIRS], progress=False, limit=limit, cache_dir=tmp_path / "cache", **kw)


# -- writes through planted names ----------------------------------------------------------------

def test_card_temp_names_planted_as_symlinks_are_not_written_through(tmp_path, first_candidate):
    report = _small_report(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "README.md").write_text("# A model\n")
    victims = [_outside(tmp_path, f"v{i}.txt") for i in range(3)]
    (model / f".README.md.{os.getpid()}.tmp").symlink_to(victims[0])  # the old predictable name
    (model / ".README.md.planted.tmp").symlink_to(victims[1])        # the name mkstemp tries first
    (model / ".README.md.tmp").symlink_to(victims[2])
    path = trustslm.api.update_card(model, report)
    assert all(v.read_text() == OUTSIDE_TEXT for v in victims)
    assert "trustslm:trust-report:start" in path.read_text() and not path.is_symlink()
    assert sorted(p.name for p in model.iterdir() if not p.is_symlink()) == ["README.md"]  # no temp file left


def test_report_writer_does_not_write_through_planted_symlinks(tmp_path, first_candidate):
    report = _small_report(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    victims = [_outside(tmp_path, f"v{i}.txt") for i in range(3)]
    (out / f".report.json.{os.getpid()}.tmp").symlink_to(victims[0])
    (out / ".report.json.planted.tmp").symlink_to(victims[1])
    (out / "report.json").symlink_to(victims[2])  # the final name itself: the link is replaced
    write_outputs(report, out)
    assert all(v.read_text() == OUTSIDE_TEXT for v in victims)
    assert not (out / "report.json").is_symlink()
    assert load_report_dir(out).model.name == "mock"


def test_hash_memo_is_neither_read_nor_written_through_a_symlink(tmp_path, monkeypatch, first_candidate):
    monkeypatch.setattr(hashing, "MEMO_MIN_BYTES", 0)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights" * 1000)
    memo_dir = tmp_path / "cache"
    memo_dir.mkdir()
    key = hashing._identity(weights.resolve(), weights.stat())
    forged = tmp_path / "elsewhere" / "forged.json"
    forged.parent.mkdir()
    forged.write_text(json.dumps({key: "0" * 64}))  # a memo that lies about our file
    (memo_dir / hashing.MEMO_FILE).symlink_to(forged)
    victims = [_outside(tmp_path, f"v{i}.txt") for i in range(2)]
    (memo_dir / f"file-hashes.{os.getpid()}.tmp").symlink_to(victims[0])
    (memo_dir / f".{hashing.MEMO_FILE}.planted.tmp").symlink_to(victims[1])
    digest = hashing.sha256_file(weights, memo_dir=memo_dir)
    assert digest == hashlib.sha256(weights.read_bytes()).hexdigest()  # the forged entry was not read
    assert all(v.read_text() == OUTSIDE_TEXT for v in victims)
    assert json.loads(forged.read_text()) == {key: "0" * 64}
    assert not (memo_dir / hashing.MEMO_FILE).is_symlink()  # replaced by our own memo


def test_demo_conversion_folder_is_not_a_predictable_name(tmp_path, monkeypatch):
    from trustslm.models import demo

    gguf = tmp_path / "pkg" / "demo.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setattr(demo, "locate_demo_gguf", lambda: gguf)
    monkeypatch.setattr(demo, "check_gguf", lambda path: None)
    monkeypatch.setattr(demo, "convert_gguf_to_safetensors",
                        lambda src, out: (out / "model.safetensors").write_bytes(b"converted"))
    cache = tmp_path / "cache"
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    target = cache / "models" / f"{demo.DEMO_NAME}-{digest[:12]}"
    target.parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (target.parent / f"{target.name}.tmp{os.getpid()}").symlink_to(elsewhere, target_is_directory=True)
    folder, _ = demo.ensure_demo_model(cache)
    assert folder == target and (target / "model.safetensors").read_bytes() == b"converted"
    assert list(elsewhere.iterdir()) == []


# -- stale identity --------------------------------------------------------------------------------

def test_weights_rewritten_in_place_with_same_size_and_mtime_get_a_new_hash(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(os.urandom(hashing.MEMO_MIN_BYTES + 4096))  # large enough to be remembered
    memo_dir = tmp_path / "cache"
    first = hashing.sha256_file(weights, memo_dir=memo_dir)
    assert json.loads((memo_dir / hashing.MEMO_FILE).read_text())  # it was remembered
    before = weights.stat()
    time.sleep(0.05)  # past the file system's timestamp granularity
    with open(weights, "r+b") as f:
        f.write(b"\0" * 4096)  # a different model, same size
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime restored
    after = weights.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    second = hashing.sha256_file(weights, memo_dir=memo_dir)
    assert second != first and second == hashlib.sha256(weights.read_bytes()).hexdigest()
    # replaced by another file (a rename), again same size and mtime
    other = tmp_path / "other.safetensors"
    other.write_bytes(os.urandom(after.st_size))
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, weights)
    assert hashing.sha256_file(weights, memo_dir=memo_dir) == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_memo_content_is_validated_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "MEMO_MIN_BYTES", 0)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"x" * 100)
    true = hashlib.sha256(weights.read_bytes()).hexdigest()
    key = hashing._identity(weights.resolve(), weights.stat())
    memo_dir = tmp_path / "cache"
    memo_dir.mkdir()
    memo = memo_dir / hashing.MEMO_FILE
    for bad in (json.dumps({key: "not a digest"}), json.dumps([key, "0" * 64]), "{garbage",
                json.dumps({key: "0" * 64, "pad": "y" * hashing.MEMO_MAX_BYTES})):  # the last: too large
        memo.write_text(bad)
        assert hashing.sha256_file(weights, memo_dir=memo_dir) == true
    memo.write_text(json.dumps({key: "0" * 64}))  # a well-formed entry is trusted: the cache is the user's
    assert hashing.sha256_file(weights, memo_dir=memo_dir) == "0" * 64


# -- forged and stale cache rows ---------------------------------------------------------------------

def _db_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT key, model, kind, request, result FROM results").fetchall()


def test_a_forged_cache_row_is_recomputed_and_reported(tmp_path, capsys):
    script = {"loglikelihood": {"": -2.0}}
    args = dict(probes=[PAIRS], progress=False, limit=3, cache_dir=tmp_path / "cache")
    first = trustslm.audit(ScriptedModel(script), **args)
    db = tmp_path / "cache" / "requests.sqlite"
    key = _db_rows(db)[0][0]
    with sqlite3.connect(db) as con:  # a forged value; the digest is not recomputed
        con.execute("UPDATE results SET result = ? WHERE key = ?",
                    (json.dumps({"logprob": 0.0, "is_greedy": True, "n_tokens": 1}), key))
    capsys.readouterr()
    model = ScriptedModel(script)
    again = trustslm.audit(model, resume=True, **args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("trustslm: warning: 1 cached result(s)") and str(db) in err[0]
    assert again.run.cache_misses == 1 and again.run.cache_hits == first.run.cache_misses - 1
    assert model.calls["loglikelihood"] == 1
    assert again.result(PAIRS).metrics == first.result(PAIRS).metrics
    # the recomputed row replaced the forged one: a third run uses every row quietly
    third = trustslm.audit(ScriptedModel(script), resume=True, **args)
    assert third.run.cache_misses == 0 and capsys.readouterr().err == ""


def _forge(db: Path, key: str, identity: str, kind: str, request: str, result: dict) -> None:
    """Rewrite a row with a valid digest, as someone who knows the format would."""
    text = json.dumps(result)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE results SET model = ?, kind = ?, request = ?, result = ?, digest = ? WHERE key = ?",
                    (identity, kind, request, text, row_digest(key, identity, kind, request, text), key))


@pytest.mark.parametrize("forgery", ["wrong_type", "extra_field", "other_request", "other_model", "too_long"])
def test_a_cache_row_that_fails_its_checks_is_not_used(tmp_path, capsys, forgery):
    db = tmp_path / "requests.sqlite"
    cache = RequestCache(db)
    model = ScriptedModel()
    identity = model_info(model).identity
    requests = [LoglikelihoodRequest("a", " b"), GenerateRequest("Say", max_new_tokens=4)]
    truth, _ = execute(model, requests, identity=identity, cache=cache, progress=False)
    rows = {kind: (key, request) for key, _, kind, request, _ in _db_rows(db)}
    ll_key, ll_request = rows["loglikelihood"]
    gen_key, gen_request = rows["generate"]
    if forgery == "wrong_type":  # a generation where a log-likelihood belongs
        _forge(db, ll_key, identity, "loglikelihood", ll_request, {"text": "x", "n_tokens": 1, "finish_reason": "stop"})
    elif forgery == "extra_field":
        _forge(db, ll_key, identity, "loglikelihood", ll_request,
               {"logprob": 0.0, "is_greedy": True, "n_tokens": 1, "evil": 1})
    elif forgery == "other_request":  # another request's row moved under this key
        _forge(db, ll_key, identity, "loglikelihood", LoglikelihoodRequest("c", " d").key(),
               {"logprob": 0.0, "is_greedy": True, "n_tokens": 1})
    elif forgery == "other_model":  # copied from another model's rows
        _forge(db, ll_key, "f" * 64, "loglikelihood", ll_request, {"logprob": 0.0, "is_greedy": True, "n_tokens": 1})
    else:  # longer than the request allows
        _forge(db, gen_key, identity, "generate", gen_request, {"text": "a b c d e f", "n_tokens": 6,
                                                                 "finish_reason": "length"})
    capsys.readouterr()
    again = ScriptedModel()
    got, stats = execute(again, requests, identity=identity, cache=cache, resume=True, progress=False)
    assert (stats.cache_hits, stats.computed, stats.cache_rejected) == (1, 1, 1)
    assert got == truth
    assert "1 cached result(s)" in capsys.readouterr().err
    cache.close()


def test_result_checks_accept_what_adapters_return():
    """Every field of every result type is checked: a new field must be added to the checks."""
    cases = [(LoglikelihoodRequest("a", " b"), LoglikelihoodResult(-1.5, False, 2)),
             (GenerateRequest("p", max_new_tokens=3), GenerationResult("x y", 2, "stop")),
             (TokenScoresRequest("t"), TokenScoresResult([-1.0, float("-inf")], [0.1, 0.2], [1.0, 1.0])),
             (TokenScoresRequest("t"), TokenScoresResult([-1.0]))]
    for request, result in cases:
        data = json.loads(json.dumps(result.to_dict()))
        assert result_from_cache(request, data) == result
        assert result_from_cache(request, {**data, "more": 1}) is None


def test_corrupt_cache_database_is_a_one_line_error(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    db = cache / "requests.sqlite"
    db.write_bytes(os.urandom(8192))
    before = db.read_bytes()
    proc = run_cli("audit", "mock", "--out", str(tmp_path / "o"), "--cache-dir", str(cache),
                   "--probes", PAIRS, "--limit", "2", "--no-progress")
    assert_one_line_error(proc, contains=str(db))
    assert db.read_bytes() == before  # left for the user to look at, not moved or rewritten
    assert not (tmp_path / "o" / "report.json").exists()


def test_rows_of_a_cache_written_before_rows_had_digests_are_never_used(tmp_path):
    db = tmp_path / "requests.sqlite"
    model = ScriptedModel()
    identity = model_info(model).identity
    request = LoglikelihoodRequest("a", " b")
    with sqlite3.connect(db) as con:  # the former layout, holding a row a forger wrote under the old key
        con.execute("CREATE TABLE results (key TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT NULL, "
                    "request TEXT NOT NULL, result TEXT NOT NULL, created REAL NOT NULL)")
        old_key = hashlib.sha256(f"{identity}\0{request.key()}".encode()).hexdigest()
        con.execute("INSERT INTO results VALUES (?, ?, 'loglikelihood', ?, ?, 0)",
                    (old_key, identity, request.key(), json.dumps({"logprob": 0.0, "is_greedy": True, "n_tokens": 1})))
    cache = RequestCache(db)
    got, stats = execute(model, [request], identity=identity, cache=cache, resume=True, progress=False)
    assert (stats.cache_hits, stats.computed) == (0, 1) and got[request.key()].logprob != 0.0
    assert cache.count() == 1  # the old row is gone, the new one has its digest
    cache.close()


def test_cache_database_of_another_layout_is_refused(tmp_path):
    db = tmp_path / "requests.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE results (key TEXT PRIMARY KEY, payload BLOB)")
    with pytest.raises(BadInputError, match="not usable") as info:
        RequestCache(db)
    assert str(db) in str(info.value) and "\n" not in str(info.value)


# -- PII masks -----------------------------------------------------------------------------------------

def test_pii_masks_do_not_disclose_the_values(tmp_path):
    ssn, phone = "123-45-6789", "555-867-5309"
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": str(i), "prompt": f"Question {i}?"}) + "\n" for i in range(3)))
    script = {"generate": [{"match": "Question", "responses": [f"SSN {ssn}, call {phone}.", f"Again {ssn}."]}]}
    out = tmp_path / "o"
    trustslm.audit(ScriptedModel(script), probes=["privacy.pii_leakage"], progress=False, out=out,
                   options={"privacy.pii_leakage": {"data": str(prompts), "k": 2}})
    digits = {"ssn": "123456789", "phone": "5558675309"}
    texts = {name: (out / name).read_text() for name in ("samples.jsonl", "report.html", "report.md")}
    for name, text in texts.items():
        assert ssn not in text and phone not in text, name
        for kind, value in digits.items():  # no digest of the value, of any common form, any length
            for form in (f"{kind}:{value}", value, {"ssn": ssn, "phone": phone}[kind]):
                prefix = hashlib.sha256(form.encode()).hexdigest()[:8]
                assert prefix not in text, (name, form)
    masked = [json.loads(line)["generation_masked"] for line in texts["samples.jsonl"].splitlines()]
    assert set(masked) == {"SSN <SSN:1>, call <PHONE:1>.", "Again <SSN:1>."}  # equal values, equal labels
    assert not re.search(r"<(SSN|PHONE):[0-9a-f]{6,}>", texts["samples.jsonl"])


# -- untrusted text in report.md and on the terminal ----------------------------------------------------

EVIL_NAME = "<script>alert(1)</script>|cell\n# heading\r\x1b[31m"
EVIL_GROUP = "<img src=x onerror=alert(1)>|x\n| forged | row |"


def _evil_report(tmp_path: Path, **kw):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"sent_more": f"More {i}.", "sent_less": f"Less {i}.", "bias_type": EVIL_GROUP if i % 2 else "age"}
            for i in range(4)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = ScriptedModel({"name": EVIL_NAME})
    return trustslm.audit(model, probes=[PAIRS], progress=False, options={PAIRS: {"data": str(pairs)}}, **kw)


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_report_md_escapes_model_names_and_group_labels(tmp_path):
    report = _evil_report(tmp_path, out=tmp_path / "o")
    assert any(m.group and "<img" in m.group for m in report.result(PAIRS).metrics)  # the label reached the report
    md = (tmp_path / "o" / "report.md").read_text()
    assert "<script>" not in md and "<img" not in md and "\x1b" not in md and "\r" not in md
    assert not any(line.startswith("# heading") or line.startswith("| forged") for line in md.splitlines())
    lines = md.splitlines()
    title = lines[0]
    assert title.startswith("# Trust report: ") and "&lt;script&gt;" in title
    header = lines.index("| metric | group | value | 95% interval | n | direction | score | chance |")
    table = lines[header: lines.index("", header)]
    assert len(table) > 3 and all(_unescaped_pipes(line) == 9 for line in table)  # no cell added or row split
    assert any("&lt;img" in line for line in table)


def test_terminal_summary_shows_control_characters_escaped(tmp_path, capsys):
    from trustslm.cli.main import main
    from trustslm.core.types import GateResult, GateRuleResult
    from trustslm.report.markdown import gate_lines

    script = tmp_path / "evil.yaml"
    script.write_text(json.dumps({"name": "\x1b[2J\x1b[31mpwned\u202egnp.exe\rOK\nfake line"}))  # JSON is YAML
    rc = main(["audit", f"mock:{script}", "--out", str(tmp_path / "o"), "--probes", PAIRS, "--limit", "2",
               "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "\x1b" not in out and "\u202e" not in out and "\r" not in out and "\nfake line" not in out
    assert "\\x1b[2J\\x1b[31mpwned\\u202egnp.exe\\x0dOK\\x0afake line" in out.splitlines()[0]
    # a gate rule's text (from a policy or a baseline report) can't forge a verdict line either
    report = load_report_dir(tmp_path / "o")
    rule = GateRuleResult(rule="overall min 50\x1b[0m", target="overall", op="min", threshold=50, actual=1,
                          passed=False, reason="low\ngate: PASSED")
    lines = gate_lines(report.model_copy(update={"gate": GateResult(passed=False, rules=[rule], policy="p")}))
    assert len(lines) == 2 and "\x1b" not in lines[1] and "low\\x0agate: PASSED" in lines[1]


# -- a report folder never holds two runs ----------------------------------------------------------------

def _folder(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir()}


class _BrokenHtml(Registry):
    """The registry, but the html renderer fails (as a crash while rendering would)."""

    def renderer(self, name):
        if name == "html":
            def fail(report):
                raise RuntimeError("renderer crashed")
            return fail
        return super().renderer(name)


def test_a_crash_while_rendering_leaves_the_old_report_intact(tmp_path):
    out = tmp_path / "o"
    old = _small_report(tmp_path, limit=2, out=out)
    before = _folder(out)
    new = _small_report(tmp_path, limit=3)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_outputs(new, out, registry=_BrokenHtml())
    assert _folder(out) == before  # nothing changed, no temporary file left
    assert load_report_dir(out).run.limit == old.run.limit


def test_a_crash_while_moving_files_in_never_mixes_two_runs(tmp_path, monkeypatch):
    from trustslm.core import atomic

    out = tmp_path / "o"
    _small_report(tmp_path, limit=2, out=out)
    new = _small_report(tmp_path, limit=3)
    expected = tmp_path / "expected"
    write_outputs(new, expected)
    real, moved = atomic.commit, []

    def crash_after_two(tmp, path):
        if len(moved) == 2:
            raise OSError(28, "No space left on device")
        real(tmp, path)
        moved.append(Path(path).name)

    monkeypatch.setattr(atomic, "commit", crash_after_two)
    with pytest.raises(BadInputError, match="No space left"):
        write_outputs(new, out)
    left = _folder(out)
    assert "report.json" not in left and set(left) == set(moved)  # no old file, no temporary file
    assert all(left[name] == (expected / name).read_bytes() for name in left)  # only the new run's files
    with pytest.raises(BadInputError, match="report file not found"):
        load_report_dir(out)


def test_samples_of_another_run_beside_a_report_are_detected(tmp_path):
    _small_report(tmp_path, limit=2, out=tmp_path / "a")
    _small_report(tmp_path, limit=3, out=tmp_path / "b")
    (tmp_path / "a" / "samples.jsonl").write_bytes((tmp_path / "b" / "samples.jsonl").read_bytes())
    with pytest.raises(BadInputError, match="does not belong to the report.json") as info:
        load_report_dir(tmp_path / "a")
    assert "\n" not in str(info.value)


def test_out_naming_an_existing_file_is_a_one_line_error(tmp_path, capsys):
    from trustslm.cli.main import main

    target = tmp_path / "results.txt"
    target.write_text(OUTSIDE_TEXT)
    with pytest.raises(BadInputError, match="is an existing file"):
        check_out_dir(target)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "report.md").mkdir()
    with pytest.raises(BadInputError, match="it is a folder"):
        check_out_dir(tmp_path / "o")
    rc = main(["audit", "mock", "--out", str(target), "--probes", PAIRS, "--limit", "2", "--no-progress",
               "--cache-dir", str(tmp_path / "cache")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and err[0].startswith("trustslm: error:") and str(target) in err[0]
    assert target.read_text() == OUTSIDE_TEXT
