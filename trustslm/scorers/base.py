"""The scorer interface: a batch of texts in, one probability per text out.

Scorers are plugins (entry-point group ``trustslm.scorers``) named ``NAME`` or ``NAME:ARG``
(e.g. ``detoxify:/path/to/checkpoint.ckpt``). ``unavailable()`` answers cheaply whether a scorer
can load here, and why not; ``load()`` raises :class:`ScorerUnavailableError` with a message
that says how to supply what is missing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from trustslm.core.types import ScorerInfo

if TYPE_CHECKING:
    from trustslm.core.registry import Registry


class Scorer(ABC):
    name: str = ""

    def __init__(self, arg: str = ""):
        self.arg = arg
        #: Set by ``auto``: why the scorers tried before this one were not used.
        self.fallback = ""

    def unavailable(self) -> str | None:
        """Why this scorer can't load here (None when it can). Must be cheap."""
        return None

    @abstractmethod
    def load(self) -> None:
        """Load weights; raise ScorerUnavailableError when they can't be had."""

    @abstractmethod
    def score(self, texts: Sequence[str]) -> list[float]:
        """Probability that each text is toxic, in [0, 1], in input order."""

    @abstractmethod
    def info(self) -> ScorerInfo:
        """Name, version and the sha256 of the weights used (for the report)."""

    def lexicon(self) -> list[str]:
        """Single words the scorer knows (a word-based scorer's vocabulary), for building a word
        filter from it; empty when it has none."""
        return []

    def report_info(self) -> ScorerInfo:
        """:meth:`info`, saying when ``auto`` chose this scorer and why the others were not used."""
        info = self.info()
        if self.fallback:
            info = info.model_copy(update={"detail": f"{info.detail} (chosen by 'auto'; {self.fallback})"})
        return info


#: ``auto`` tries these in order and takes the first that is available offline.
AUTO_ORDER = ("detoxify", "profanity-check")


def make_scorer(spec: str, registry: Registry) -> Scorer:
    """Build and load the scorer a probe option names.

    A named scorer that can't load is bad input (:class:`BadInputError`, exit 2) whose message
    says how to supply it. ``auto`` takes the first of :data:`AUTO_ORDER` that loads, and records
    in the scorer's ``fallback`` why the ones before it did not; if none loads it raises
    :class:`ScorerUnavailableError` with every reason.
    """
    from trustslm.core.errors import BadInputError, ScorerUnavailableError

    if spec != "auto":
        name, _, arg = spec.partition(":")
        scorer = registry.scorer(name)(arg)
        why = scorer.unavailable()
        try:
            if why:
                raise ScorerUnavailableError(f"scorer {spec}: {why}")
            scorer.load()
        except ScorerUnavailableError as exc:
            raise BadInputError(str(exc)) from None
        return scorer
    reasons = []
    for name in AUTO_ORDER:
        scorer = registry.scorer(name)()
        why = scorer.unavailable()
        if why is None:
            try:
                scorer.load()
            except ScorerUnavailableError as exc:
                why = str(exc)
        if why is None:
            scorer.fallback = "; ".join(reasons)
            return scorer
        reasons.append(f"{name} not used: {why}")
    raise ScorerUnavailableError("no toxicity scorer is available (" + "; ".join(reasons) + ")")
