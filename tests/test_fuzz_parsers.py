"""Fuzzing every parser of untrusted files (hypothesis, in-process, reproducible): safetensors headers,
GGUF metadata, data files, YAML files (configs, policies, probe specs, mock scripts) and reports.

For every input, a parser returns or raises a :class:`~trustslm.core.errors.BadInputError` subclass
with a one-line message (never another exception type), runs nothing the input names, and takes
less than :data:`DEADLINE` per input. ``derandomize=True`` makes every run (and CI) try the same
inputs; ``database=None`` keeps no state between runs. The file runs in well under a minute on two
cores (about 100-150 inputs per parser).
"""

from __future__ import annotations

import json
import shutil
import struct
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustslm.core.errors import BadInputError
from trustslm.core.limits import MAX_NESTING_DEPTH

#: The most one parsed input may take (the parsers' own bounds are in trustslm.core.limits).
DEADLINE = timedelta(seconds=5)
FUZZ = settings(max_examples=120, deadline=DEADLINE, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def _expect_bad_input_or_value(call):
    """Run ``call``: it returns, or raises a BadInputError whose message is one line."""
    try:
        return call()
    except BadInputError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        return None


# -- strategies --------------------------------------------------------------------------------------
_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
_json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


def _deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


#: JSON texts that are hostile on purpose: deep nesting, lone surrogates, huge numbers.
_hostile_json = st.sampled_from([
    _deep(MAX_NESTING_DEPTH + 1), _deep(5000), '{"a":' * 3000 + "1" + "}" * 3000,
    '{"text": "\\ud800"}', '{"\\udfff": 1}', '{"n": ' + "9" * 5000 + "}", '{"x": 1e999}', '{"x": NaN}',
    "\ufeff{}", '{"a": "\\u0000"}', "[" * 64 + "]" * 64,
])


# -- safetensors headers -----------------------------------------------------------------------------
_DTYPES = ["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "Q4", "", "f32"]
_offset = st.integers(min_value=-(2**65), max_value=2**65) | st.text(max_size=4) | st.floats() | st.none()
_dim = st.integers(min_value=-(2**40), max_value=2**40) | st.text(max_size=3) | st.floats() | st.lists(st.integers(), max_size=2)
_tensor_entry = st.fixed_dictionaries(
    {}, optional={"dtype": st.sampled_from(_DTYPES) | _scalars,
                  "shape": st.lists(_dim, max_size=4) | _scalars,
                  "data_offsets": st.lists(_offset, min_size=0, max_size=3) | _scalars})
_header = st.dictionaries(st.text(max_size=6), _tensor_entry | _json_values, max_size=4)


@st.composite
def safetensors_bytes(draw) -> bytes:
    """A valid-looking layout (u64 length, JSON header, data) with mutated fields, or raw bytes."""
    kind = draw(st.sampled_from(["structured", "structured", "length", "raw", "hostile"]))
    if kind == "raw":
        return draw(st.binary(max_size=200))
    if kind == "hostile":
        header = draw(_hostile_json).encode("utf-8", "surrogatepass")
    else:
        header = json.dumps(draw(_header)).encode()
    body = draw(st.binary(max_size=64))
    length = len(header)
    if kind == "length":
        length = draw(st.integers(min_value=0, max_value=2**64 - 1))
    return struct.pack("<Q", length) + header + body


# -- GGUF metadata -----------------------------------------------------------------------------------
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _gguf_string(data: bytes, length: int | None = None) -> bytes:
    return struct.pack("<Q", len(data) if length is None else length) + data


@st.composite
def gguf_value(draw, depth: int = 0) -> tuple[int, bytes]:
    vtype = draw(st.sampled_from([0, 4, 6, 7, 8, 8, 9, 9, 10, 12, 13, 255]))
    if vtype in _GGUF_SCALARS:
        return vtype, draw(st.binary(min_size=struct.calcsize(_GGUF_SCALARS[vtype]),
                                     max_size=struct.calcsize(_GGUF_SCALARS[vtype])))
    if vtype == 8:
        data = draw(st.binary(max_size=12))
        length = draw(st.none() | st.integers(min_value=0, max_value=2**64 - 1))
        return vtype, _gguf_string(data, length)
    if vtype == 9 and depth < 2:
        count = draw(st.integers(min_value=0, max_value=3) | st.integers(min_value=0, max_value=2**64 - 1))
        item_type, _ = draw(gguf_value(depth + 1))
        items = b"".join(draw(gguf_value(depth + 1))[1] for _ in range(min(count, 3)))
        return vtype, struct.pack("<IQ", item_type, count) + items
    return vtype, draw(st.binary(max_size=8))  # an unknown type, or an array too deep


@st.composite
def gguf_bytes(draw) -> bytes:
    """``GGUF``, a version, tensor and key counts (sometimes absurd), then typed key/value pairs."""
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        return b"GGUF" + draw(st.binary(max_size=100))
    version = draw(st.sampled_from([3, 3, 3, 2, 1, 0, 4, 2**32 - 1]))
    pairs = draw(st.lists(gguf_value(), max_size=4))
    n_kv = draw(st.sampled_from([len(pairs), len(pairs), 2**63, 2**64 - 1, len(pairs) + 1]))
    n_tensors = draw(st.sampled_from([0, 0, 1, 2**40, 2**64 - 1]))
    out = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)
    for i, (vtype, payload) in enumerate(pairs):
        out += _gguf_string(f"key.{i}".encode()) + struct.pack("<I", vtype) + payload
    return out + draw(st.binary(max_size=32))


# -- text files --------------------------------------------------------------------------------------
@st.composite
def jsonl_bytes(draw) -> bytes:
    lines = draw(st.lists(
        st.one_of(_json_values.map(json.dumps), _hostile_json, st.text(max_size=20)), min_size=0, max_size=5))
    raw = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=8))  # maybe not UTF-8
    return raw


@st.composite
def csv_bytes(draw) -> bytes:
    cells = st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.sampled_from(['"', '""', "\r", "\n", ",", "\x00"])
    rows = draw(st.lists(st.lists(cells, min_size=1, max_size=4), min_size=0, max_size=5))
    text = "\n".join(",".join(row) for row in rows)
    if draw(st.booleans()):
        text = "sent_more,sent_less,bias_type\n" + text
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        text = "x" * 140_000 + ",sent_more\n1,2\n"  # a field over csv's size limit
    return text.encode("utf-8", "surrogatepass") + draw(st.binary(max_size=4))


_YAML_KEYS = st.sampled_from(["overall", "dimensions", "metrics", "min", "max", "on_missing", "regressions",
                              "alpha", "resamples", "tolerance", "fairness", "toxicity", "name", "capabilities",
                              "loglikelihood", "generate", "match", "response", "responses", "default_response",
                              "fairness.stereotype_pairs", "data", "k", "id", "kind", "dimension", "version"])
_yaml_values = st.recursive(_scalars | st.sampled_from(["fail", "skip", "generate", "loglikelihood"]),
                            lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(_YAML_KEYS | st.text(max_size=6), inner, max_size=4), max_leaves=20)


def _laughs(levels: int, width: int) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


_hostile_yaml = st.sampled_from([
    _laughs(9, 9), _laughs(30, 2), "a: &a [*a]\n", "a: " + _deep(MAX_NESTING_DEPTH + 5) + "\n", "a: " + _deep(3000) + "\n",
    'a: "\\ud800"\n', "a: " + "9" * 5000 + "\n", "? [a, b]\n: c\n", "a: !!binary AAAA\n", "a: *missing\n",
    "a: &x 1\na: &x 2\n", "- 1\n- 2\n", "", "%YAML 1.1\n---\na: 1\n...\n---\nb: 2\n", "a: 2001-12-14\n",
    "<<: {a: 1}\n", "a:\n  <<: *nope\n", "\x00", "a: \x1b[31m\n", "a: !!float 'x'\n", "a: !!int 'x'\n",
])


@st.composite
def yaml_text(draw, marker: Path) -> str:
    """YAML from random structures, hostile documents, payload tags that would create ``marker``, or noise."""
    kind = draw(st.sampled_from(["dump", "dump", "dump", "hostile", "payload", "noise"]))
    if kind == "dump":
        return yaml.safe_dump(draw(_yaml_values), allow_unicode=True)
    if kind == "hostile":
        return draw(_hostile_yaml)
    if kind == "payload":
        tag = draw(st.sampled_from(["!!python/object/apply:pathlib.Path.touch", "!!python/object/new:pathlib.Path.touch",
                                    "!!python/name:os.system", "!!python/object/apply:os.system"]))
        return f"a: {tag} [{str(marker)!r}]\n"
    return draw(st.text(max_size=60))


# -- tests: model files (models/validate.py) ---------------------------------------------------------
@FUZZ
@given(data=safetensors_bytes())
def test_fuzz_safetensors_header(tmp_path, data):
    from trustslm.models.validate import check_safetensors

    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    _expect_bad_input_or_value(lambda: check_safetensors(path))


@FUZZ
@given(data=gguf_bytes())
def test_fuzz_gguf_metadata(tmp_path, data):
    pytest.importorskip("gguf")
    from trustslm.models.validate import check_gguf

    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    _expect_bad_input_or_value(lambda: check_gguf(path))


# -- tests: data files -------------------------------------------------------------------------------
@FUZZ
@given(data=jsonl_bytes())
def test_fuzz_data_jsonl_json_and_text(tmp_path, data):
    from trustslm.data.files import read_json, read_jsonl, read_text

    path = tmp_path / "data.jsonl"
    path.write_bytes(data)
    rows = _expect_bad_input_or_value(lambda: read_jsonl(path))
    if rows is not None:  # what is returned encodes (the cache keys and the report need that)
        assert all(isinstance(r, dict) for r in rows)
        json.dumps(rows, ensure_ascii=False).encode("utf-8")
    _expect_bad_input_or_value(lambda: read_json(path))
    text = _expect_bad_input_or_value(lambda: read_text(path))
    assert text is None or text.strip()


@FUZZ
@given(data=csv_bytes())
def test_fuzz_data_csv(tmp_path, data):
    from trustslm.data.files import read_csv

    path = tmp_path / "pairs.csv"
    path.write_bytes(data)
    rows = _expect_bad_input_or_value(lambda: read_csv(path, required=("sent_more", "sent_less")))
    assert rows is None or (rows and all(isinstance(r, dict) for r in rows))


# -- tests: YAML files -------------------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_fuzz_yaml_config_policy_spec_and_mock_script(tmp_path, data):
    from trustslm.core.specs import load_spec_file
    from trustslm.core.textfiles import read_yaml_mapping
    from trustslm.engine.options import load_config
    from trustslm.gate.policy import load_policy
    from trustslm.models.mock import ScriptedModel

    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "file.yaml"
    path.write_text(data.draw(yaml_text(marker)), encoding="utf-8", errors="surrogatepass")
    _expect_bad_input_or_value(lambda: read_yaml_mapping(path, "fuzzed"))
    _expect_bad_input_or_value(lambda: load_config(path))
    _expect_bad_input_or_value(lambda: load_policy(path))
    _expect_bad_input_or_value(lambda: load_spec_file(path, provider="fuzz"))
    model = _expect_bad_input_or_value(lambda: ScriptedModel(path))
    if model is not None:  # a script that loads is one the model can follow
        _serve_every_request_type(model)
    assert not marker.exists()


def _serve_every_request_type(model) -> None:
    from trustslm.models.base import GenerateRequest, LoglikelihoodRequest, TokenScoresRequest

    model.info()
    model.loglikelihood([LoglikelihoodRequest(context="a", continuation=" b")])
    model.generate([GenerateRequest(prompt="lol fail a", max_new_tokens=4, sample_index=3)])
    model.token_scores([TokenScoresRequest(text="a b c")]) if "token_logprobs" in model.capabilities else None


# -- tests: reports ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    import trustslm

    out = tmp_path_factory.mktemp("fuzz-report") / "report"
    trustslm.audit("mock", probes=["fairness.stereotype_pairs", "toxicity.continuation"], limit=3, progress=False,
                   out=out, use_cache=False)
    return out


@st.composite
def _field_path(draw, value) -> tuple:
    """A path into ``value`` by a random descent (two levels at least, then stopping at each level with
    probability 1/2), so the fields of every section are mutated as often as deep leaves."""
    path: tuple = ()
    while isinstance(value, (dict, list)) and value and (len(path) < 2 or draw(st.booleans())):
        key = draw(st.sampled_from(sorted(value) if isinstance(value, dict) else range(len(value))))
        path, value = (*path, key), value[key]
    return path


@st.composite
def mutated_report(draw, original: dict) -> dict:
    """The report with one or two fields deleted or replaced by arbitrary (or hostile) JSON values."""
    report = json.loads(json.dumps(original))
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        path = draw(_field_path(report))
        if not path:
            continue
        parent = report
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            hostile = draw(st.sampled_from([None, -1, 1e308, float("nan"), "", "\ud800", "x\n\x1b[2J", [], {}]))
            parent[path[-1]] = draw(st.just(hostile) | _json_values)
    return report


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_fuzz_report_files(tmp_path, report_dir, data):
    """A fuzzed report either fails to load with one line or renders in every built-in format."""
    from trustslm.core.registry import Registry
    from trustslm.report.files import load_report_dir

    folder = tmp_path / "report"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(report_dir, folder)
    target = data.draw(st.sampled_from(["report.json", "samples.jsonl", "units.jsonl"]))
    if target == "report.json":
        mutated = data.draw(mutated_report(json.loads((report_dir / target).read_text())))
        text = json.dumps(mutated, ensure_ascii=data.draw(st.booleans()))  # a lone surrogate: escaped, or raw bytes
    else:
        lines = (report_dir / target).read_text().splitlines()
        lines_from = _json_values.map(json.dumps) | _hostile_json
        extra = data.draw(st.lists(lines_from, min_size=1, max_size=2))
        text = "\n".join(lines[:1] + extra) + "\n"
    (folder / target).write_text(text, encoding="utf-8", errors="surrogatepass")
    report = _expect_bad_input_or_value(lambda: load_report_dir(folder))
    if report is not None:
        registry = Registry()
        for name in registry.renderer_names():
            registry.renderer(name)(report).encode("utf-8")


@FUZZ
@given(data=jsonl_bytes())
def test_fuzz_report_json_text(tmp_path, data):
    from trustslm.core.types import TrustReport

    path = tmp_path / "report.json"
    path.write_bytes(data)
    _expect_bad_input_or_value(lambda: TrustReport.load(path))


@pytest.mark.parametrize("hostile", ["deep", "surrogate"])
def test_hostile_samples_line_is_one_line_error(tmp_path, report_dir, hostile):
    from trustslm.core.registry import Registry
    from trustslm.report.files import load_report_dir

    folder = tmp_path / "report"
    shutil.copytree(report_dir, folder)
    lines = (folder / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    key = next(k for k, v in first.items() if isinstance(v, str) and k not in ("probe_id", "id"))
    first[key] = "\ud800" if hostile == "surrogate" else "DEEP"
    lines[0] = json.dumps(first).replace('"DEEP"', _deep(5000))  # json.dumps escapes the surrogate as \\ud800
    (folder / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = _expect_bad_input_or_value(lambda: load_report_dir(folder))
    if report is not None:
        for name in Registry().renderer_names():
            Registry().renderer(name)(report).encode("utf-8")
