"""Utility probes: what a mitigation costs in plain usefulness (``trustslm mitigate``'s utility
cost, :mod:`trustslm.workflows.utility`). They are not trust probes:

* their specs (``utility_specs/``, :data:`SPECS`) come through an entry-point group of their own,
  ``trustslm.utility_probes``, which the registry of an audit does not read, so no audit selects
  them (default, glob or id);
* their specs score no metric (``scoring: {}``), so even run in an audit they would give no
  probe score and so enter no dimension score and no overall score. A spec must name one of the
  five dimensions (:mod:`trustslm.core.specs`); they name ``truthfulness``, the dimension of the
  closed-book questions they share, in ids that say ``utility``.

Probe kinds (entry-point group ``trustslm.probe_kinds``, like every kind):

* ``heldout_perplexity``: perplexity on held-out text, one text per line (default
  ``datasets/heldout_text.txt``, 40 neutral sentences written for this):
  ``exp(sum of token negative log-likelihoods / tokens)``, each text conditioned on the BOS token,
  as the probes' log-likelihoods are. Resampled by text.
* ``closed_book_accuracy``: the ``closed_book_qa`` kind (:mod:`trustslm.probes.closed_book`: the
  same requests, its second pass and its scoring) reporting its ``accuracy`` only, with two
  differences that suit a cost measured on every mitigation: ``--limit`` keeps the first N
  questions of the file (``trustslm mitigate --qa-limit N``: at most N questions), not N per
  category; and it leaves out the other metrics, whose bootstrap (a confidence AUROC per
  resample) would cost more than the accuracy itself.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from trustslm.data.qa import load_closed_book
from trustslm.data.texts import load_texts
from trustslm.models.base import LOGLIKELIHOOD, LoglikelihoodRequest
from trustslm.probes.base import (
    DataPath,
    LoadedData,
    MetricDef,
    Probe,
    ProbeContext,
    ProbeOptions,
    ProbeOutput,
    Results,
    read_dataset,
)
from trustslm.probes.closed_book import ClosedBookQAProbe

#: The folder of the utility probes' specs (entry-point group ``trustslm.utility_probes``).
SPECS = Path(__file__).parent / "utility_specs"


def perplexity(frame) -> float:
    """``exp(total negative log-likelihood / total tokens)`` of the texts in ``frame``."""
    tokens = float(frame["tokens"].sum())
    return math.exp(float(frame["nll"].sum()) / max(tokens, 1.0))


class HeldoutPerplexityOptions(ProbeOptions):
    data: DataPath = "builtin:heldout_text.txt"
    format: Literal["auto", "txt", "jsonl"] = "auto"


class HeldoutPerplexityProbe(Probe):
    kind = "heldout_perplexity"
    needs = frozenset({LOGLIKELIHOOD})
    Options = HeldoutPerplexityOptions
    metrics = (
        MetricDef(name="perplexity", column="", statistic=perplexity, higher_is_better=False,
                  description="Perplexity on the held-out texts (token-weighted; lower is better)."),
    )

    def load(self, ctx: ProbeContext) -> LoadedData:
        return read_dataset(self, load_texts, ctx)

    def _request(self, item: dict) -> LoglikelihoodRequest:
        return LoglikelihoodRequest("", item["text"])

    def requests(self, data: LoadedData, ctx: ProbeContext) -> list[LoglikelihoodRequest]:
        return [self._request(item) for item in data.items]

    def score(self, data: LoadedData, results: Results, ctx: ProbeContext) -> ProbeOutput:
        import pandas as pd

        rows, samples = [], []
        for item in data.items:
            r = results[self._request(item)]
            rows.append({"id": item["id"], "nll": -r.logprob, "tokens": r.n_tokens})
            samples.append({"id": item["id"], "text": item["text"], "nll": round(-r.logprob, 6), "tokens": r.n_tokens})
        return ProbeOutput(units=pd.DataFrame(rows), samples=samples)


class ClosedBookAccuracyProbe(ClosedBookQAProbe):
    kind = "closed_book_accuracy"
    metrics = tuple(m for m in ClosedBookQAProbe.metrics if m.name == "accuracy")

    def load(self, ctx: ProbeContext) -> LoadedData:
        return read_dataset(self, load_closed_book, ctx)  # the first N questions, not N per category
