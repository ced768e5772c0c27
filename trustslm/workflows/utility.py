"""What a mitigation costs in plain usefulness, measured by probes on both models with the same
items and compared by the gate's paired comparison:

* ``perplexity``: probe ``truthfulness.utility_perplexity`` (kind ``heldout_perplexity``) on
  held-out text (default ``datasets/heldout_text.txt``, 40 neutral sentences written for this);
* ``qa_accuracy``: probe ``truthfulness.utility_qa_accuracy`` (kind ``closed_book_accuracy``) on the
  project's closed-book QA set (``datasets/closed_book_qa.jsonl``), asked and scored exactly as
  ``truthfulness.closed_book_qa`` does, so the requests are shared with that probe's cache.

The utility probes run through the engine like any probe (:func:`measure`: batched, cached, a
report with unit tables), and the two models' reports are compared by
:func:`trustslm.gate.compare.compare` (:func:`compare_utility`): each change has the gate's 95%
paired-bootstrap interval over the items (the same resampled items for both models).

Utility probes are not trust probes. Their specs come through an entry-point group of their own,
``trustslm.utility_probes`` (:data:`UTILITY_GROUP`), which only :func:`utility_registry` reads (in
place of ``trustslm.probes``), so no audit selects them; and they score no metric, so they enter no
dimension and no overall score (:mod:`trustslm.probes.utility`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from trustslm.core.errors import BadInputError
from trustslm.core.registry import GROUPS, Registry
from trustslm.gate.compare import DEFAULT_COMPARE_RESAMPLES, compare

if TYPE_CHECKING:
    from trustslm.core.types import TrustReport
    from trustslm.models.base import ModelAdapter

HELDOUT_TEXT = "builtin:heldout_text.txt"
QA_SET = "builtin:closed_book_qa.jsonl"
#: The entry-point group of the utility probes' spec folders (``trustslm.probes`` holds the trust probes').
UTILITY_GROUP = "trustslm.utility_probes"


@dataclass(frozen=True)
class UtilityMeasure:
    """One utility cost: the utility probe and metric that measure it."""

    name: str
    probe_id: str
    metric: str
    description: str


PERPLEXITY = UtilityMeasure("perplexity", "truthfulness.utility_perplexity", "perplexity",
                            "perplexity on held-out text (lower is better)")
QA_ACCURACY = UtilityMeasure("qa_accuracy", "truthfulness.utility_qa_accuracy", "accuracy",
                             "closed-book QA accuracy (higher is better)")
MEASURES = (PERPLEXITY, QA_ACCURACY)


class UtilityChange(BaseModel):
    """One utility cost, before and after: ``difference`` is after - before, ``ci_low`` and
    ``ci_high`` its 95% paired-bootstrap interval (None, with ``reason``, where the two reports could
    not be paired)."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    data: str
    n: int
    higher_is_better: bool
    before: float
    after: float
    difference: float
    ci_low: float | None
    ci_high: float | None
    reason: str | None = None

    @property
    def cost(self) -> str:
        """"worse", "better" or "no significant change" (the 95% interval of the difference), or
        "not compared"."""
        if self.ci_low is None or self.ci_high is None:
            return "not compared"
        worse = self.ci_high < 0 if self.higher_is_better else self.ci_low > 0
        better = self.ci_low > 0 if self.higher_is_better else self.ci_high < 0
        return "worse" if worse else "better" if better else "no significant change"


def utility_registry() -> Registry:
    """A registry whose probe specs are the utility probes' (group :data:`UTILITY_GROUP`); probe
    kinds, scorers and models are the installed ones."""
    from importlib.metadata import entry_points

    eps = {group: list(entry_points(group=group)) for group in GROUPS}
    eps["trustslm.probes"] = list(entry_points(group=UTILITY_GROUP))
    return Registry(eps)


def measure(model: ModelAdapter, *, text: str = HELDOUT_TEXT, qa: str = QA_SET, qa_limit: int | None = None,
            seed: int = 0, out: str | Path | None = None, cache_dir: str | Path | None = None,
            progress: bool = False) -> TrustReport:
    """The utility probes' report on ``model`` (written to ``out`` when given). Requests go through
    the request cache and results already there are reused, as ``--resume`` does: the QA answers
    of a closed-book audit just run are not asked again. ``qa_limit`` keeps the first N questions;
    0 leaves QA accuracy out."""
    from trustslm.workflows.audit import audit

    if qa_limit is not None and qa_limit < 0:
        raise BadInputError("the QA limit must be at least 0")
    options: dict[str, dict] = {PERPLEXITY.probe_id: {"data": text}}
    if qa_limit != 0:
        options[QA_ACCURACY.probe_id] = {"data": qa, **({"limit": qa_limit} if qa_limit else {})}
    return audit(model, probes=list(options), options=options, seed=seed, out=out, resume=True, cache_dir=cache_dir,
                 progress=progress, registry=utility_registry())


def compare_utility(before: TrustReport, after: TrustReport, *, seed: int = 0,
                    resamples: int = DEFAULT_COMPARE_RESAMPLES) -> list[UtilityChange]:
    """Each utility cost measured in both reports (:func:`measure`), with the paired-bootstrap
    interval of its change from :func:`trustslm.gate.compare.compare`."""
    targets = {f"{m.probe_id}.{m.metric}" for m in MEASURES}
    diff = compare(before, after, registry=utility_registry(), resamples=resamples, seed=seed, targets=targets)
    rows = {c.target: c for c in diff.changes}
    out = []
    for m in MEASURES:
        c = rows.get(f"{m.probe_id}.{m.metric}")
        if c is None or c.old is None or c.new is None or c.difference is None:
            continue
        result = before.result(m.probe_id)
        out.append(UtilityChange(
            name=m.name, description=m.description, data=str(result.options.get("data")),
            n=result.metric(m.metric).n, higher_is_better=bool(c.higher_is_better), before=c.old, after=c.new,
            difference=c.difference, ci_low=c.ci_low, ci_high=c.ci_high,
            reason=c.reason if c.ci_low is None else None))
    return out
