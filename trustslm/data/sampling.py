"""A fixed-seed stratified sample of a benchmark's items, for suites that can't afford all of one.

Proportional allocation by the largest-remainder rule: stratum ``h`` of ``N_h`` items gets
``floor(n N_h / N)`` items, and the ``n - sum(floor)`` items left go to the strata with the
largest remainders (ties: the stratum seen first). Within a stratum the items are a simple
random sample (numpy's ``Generator.choice`` without replacement, seeded), and the sample keeps
the data's order. With no strata it is a simple random sample. Estimates from it are of the
benchmark's population as long as each stratum's share is kept, which this allocation does to
within one item.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trustslm.core.errors import BadInputError


def allocate(sizes: list[int], n: int) -> list[int]:
    """How many of ``n`` to take from strata of ``sizes`` (largest remainder; no stratum over its size)."""
    total = sum(sizes)
    exact = [n * s / total for s in sizes]
    counts = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda h: (-(exact[h] - counts[h]), h))
    for h in order[: n - sum(counts)]:
        counts[h] += 1
    return counts


def stratified_sample(items: list[dict[str, Any]], n: int, *, by: list[str], seed: int,
                      where: str = "sample_by") -> tuple[list[dict[str, Any]], str | None]:
    """``n`` of ``items`` stratified by the fields ``by``, and a line saying so for the report
    (None when ``n`` covers every item: then all are used, unsampled)."""
    if n >= len(items):
        return items, None
    strata: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        try:
            key = tuple(str(item[f]) for f in by)
        except KeyError as exc:
            known = ", ".join(sorted(items[0]))
            raise BadInputError(f"{where}: the items have no field {exc.args[0]!r} (fields: {known})") from None
        strata.setdefault(key, []).append(i)
    groups = list(strata.values())
    rng = np.random.default_rng(seed)
    kept: list[int] = []
    for members, k in zip(groups, allocate([len(g) for g in groups], n)):
        kept.extend(int(members[j]) for j in rng.choice(len(members), size=k, replace=False))
    kept.sort()
    how = f"stratified by {', '.join(by)} ({len(groups)} strata)" if by else "simple random"
    return [items[i] for i in kept], f"{how} sample of {n:,} of {len(items):,} items, seed {seed}"
