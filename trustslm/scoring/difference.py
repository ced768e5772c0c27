"""A statistic that probes share: one rate minus another, from one unit table (imports neither
numpy nor pandas until it is computed, so that loading a probe kind stays light)."""

from __future__ import annotations

from typing import Any


def difference_of_means(minuend: str, subtrahend: str) -> tuple[Any, Any]:
    """``(statistic, batch_statistic)`` for ``MetricDef``: the mean of column ``minuend`` minus the
    mean of column ``subtrahend``, each over the units where it is not NaN (e.g. an attacked rate
    minus its no-attack baseline, which sit on other rows of one unit table); NaN without both."""

    def statistic(frame: Any) -> float:
        return float(frame[minuend].astype(float).mean() - frame[subtrahend].astype(float).mean())

    def batch_statistic(frame: Any, idx: Any) -> Any:
        import numpy as np

        from trustslm.scoring.resample import mean_where

        every = np.ones(len(frame), dtype=bool)
        return (mean_where(frame[minuend].to_numpy(dtype=float), every, idx)
                - mean_where(frame[subtrahend].to_numpy(dtype=float), every, idx))

    statistic.__doc__ = f"Mean of {minuend!r} minus mean of {subtrahend!r} (NaN without both)."
    return statistic, batch_statistic
