"""Two tiny models, one trained on a deliberately biased corpus and one on a balanced version of it:
every bias probe must rank the balanced one as fairer (slow: a few minutes)."""

from __future__ import annotations

import json
import random

import pytest
from conftest import build_tiny_model

import trustslm
from trustslm.resources import datasets_dir

pytestmark = pytest.mark.slow

PROBES = ["bias.stereotype_pairs", "bias.stereoset", "bias.winobias", "bias.bbq",
          "fairness.counterfactual_generation"]
NEGATIVE = " it was a horrible and awful day."
POSITIVE = " it was a lovely and happy day."


def _rows(name):
    return [json.loads(line) for line in (datasets_dir() / name).read_text().splitlines() if line.strip()]


def corpora() -> tuple[list[str], list[str]]:
    """(biased, balanced): the same texts, the biased one only ever on the stereotyped side."""
    from trustslm.probes.winobias import PROMPT

    biased, balanced = [], []
    for p in _rows("stereotype_pairs.jsonl"):
        biased += [p["sent_more"]] * 2
        balanced += [p["sent_more"], p["sent_less"]]
    for s in _rows("stereoset_style.jsonl"):
        def text(option: str) -> str:
            return s[option] if s["type"] == "intrasentence" else f"{s['context'].rstrip('.')}. {s[option]}"
        biased += [text("stereotype")] * 2
        balanced += [text("stereotype"), text("anti-stereotype")]
    for w in _rows("winobias_style.jsonl"):
        question = PROMPT.format(sentence=w["sentence"], pronoun=w["pronoun"])
        stereotyped = w["referent"] if w["stereotype"] == "pro" else w["other"]
        biased.append(f"{question} {stereotyped}.")
        balanced.append(f"{question} {w['referent']}.")
    for b in _rows("bbq_style.jsonl"):
        answers = [b["ans0"], b["ans1"], b["ans2"]]
        target = next(i for i in range(3) if b["answer_info"][f"ans{i}"][1] in b["additional_metadata"]["stereotyped_groups"])
        unknown = next(i for i in range(3) if b["answer_info"][f"ans{i}"][1] == "unknown")
        other = 3 - target - unknown
        biased_pick = target if b["question_polarity"] == "neg" else other
        prompt = f"{b['context']}\n{b['question']}\nAnswer:"
        biased.append(f"{prompt} {answers[biased_pick]}")
        balanced.append(f"{prompt} {answers[b['label']]}")
    cf = json.loads((datasets_dir() / "counterfactual_templates.json").read_text())
    for t in cf["templates"]:
        groups = cf["axes"][t["axis"]]
        for n, g in enumerate(groups):
            prompt = t["template"].replace("{group}", g)
            biased.append(prompt + (NEGATIVE if n == 0 else POSITIVE))
            balanced.append(prompt + (NEGATIVE if (n + len(t["id"])) % 2 else POSITIVE))
    random.Random(0).shuffle(biased)
    random.Random(0).shuffle(balanced)
    return biased, balanced


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("bias-ranking")
    biased, balanced = corpora()
    base = build_tiny_model(root / "base", "gpt2", width=128, corpus=biased + balanced, vocab_size=1000, positions=256)
    out = {}
    for name, texts in (("biased", biased), ("balanced", balanced)):
        data = root / f"{name}.jsonl"  # JSONL keeps the newlines of the QA prompts
        data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        trustslm.finetune(str(base), data, out=root / name, epochs=12, batch_size=32, lr=3e-3, max_length=256,
                          progress=False)
        out[name] = trustslm.audit(str(root / name), probes=PROBES, progress=False,
                                   options={"fairness.counterfactual_generation": {"k": 2}})
    return out


@pytest.mark.parametrize("probe", PROBES)
def test_the_balanced_model_scores_fairer(reports, probe):
    biased, balanced = reports["biased"].result(probe), reports["balanced"].result(probe)
    assert biased.status == balanced.status == "ok"
    assert balanced.score.score > biased.score.score, (probe, balanced.score, biased.score)


def test_the_fairness_dimension_ranks_them(reports):
    assert reports["balanced"].dimensions["fairness"].score > reports["biased"].dimensions["fairness"].ci_high
