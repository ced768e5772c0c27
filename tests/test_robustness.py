"""Robustness: tasks posed as prompts, the classifier's probabilities, TextAttack offline, and the
attack summary checked against TextAttack's own Attacker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import SHARED_DATASETS, assert_one_line_error, run_cli
from tolerances import decimals

import trustslm
from trustslm.data.classification import load_classification
from trustslm.data.tasks import ADVGLUE_TASKS, TASKS
from trustslm.models.mock import ScriptedModel
from trustslm.robustness.classifier import label_requests, probabilities
from trustslm.robustness.textattack_env import unavailable

needs_textattack = pytest.mark.skipif(unavailable() is not None, reason=f"textattack: {unavailable()}")


def test_prompts_follow_the_harness_glue_templates():
    assert TASKS["sentiment"].prompt({"sentence": "a fine film"}) == \
        "a fine film\nQuestion: Is this sentence positive or negative?\nAnswer:"
    assert TASKS["entailment"].prompt(("It rained.", "The ground is wet.")) == \
        "It rained.\nQuestion: The ground is wet. True or False?\nAnswer:"
    # AdvGLUE/GLUE label orders: sst2 0=negative, mnli 0=entailment 1=neutral 2=contradiction, qnli/rte 0=entailment
    assert TASKS[ADVGLUE_TASKS["sst2"]].labels == (" negative", " positive")
    assert TASKS[ADVGLUE_TASKS["mnli"]].labels == (" True", " Neither", " False")
    assert TASKS[ADVGLUE_TASKS["qnli"]].labels[0] == " yes" and TASKS[ADVGLUE_TASKS["rte"]].labels[0] == " True"


def test_probabilities_are_the_softmax_of_label_loglikelihoods():
    class FakeResults(dict):
        def __getitem__(self, request):
            return type("R", (), {"logprob": {" negative": -2.0, " positive": -1.0}[request.continuation]
                                  - len(request.context) % 2})()

    got = probabilities(TASKS["sentiment"], ["ab", "abc"], lambda reqs: FakeResults())
    # "ab" prompt has even length: logprobs (-2, -1); "abc": (-3, -2); softmax is the same
    want = np.exp([-2.0, -1.0]) / np.exp([-2.0, -1.0]).sum()
    assert got == pytest.approx(np.stack([want, want])) and got.shape == (2, 2)
    assert [r.continuation for r in label_requests(TASKS["topic"], "x")] == [" world", " sports", " business", " science"]


def test_builtin_and_advglue_data(tmp_path):
    from trustslm.core.resources import datasets_dir

    items, fmt = load_classification(datasets_dir() / "robustness_classification.jsonl")
    assert fmt == "jsonl" and len(items) == 60
    assert {t: sum(i["task"] == t for i in items) for t in ("sentiment", "topic", "entailment")} == \
        {"sentiment": 20, "topic": 20, "entailment": 20}
    if (SHARED_DATASETS / "advglue").exists():
        adv, fmt = load_classification(SHARED_DATASETS / "advglue" / "dev.json")
        assert fmt == "advglue" and len(adv) == 148 + 78 + 121 + 162 + 148 + 81
        first = adv[0]
        assert first["source"] == "sst2" and first["task"] == "sentiment" and set(first["inputs"]) == {"sentence"}
        assert {i["task"] for i in adv if i["source"] == "mnli-mm"} == {"nli"}


@pytest.mark.parametrize("line, needle", [
    ('{"task": "sentiment", "sentence": "ok", "label": 2}', "label must be an integer from 0 to 1"),
    ('{"task": "colour", "sentence": "ok", "label": 0}', "unknown task 'colour'"),
    ('{"task": "entailment", "sentence1": "a", "label": 0}', "needs a non-empty 'sentence2'"),
])
def test_bad_classification_files_are_one_line_errors(tmp_path, line, needle):
    f = tmp_path / "bad.jsonl"
    f.write_text(line + "\n")
    proc = run_cli("audit", "mock", "--probes", "robustness.adversarial_classification", "--out", str(tmp_path / "o"),
                   "--set", f"robustness.adversarial_classification.data={f}")
    if unavailable() is None:
        assert_one_line_error(proc, contains=needle)
    else:  # without textattack the probe is skipped before its data is read
        assert proc.returncode == 0


def test_import_trustslm_does_not_import_textattack():
    code = ("import sys, trustslm; trustslm.list_probes(); import trustslm.probes.adversarial; "
            "print(any(m.split('.')[0] in ('textattack', 'flair', 'nltk') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_textattack_the_probe_is_skipped_saying_how_to_install(monkeypatch):
    import trustslm.robustness.textattack_env as env

    monkeypatch.setattr(env, "unavailable", lambda: "needs textattack: pip install --no-deps textattack==0.3.11")
    report = trustslm.audit("mock", probes=["robustness.adversarial_classification"], progress=False, limit=1)
    r = report.result("robustness.adversarial_classification")
    assert r.status == "skipped" and "pip install --no-deps textattack" in r.reason


@needs_textattack
def test_textattack_imports_offline_without_touching_the_users_folders(tmp_path):
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    code = ("import os, json; before = dict(os.environ); "
            "from trustslm.robustness.textattack_env import load_textattack; ta = load_textattack(); "
            "import sys, nltk; changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)); "
            "print(json.dumps({'changed': changed, 'flair_stand_in': hasattr(sys.modules['flair'], '__trustslm_stand_in__'), "
            "'stopwords': len(nltk.corpus.stopwords.words('english')), 'recipe': ta.attack_recipes.DeepWordBugGao2018.__name__}))")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "XDG_CACHE_HOME", "TA_CACHE_DIR", "NLTK_DATA")}
    env.update(HOME=str(home), TRUSTSLM_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["changed"] == [] and got["recipe"] == "DeepWordBugGao2018"
    assert got["stopwords"] > 100
    assert not (home / "nltk_data").exists() and not (home / ".cache" / "textattack").exists()
    assert (cache / "textattack" / "post_install_check_3").exists()


class BagOfWordsModel(ScriptedModel):
    """A classifier whose label log-likelihoods sum a hash-based weight of every word with the
    label: deterministic, cheap, and sensitive to typos (a changed word changes its weights)."""

    def _loglikelihood_batch(self, batch):
        from trustslm.models.base import LoglikelihoodResult
        from trustslm.models.mock import _stable_int

        self.calls["loglikelihood"] += len(batch)
        return [LoglikelihoodResult(logprob=-1.0 - sum(_stable_int(f"{w}|{r.continuation}") % 7 / 10
                                                        for w in r.context.split()), is_greedy=False, n_tokens=1)
                for r in batch]


@needs_textattack
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # TextAttack's own summary of a 1-example, skipped run
def test_attack_summary_agrees_with_textattacks_attacker(tmp_path):
    from trustslm.engine.execute import execute
    from trustslm.probes.base import Results
    from trustslm.robustness.attack import build_attack, example_of, example_seed
    from trustslm.robustness.textattack_env import load_textattack

    ta = load_textattack()  # never a bare `import textattack`: it would try NLTK downloads
    from textattack.metrics import AttackQueries, AttackSuccessRate, WordsPerturbed

    budget = 80
    model = BagOfWordsModel()
    report = trustslm.audit(model, probes=["robustness.adversarial_classification"], progress=False,
                            limit=3, out=tmp_path / "o",
                            options={"robustness.adversarial_classification": {"query_budget": budget}})
    res = report.result("robustness.adversarial_classification")
    assert res.status == "ok", res.reason
    samples = [json.loads(line) for line in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    statuses = {s["status"] for s in samples}
    assert {"successful", "failed", "skipped"} <= statuses  # a summary worth comparing


    def call(requests):
        return Results(execute(model, requests, identity="direct", progress=False)[0])

    from trustslm.core.resources import datasets_dir
    from trustslm.data.classification import load_classification
    from trustslm.probes.base import limit_per

    items = limit_per(load_classification(datasets_dir() / "robustness_classification.jsonl")[0], "task", 3)
    for recipe in ("deepwordbug", "pruthi"):
        results = []
        for item in items:
            fields = TASKS[item["task"]].fields
            example = example_of(item)
            dataset = ta.datasets.Dataset([(tuple(example.values()) if len(fields) > 1 else example[fields[0]],
                                            item["label"])], input_columns=list(fields))
            args = ta.AttackArgs(num_examples=1, random_seed=example_seed(0, recipe, item["id"]), query_budget=budget,
                                 silent=True, disable_stdout=True)
            attack = build_attack(ta, recipe, item["task"], call, budget)
            results += ta.Attacker(attack, dataset, args).attack_dataset()
        summary = AttackSuccessRate().calculate(results)
        group = f"recipe={recipe}"
        mine = res.metric("accuracy_under_attack", group).value
        # TextAttack rounds its percentages and averages to 2 decimals (a fraction's 4th)
        assert mine == pytest.approx(summary["attack_accuracy_perc"] / 100, abs=decimals(4))
        if summary["successful_attacks"] + summary["failed_attacks"]:
            assert res.metric("attack_success_rate", group).value == \
                pytest.approx(summary["attack_success_rate"] / 100, abs=decimals(4))
            assert res.metric("queries_per_example", group).value == \
                pytest.approx(AttackQueries().calculate(results)["avg_num_queries"], abs=decimals(2))
        if summary["successful_attacks"]:
            assert res.metric("perturbed_word_pct", group).value == \
                pytest.approx(WordsPerturbed().calculate(results)["avg_word_perturbed_perc"], abs=decimals(2))
        mine_status = [s["status"] for s in samples if s["recipe"] == recipe]
        theirs = [type(r).__name__.replace("AttackResult", "").lower() for r in results]
        assert mine_status == theirs
    assert res.metric("accuracy").value == pytest.approx(summary["original_accuracy"] / 100, abs=decimals(4))


def test_advglue_accuracy_clean_accuracy_and_drop_hand_computed(tmp_path):
    from trustslm.data.tasks import TASKS as T

    data = tmp_path / "adv.json"
    data.write_text(json.dumps({"sst2": [
        {"idx": 0, "sentence": "good filmm", "original_sentence": "good film", "label": 1},
        {"idx": 1, "sentence": "bad moviee", "original_sentence": "bad movie", "label": 0},
        {"idx": 2, "sentence": "fine", "label": 1}]}))
    p = T["sentiment"].prompt
    table = {p("good filmm") + " negative": -1.0, p("good filmm") + " positive": -3.0,  # fooled
             p("good film") + " positive": -1.0, p("good film") + " negative": -3.0,
             p("bad moviee") + " negative": -1.0, p("bad moviee") + " positive": -2.0,
             p("bad movie") + " negative": -1.0, p("bad movie") + " positive": -2.0,
             p("fine") + " positive": -0.5, p("fine") + " negative": -0.7}
    report = trustslm.audit(ScriptedModel({"loglikelihood": table}), probes=["robustness.advglue"], progress=False,
                            options={"robustness.advglue": {"data": str(data)}})
    r = report.result("robustness.advglue")
    assert r.metric("accuracy").value == pytest.approx(2 / 3)
    assert r.metric("clean_accuracy").value == pytest.approx(1.0)  # the two items with originals
    assert r.metric("accuracy_drop").value == pytest.approx(0.5)  # (1 - 0) and (1 - 1), averaged
    assert r.metric("accuracy", "source=sst2").value == pytest.approx(2 / 3)
    # scored on accuracy alone (the drop is reported): scores keep 4 decimals
    assert r.score.score == pytest.approx(100 * 2 / 3, abs=decimals(4))


@needs_textattack
def test_perturbation_consistency_hand_computed_and_textattacks_perturbations(tmp_path):
    from trustslm.models.mock import _default_logprob

    data = tmp_path / "qa.jsonl"
    data.write_text('{"id": "q1", "question": "What is the capital of France?", "answer": "Paris|Lutetia"}\n')
    clean = "Question: What is the capital of France?\nAnswer:"
    script = {"generate": [{"match": clean, "response": "\nParis."}, {"match": "", "response": " Lyon"}],
              "loglikelihood": {clean + " Paris": -1.0}}
    opts = {"data": str(data), "kinds": ["char_swap", "char_delete", "word_order"], "variants": 2}
    report = trustslm.audit(ScriptedModel(script), probes=["robustness.perturbation_consistency"], progress=False,
                            out=tmp_path / "o", options={"robustness.perturbation_consistency": opts})
    r = report.result("robustness.perturbation_consistency")
    assert r.status == "ok", r.reason
    # every perturbed question gets "Lyon": all answers change, none is right; the clean one is
    assert r.metric("answer_change_rate").value == 1.0 and r.metric("accuracy_perturbed").value == 0.0
    assert r.metric("accuracy_clean").value == 1.0
    assert r.metric("logprob_change").value == pytest.approx(_default_logprob(" Paris") + 1.0)
    samples = [json.loads(line) for line in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    question = "What is the capital of France?"
    by_kind = {k: [s["perturbed"] for s in samples if s["kind"] == k] for k in opts["kinds"]}
    assert all(len(v) == 2 and question not in v for v in by_kind.values())
    assert all(len(t) == len(question) - 1 for t in by_kind["char_delete"])
    assert all(sorted(t) == sorted(question) for t in by_kind["char_swap"])
    words = sorted(re.findall(r"\w+", question))  # TextAttack swaps words and leaves punctuation in place
    assert all(sorted(re.findall(r"\w+", t)) == words for t in by_kind["word_order"])
    from trustslm.scoring.answers import answer_core, contains

    # an answer that only repeats the typo of its question is the same answer; "Lutetia" is right too
    assert answer_core("The capital of Frnace is Paris.", "What is the capital of Frnace?") == \
        answer_core("\nThe capital of France is Paris", "What is the capital of France?") == "paris"
    assert contains("It is Lutetia!", ["Paris", "Lutetia"]) and not contains("Parisian", ["Paris"])
    again = trustslm.audit(ScriptedModel(script), probes=["robustness.perturbation_consistency"], progress=False,
                           options={"robustness.perturbation_consistency": opts})
    assert again.result("robustness.perturbation_consistency").metric("logprob_change").value == \
        r.metric("logprob_change").value


@needs_textattack
def test_attack_queries_are_cached_and_a_resumed_run_replays_them(tmp_path):
    opts = {"robustness.adversarial_classification": {"recipes": ["deepwordbug"], "query_budget": 60}}
    first_model, again_model = BagOfWordsModel(), BagOfWordsModel()
    first = trustslm.audit(first_model, probes=["robustness.adversarial_classification"], progress=False, limit=2,
                           cache_dir=tmp_path / "cache", options=opts)
    again = trustslm.audit(again_model, probes=["robustness.adversarial_classification"], progress=False, limit=2,
                           cache_dir=tmp_path / "cache", options=opts, resume=True)
    assert first_model.calls["loglikelihood"] > 0 and again_model.calls["loglikelihood"] == 0
    assert again.run.cache_hits == first.run.cache_misses > 0
    a, b = (r.result("robustness.adversarial_classification") for r in (first, again))
    assert [(m.name, m.group, m.value) for m in a.metrics] == [(m.name, m.group, m.value) for m in b.metrics]
