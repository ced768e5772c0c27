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

from trustslm.report.types import ScorerInfo

if TYPE_CHECKING:
    from trustslm.registry import Registry


class Scorer(ABC):
    name: str = ""

    def __init__(self, arg: str = ""):
        self.arg = arg

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


#: ``auto`` tries these in order and takes the first that is available offline.
AUTO_ORDER = ("detoxify", "profanity-check")


def make_scorer(spec: str, registry: Registry) -> Scorer:
    """Build (not load) the scorer a probe option names; ``auto`` picks the first available."""
    if spec == "auto":
        reasons = []
        for name in AUTO_ORDER:
            scorer = registry.scorer(name)()
            why = scorer.unavailable()
            if why is None:
                return scorer
            reasons.append(f"{name}: {why}")
        from trustslm.errors import ScorerUnavailableError

        raise ScorerUnavailableError("no toxicity scorer is available (" + "; ".join(reasons) + ")")
    name, _, arg = spec.partition(":")
    return registry.scorer(name)(arg)
