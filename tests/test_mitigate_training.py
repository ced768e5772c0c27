"""Training-time mitigations of fairness and robustness: counterfactual data augmentation
(``counterfactual-augmentation``) and TextAttack adversarial augmentation
(``adversarial-augmentation``). Unit tests of their transforms, and for each one end-to-end
check on a tiny GPT-2: fine-tuned plainly on synthetic data that induces the problem, then with
the mitigation, both audited with the same probe and options; the targeted metric must be
significantly better (``trustslm.compare``'s paired bootstrap).

The two scenarios (``trustslm.testing.scenarios``) are also run by
``bench/mitigation_scenarios.py`` and ``notebooks/mitigation.ipynb``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from trustslm.core.errors import BadInputError
from trustslm.mitigations.fairness import CounterfactualAugmentation, read_pairs
from trustslm.mitigations.robustness import AdversarialAugmentation
from trustslm.robustness.textattack_env import unavailable
from trustslm.testing.scenarios import cda_scenario, run_scenario, typo_scenario

needs_textattack = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))

# --------------------------------------------------------------------------- scenarios


def run_one(scenario, root: Path):
    """Fine-tune plainly, then ``trustslm.mitigate`` with the scenario's mitigation; (before
    report, after report, step record, target row, run)."""
    import trustslm

    (name,) = scenario.mitigations
    run = run_scenario(scenario, root, qa_limit=40)[name]
    rows = [row for row in run.targets if row["metric"] == scenario.targets[name]]
    assert len(rows) == 1, run.targets
    assert [u.name for u in run.utility] == ["perplexity", "qa_accuracy"]  # the utility cost is measured
    return trustslm.load_report(run.before_report), trustslm.load_report(run.after_report), run.steps[0], rows[0], run


@pytest.fixture
def one_thread():
    """A tiny model trains ~10x faster on one thread than on two contended ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- counterfactual augmentation


@pytest.mark.parametrize("text, expected", [
    ("He gave her his book.", "She gave him her book."),
    ("She told him that her mother was a nurse.", "He told her that his father was a nurse."),
    ("HIS car is red; the bike is his.", "HER car is red; the bike is hers."),
    ("Hers is better than his own.", "His is better than her own."),
    ("I saw her", "I saw him"),
    ("The King's son met Mrs. Smith and her daughters.", "The Queen's daughter met Mr. Smith and his sons."),
    ("My grandfather's nephew is a waiter, he said.", "My grandmother's niece is a waitress, she said."),
    ("Herbert the shepherd hems a theme.", "Herbert the shepherd hems a theme."),  # no part-word swaps
    ("Men and WOMEN", "Women and MEN"),
])
def test_cda_swaps_hand_computed(text, expected):
    assert CounterfactualAugmentation().swapper.swap(text) == expected


def test_cda_append_adds_one_counterfactual_per_text_with_terms():
    texts = ["He is a doctor.", "The cat sat.", "Her brother and his wife came."]
    new, details = CounterfactualAugmentation().transform(texts)
    assert new == texts + ["She is a doctor.", "His sister and her husband came."]
    assert details["texts_with_terms"] == 2 and details["texts_added"] == 2 and details["swaps"] == 5
    assert details["swaps_per_pair"] == {"he/she": 1, "his/her": 2, "brother/sister": 1, "husband/wife": 1}
    assert CounterfactualAugmentation().did(details) == "added gender-swapped copies of 2 of 3 texts (5 word swaps)"


def test_cda_replace_substitutes_seeded():
    texts = [f"He wrote letter {i}." for i in range(40)] + ["No terms here."]
    new, details = CounterfactualAugmentation({"mode": "replace", "probability": 1.0}).transform(texts)
    assert new == [f"She wrote letter {i}." for i in range(40)] + ["No terms here."]
    assert details["texts_replaced"] == 40 and details["texts_added"] == 0
    half = CounterfactualAugmentation({"mode": "replace", "seed": 3})
    first, d1 = half.transform(texts)
    assert half.transform(texts)[0] == first and len(first) == len(texts)
    replaced = sum(t.startswith("She") for t in first)
    assert replaced == d1["texts_replaced"] and 8 < replaced < 32 and d1["swaps"] == replaced
    assert CounterfactualAugmentation({"mode": "replace", "seed": 4}).transform(texts)[0] != first


def test_cda_user_pair_files(tmp_path):
    txt = tmp_path / "pairs.txt"
    txt.write_text("# names\njohn mary\nActor actress\n", encoding="utf-8")
    cda = CounterfactualAugmentation({"pairs": str(txt)})
    assert cda.swapper.swap("John, the actor, and MARY he met.") == "Mary, the actress, and JOHN he met."
    js = tmp_path / "pairs.json"
    js.write_text(json.dumps([["king", "queen"]]), encoding="utf-8")
    assert read_pairs(js) == [("king", "queen")]
    assert len(read_pairs()) >= 40  # the project's list


@pytest.mark.parametrize("content, suffix, message", [
    ("he\n", ".txt", "pair 1 is not two different single words"),
    ("he he\n", ".txt", "pair 1 is not two different single words"),
    ('{"pairs": [["he", "two words"]]}', ".json", "pair 1 is not two different single words"),
    ('{"pairs": 3}', ".json", "expected"),
    ("{", ".json", "not JSON"),
    ("# nothing\n", ".txt", "no word pairs"),
])
def test_cda_bad_pair_files(tmp_path, content, suffix, message):
    path = tmp_path / f"p{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInputError, match=message):
        CounterfactualAugmentation({"pairs": str(path)})


def test_cda_bad_options(tmp_path):
    with pytest.raises(BadInputError, match="unknown option"):
        CounterfactualAugmentation({"swap": True})
    with pytest.raises(BadInputError, match="mode"):
        CounterfactualAugmentation({"mode": "both"})
    with pytest.raises(BadInputError, match="can't read the word-pair file"):
        CounterfactualAugmentation({"pairs": str(tmp_path / "missing.txt")})


def test_cda_reduces_stereotype_preference_end_to_end(tmp_path, one_thread):
    scenario = cda_scenario(tmp_path / "cda")
    before, after, record, change, _ = run_one(scenario, tmp_path)
    assert record.name == "counterfactual-augmentation" and record.details["texts_added"] == 400
    assert before.results[0].metric("pct_stereotype").value >= 0.8  # the plain model learned the stereotype
    assert change["verdict"] == "better", change


# --------------------------------------------------------------------------- adversarial augmentation

QA = ["Question: What colour is the lamp?\nAnswer: pink", "Question: Which river flows through the old city?\nAnswer: Avon"]


@needs_textattack
def test_augmentation_is_seeded_and_counts_copies():
    aug = AdversarialAugmentation({"copies": 3, "seed": 7})
    texts = ["The quick brown fox jumps over the lazy dog near the river bank.", "of the and", *QA]
    state = random.getstate()
    new, details = aug.transform(texts)
    assert random.getstate() == state  # the global generators are left as they were
    assert new[:4] == texts
    assert details["copies_added"] == len(new) - 4 == 9  # 3 each, none for the all-stopword text
    assert details["texts_perturbed"] == 3
    assert all(c != t for t, copies in zip(texts, aug.perturb(texts)) for c in copies)
    assert AdversarialAugmentation({"copies": 3, "seed": 7}).transform(texts)[0] == new
    assert AdversarialAugmentation({"copies": 3, "seed": 8}).transform(texts)[0] != new
    assert aug.did(details) == ("added 9 TextAttack-perturbed copies of 3 of 4 texts "
                                "(char_swap, char_delete, char_insert, qwerty)")


@needs_textattack
def test_augmentation_keeps_text_after_marker_and_changes_few_words():
    aug = AdversarialAugmentation({"copies": 5, "perturb_until": "\nAnswer:", "seed": 1})
    for text, copies in zip(QA, aug.perturb(QA)):
        head, _, tail = text.partition("\nAnswer:")
        assert len(copies) == 5
        for c in copies:
            c_head, _, c_tail = c.partition("\nAnswer:")
            assert c_tail == tail and c_head != head
            changed = [a for a, b in zip(head.split(), c_head.split()) if a != b]
            assert len(c_head.split()) == len(head.split()) and len(changed) == 1  # 10% of words, at least one
    whole = AdversarialAugmentation({"copies": 1, "pct_words_to_swap": 1.0, "seed": 1}).perturb(QA[:1])[0][0]
    assert "pink" not in whole.split("\n")[1]  # without the marker the answer is perturbed too


@needs_textattack
def test_augmentation_seed_defaults_to_training_seed():
    aug = AdversarialAugmentation()
    aug.train_seed = 5
    assert aug.transform(QA)[0] == AdversarialAugmentation({"seed": 5}).transform(QA)[0]
    assert aug.transform(QA)[1]["seed"] == 5


def test_train_mitigated_gives_the_fine_tuning_seed_to_the_transforms(monkeypatch, tmp_path):
    """trustslm mitigate retrains through train_mitigated: a randomised transform without its own
    seed takes the seed of the fine-tuning run it belongs to."""
    from types import SimpleNamespace

    import trustslm.workflows.retrain as finetune_module
    from trustslm.workflows.retrain import train_mitigated

    texts = [f"He wrote letter {i}." for i in range(40)]
    seen = {}

    def fake_finetune(base, data, *, out, progress, transform, **config):
        seen["texts"], seen["details"] = transform(list(texts))
        return SimpleNamespace(epsilon=None, delta=None, steps=1, data={}, final_train_loss=0.0, wall_time_s=0.0)

    monkeypatch.setattr(finetune_module, "finetune", fake_finetune)
    cda = CounterfactualAugmentation({"mode": "replace"})
    train_mitigated([cda], "base", tmp_path / "data.txt", {"seed": 3}, tmp_path / "out", progress=False)
    assert cda.train_seed == 3
    assert seen["texts"] == CounterfactualAugmentation({"mode": "replace", "seed": 3}).transform(texts)[0]
    assert seen["texts"] != CounterfactualAugmentation({"mode": "replace", "seed": 0}).transform(texts)[0]


def test_augmentation_bad_options():
    with pytest.raises(BadInputError, match="copies"):
        AdversarialAugmentation({"copies": 0})
    with pytest.raises(BadInputError, match="kinds"):
        AdversarialAugmentation({"kinds": ["homoglyph"]})
    with pytest.raises(BadInputError, match="pct_words_to_swap"):
        AdversarialAugmentation({"pct_words_to_swap": 0})


@needs_textattack
def test_adversarial_augmentation_reduces_answer_changes_end_to_end(tmp_path, one_thread):
    scenario = typo_scenario(tmp_path / "typos")
    before, after, record, change, _ = run_one(scenario, tmp_path)
    assert record.details["copies_added"] == 60
    plain = before.results[0]
    # the plain model knows the facts but most typos change its answer
    assert plain.metric("accuracy_clean").value >= 0.9 and plain.metric("answer_change_rate").value > 0.5
    assert change["verdict"] == "better", change
