"""Robustness mitigation at training time: adversarial data augmentation with character-level
perturbations.

``adversarial-augmentation`` fine-tunes on the user's texts together with ``copies`` perturbed
copies of each, made by TextAttack's ``Augmenter`` (Morris et al. 2020, "TextAttack: A Framework
for Adversarial Attacks, Data Augmentation, and Adversarial Training in NLP") from the same
character-level transformations the robustness probes attack with: neighbouring-character swaps,
deletions, insertions and QWERTY-neighbour substitutions (``kinds``; ``word_order`` and
``contraction`` can be added), changing ``pct_words_to_swap`` of each text's words (at least one),
never a stopword and no word twice (TextAttack's augmentation constraints). Training on inputs
perturbed towards the attacks a model will meet is adversarial training (Goodfellow, Shlens and
Szegedy 2015, "Explaining and Harnessing Adversarial Examples"; Miyato, Dai and Goodfellow 2017,
"Adversarial Training Methods for Semi-Supervised Text Classification"); with the attacker's
transformations sampled at random rather than searched, it is the data-augmentation defence of
Pruthi, Dhingra and Lipton 2019 ("Combating Adversarial Misspellings with Robust Word
Recognition", whose attack is the ``pruthi`` recipe) and Belinkov and Bisk 2018 ("Synthetic and
Natural Noise Both Break Neural Machine Translation"), who trained on noised text.

``perturb_until`` keeps the end of a text clean: with ``perturb_until: "\\nAnswer:"`` only what
comes before the first ``\\nAnswer:`` is perturbed, so a question/answer pair teaches the right
answer to a misspelled question instead of misspelled answers (as adversarial training perturbs a
classifier's inputs, never its labels). A text without the marker is perturbed whole.

Reproducible: before each text the random generators TextAttack's transformations use (Python's
``random`` and NumPy's) are seeded from ``seed`` (default: the fine-tuning seed) and the text's
position, and their states are restored afterwards (also
after ``import textattack``, which reseeds them).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar, Literal

from pydantic import Field

from trustslm.mitigations.base import MitigationOptions, NotApplicableError, TrainingMitigation
from trustslm.models.base import ModelAdapter

Kind = Literal["char_swap", "char_delete", "char_insert", "qwerty", "word_order", "contraction"]


class AugmentationOptions(MitigationOptions):
    #: Perturbed copies added per text (fewer when the text has too few words TextAttack may change).
    copies: int = Field(default=1, ge=1, le=50)
    #: Share of a text's words each copy changes (TextAttack's ``pct_words_to_swap``; at least one word).
    pct_words_to_swap: float = Field(default=0.1, gt=0, le=1)
    #: Perturbation kinds, as the ``robustness.perturbation_consistency`` probe names them.
    kinds: list[Kind] = Field(default_factory=lambda: ["char_swap", "char_delete", "char_insert", "qwerty"],
                              min_length=1)
    #: Perturb only what precedes the first occurrence of this marker (e.g. ``"\nAnswer:"``).
    perturb_until: str | None = Field(default=None, min_length=1)
    #: Seed of the perturbations; default: the fine-tuning seed.
    seed: int | None = None


class AdversarialAugmentation(TrainingMitigation):
    """Adds TextAttack character-perturbed copies of every text (see the module docstring)."""

    name = "adversarial-augmentation"
    dimension = "robustness"
    targets: ClassVar[tuple[str, ...]] = ("robustness.perturbation_consistency",
                                          "robustness.adversarial_classification")
    summary = "fine-tune on the texts plus copies with typos made by TextAttack (adversarial data augmentation)"
    Options = AugmentationOptions

    def applicable(self, adapter: ModelAdapter) -> str | None:
        from trustslm.robustness.textattack_env import unavailable

        return super().applicable(adapter) or unavailable()

    def _augmenter(self) -> Any:
        from trustslm.probes.perturbation import KINDS
        from trustslm.robustness.textattack_env import TextAttackUnavailable, load_textattack

        try:
            textattack = load_textattack()
        except TextAttackUnavailable as exc:
            raise NotApplicableError(f"mitigation {self.name}: {exc}") from None
        from textattack.augmentation import Augmenter
        from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
        from textattack.transformations import CompositeTransformation

        names = [name for kind in dict.fromkeys(self.options.kinds) for name in KINDS[kind]]
        parts = [getattr(textattack.transformations, name)() for name in names]
        return Augmenter(CompositeTransformation(parts), [RepeatModification(), StopwordModification()],
                         pct_words_to_swap=self.options.pct_words_to_swap,
                         transformations_per_example=self.options.copies)

    def perturb(self, texts: list[str]) -> list[list[str]]:
        """The perturbed copies of each text (each differs from its text; at most ``copies``)."""
        import numpy as np

        from trustslm.robustness.attack import example_seed

        seed = self.options.seed if self.options.seed is not None else self.train_seed
        marker = self.options.perturb_until
        saved = random.getstate(), np.random.get_state()  # before the import too, which seeds them
        try:
            augmenter = self._augmenter()
            result = []
            for i, text in enumerate(texts):
                head, sep, tail = text.partition(marker) if marker else (text, "", "")
                s = example_seed(seed, self.name, str(i))
                random.seed(s)
                np.random.seed(s)
                copies = [t + sep + tail for t in augmenter.augment(head) if t != head] if head.strip() else []
                result.append(copies[: self.options.copies])
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
        return result

    def transform(self, texts: list[str]) -> tuple[list[str], dict[str, Any]]:
        perturbed = self.perturb(texts)
        added = [c for copies in perturbed for c in copies]
        examples = [{"text": t, "perturbed": copies[0]} for t, copies in zip(texts, perturbed) if copies][:3]
        details = {"texts": len(texts), "copies_per_text": self.options.copies,
                   "texts_perturbed": sum(1 for c in perturbed if c), "copies_added": len(added),
                   "kinds": list(self.options.kinds), "pct_words_to_swap": self.options.pct_words_to_swap,
                   "perturb_until": self.options.perturb_until,
                   "seed": self.options.seed if self.options.seed is not None else self.train_seed,
                   "examples": examples}
        return list(texts) + added, details

    def did(self, details: dict[str, Any]) -> str:
        return (f"added {details.get('copies_added', 0)} TextAttack-perturbed copies of "
                f"{details.get('texts_perturbed', 0)} of {details.get('texts', 0)} texts "
                f"({', '.join(details.get('kinds', []))})")
