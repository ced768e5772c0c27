"""The five trust dimensions."""

from __future__ import annotations

from typing import Literal

Dimension = Literal["robustness", "privacy", "fairness", "toxicity", "truthfulness"]
#: The five trust dimensions, in report order.
DIMENSIONS: tuple[str, ...] = ("robustness", "privacy", "fairness", "toxicity", "truthfulness")
