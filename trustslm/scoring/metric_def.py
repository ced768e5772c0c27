"""How a probe declares one metric (imports neither numpy nor pandas, so listing probes stays light)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class MetricDef:
    """How one metric is computed from a probe's unit table.

    ``column`` is averaged over units (a NaN marks a unit the metric skips, e.g. an example that
    was not attacked) unless ``statistic`` is given (a function of the unit table). ``by`` adds one breakdown row per value of each named column. ``bootstrap=False``
    is for values that carry their own uncertainty statement (e.g. a confidence bound) or none.
    """

    name: str
    column: str
    higher_is_better: bool | None
    description: str
    target: float | None = None
    by: tuple[str, ...] = ()
    statistic: Callable[[pd.DataFrame], float] | None = None
    bootstrap: bool = True
    #: False: only the ``by`` breakdown rows are reported (e.g. a per-term metric).
    overall: bool = True
    #: Draw the breakdown rows in the HTML report: as a bar chart (True), or as a reliability
    #: diagram (``"reliability"``: accuracy per ``confidence_bin=LO-HI`` row against the diagonal).
    chart: bool | str = False
    #: A faster function computing the same value as ``statistic``, used on bootstrap resamples
    #: (``statistic`` stays the reference, e.g. fairlearn; the tests check they agree).
    fast_statistic: Callable[[pd.DataFrame], float] | None = None
    #: The same value on every resample at once: ``(frame, idx) -> values``, one per row of the
    #: index matrix ``idx`` (the tests check it equals ``fast_statistic`` row by row).
    batch_statistic: Callable[[pd.DataFrame, Any], Any] | None = None
    #: ``percentile`` (the default) or ``basic``: the basic bootstrap interval (Davison and Hinkley
    #: 1997, eq. 5.6), for statistics that resampling biases, like a highest-minus-lowest group
    #: rate, whose percentile interval can lie wholly above the estimate (see scoring.metrics).
    interval: str = "percentile"
    #: The values the statistic can take. A scored metric must declare them: its score's anchors
    #: are their ends (:func:`trustslm.scoring.aggregate.check_anchors`). The basic interval is
    #: clipped to them, except where that would collapse it to a point (:func:`basic_replicates`).
    bounds: tuple[float, float] = (float("-inf"), float("inf"))
    #: One more row per level ``v`` (group ``"{at_name}=v"``), valued ``statistic_at(units, v)``
    #: on all units, e.g. the accuracy when abstaining below each confidence threshold.
    at: tuple[float, ...] = ()
    at_name: str = "threshold"
    statistic_at: Callable[[pd.DataFrame, float], float] | None = None
    #: ``statistic_at`` on every resample at once: ``(frame, idx, level) -> values`` (as
    #: ``batch_statistic`` is to ``statistic``).
    batch_statistic_at: Callable[[pd.DataFrame, Any, float], Any] | None = None
    #: The detector whose binary verdicts ``column`` holds (``refusal``: the phrase list;
    #: ``toxicity``: the probe's toxicity scorer at its threshold). Where the engine has hand labels
    #: for that detector, a ``NAME_corrected`` row follows each row of the metric
    #: (:mod:`trustslm.scoring.detector_error`).
    detector: str | None = None
