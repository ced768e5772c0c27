"""The mitigation framework: plugins, wrapper folders, `trustslm mitigate` end to end, the
decoding-time mitigations of toxicity and truthfulness, and mitigations that do not apply."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import PRIVACY_OPTIONS, assert_one_line_error, run_cli
from tolerances import TINY_LOGITS, float32_logprob

import trustslm
from trustslm.core.errors import BadInputError, ModelFormatError
from trustslm.core.registry import Registry
from trustslm.core.types import DIMENSIONS
from trustslm.mitigations.abstention import calibrated_threshold
from trustslm.mitigations.base import NotApplicableError
from trustslm.models.base import GenerateRequest, LoglikelihoodRequest
from trustslm.workflows.load import load_model

ALL = {"dp-finetune", "pii-scrub", "dedup", "toxic-token-penalty", "safety-prompt", "counterfactual-augmentation",
       "self-debias", "adversarial-augmentation", "abstention"}
DIMENSION_OF = {"privacy": "privacy", "toxicity": "toxicity", "fairness": "fairness", "robustness": "robustness",
                "truthfulness": "truthfulness"}


def test_every_mitigation_is_a_plugin_with_a_dimension_and_installed_targets():
    rows = {r["name"]: r for r in trustslm.list_mitigations()}
    assert set(rows) == ALL
    probes = set(Registry().specs)
    covered = set()
    for row in rows.values():
        assert row["dimension"] in DIMENSIONS and row["kind"] in ("training", "decoding") and row["summary"]
        assert row["targets"] and set(row["targets"]) <= probes, row
        covered.add(row["dimension"])
    assert covered == set(DIMENSIONS)  # one mitigation at least per dimension


def test_calibrated_threshold_hand_computed():
    # isotonic fit of right (1) / wrong (0) on confidence: [0, 0, 1, 1, 1] -> answer from 0.3 up
    assert calibrated_threshold([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 1, 1, 1], 0.5) == 0.3
    # pooled violators: (0.2: 1, 0.3: 0) average to 0.5, which reaches the target 0.5
    assert calibrated_threshold([0.1, 0.2, 0.3, 0.9], [0, 1, 0, 1], 0.5) == 0.2
    assert calibrated_threshold([0.1, 0.2, 0.3, 0.9], [0, 1, 0, 1], 0.6) == 0.9
    assert calibrated_threshold([0.4, 0.6], [0, 0], 0.5) > 1  # never right: never answer
    assert calibrated_threshold([float("nan")], [0], 0.5) > 1


def test_abstention_on_mock_end_to_end(tmp_path):
    out = tmp_path / "run"
    run = trustslm.mitigate("mock", "abstention", out=out, progress=False, utility_qa_limit=30)
    # the mock never answers right, so the calibrated threshold is above every confidence
    assert run.steps[0].name == "abstention" and "calibrated on 60 questions" in run.steps[0].did
    target = {t["metric"]: t for t in run.targets}
    halluc = target["truthfulness.closed_book_qa.hallucination_rate"]
    assert halluc["before"] > 0.9 and halluc["after"] == 0.0 and halluc["verdict"] == "better"
    assert {u.name for u in run.utility} == {"perplexity", "qa_accuracy"}
    for name in ("mitigation.md", "mitigation_run.json", "diff.json", "before/report.json", "after/report.json",
                 "model/mitigation.json"):
        assert (out / name).is_file(), name
    after = trustslm.load_report(out / "after")
    assert after.model.mitigations[0]["name"] == "abstention"
    assert after.model.hash != trustslm.load_report(out / "before").model.hash
    assert "| truthfulness.closed_book_qa.hallucination_rate | abstention |" in (out / "mitigation.md").read_text()
    # the saved wrapper loads as the same model
    wrapped = load_model(str(out / "model"))
    assert wrapped.info().hash == after.model.hash
    answer = wrapped.generate([GenerateRequest("Question: What is the capital of France?\nAnswer:", stop=("\n",))])
    assert answer[0].text == "I don't know."


@pytest.mark.parametrize("name", ["safety-prompt", "toxic-token-penalty", "self-debias"])
def test_a_mitigation_that_does_not_apply_says_so_and_changes_nothing(tmp_path, name):
    out = tmp_path / "run"
    proc = run_cli("mitigate", "mock", "--with", name, "--out", str(out), "--no-progress")
    assert_one_line_error(proc, 2, contains=f"{name} does not apply to mock")
    assert "nothing was changed" in proc.stderr
    assert not out.exists()


def test_training_mitigation_on_a_model_without_training_data_is_refused(tmp_path, tiny_gpt2):
    with pytest.raises(BadInputError, match="need --data"):
        trustslm.mitigate(str(tiny_gpt2), ["pii-scrub"], out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(NotApplicableError, match="can't be fine-tuned"):
        trustslm.mitigate("mock", ["dedup"], out=tmp_path / "y", progress=False)


def test_bad_names_and_options_are_one_line_errors(tmp_path):
    assert_one_line_error(run_cli("mitigate", "mock", "--with", "abstension", "--out", str(tmp_path / "a")), 2,
                          contains="did you mean abstention")
    assert_one_line_error(run_cli("mitigate", "mock", "--with", "abstention", "--set", "abstention.bogus=1",
                                  "--out", str(tmp_path / "b")), 2, contains="bogus: unknown option")
    assert_one_line_error(run_cli("mitigate", "mock", "--with", "abstention", "--set", "dedup.threshold=0.5",
                                  "--out", str(tmp_path / "c")), 2, contains="not chosen")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("x")
    assert_one_line_error(run_cli("mitigate", "mock", "--with", "abstention", "--out", str(tmp_path / "d")), 2,
                          contains="not empty")
    assert_one_line_error(run_cli("mitigate", "mock", "--with", "abstention", "--qa-limit", "-1",
                                  "--out", str(tmp_path / "e")), 2, contains="--qa-limit must be at least 0")
    assert not any(p.name.startswith(("a", "b", "c", "e")) for p in tmp_path.iterdir())


def test_qa_limit_zero_measures_perplexity_only_and_says_so(tmp_path):
    run = trustslm.mitigate("mock", "abstention", out=tmp_path / "run", progress=False, utility_qa_limit=0)
    assert [u.name for u in run.utility] == ["perplexity"]
    assert any("QA accuracy was not measured" in n for n in run.notes)
    with pytest.raises(BadInputError, match="QA limit"):
        trustslm.mitigate("mock", "abstention", out=tmp_path / "bad", progress=False, utility_qa_limit=-1)
    assert not (tmp_path / "bad").exists()


def _words(folder: Path) -> tuple[list[str], str]:
    """Two words the tiny tokenizer writes as one token (with a leading space), and one it
    splits into several."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    single = []
    for i in range(len(tok)):
        text = tok.decode([i])
        word = text.strip()
        if text.startswith(" ") and word.isalpha() and len(word) > 2 and word.islower() and word not in single:
            if len(tok.encode(" " + word, add_special_tokens=False)) == 1:
                single.append(word)
    multi = "zebrafish"
    assert len(single) >= 2 and len(tok.encode(" " + multi, add_special_tokens=False)) > 1, single
    return single[:2], multi


def test_token_penalty_matches_transformers_sequence_bias(tmp_path, tiny_gpt2):
    """The scored log-likelihood under the penalty equals, token by token, transformers'
    SequenceBiasLogitsProcessor applied to the plain model's logits (the generation path)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, SequenceBiasLogitsProcessor

    from trustslm.mitigations.toxicity import ToxicTokenPenalty

    single, multi = _words(tiny_gpt2)
    (tmp_path / "words.txt").write_text("# test list\n" + "\n".join([*single, multi]) + "\n")
    plain = load_model(str(tiny_gpt2))
    mitigation = ToxicTokenPenalty({"words": str(tmp_path / "words.txt"), "penalty": 3.0})
    resolved, did = mitigation.prepare(plain)
    assert resolved["words"] == 3 and any(len(s) > 1 for s in resolved["sequences"]) and "penalise 3 words" in did
    wrapped = mitigation.wrap(load_model(str(tiny_gpt2)), resolved)

    tok = AutoTokenizer.from_pretrained(str(tiny_gpt2))
    hf = AutoModelForCausalLM.from_pretrained(str(tiny_gpt2)).eval()
    reference = SequenceBiasLogitsProcessor([[s, -3.0] for s in resolved["sequences"]])
    text = f"the {single[0]} and {multi} then {single[1]} {multi}"
    ids = [tok.bos_token_id] + tok.encode(text, add_special_tokens=False)
    with torch.no_grad():
        logits = hf(torch.tensor([ids])).logits[0]
    expected = 0.0
    for t in range(len(ids) - 1):
        scores = reference(torch.tensor([ids[: t + 1]]), logits[t : t + 1].clone())
        expected += torch.log_softmax(scores[0], -1)[ids[t + 1]].item()
    got = wrapped.loglikelihood([LoglikelihoodRequest("", text)])[0]
    tol = float32_logprob(len(ids) - 1, expected, logits=TINY_LOGITS + 3.0)  # penalised logits move by 3
    assert got.n_tokens == len(ids) - 1 and got.logprob == pytest.approx(expected, abs=tol)
    assert got.logprob < plain.loglikelihood([LoglikelihoodRequest("", text)])[0].logprob - 3.0

    banned = ToxicTokenPenalty({"words": str(tmp_path / "words.txt"), "penalty": 100.0}).wrap(
        load_model(str(tiny_gpt2)), resolved)
    prompts = [GenerateRequest(p, max_new_tokens=12, temperature=1.0, seed=s) for p in ("the", "a") for s in range(4)]
    unigrams = {s[0] for s in resolved["sequences"] if len(s) == 1}
    for r in banned.generate(prompts):
        assert not set(tok.encode(r.text, add_special_tokens=False)) & unigrams
    assert banned.info().hash != plain.info().hash and banned.info().mitigations[0]["name"] == "toxic-token-penalty"


def test_scorer_driven_penalty_flags_profanity_in_the_demo_vocabulary(smollm2):
    from trustslm.mitigations.toxicity import ToxicTokenPenalty

    mitigation = ToxicTokenPenalty({})
    words, source, checked = mitigation.flagged_words(smollm2.tokenizer)
    assert "profanity-check" in source and 50 < len(words) < 5000 and checked > 10_000
    assert {"fuck", "shit", "idiot"} <= set(words) and not {"the", "house", "water"} & set(words)
    resolved, did = mitigation.prepare(smollm2)
    assert "gay" in resolved["identity_terms_kept"]  # flagged by the scorer, kept by default
    fuck = smollm2.tokenizer.encode(" fuck", add_special_tokens=False)
    assert len(fuck) > 1 and fuck in resolved["sequences"]  # a word the tokenizer splits is still penalised


def test_safety_prompt_adds_a_system_prompt_to_chat_requests_only(tiny_llama):
    from trustslm.mitigations.toxicity import DEFAULT_SAFETY_PROMPT, SafetyPrompt

    adapter = load_model(str(tiny_llama))
    wrapped = SafetyPrompt({}).wrap(adapter, {})
    seen = []
    adapter.generate = lambda requests, on_batch=None: seen.extend(requests) or []
    wrapped.generate([GenerateRequest("hi", chat=True), GenerateRequest("hi"),
                      GenerateRequest("hi", chat=True, system_prompt="Be brief.")])
    assert [r.system_prompt for r in seen] == [DEFAULT_SAFETY_PROMPT, None, "Be brief."]
    assert SafetyPrompt({}).applicable(load_model(str(tiny_llama))) is None


def test_wrapper_folder_is_checked_before_use(tmp_path, tiny_gpt2):
    from trustslm.mitigations.wrapped import write_wrapper

    base_hash = load_model(str(tiny_gpt2)).info().hash
    folder = tmp_path / "w"
    write_wrapper(folder, base=str(tiny_gpt2), base_hash=base_hash,
                  steps=[{"name": "safety-prompt", "options": {}, "resolved": {}}])
    assert load_model(str(folder)).info().mitigations == [{"name": "safety-prompt", "options": json.loads(
        json.dumps(load_model(str(folder)).step["options"]))}]
    write_wrapper(folder, base=str(tiny_gpt2), base_hash="0" * 64, steps=[])
    with pytest.raises(ModelFormatError, match="has changed"):
        load_model(str(folder))
    write_wrapper(folder, base=str(tiny_gpt2), base_hash=base_hash, steps=[{"name": "dedup", "options": {}}])
    with pytest.raises(ModelFormatError, match="not a decoding-time mitigation"):
        load_model(str(folder))
    write_wrapper(folder, base=str(folder), base_hash=base_hash, steps=[])
    with pytest.raises(ModelFormatError, match="itself a mitigation wrapper"):
        load_model(str(folder))
    (folder / "mitigation.json").write_text('{"format": "trustslm-mitigation/1", "steps": "x"}')
    proc = run_cli("audit", str(folder), "--probes", "fairness.stereotype_pairs", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, 2, contains="not a trustslm mitigation file")


def test_dp_finetune_through_mitigate_retrains_from_the_record(tmp_path, finetuned_pair):
    plain = finetuned_pair["root"] / "plain"
    run = trustslm.mitigate(str(plain), ["dp-finetune"], out=tmp_path / "dp", progress=False,
                            probes=["privacy.membership_inference", "privacy.canary_exposure"],
                            probe_options=PRIVACY_OPTIONS, utility_qa_limit=20)
    step = run.steps[0]
    assert step.kind == "training" and step.details["training"]["epsilon"] <= 8.0 + 1e-6
    record = json.loads((tmp_path / "dp" / "model" / "training_record.json").read_text())
    assert record["dp"] and record["base_model"]["hash"] == finetuned_pair["plain"].base_model["hash"]
    # the same canaries and the same held-out texts: the privacy ground truth is shared
    assert (tmp_path / "dp" / "model" / "canaries.jsonl").read_text() == (plain / "canaries.jsonl").read_text()
    assert (tmp_path / "dp" / "model" / "non_members.txt").read_text() == (plain / "non_members.txt").read_text()
    verdicts = {t["metric"]: t["verdict"] for t in run.targets}
    assert verdicts["privacy.canary_exposure.exposure_bits"] == "better", run.targets
    ppl = next(u for u in run.utility if u.name == "perplexity")
    assert math.isfinite(ppl.before) and math.isfinite(ppl.after)
