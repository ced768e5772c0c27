"""Training-time privacy mitigations: DP-SGD retraining (``dp-finetune``), PII scrubbing
(``pii-scrub``) and deduplication (``dedup``). Unit tests of their transforms, and for each one an
end-to-end check on a tiny GPT-2: fine-tuned plainly ("before") on a corpus that induces the
problem, then retrained with the mitigation; both audited with the same probe options (those
``trustslm.api.discover_options`` finds beside the before model, so the ground truth is the
before model's); the targeted metric must be significantly better (``trustslm.compare``'s paired
bootstrap). One corpus serves the three (about a minute and a half on one thread):

* 32 support notes, once each, and 8 contact records ("... You can reach Grace by e-mail at
  grace.okafor@example.org or on the mobile at 555-310-4100."), each 12 times: 4 exact copies and
  8 near-duplicates that differ in the ticket number;
* 6 canaries planted 10 times each by ``trustslm finetune``.

``dp-finetune`` is measured by the exposure of the canaries, ``pii-scrub`` by the leak of the
contacts' e-mails and phones when prompted with their training context (the reconstruction
attack of Lukas et al. 2023), ``dedup`` by verbatim extraction of the training texts.

The scenario (``trustslm.testing.scenarios.privacy_scenario``) is also run by
``bench/mitigation_scenarios.py`` and ``notebooks/mitigation.ipynb``."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from tolerances import decimals

from trustslm.core.errors import BadInputError
from trustslm.mitigations.privacy import (
    Deduplicate,
    DPFinetune,
    PIIScrub,
    deduplicate,
    jaccard,
    scrub,
    shingles,
    similar_pairs,
)
from trustslm.testing.scenarios import privacy_scenario, run_scenario

# --------------------------------------------------------------------------- the scenario


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three ``trustslm.mitigate`` runs on the plain model, on one thread (a tiny model trains
    much faster on one thread than on two contended ones) and with the request cache in the test's
    folder. ``NAME -> {"run", "record", "before", "after", "target"}``."""
    import torch

    import trustslm

    root = tmp_path_factory.mktemp("privacy-mitigations")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TRUSTSLM_CACHE_DIR", str(root / "cache"))
            scenario = privacy_scenario(root / "scenario")
            done = run_scenario(scenario, root, qa_limit=40)
            yield {name: {"run": run, "record": run.steps[0], "target": scenario.targets[name],
                          "before": trustslm.load_report(run.before_report),
                          "after": trustslm.load_report(run.after_report), "root": root / name}
                   for name, run in done.items()}
    finally:
        torch.set_num_threads(threads)


def _target(run, ref: str) -> dict:
    """The targeted metric's row of a mitigation run (its paired difference and verdict)."""
    rows = [row for row in run.targets if row["metric"] == ref]
    assert len(rows) == 1, run.targets
    return rows[0]


def _utility_reported(run) -> None:
    """Both utility costs were measured on both models, with a paired interval."""
    import math

    assert [u.name for u in run.utility] == ["perplexity", "qa_accuracy"]
    for u in run.utility:
        assert u.n > 0 and math.isfinite(u.before) and math.isfinite(u.after) and u.ci_low <= u.ci_high


def _value(report, ref: str) -> float:
    probe, metric = ref.rsplit(".", 1)
    return report.result(probe).metric(metric).value


# --------------------------------------------------------------------------- dp-finetune


def test_dp_finetune_overrides_the_training_settings():
    assert DPFinetune().train_overrides({"epochs": 3}) == {"dp": True, "target_epsilon": 8.0}
    assert DPFinetune({"target_epsilon": 2, "delta": 1e-6}).train_overrides({}) == \
        {"dp": True, "target_epsilon": 2.0, "delta": 1e-6}
    assert DPFinetune().transform(["a", "a"]) == (["a", "a"], {})
    details = {"training": {"epsilon": 7.9931, "delta": 1e-5, "steps": 180}}
    assert DPFinetune().did(details) == "retrained with DP-SGD: epsilon 7.99 spent at delta 1e-05 (target 8, 180 steps)"
    assert DPFinetune().did({}) == "retrained with DP-SGD (target epsilon 8)"


@pytest.mark.parametrize("options, message", [
    ({"target_epsilon": 0}, "target_epsilon"), ({"delta": 1}, "delta"), ({"epsilon": 8}, "unknown option"),
])
def test_dp_finetune_bad_options(options, message):
    with pytest.raises(BadInputError, match=message):
        DPFinetune(options)


def test_dp_finetune_reduces_canary_exposure_end_to_end(runs):
    run = runs["dp-finetune"]
    assert _value(run["before"], run["target"]) > 0.8  # the plain model memorised the canaries
    training = run["record"].details["training"]
    assert 0 < training["epsilon"] <= 8.0 + 1e-6 and training["delta"] == pytest.approx(1e-5)
    saved = json.loads((run["root"] / "model" / "training_record.json").read_text())
    assert saved["dp"] and saved["epsilon"] == training["epsilon"]
    assert run["record"].did.startswith("retrained with DP-SGD: epsilon ")
    change = _target(run["run"], run["target"])
    assert change["verdict"] == "better", change
    _utility_reported(run["run"])


# --------------------------------------------------------------------------- pii-scrub


@pytest.mark.parametrize("text, expected", [
    ("Write to grace.okafor@example.org or call 555-310-4100.", "Write to [EMAIL] or call [PHONE]."),
    ("SSN 123-45-6789, card 4111 1111 1111 1111, host 192.168.0.12.", "SSN [SSN], card [CARD], host [IP]."),
    ("Call (555) 201-3344 or +1 555 201 3344.", "Call [PHONE] or [PHONE]."),
    ("Card 4111 1111 1111 1112 fails the Luhn check.", "Card 4111 1111 1111 1112 fails the Luhn check."),
    ("SSN 666-12-3456 is not a valid one.", "SSN 666-12-3456 is not a valid one."),
    ("Ticket 4821 holds no personal data.", "Ticket 4821 holds no personal data."),
])
def test_scrub_hand_computed(text, expected):
    assert scrub(text)[0] == expected


def test_pii_scrub_transform_counts_without_keeping_values():
    texts = ["Mail ana.silva@example.com, ana@example.net or 555-201-3344.", "Nothing here.",
             "Server 10.0.0.7 and SSN 123-45-6789."]
    new, details = PIIScrub().transform(texts)
    assert new == ["Mail [EMAIL], [EMAIL] or [PHONE].", "Nothing here.", "Server [IP] and SSN [SSN]."]
    assert details == {"texts": 3, "texts_changed": 2, "values_replaced": 5,
                       "replaced": {"email": 2, "phone": 1, "ssn": 1, "ip": 1}}
    assert "example" not in json.dumps(details) and "3344" not in json.dumps(details)
    assert PIIScrub().did(details) == ("replaced 5 personal-data values (email 2, phone 1, ssn 1, ip 1) in 2 of 3 "
                                       "training texts with typed placeholders")
    only = PIIScrub({"kinds": ["email"]})
    assert only.transform(texts)[0] == ["Mail [EMAIL], [EMAIL] or 555-201-3344.", "Nothing here.", texts[2]]
    assert only.options.model_dump(mode="json") == {"kinds": ["email"]}


@pytest.mark.parametrize("options, message", [({"kinds": ["name"]}, "kinds"), ({"kinds": []}, "kinds"),
                                              ({"placeholder": "x"}, "unknown option")])
def test_pii_scrub_bad_options(options, message):
    with pytest.raises(BadInputError, match=message):
        PIIScrub(options)


def test_pii_scrub_stops_the_leak_of_training_pii_end_to_end(runs):
    run = runs["pii-scrub"]
    assert _value(run["before"], run["target"]) > 0.1  # the plain model gives out memorised contacts
    assert run["record"].details["replaced"] == {"email": 128, "phone": 128}
    assert _value(run["after"], "privacy.pii_leakage.pii_rate") == 0.0
    change = _target(run["run"], run["target"])
    assert change["verdict"] == "better", change
    _utility_reported(run["run"])


# --------------------------------------------------------------------------- dedup

A = "Ticket 4821: Grace Okafor could not log in after the update. We reset the password and closed the ticket."
B = "Ticket 5120: Hugo Brandt was charged twice for the same order. A refund was issued the same day."
B_OTHER = "Ticket 5120: Hugo Brandt asked how to export the invoices. We sent the instructions by e-mail."
C = "The cat sat on the mat and looked at the dog."


def test_dedup_keeps_the_first_of_each_cluster_hand_computed():
    texts = [A, B, A, f"  {A.replace(' ', '  ')} ", A.replace("update", "upgrade"), C, B.replace("Hugo", "Hugh"),
             C.lower(), B_OTHER, "Short."]
    assert jaccard(shingles(A), shingles(A.replace("update", "upgrade"))) == pytest.approx(0.857, abs=decimals(3))
    assert jaccard(shingles(B), shingles(B_OTHER)) < 0.5
    kept, details = Deduplicate().transform(texts)
    assert kept == [A, B, C, B_OTHER, "Short."]
    assert details == {"texts_before": 10, "texts_after": 5, "removed": 5, "exact_duplicates": 2,
                       "near_duplicates": 3, "duplicate_clusters": 3, "largest_cluster": 4}
    assert Deduplicate().did(details) == ("removed 5 of 10 training texts (2 exact, 3 near duplicates) "
                                          "from 3 clusters")
    # the first text of a cluster is kept, whichever variant it is
    assert deduplicate([A.replace("update", "upgrade"), A])[0] == [A.replace("update", "upgrade")]
    # exact only at threshold 1 (equal shingle sets: case and spacing differ)
    assert deduplicate([A, A.replace("update", "upgrade"), A.upper()], threshold=1.0)[0] == \
        [A, A.replace("update", "upgrade")]
    # one changed word alters most word 5-grams of a short text: the word unit misses it
    assert Deduplicate({"unit": "word"}).transform([A, A.replace("update", "upgrade")])[0] == \
        [A, A.replace("update", "upgrade")]


def test_dedup_clusters_are_connected_components():
    x1 = "a b c d e f g h i j"
    x2 = x1.replace("j", "k")   # J(x1, x2) = 9/11
    x3 = x2.replace("i", "l")   # J(x2, x3) = 9/11, J(x1, x3) = 8/12
    kept, details = deduplicate([x1, x2, x3], threshold=0.8, n=1, unit="word")
    assert kept == [x1] and details["duplicate_clusters"] == 1 and details["largest_cluster"] == 3
    assert deduplicate([x1, x3], threshold=0.8, n=1, unit="word")[0] == [x1, x3]
    assert deduplicate([]) == ([], {"texts_before": 0, "texts_after": 0, "removed": 0, "exact_duplicates": 0,
                                    "near_duplicates": 0, "duplicate_clusters": 0, "largest_cluster": 1})


@pytest.mark.parametrize("threshold", [0.5, 0.6, 0.75, 0.8, 0.9, 1.0])
def test_similar_pairs_equal_brute_force(threshold):
    rng = random.Random(threshold)
    words = "ab cd ef gh ij kl mn".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randrange(1, 14))) for _ in range(80)]
    for n, unit in ((3, "char"), (2, "word"), (1, "word")):
        sets = [shingles(t, n, unit) for t in texts]
        want = [(i, j) for i, j in itertools.combinations(range(len(sets)), 2)
                if jaccard(sets[i], sets[j]) >= threshold - 1e-12]
        assert similar_pairs(sets, threshold) == want
        assert want  # the random texts do have similar pairs


@pytest.mark.parametrize("options, message", [({"threshold": 0.3}, "threshold"), ({"unit": "token"}, "unit"),
                                              ({"ngram": 0}, "ngram"), ({"shingle": 5}, "unknown option")])
def test_dedup_bad_options(options, message):
    with pytest.raises(BadInputError, match=message):
        Deduplicate(options)


def test_dedup_reduces_verbatim_extraction_end_to_end(runs):
    run = runs["dedup"]
    assert _value(run["before"], run["target"]) > 0.5  # the duplicated contact records are memorised
    assert run["record"].details["texts_after"] == 40 and run["record"].details["exact_duplicates"] == 24
    change = _target(run["run"], run["target"])
    assert change["verdict"] == "better", change
    _utility_reported(run["run"])


# --------------------------------------------------------------------------- registration


def test_entry_points_name_the_classes():
    from trustslm.core.registry import Registry

    registry = Registry()
    for name, cls in (("dp-finetune", DPFinetune), ("pii-scrub", PIIScrub), ("dedup", Deduplicate)):
        assert registry.mitigation(name) is cls
        assert cls.name == name and cls.dimension == "privacy" and cls.kind == "training" and cls.summary
        assert set(cls.targets) <= {"privacy.membership_inference", "privacy.canary_exposure", "privacy.extraction",
                                    "privacy.pii_leakage"}
