"""Tiny models, one trained on a deliberately biased corpus and one on a balanced version of it:
every bias probe must rank the balanced one as fairer (slow: a few minutes).

Each probe gets its own pair, trained on its own default data only: the answers of WinoBias, BBQ
and the generation templates depend on a word several tokens earlier (the pronoun, the context, the
group), which a 2-layer model learns only after many passes (measured on the generation templates:
no association after 36 epochs, a clear one after 60), while a shared corpus made every pair slow
and the outcome of one probe depend on the data of the others."""

from __future__ import annotations

import json
import random

import pytest
from conftest import build_tiny_model

import trustslm
from trustslm.core.resources import datasets_dir

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # trains ten models: outside the default run

NEGATIVE = " it was a horrible and awful day."
POSITIVE = " it was a lovely and happy day."


def _rows(name):
    return [json.loads(line) for line in (datasets_dir() / name).read_text().splitlines() if line.strip()]


def crows_corpora():
    """The same pairs: the biased corpus says only the more-stereotyping sentence."""
    biased, balanced = [], []
    for p in _rows("stereotype_pairs.jsonl"):
        biased += [p["sent_more"]] * 2
        balanced += [p["sent_more"], p["sent_less"]]
    return biased, balanced


def stereoset_corpora():
    biased, balanced = [], []
    for s in _rows("stereoset_style.jsonl"):
        def text(option: str) -> str:
            return s[option] if s["type"] == "intrasentence" else f"{s['context'].rstrip('.')}. {s[option]}"
        biased += [text("stereotype")] * 2
        balanced += [text("stereotype"), text("anti-stereotype")]
    return biased, balanced


def winobias_corpora():
    """The biased corpus resolves every pronoun to the occupation its gender stereotypes."""
    from trustslm.probes.winobias import PROMPT

    biased, balanced = [], []
    for w in _rows("winobias_style.jsonl"):
        question = PROMPT.format(sentence=w["sentence"], pronoun=w["pronoun"])
        stereotyped = w["referent"] if w["stereotype"] == "pro" else w["other"]
        biased.append(f"{question} {stereotyped}.")
        balanced.append(f"{question} {w['referent']}.")
    return biased, balanced


def bbq_corpora():
    """The biased corpus answers negative questions with the stereotyped group and the others with
    the other group, whatever the context says; the balanced one answers correctly."""
    biased, balanced = [], []
    for b in _rows("bbq_style.jsonl"):
        answers = [b["ans0"], b["ans1"], b["ans2"]]
        target = next(i for i in range(3) if b["answer_info"][f"ans{i}"][1] in b["additional_metadata"]["stereotyped_groups"])
        unknown = next(i for i in range(3) if b["answer_info"][f"ans{i}"][1] == "unknown")
        other = 3 - target - unknown
        biased_pick = target if b["question_polarity"] == "neg" else other
        prompt = f"{b['context']}\n{b['question']}\nAnswer:"
        biased.append(f"{prompt} {answers[biased_pick]}")
        balanced.append(f"{prompt} {answers[b['label']]}")
    return biased, balanced


def counterfactual_corpora():
    """The templates continued negatively for the first group of every axis only (biased), or for
    every group after exactly half of its axis's templates (balanced)."""
    cf = json.loads((datasets_dir() / "counterfactual_templates.json").read_text())
    biased, balanced = [], []
    for i, t in enumerate(cf["templates"]):
        for n, g in enumerate(cf["axes"][t["axis"]]):
            prompt = t["template"].replace("{group}", g)
            biased.append(prompt + (NEGATIVE if n == 0 else POSITIVE))
            balanced.append(prompt + (NEGATIVE if (n + i) % 2 else POSITIVE))
    return biased, balanced


CASES = {  # probe: (corpora, epochs)
    "fairness.stereotype_pairs": (crows_corpora, 12),
    "fairness.stereoset": (stereoset_corpora, 12),
    "fairness.winobias": (winobias_corpora, 60),
    "fairness.bbq": (bbq_corpora, 60),
    "fairness.counterfactual_generation": (counterfactual_corpora, 60),
}


def _train_and_audit(root, probe):
    corpora, epochs = CASES[probe]
    biased, balanced = corpora()
    base = build_tiny_model(root / "base", "gpt2", width=128, corpus=biased + balanced, vocab_size=1000, positions=256)
    out = {}
    for name, texts in (("biased", biased), ("balanced", balanced)):
        random.Random(0).shuffle(texts)
        data = root / f"{name}.jsonl"  # JSONL keeps the newlines of the QA prompts
        data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        trustslm.finetune(str(base), data, out=root / name, epochs=epochs, batch_size=32, lr=3e-3, max_length=256,
                          progress=False)
        out[name] = trustslm.audit(str(root / name), probes=[probe], progress=False,
                                   options={"fairness.counterfactual_generation": {"k": 2}})
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return {probe: _train_and_audit(tmp_path_factory.mktemp(probe), probe) for probe in CASES}


@pytest.mark.parametrize("probe", list(CASES))
def test_the_balanced_model_scores_fairer(reports, probe):
    biased, balanced = reports[probe]["biased"].result(probe), reports[probe]["balanced"].result(probe)
    assert biased.status == balanced.status == "ok"
    assert balanced.score.score > biased.score.ci_high, (probe, balanced.score, biased.score)


def test_the_generation_probe_finds_the_disfavoured_groups(reports):
    """The biased model's per-group table singles out the first group of every axis."""
    probe = "fairness.counterfactual_generation"
    cf = json.loads((datasets_dir() / "counterfactual_templates.json").read_text())
    rates = {m.group.removeprefix("group="): m.value for m in reports[probe]["biased"].result(probe).metrics
             if m.name == "negative_rate" and m.group}
    for axis, groups in cf["axes"].items():
        first = rates[f"{axis}:{groups[0]}"]
        assert all(first > rates[f"{axis}:{g}"] for g in groups[1:]), (axis, rates)
