"""trustslm finetune: memorisation without DP, much less with DP-SGD, measured by the privacy
probes against the ground truth the fine-tuning wrote (slow: about two minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

import trustslm
from trustslm.data.synthetic import support_notes

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def runs(finetuned_pair):
    return finetuned_pair


def _m(report, probe, name, group=None):
    return report.result(probe).metric(name, group).value


def test_without_dp_canaries_are_memorised_and_members_detectable(runs):
    rep = runs["reports"]["plain"]
    assert _m(rep, "privacy.canary_exposure", "relative_exposure") > 0.8                  # near the maximum
    assert _m(rep, "privacy.canary_exposure", "relative_exposure", "inserted=false") < 0.2  # the control
    assert _m(rep, "privacy.membership_inference", "max_auc") > 0.7


def test_dp_reduces_exposure_and_membership_signal_and_the_score_shows_it(runs):
    plain, private = runs["reports"]["plain"], runs["reports"]["dp"]
    assert _m(private, "privacy.canary_exposure", "relative_exposure") < \
        _m(plain, "privacy.canary_exposure", "relative_exposure") - 0.3
    assert _m(private, "privacy.membership_inference", "max_auc") < 0.65
    assert private.dimensions["privacy"].score > plain.dimensions["privacy"].ci_high


def test_training_record_holds_what_the_accountant_computed(runs):
    rec = runs["dp"]
    assert rec.dp and 0 < rec.epsilon <= 8.0 + 1e-6
    assert rec.delta == pytest.approx(min(1e-5, 1 / (10 * rec.data["training_sequences"])))
    assert rec.noise_multiplier > 0 and 0 < rec.sample_rate < 1 and rec.steps > 0
    assert rec.accountant == "prv" and rec.max_grad_norm == 1.0 and rec.grad_sample_mode in ("ghost", "hooks")
    saved = json.loads((runs["root"] / "dp" / "training_record.json").read_text())
    assert saved["epsilon"] == rec.epsilon and saved["canary_file"] == "canaries.jsonl"
    assert runs["plain"].epsilon is None and runs["plain"].noise_multiplier is None
    canaries = [json.loads(x) for x in (runs["root"] / "dp" / "canaries.jsonl").read_text().splitlines()]
    assert sum(c["purpose"] == "audit" for c in canaries) == 60
    assert sum(c["purpose"] == "exposure" and c["inserted"] for c in canaries) == 6


def test_one_run_audit_lower_bound_stays_below_the_claimed_epsilon(runs):
    rep = runs["reports"]["dp"]
    bound = _m(rep, "privacy.canary_exposure", "epsilon_lower_bound")
    claimed = _m(rep, "privacy.canary_exposure", "epsilon_accountant")
    assert claimed == pytest.approx(runs["dp"].epsilon)
    assert 0 <= bound < claimed


def test_the_audit_finds_the_reference_model_and_training_texts(runs):
    r = runs["reports"]["plain"].result("privacy.membership_inference")
    assert r.options["reference_model"] == str(Path(runs["base"]).resolve())
    assert any(m.name == "auc_reference" for m in r.metrics)
    assert runs["reports"]["plain"].result("privacy.extraction").status == "ok"


def test_lora_with_dp_on_a_llama(tmp_path, tiny_llama):
    data = tmp_path / "notes.txt"
    data.write_text("\n".join(support_notes(40, seed=2)) + "\n")
    rec = trustslm.finetune(str(tiny_llama), data, out=tmp_path / "lora", lora=True, lora_rank=4, dp=True,
                            target_epsilon=4.0, epochs=1, batch_size=8, progress=False)
    assert rec.lora is not None and rec.lora["rank"] == 4 and rec.epsilon <= 4.0 + 1e-6
    report = trustslm.audit(str(tmp_path / "lora"), probes=["fairness.stereotype_pairs"], limit=3, progress=False)
    assert report.results[0].status == "ok"


def test_bad_fine_tuning_inputs_are_one_line_errors(tmp_path, tiny_gpt2):
    ok = tmp_path / "ok.txt"
    ok.write_text("one text\nanother text\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [
        ((str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o1")), "data file not found"),
        ((str(empty), "--out", str(tmp_path / "o2")), "empty"),
        ((str(latin), "--out", str(tmp_path / "o3")), "not UTF-8"),
        ((str(ok), "--out", str(tmp_path / "o4"), "--dp", "--target-epsilon", "0"), "greater than 0"),
        ((str(ok), "--out", str(tmp_path / "o5"), "--dp", "--target-epsilon", "1", "--delta", "1.5"), "less than 1"),
        ((str(ok), "--out", str(tmp_path / "o6"), "--dp", "--target-epsilon", "1", "--delta", "0.6"), "below 1/N"),
        ((str(ok), "--out", str(tmp_path / "o7"), "--dp"), "needs --target-epsilon"),
        ((str(ok), "--out", str(tmp_path / "full")), "not empty"),
    ]
    for args, needle in cases:
        proc = run_cli("finetune", str(tiny_gpt2), *args)
        assert_one_line_error(proc, contains=needle)


def test_a_model_opacus_cannot_train_is_named():
    import torch

    from trustslm.core.errors import BadInputError
    from trustslm.train.dp import check_dp_compatible

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    with pytest.raises(BadInputError, match="BatchNorm"):
        check_dp_compatible(model)
