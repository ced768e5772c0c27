"""Agreement between a model's answer and other answers it samples to the same question
(SelfCheckGPT's idea, Manakul et al. 2023: a model that knows a fact keeps stating it; one that
invents it says something different each time).

* n-gram overlap: ROUGE-N F1 (Lin 2004) between the main answer and each sample, over the words of
  their normalised text (lower-cased, punctuation removed), clipped counts of shared n-grams;
  inconsistency is ``1 - mean F1``.
* embedding similarity: cosine similarity of sentence embeddings (all-MiniLM-L6-v2 by default,
  unit-normalised mean-pooled vectors, see :mod:`trustslm.scorers.embedder`); inconsistency is
  ``1 - mean cosine``, clipped to [0, 1].

Texts shorter than ``n`` words agree (F1 1) when they are the same words, else not (F1 0).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from trustslm.scoring.answers import normalise


def words(text: str) -> list[str]:
    """All lines of the text, normalised, as words."""
    return [w for line in text.splitlines() for w in normalise(line).split()]


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def rouge_n_f1(a: str, b: str, n: int = 1) -> float:
    """ROUGE-N F1 of two texts (symmetric): ``2 * overlap / (|ngrams(a)| + |ngrams(b)|)``."""
    ga, gb = ngrams(words(a), n), ngrams(words(b), n)
    total = sum(ga.values()) + sum(gb.values())
    if total == 0:  # both shorter than n words: they agree when they are the same words
        return 1.0 if words(a) == words(b) else 0.0
    return 2.0 * sum((ga & gb).values()) / total


def ngram_inconsistency(main: str, samples: Sequence[str], n: int = 1) -> float:
    if not samples:
        return float("nan")
    return 1.0 - float(np.mean([rouge_n_f1(main, s, n) for s in samples]))


def embedding_inconsistency(main_vector: np.ndarray, sample_vectors: np.ndarray) -> float:
    """``1 - mean cosine`` of unit vectors, clipped to [0, 1]."""
    if len(sample_vectors) == 0:
        return float("nan")
    cos = np.asarray(sample_vectors, dtype=float) @ np.asarray(main_vector, dtype=float)
    return float(np.clip(1.0 - cos.mean(), 0.0, 1.0))
