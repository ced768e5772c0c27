"""Fairness mitigation at training time: counterfactual data augmentation (CDA).

``counterfactual-augmentation`` fine-tunes on the user's texts together with, for every text that
mentions a gendered term, its counterfactual copy with each term swapped for its pair (he <-> she,
father <-> mother, ...): two-sided CDA, as Webster et al. 2020 ("Measuring and Reducing Gendered
Correlations in Pre-trained Models", section 5) apply it, after Lu et al. 2018 ("Gender Bias in
Neural Natural Language Processing"), Zhao et al. 2018 ("Gender Bias in Coreference Resolution:
Evaluation and Debiasing Methods", gender swapping for WinoBias) and Zmigrod et al. 2019
("Counterfactual Data Augmentation for Mitigating Gender Stereotypes in Languages with Rich
Morphology"). In the augmented data every occupation, adjective or verb co-occurs with both
genders equally often, so a model has nothing to learn a gender association from.
``mode: replace`` is counterfactual data *substitution* (Maudslay et al. 2019, "It's All in the
Name"): each text with gendered terms is replaced by its counterfactual with probability
``probability`` (seeded), which balances the data without duplicating it.

The word pairs are ``datasets/cda_gender_pairs.json`` (66 pairs the project wrote; ``pairs``
names a file of your own: JSON ``{"pairs": [["he", "she"], ...]}`` or a list of pairs, or text
with two words a line). Words are matched whole and case-insensitively, and the swapped word takes
the original's case (``he``/``He``/``HE`` -> ``she``/``She``/``SHE``). A word in several pairs maps
to the one listed first, except the English pronouns whose mapping is one-to-many:

* ``her`` is ``his`` (possessive: "her car" -> "his car") when the next word can begin a noun
  phrase, and ``him`` (object: "gave her a book", "saw her.") when the next word is a function word
  (determiner, preposition, conjunction, pronoun, auxiliary, a few adverbs) or there is none;
* ``his`` is ``her`` when a word that can begin a noun phrase follows ("his own car" -> "her own
  car") and ``hers`` otherwise ("the book is his." -> "the book is hers.").

This is a heuristic without a part-of-speech tagger: "took her home" becomes "took his home".
Limits: names are not swapped (Maudslay et al. 2019 swap names too), nor are other groups than
gender; a text's grammar beyond these words (e.g. "actress" -> "actor" articles) is left as is.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from trustslm.core.errors import BadInputError
from trustslm.mitigations.base import MitigationOptions, TrainingMitigation

PAIRS_FILE = "cda_gender_pairs.json"
_WORD = re.compile(r"\b[^\W\d_]+\b")
_NEXT_WORD = re.compile(r"[ \t]*([^\W\d_]+)")

#: Words that do not begin a noun phrase: after them ``her`` is an object and ``his`` stands alone.
FUNCTION_WORDS = frozenset("""
a an the this that these those some any every each no all both either neither
my your his her its our their mine yours hers ours theirs
i you he she it we they me him us them myself yourself himself herself itself ourselves themselves
about above across after against along among around at before behind below beside besides between beyond
by down during except for from in inside into like near of off on onto out outside over past since through
throughout till to toward towards under underneath until up upon with within without via
and or but nor so yet because if when whenever while as than though although unless whether where why how
what who whom whose which once
is was are were be been being am has have had do does did will would can could shall should may might must
not never also too again now then there here back away home today tonight tomorrow yesterday always often
already still just even ever
""".split())


class CDAOptions(MitigationOptions):
    #: ``append``: add the counterfactual copies (two-sided CDA); ``replace``: substitute them (CDS).
    mode: Literal["append", "replace"] = "append"
    #: With ``mode: replace``, the chance that a text with gendered terms is replaced.
    probability: float = Field(default=0.5, gt=0, le=1)
    #: A word-pair file of your own (JSON or text, see the module docstring); default: the project's list.
    pairs: str | None = None
    #: Seed of the ``replace`` draws; default: the fine-tuning seed.
    seed: int | None = None


def read_pairs(path: str | Path | None = None) -> list[tuple[str, str]]:
    """The word pairs of ``path`` (the project's list when None), lower-cased, validated."""
    from trustslm.core.resources import datasets_dir

    where = Path(path) if path is not None else datasets_dir() / PAIRS_FILE
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"can't read the word-pair file {where}: {exc}") from None
    if where.suffix.lower() == ".json":
        try:
            raw: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{where}: not JSON ({exc.msg}, line {exc.lineno})") from None
        raw = raw.get("pairs") if isinstance(raw, dict) else raw
        if not isinstance(raw, list):
            raise BadInputError(f'{where}: expected {{"pairs": [[word, word], ...]}} or a list of pairs')
    else:
        raw = [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    pairs = []
    for n, pair in enumerate(raw, start=1):
        if (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(w, str) for w in pair)
                or not all(_WORD.fullmatch(w.strip()) for w in pair) or pair[0].strip().lower() == pair[1].strip().lower()):
            raise BadInputError(f"{where}: pair {n} is not two different single words: {pair!r}")
        pairs.append((pair[0].strip().lower(), pair[1].strip().lower()))
    if not pairs:
        raise BadInputError(f"{where}: no word pairs")
    return pairs


def _like(original: str, new: str) -> str:
    """``new`` in the case of ``original`` (lower, Capitalised or UPPER)."""
    if len(original) > 1 and original.isupper():
        return new.upper()
    if original[0].isupper():
        return new[0].upper() + new[1:]
    return new


class Swapper:
    """Swaps every word of the pairs for its counterpart, keeping case; counts swaps per pair."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs
        self.targets: dict[str, list[str]] = {}
        for a, b in pairs:
            for word, other in ((a, b), (b, a)):
                if other not in self.targets.setdefault(word, []):
                    self.targets[word].append(other)

    def _choose(self, word: str, text: str, end: int) -> str:
        options = self.targets[word]
        if len(options) == 1:
            return options[0]
        follow = _NEXT_WORD.match(text, end)
        noun_follows = follow is not None and follow.group(1).lower() not in FUNCTION_WORDS
        if word == "her" and {"his", "him"} <= set(options):
            return "his" if noun_follows else "him"
        if word == "his" and {"her", "hers"} <= set(options):
            return "her" if noun_follows else "hers"
        return options[0]

    def swap(self, text: str, counts: Counter | None = None) -> str:
        """``text`` with every paired word swapped (``counts`` gains one per swap, keyed ``a/b``)."""
        def one(m: re.Match) -> str:
            word = m.group(0)
            lower = word.lower()
            if lower not in self.targets:
                return word
            new = self._choose(lower, text, m.end())
            if counts is not None:
                counts[self.pair_name(lower, new)] += 1
            return _like(word, new)

        return _WORD.sub(one, text)

    def pair_name(self, word: str, other: str) -> str:
        for a, b in self.pairs:
            if {a, b} == {word, other}:
                return f"{a}/{b}"
        return f"{word}/{other}"  # pragma: no cover - every target comes from a pair


class CounterfactualAugmentation(TrainingMitigation):
    """Two-sided counterfactual data augmentation over gendered word pairs (see the module docstring)."""

    name = "counterfactual-augmentation"
    dimension = "fairness"
    targets: ClassVar[tuple[str, ...]] = ("fairness.winobias", "fairness.stereotype_pairs", "fairness.stereoset")
    summary = "fine-tune on the texts plus their gender-swapped copies (he <-> she, ...): counterfactual data augmentation"
    Options = CDAOptions

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        self.swapper = Swapper(read_pairs(self.options.pairs))

    def transform(self, texts: list[str]) -> tuple[list[str], dict[str, Any]]:
        counts: Counter = Counter()
        seed = self.options.seed if self.options.seed is not None else self.train_seed
        rng = random.Random(seed)
        out, changed, replaced = [], 0, 0
        counterfactuals = []
        for text in texts:
            these: Counter = Counter()
            new = self.swapper.swap(text, these)
            if new == text:
                out.append(text)
                continue
            changed += 1
            if self.options.mode == "append":
                out.append(text)
                counterfactuals.append(new)
            elif rng.random() < self.options.probability:
                out.append(new)
                replaced += 1
            else:
                out.append(text)
                continue
            counts.update(these)  # swaps in the texts trained on
        out += counterfactuals
        details = {"mode": self.options.mode, "pairs": self.options.pairs or f"builtin:{PAIRS_FILE}",
                   "n_pairs": len(self.swapper.pairs), "texts": len(texts), "texts_with_terms": changed,
                   "texts_added": len(counterfactuals), "texts_replaced": replaced, "swaps": sum(counts.values()),
                   "swaps_per_pair": dict(counts.most_common())}
        return out, details

    def did(self, details: dict[str, Any]) -> str:
        n, total, swaps = details.get("texts_with_terms", 0), details.get("texts", 0), details.get("swaps", 0)
        if details.get("mode") == "replace":
            return (f"replaced {details.get('texts_replaced', 0)} of {n} texts with gendered terms (of {total}) by "
                    f"their gender-swapped copies ({swaps} word swaps in all)")
        return f"added gender-swapped copies of {n} of {total} texts ({swaps} word swaps)"
