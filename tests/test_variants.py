"""Compressed-variant audits (``trustslm variants``): the paired statistics by hand, the GGUF tools
(llama.cpp's converter and quantiser, magnitude pruning), and the whole path on a tiny float32
model: a variant with one layer's weights perturbed is flagged on every probe family, the same
weights re-saved are not. Bad input is one line, exit 2."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from trustslm.gate.flips import clopper_pearson, dimension_flips, mcnemar_exact, paired_outcomes

# -- the statistics, by hand ------------------------------------------------------------------


def test_mcnemar_exact_is_the_two_sided_binomial_test_of_the_discordant_pairs():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(2 * 0.5 ** 5)  # 0.0625
    assert mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 2 ** 10)  # P(X <= 1) twice, X ~ Bin(10, 1/2)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(3, 3) == pytest.approx(1.0)


def test_clopper_pearson_matches_its_closed_forms():
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))  # the k = 0 upper bound
    lo, hi = clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10))
    lo, hi = clopper_pearson(5, 20)
    assert lo < 0.25 < hi and (lo, hi) == pytest.approx((0.0866, 0.4910), abs=1e-4)
    assert all(math.isnan(x) for x in clopper_pearson(0, 0))


@pytest.fixture(scope="module")
def mock_reports(tmp_path_factory):
    import trustslm

    probes = ["fairness.stereotype_pairs", "truthfulness.truthfulqa_mc", "toxicity.continuation"]
    ref = trustslm.audit("mock", probes=probes, progress=False, use_cache=False)
    var = trustslm.audit("mock", probes=probes, progress=False, use_cache=False)
    return ref, var


def _with_units(report, pid, column, flips):
    """A copy of ``report`` whose ``pid`` unit table has ``column`` changed at ``flips`` (index -> value)."""
    units = {k: v.copy() for k, v in report.units.items()}
    for i, value in flips.items():
        units[pid].loc[i, column] = value
    out = report.model_copy()
    out._units, out._samples = units, list(report.samples)
    return out


def test_flips_count_each_direction_and_list_the_harmful_ones(mock_reports):
    ref, var = mock_reports
    same = paired_outcomes(ref, var)
    assert all(o.compared and not o.flagged for o in same), [o for o in same if o.flagged]
    u = ref.units["truthfulness.truthfulqa_mc"]
    right = [i for i in range(len(u)) if u.loc[i, "mc1"] == 1.0]
    wrong = [i for i in range(len(u)) if u.loc[i, "mc1"] == 0.0]
    assert len(right) >= 1 and len(wrong) >= 2
    # one correct answer turns wrong (towards harm), two wrong answers turn correct
    var2 = _with_units(var, "truthfulness.truthfulqa_mc", "mc1", {right[0]: 0.0, wrong[0]: 1.0, wrong[1]: 1.0})
    out = {o.probe_id: o for o in paired_outcomes(ref, var2)}
    tqa = out["truthfulness.truthfulqa_mc"]
    f = tqa.primary
    assert f is not None and f.column == "mc1" and f.harm_when == 0
    assert (f.flips, f.harmful, f.helpful, f.units) == (3, 1, 2, len(u))
    assert f.flip_rate == pytest.approx(3 / len(u)) and f.mcnemar_p == pytest.approx(mcnemar_exact(1, 2))
    assert [it["index"] for it in f.harmful_items] == right[:1]
    assert tqa.changed_units == 3 and tqa.flagged
    assert not out["fairness.stereotype_pairs"].flagged
    # a lower-is-better column: 0 -> 1 is towards harm (a continuation that turned toxic)
    cont = ref.units["toxicity.continuation"]
    clean = [i for i in range(len(cont)) if cont.loc[i, "any_toxic"] == 0.0][:1]
    var3 = _with_units(var, "toxicity.continuation", "any_toxic", {clean[0]: 1.0})
    tox = {o.probe_id: o for o in paired_outcomes(ref, var3)}["toxicity.continuation"]
    prim = tox.primary
    assert prim is not None and prim.harm_when == 1 and (prim.harmful, prim.helpful) == (1, 0)
    dims = {d.dimension: d for d in dimension_flips(paired_outcomes(ref, var2))}
    assert dims["truthfulness"].flips == 3 and dims["fairness"].flips == 0
    assert dims["truthfulness"].flip_rate_ci == pytest.approx(clopper_pearson(3, len(u)))


def test_a_sample_that_differs_flags_the_probe(mock_reports):
    ref, var = mock_reports
    samples = [dict(s) for s in var.samples]
    k = next(i for i, s in enumerate(samples) if s.get("probe_id") == "toxicity.continuation")
    samples[k]["continuation"] = str(samples[k].get("continuation")) + " changed"
    var2 = var.model_copy()
    var2._units, var2._samples = var.units, samples
    tox = {o.probe_id: o for o in paired_outcomes(ref, var2)}["toxicity.continuation"]
    assert tox.changed_samples == 1 and tox.changed_units == 0 and tox.flagged


# -- bad input, before anything is built --------------------------------------------------------


def test_an_unknown_quantisation_type_is_one_line(tmp_path):
    proc = run_cli("variants", "smollm2", "--quant", "Q4_K_M,Q9_X", "--out", str(tmp_path / "v"))
    assert_one_line_error(proc, 2, "unknown quantisation type 'Q9_X'")
    assert not (tmp_path / "v").exists()


def test_a_bad_prune_share_or_variant_argument_is_one_line(tmp_path):
    assert_one_line_error(run_cli("variants", "smollm2", "--prune", "1.5", "--out", str(tmp_path / "v")), 2, "--prune")
    assert_one_line_error(run_cli("variants", "smollm2", "--variant", "x", "--out", str(tmp_path / "v")), 2, "NAME=PATH")
    assert_one_line_error(run_cli("variants", "smollm2", "--variant", f"x={tmp_path / 'none.gguf'}", "--out",
                                  str(tmp_path / "v")), 2, "not a .gguf file")
    assert_one_line_error(run_cli("variants", "smollm2", "--variant", f"source-Q4_1={tmp_path / 'x.gguf'}", "--out",
                                  str(tmp_path / "v")), 2, "not starting with 'source-'")


# -- the GGUF tools and the whole path ------------------------------------------------------------

def _converter_or_skip():
    from trustslm.compress.convert import find_converter

    try:
        return find_converter()
    except Exception as exc:  # pragma: no cover - only where .ci/setup did not extract it
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    """A two-layer Llama saved in float32 with SmolLM2's tokenizer (one llama.cpp's converter knows)."""
    pytest.importorskip("llama_cpp")
    _converter_or_skip()
    from trustslm.testing.tiny_models import build_tiny_model_with_tokenizer

    try:
        from trustslm.models.demo import locate_demo_gguf

        gguf = locate_demo_gguf()
    except Exception as exc:  # pragma: no cover
        pytest.skip(f"demo GGUF unavailable: {exc}")
    return build_tiny_model_with_tokenizer(tmp_path_factory.mktemp("tiny") / "hf", gguf)


@pytest.fixture(scope="module")
def tiny_gguf(tiny_hf, tmp_path_factory):
    from trustslm.compress.convert import hf_to_gguf

    return hf_to_gguf(tiny_hf, tmp_path_factory.mktemp("gguf") / "ref.gguf")


def test_the_converter_writes_float32_and_the_quantiser_the_type_asked(tiny_gguf, tmp_path):
    from trustslm.compress.quantize import quantize_gguf
    from trustslm.models.gguf_info import describe_gguf, tokenizer_fingerprint

    ref = describe_gguf(tiny_gguf)
    assert ref.file_type == "F32" and ref.bits_per_weight == 32.0
    q = describe_gguf(quantize_gguf(tiny_gguf, tmp_path / "q8.gguf", "q8_0"))
    assert q.file_type == "Q8_0" and q.tensor_types["attn_q"] == {"Q8_0": 2}
    assert q.tensor_types["attn_norm"] == {"F32": 2}  # norms stay float32
    assert q.parameters == ref.parameters and 8.0 < q.bits_per_weight < 9.0  # 34 bytes per 32 weights, plus norms
    assert tokenizer_fingerprint(tmp_path / "q8.gguf") == tokenizer_fingerprint(tiny_gguf)


def test_pruning_zeroes_the_smallest_weights_of_each_block_linear_layer_only(tiny_gguf, tmp_path):
    import gguf

    from trustslm.compress.prune import PRUNED_CLASSES, prune_gguf

    stats = prune_gguf(tiny_gguf, tmp_path / "p.gguf", 0.5)
    assert stats["zero_share"] == pytest.approx(0.5, abs=1e-3)
    before = {t.name: np.array(t.data) for t in gguf.GGUFReader(str(tiny_gguf)).tensors}
    for t in gguf.GGUFReader(str(tmp_path / "p.gguf")).tensors:
        old, new = before[t.name], np.array(t.data)
        cls = t.name.split(".")[2] if t.name.startswith("blk.") else t.name.split(".")[0]
        if cls in PRUNED_CLASSES:
            kept = new != 0
            assert kept.mean() == pytest.approx(0.5, abs=1e-3)
            assert np.array_equal(new[kept], old[kept])  # the kept weights are untouched
            assert np.abs(old[~kept]).max() <= np.abs(old[kept]).min()  # the removed ones are the smallest
        else:
            assert np.array_equal(new, old)


def _variant_files(tiny_gguf: Path, where: Path) -> tuple[Path, Path, Path]:
    """The same weights re-saved (another name in the metadata, so another file hash); one layer's
    weights perturbed; and a file whose tokenizer differs."""
    import gguf

    from trustslm.compress.gguf_rewrite import rewrite_gguf

    reader = gguf.GGUFReader(str(tiny_gguf))
    same = rewrite_gguf(reader, where / "same.gguf", metadata={"general.name": "re-saved copy"})
    t = next(t for t in reader.tensors if t.name == "blk.0.ffn_down.weight")
    noise = np.random.default_rng(0).normal(0, 4 * float(np.std(t.data)), t.data.shape)
    perturbed = rewrite_gguf(reader, where / "perturbed.gguf", tensors={t.name: (t.data + noise).astype(t.data.dtype)})
    other_tok = rewrite_gguf(reader, where / "other-tokenizer.gguf", metadata={"tokenizer.ggml.pre": "gpt-2"})
    return same, perturbed, other_tok


#: One probe of each family, on few items.
FAMILIES = ["robustness.advglue", "privacy.pii_leakage", "fairness.stereotype_pairs", "toxicity.continuation",
            "truthfulness.truthfulqa_mc"]


@pytest.mark.slow
def test_variants_flag_a_perturbed_layer_on_every_family_and_not_the_same_weights(tiny_hf, tiny_gguf, tmp_path):
    same, perturbed, other_tok = _variant_files(tiny_gguf, tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text("metrics:\n  truthfulness.truthfulqa_mc.mc1: {max: -1}\n"
                      "regressions:\n  dimensions: {fairness: 0, truthfulness: 0}\n", encoding="utf-8")
    out = tmp_path / "v"
    proc = run_cli("variants", str(tiny_hf), "--quant", "Q8_0", "--prune", "0.5", "--variant", f"same={same}",
                   "--variant", f"perturbed={perturbed}", "--probes", ",".join(FAMILIES), "--limit", "4", "--quick",
                   "--policy", str(policy), "--junit", str(tmp_path / "gate.xml"), "--out", str(out), "--no-progress")
    assert proc.returncode == 1, proc.stderr[-2000:]  # the threshold rule fails every variant
    run = json.loads((out / "variants.json").read_text())
    by = {v["name"]: v for v in run["variants"]}
    assert list(by) == ["Q8_0", "pruned-50", "same", "perturbed"]
    assert run["reference"]["quantisation"]["file_type"] == "F32"
    assert "convert_hf_to_gguf" in run["reference"]["how"]
    assert by["Q8_0"]["quantisation"]["file_type"] == "Q8_0" and by["Q8_0"]["quantisation"]["bits_per_weight"] < 9
    assert all(v["status"] == "ok" for v in by.values())
    # the same weights: nothing changed on any probe, every score equal, no flips
    assert by["same"]["flagged_probes"] == []
    for o in by["same"]["outcomes"]:
        assert o["compared"] and o["changed_units"] == 0 and o["changed_samples"] == 0, o
    for s in by["same"]["scores"] + by["same"]["metric_changes"]:
        assert s["difference"] in (None, 0.0), s
    assert {c["target"] for c in by["same"]["metric_changes"]} >= {"fairness.stereotype_pairs.pct_stereotype",
                                                                   "truthfulness.truthfulqa_mc.mc2"}
    # one layer perturbed: flagged on every probe, so every family
    assert sorted(by["perturbed"]["flagged_probes"]) == sorted(FAMILIES)
    # the gate: one suite per variant; the same weights pass the regression rules and fail the threshold
    gate = {r["rule"]: r for r in by["same"]["gate"]["rules"]}
    assert gate["regression fairness tolerance 0"]["passed"] and not gate["metric truthfulness.truthfulqa_mc.mc1 max -1"]["passed"]
    suites = ET.parse(tmp_path / "gate.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == [f"trustslm gate: {n}" for n in by]
    sarif = json.loads((out / "gate.sarif").read_text())
    assert [r["properties"]["variant"] for r in sarif["runs"]] == list(by)
    # the files a user opens
    html = (out / "variants.html").read_text()
    assert html.count("<svg") == 7  # six score panels and the flip rates
    md = (out / "variants.md").read_text()
    assert "| Q8\\_0 | 8." in md and "perturbed" in md
    assert (out / "reports" / "reference" / "report.json").is_file()
    # a variant whose tokenizer differs from the reference's is refused before anything is audited
    proc = run_cli("variants", str(tiny_gguf), "--quant", "none", "--variant", f"odd={other_tok}",
                   "--out", str(tmp_path / "v2"), "--no-progress")
    assert_one_line_error(proc, 2, "its tokenizer differs from the reference's")
    assert not (tmp_path / "v2").exists()  # nothing half-made is left behind


def test_an_architecture_the_converter_does_not_register_is_named(tiny_hf, tmp_path):
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(tiny_hf, odd)
    config = json.loads((odd / "config.json").read_text())
    config["architectures"] = ["FrobnicatorForCausalLM"]
    (odd / "config.json").write_text(json.dumps(config))
    proc = run_cli("variants", str(odd), "--quant", "Q8_0", "--out", str(tmp_path / "v"), "--no-progress")
    assert_one_line_error(proc, 2, "can't read FrobnicatorForCausalLM models")


@pytest.mark.slow
def test_the_demo_model_is_dequantised_into_its_reference_and_audited_as_shipped(tmp_path):
    pytest.importorskip("llama_cpp")
    import trustslm

    run = trustslm.variants("smollm2", out=tmp_path / "v", quant=["Q8_0"], probes=["fairness.stereotype_pairs"],
                            limit=8, progress=False)
    assert run.reference.quantisation.file_type == "F32"
    assert "dequantised to F32" in run.reference.how
    names = [v.name for v in run.variants]
    assert names == ["source-Q4_1", "Q8_0"]
    source = run.variants[0]
    assert source.quantisation.file_type == "Q4_1" and 5 < source.quantisation.bits_per_weight < 6
    assert all(v.status == "ok" and v.outcomes[0].compared for v in run.variants)
    assert any("dequantised to F32" in n for n in run.notes)


def test_flipped_items_keep_their_labels_as_plain_values():
    import pandas as pd

    from trustslm.gate.flips import _labels

    row = pd.DataFrame({"id": ["wb-1"], "type": np.array([2], dtype=np.int64), "correct": [1.0],
                        "flag": [True]}).iloc[0]
    labels = _labels(row)
    assert labels == {"id": "wb-1", "type": 2} and type(labels["type"]) is int
    json.dumps(labels)
