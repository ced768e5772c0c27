"""Probe specs: the declarative half of a probe.

A spec is a YAML file (read with ``yaml.safe_load``, so it can't run code) beside a README card::

    id: fairness.stereotype_pairs          # what users select and reports name
    kind: likelihood_pairs             # an installed probe kind (entry point trustslm.probe_kinds)
    dimension: fairness
    version: "1"
    summary: One line for `trustslm probes list`.
    options: {data: "builtin:stereotype_pairs.jsonl"}   # defaults over the kind's own
    quick: {}                          # options over those in the quick profile (--quick)
    scoring:                           # the metrics that count in the score; anchors = the metric's range
      pct_stereotype: {best: 0.5, worst: 1.0}
    taxonomy:                          # risk tags (trustslm/core/taxonomy.py): SARIF, model card
      owasp_llm_2025: []
      nist_ai_600_1: [harmful_bias]

Any field of the kind's options can be set in ``options``; the kind defines the metrics, the spec
says which of them are scored and over which reference range a metric maps onto 0-100.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trustslm.core.dimensions import Dimension
from trustslm.core.errors import BadInputError
from trustslm.core.taxonomy import check_taxonomy
from trustslm.core.textfiles import first_validation_error, read_yaml_mapping

PROBE_ID_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class ScoringRule(BaseModel):
    """A metric's anchors: ``best`` (the ideal) maps to 100 and ``worst`` to 0, linearly. They must
    be the ends of the range the metric can take, so no value is clipped (the engine checks this
    against the metric's ``bounds``). For a metric whose best value is a target inside its range
    (e.g. 0.5), the distance from ``best`` is scaled by ``|worst - best|``, ``worst`` being the
    range's end farther from the target."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    best: float
    worst: float
    weight: float = Field(default=1.0, gt=0)


class ProbeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=PROBE_ID_PATTERN)
    aliases: list[str] = Field(default_factory=list)
    kind: str
    dimension: Dimension
    version: str
    summary: str
    options: dict[str, Any] = Field(default_factory=dict)
    #: Options over ``options`` in the quick profile (``trustslm audit --quick``): fewer samples.
    quick: dict[str, Any] = Field(default_factory=dict)
    scoring: dict[str, ScoringRule]
    #: Risk tags by taxonomy (``owasp_llm_2025``, ``nist_ai_600_1``; codes in core/taxonomy.py).
    taxonomy: dict[str, list[str]] = Field(default_factory=dict)
    spec_path: str = Field(default="", exclude=True)
    card_path: str = Field(default="", exclude=True)
    provider: str = Field(default="", exclude=True)

    @field_validator("taxonomy")
    @classmethod
    def _known_tags(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return check_taxonomy(v)

    @field_validator("aliases")
    @classmethod
    def _aliases_are_ids(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not re.match(PROBE_ID_PATTERN, a)]
        if bad:
            raise ValueError(f"not a probe id: {bad[0]!r}")
        return v

    @model_validator(mode="after")
    def _id_names_its_dimension(self) -> ProbeSpec:
        if self.id.split(".", 1)[0] != self.dimension:
            raise ValueError(f"the id {self.id!r} must start with its dimension ({self.dimension}.)")
        return self

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v

    def card_summary(self) -> str:
        """The card's first paragraph after its title (falls back to ``summary``)."""
        try:
            text = Path(self.card_path).read_text(encoding="utf-8")
        except OSError:
            return self.summary
        paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
        body = [p for p in paragraphs if not p.startswith("#") and not p.startswith(">")]
        return " ".join(body[0].split()) if body else self.summary


def load_spec_file(path: Path, *, provider: str) -> ProbeSpec:
    data = read_yaml_mapping(path, "probe spec")
    card = path.parent / "README.md"
    try:
        return ProbeSpec.model_validate(
            {**data, "spec_path": str(path), "card_path": str(card), "provider": provider}
        )
    except ValidationError as exc:
        loc, msg, _ = first_validation_error(exc)
        raise BadInputError(f"probe spec {path}: {loc}: {msg}") from None
