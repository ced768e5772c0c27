"""Building blocks of ``MetricDef.batch_statistic``: a statistic of the unit table on every
bootstrap resample at once.

``idx`` is the ``(B, n)`` index matrix of :func:`trustslm.scoring.metrics.compute_metrics` (row
``b`` holds the positions in the unit table of resample ``b``'s units); each function takes
per-unit numpy arrays (extracted once from the table) and returns one value per resample (or one
row per resample). Resamples are processed in chunks, so memory stays bounded for long tables.
Means leave NaN values out, as pandas' ``mean`` does (``skipna=False``: as numpy's), and are NaN
where no unit counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

#: Gathered elements per chunk of resamples (about 32 MB of float64).
CHUNK_ELEMENTS = 1 << 22


def _chunks(idx: np.ndarray) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(1, idx.shape[1]))
    for start in range(0, len(idx), step):
        yield slice(start, start + step)


def equals(frame: pd.DataFrame, column: str, value: object) -> np.ndarray:
    """``frame[column] == value`` as a numpy bool array (a missing value: False, as pandas'
    boolean indexing takes it)."""
    return (frame[column] == value).to_numpy(dtype=bool, na_value=False)


def count_where(mask: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per resample: how many of its units have ``mask`` (a unit drawn twice counts twice)."""
    idx = np.asarray(idx)
    mask = np.asarray(mask, dtype=bool)
    out = np.empty(len(idx), dtype=np.int64)
    for s in _chunks(idx):
        out[s] = np.count_nonzero(mask[idx[s]], axis=1)
    return out


def mean_where(values: np.ndarray, mask: np.ndarray, idx: np.ndarray, *, skipna: bool = True) -> np.ndarray:
    """Per resample: the mean of ``values`` over its units with ``mask``, i.e. pandas'
    ``frame.iloc[row][mask_col][value_col].mean()`` (``skipna=False``: numpy's mean of the selected
    values, NaN if one of them is). NaN where no unit is selected (or, skipping NaN, none has a value)."""
    idx = np.asarray(idx)
    values = np.asarray(values, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    counted = mask & ~np.isnan(values) if skipna else mask
    weights = np.where(counted, values, 0.0) if skipna else np.where(mask, values, 0.0)
    sums, counts = np.empty(len(idx)), np.empty(len(idx), dtype=np.int64)
    for s in _chunks(idx):
        rows = idx[s]
        sums[s] = weights[rows].sum(axis=1)
        counts[s] = np.count_nonzero(counted[rows], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def group_sums(values: np.ndarray | None, codes: np.ndarray, n_groups: int, idx: np.ndarray) -> np.ndarray:
    """Per resample and group: the sum of ``values`` over the resample's units in the group (the
    number of them when ``values`` is None), a ``(B, n_groups)`` array. ``codes`` holds each unit's
    group, 0 to ``n_groups - 1`` (a negative code: in no group). Within a resample the values are
    added in its order, as ``np.bincount(codes, weights=values)`` adds them on the resample."""
    idx = np.asarray(idx)
    codes = np.asarray(codes, dtype=np.int64)
    out = np.zeros((len(idx), n_groups))
    if n_groups == 0:
        return out
    for s in _chunks(idx):
        rows = idx[s]
        b = rows.shape[0]
        code = codes[rows]
        keep = code >= 0
        flat = (np.arange(b)[:, None] * n_groups + code)[keep]
        weights = None if values is None else np.asarray(values, dtype=float)[rows][keep]
        out[s] = np.bincount(flat, weights=weights, minlength=b * n_groups).reshape(b, n_groups)
    return out


def group_means(values: np.ndarray, codes: np.ndarray, n_groups: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per resample and group: the mean of ``values`` over the resample's units in the group,
    leaving NaN values out (pandas' ``groupby(...).mean()``), and how many units it counts; a
    ``(B, n_groups)`` pair, the mean NaN where the count is 0."""
    values = np.asarray(values, dtype=float)
    known = ~np.isnan(values)
    known_codes = np.where(known, np.asarray(codes, dtype=np.int64), -1)
    sums = group_sums(np.where(known, values, 0.0), known_codes, n_groups, idx)
    counts = group_sums(None, known_codes, n_groups, idx)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), counts


def row_means(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Per row of the ``(B, K)`` array ``values``: numpy's mean of its entries where ``keep`` holds
    (NaN where none). One numpy call per row, so that the entries are added in the order and
    grouping numpy's pairwise sum adds them on one resample: the result is bitwise the
    per-resample statistic's (a masked sum over the whole row would differ in the last bits)."""
    out = np.full(len(values), np.nan)
    for b, (row, k) in enumerate(zip(values, keep)):
        if k.any():
            out[b] = row[k].mean()
    return out


def row_sums(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per row of the ``(B, K)`` array ``values``: numpy's sum of its first ``lengths[b]`` entries
    (bitwise as on one resample, see :func:`row_means`)."""
    return np.array([row[:m].sum() for row, m in zip(values, lengths)], dtype=float)
