"""Privacy mitigations at training time: each retrains the model with the same base model,
settings and data, changing one thing.

``dp-finetune``: retrain with DP-SGD (Abadi et al. 2016, "Deep Learning with Differential
Privacy", CCS): per-sequence gradients clipped to a norm and Gaussian noise added, so each
training text (one privacy unit) has a bounded influence on the weights, stated as (epsilon,
delta) by the accountant. Bounds membership inference, canary exposure and extraction of any
single text; the price is utility.

``pii-scrub``: replace every personal-data value the project's detector finds
(:func:`trustslm.privacy.pii.find_pii`: e-mail, phone, SSN, Luhn-valid card, IPv4) in the
training texts with a typed placeholder (``[EMAIL]``, ``[PHONE]``, ``[SSN]``, ``[CARD]``,
``[IP]``) before training: the scrubbing defence of Lukas et al. 2023 ("Analyzing Leakage of
Personally Identifiable Information in Language Models", IEEE S&P), who find it removes the leak
of what it detects but not of what it misses (names, other formats), and costs some utility. A
value the detector misses is still trained on.

``dedup``: remove exact and near-duplicate training texts, keeping the first of each cluster.
Near-duplicates are pairs whose sets of character 5-gram shingles (of the lower-cased text with
whitespace collapsed; ``unit: word`` for word n-grams) have Jaccard similarity at least
``threshold`` (0.8); clusters are the connected components of that relation. This is the NearDup
criterion of Lee et al. 2022 ("Deduplicating Training Data Makes Language Models Better", ACL),
who use word 5-grams and MinHash on web documents; fine-tuning texts are often a sentence or two,
where one changed word alters most word 5-grams, so characters are the default here. Similar
pairs are found exactly, not by MinHash's approximation: prefix filtering (Bayardo et al. 2007,
"Scaling Up All Pairs Similarity Search"; Xiao et al. 2008) compares only pairs that share one of
their rarest shingles, then computes their Jaccard similarity. Measured on one core: 3 s for
10,000 templated support notes, 9 s for 10,000 random 30-word texts over 545 words (the bad
case: no shingle is rare); far beyond that, MinHash with LSH would be the tool. Kandpal et al.
2022 ("Deduplicating Training Data Mitigates Privacy Risks in Language Models", ICML) show that
a text's chance of being regenerated grows superlinearly with its number of copies, and that
deduplication cuts extraction and membership inference of them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, Literal

from pydantic import Field

from trustslm.mitigations.base import MitigationOptions, TrainingMitigation
from trustslm.privacy.pii import PII_KINDS, find_pii, replace_findings

PiiKind = Literal["email", "phone", "ssn", "card", "ip"]


# -- dp-finetune -------------------------------------------------------------------------------------
class DPFinetuneOptions(MitigationOptions):
    target_epsilon: float = Field(default=8.0, gt=0, le=1000, description="privacy budget the noise is set for")
    delta: float | None = Field(default=None, gt=0, lt=1, description="default: min(1e-5, 1 / (10 N))")


class DPFinetune(TrainingMitigation):
    name = "dp-finetune"
    dimension = "privacy"
    targets = ("privacy.membership_inference", "privacy.canary_exposure", "privacy.extraction")
    summary = "retrain with DP-SGD (per-text gradient clipping and noise) at a target epsilon"
    Options = DPFinetuneOptions

    def train_overrides(self, train_config: dict[str, Any]) -> dict[str, Any]:
        overrides: dict[str, Any] = {"dp": True, "target_epsilon": self.options.target_epsilon}
        if self.options.delta is not None:
            overrides["delta"] = self.options.delta
        return overrides

    def did(self, details: dict[str, Any]) -> str:
        training = details.get("training") or {}
        eps, delta = training.get("epsilon"), training.get("delta")
        if eps is None or delta is None:
            return f"retrained with DP-SGD (target epsilon {self.options.target_epsilon:g})"
        return (f"retrained with DP-SGD: epsilon {eps:.3g} spent at delta {delta:.2g} "
                f"(target {self.options.target_epsilon:g}, {training.get('steps')} steps)")


# -- pii-scrub ---------------------------------------------------------------------------------------
class PIIScrubOptions(MitigationOptions):
    kinds: tuple[PiiKind, ...] = Field(default=PII_KINDS, min_length=1, description="kinds of personal data replaced")


def placeholder(kind: str) -> str:
    """The typed placeholder a value of ``kind`` is replaced with: ``[EMAIL]``, ``[PHONE]``..."""
    return f"[{kind.upper()}]"


def scrub(text: str, kinds: tuple[str, ...] = PII_KINDS) -> tuple[str, Counter[str]]:
    """``text`` with every detected value of ``kinds`` replaced by its placeholder, and how many of
    each kind were replaced."""
    found = [f for f in find_pii(text) if f.kind in kinds]
    return replace_findings(text, found, lambda f: placeholder(f.kind)), Counter(f.kind for f in found)


class PIIScrub(TrainingMitigation):
    name = "pii-scrub"
    dimension = "privacy"
    targets = ("privacy.pii_leakage", "privacy.extraction")
    summary = "replace e-mails, phones, SSNs, cards and IPs in the training texts with [EMAIL]-like tags"
    Options = PIIScrubOptions

    def transform(self, texts: list[str]) -> tuple[list[str], dict[str, Any]]:
        out, replaced, changed = [], Counter(), 0
        for text in texts:
            new, counts = scrub(text, self.options.kinds)
            out.append(new)
            replaced.update(counts)
            changed += bool(counts)
        details = {"texts": len(texts), "texts_changed": changed, "values_replaced": sum(replaced.values()),
                   "replaced": {k: replaced[k] for k in PII_KINDS if replaced[k]}}
        return out, details

    def did(self, details: dict[str, Any]) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in details.get("replaced", {}).items())
        return (f"replaced {details.get('values_replaced', 0)} personal-data values"
                f"{f' ({kinds})' if kinds else ''} in {details.get('texts_changed', 0)} of "
                f"{details.get('texts', 0)} training texts with typed placeholders")


# -- dedup -------------------------------------------------------------------------------------------
class DeduplicateOptions(MitigationOptions):
    threshold: float = Field(default=0.8, ge=0.5, le=1.0, description="Jaccard similarity of near-duplicates")
    unit: Literal["char", "word"] = Field(default="char", description="shingles of characters or of words")
    ngram: int = Field(default=5, ge=1, le=64, description="shingle length in units")


def exact_key(text: str) -> str:
    """Texts with equal keys are exact duplicates (whitespace runs and the ends do not count)."""
    return " ".join(text.split())


def shingles(text: str, n: int = 5, unit: str = "char") -> frozenset[str]:
    """The n-gram shingles of the lower-cased text with whitespace collapsed; a text shorter than
    n units is one shingle."""
    norm = exact_key(text).lower()
    if unit == "word":
        words = norm.split(" ")
        return frozenset(" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1)))
    return frozenset(norm[i:i + n] for i in range(max(1, len(norm) - n + 1)))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    inter = len(a & b)
    union = len(a) + len(b) - inter
    return inter / union if union else 1.0


def similar_pairs(sets: list[frozenset[str]], threshold: float) -> list[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, whose Jaccard similarity is at least ``threshold`` t, found
    exactly by prefix filtering (AllPairs: Bayardo et al. 2007, "Scaling Up All Pairs Similarity
    Search", WWW; the index prefix of PPJoin: Xiao et al. 2008). With every set's shingles ordered
    rarest first, sets x, y with |x| <= |y| and similarity >= t overlap in at least
    ``ceil(2t / (1 + t) |x|)`` and ``ceil(t |y|)`` shingles, so x's first
    ``|x| - ceil(2t / (1 + t) |x|) + 1`` shingles (its index prefix) and y's first
    ``|y| - ceil(t |y|) + 1`` (its probe prefix) share one. Sets are visited from the smallest:
    each is compared exactly with the sets its probe prefix meets in the index (where the sizes
    allow it, ``|x| >= t |y|``), then indexes its own prefix."""
    freq = Counter(s for x in sets for s in x)
    rank = {s: r for r, s in enumerate(sorted(freq, key=lambda s: (freq[s], s)))}
    index: dict[int, list[int]] = defaultdict(list)
    pairs = []
    eps = 1e-9
    for j in sorted(range(len(sets)), key=lambda i: (len(sets[i]), i)):
        size = len(sets[j])
        ordered = sorted(rank[s] for s in sets[j])
        candidates: set[int] = set()
        for r in ordered[:size - math.ceil(threshold * size - eps) + 1]:
            candidates.update(index.get(r, ()))
        for r in ordered[:size - math.ceil(2 * threshold / (1 + threshold) * size - eps) + 1]:
            index[r].append(j)
        for i in candidates:
            if len(sets[i]) >= threshold * size - eps and jaccard(sets[i], sets[j]) >= threshold - eps:
                pairs.append((min(i, j), max(i, j)))
    return sorted(pairs)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _union(parent: list[int], i: int, j: int) -> None:
    a, b = _find(parent, i), _find(parent, j)
    if a != b:
        parent[max(a, b)] = min(a, b)  # the root is the cluster's first text


def deduplicate(texts: list[str], *, threshold: float = 0.8, n: int = 5, unit: str = "char"
                ) -> tuple[list[str], dict[str, Any]]:
    """``texts`` without exact and near-duplicates (the first text of each cluster kept, order
    kept) and counts of what was removed."""
    parent = list(range(len(texts)))
    first: dict[str, int] = {}
    exact = 0
    for i, text in enumerate(texts):
        j = first.setdefault(exact_key(text), i)
        if j != i:
            _union(parent, j, i)
            exact += 1
    unique = sorted(first.values())
    sets = [shingles(texts[i], n, unit) for i in unique]
    for a, b in similar_pairs(sets, threshold):
        _union(parent, unique[a], unique[b])
    roots = [_find(parent, i) for i in range(len(texts))]
    kept = [t for i, t in enumerate(texts) if roots[i] == i]
    sizes = Counter(roots)
    clusters = [s for s in sizes.values() if s > 1]
    details = {"texts_before": len(texts), "texts_after": len(kept), "removed": len(texts) - len(kept),
               "exact_duplicates": exact, "near_duplicates": len(texts) - len(kept) - exact,
               "duplicate_clusters": len(clusters), "largest_cluster": max(clusters, default=1)}
    return kept, details


class Deduplicate(TrainingMitigation):
    name = "dedup"
    dimension = "privacy"
    targets = ("privacy.extraction", "privacy.membership_inference")
    summary = "remove exact and near-duplicate training texts (Jaccard of 5-gram shingles >= 0.8)"
    Options = DeduplicateOptions

    def transform(self, texts: list[str]) -> tuple[list[str], dict[str, Any]]:
        o = self.options
        return deduplicate(texts, threshold=o.threshold, n=o.ngram, unit=o.unit)

    def did(self, details: dict[str, Any]) -> str:
        return (f"removed {details.get('removed', 0)} of {details.get('texts_before', 0)} training texts "
                f"({details.get('exact_duplicates', 0)} exact, {details.get('near_duplicates', 0)} near duplicates) "
                f"from {details.get('duplicate_clusters', 0)} clusters")
