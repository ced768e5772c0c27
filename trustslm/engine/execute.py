"""Run every probe's requests against a model once: deduplicated, cached, with a progress bar.

Requests of all probes are merged and deduplicated by key. With ``resume``, results already in
the cache (under the model's identity, :attr:`~trustslm.core.types.ModelInfo.identity`) are taken
from it; the rest go to the adapter, which sorts and batches them, and each
finished batch is written to the cache at once. Because the adapter forms batches as contiguous
runs of one deterministic order, the batches left after an interruption are exactly the ones an
uninterrupted run would have computed, so a resumed run gives the same report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from trustslm.engine.cache import RequestCache
from trustslm.models.base import RESULT_TYPES, ModelAdapter, Request, Result


@dataclass
class ExecutionStats:
    cache_hits: int = 0
    computed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # model time per request kind


def execute(
    model: ModelAdapter,
    requests: Sequence[Request],
    *,
    identity: str,
    cache: RequestCache | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[dict[str, Result], ExecutionStats]:
    """Results of ``requests`` by request key; ``identity`` is the model's
    (:func:`~trustslm.models.base.model_info`), which cached results are stored and found under."""
    unique: dict[str, Request] = {}
    for r in requests:
        unique.setdefault(r.key(), r)
    stats = ExecutionStats()
    results: dict[str, Result] = {}
    if resume and cache is not None:
        for key, data in cache.get_many(identity, list(unique)).items():
            results[key] = RESULT_TYPES[unique[key].kind].from_dict(data)
        stats.cache_hits = len(results)

    methods = (("loglikelihood", model.loglikelihood), ("token_scores", model.token_scores),
               ("generate", model.generate))
    for kind, method in methods:
        todo = [r for k, r in unique.items() if r.kind == kind and k not in results]
        if not todo:
            continue
        bar = tqdm(total=len(todo), desc=f"{kind} requests", unit="req", file=sys.stderr,
                   disable=not progress, dynamic_ncols=True)

        def on_batch(idx: Sequence[int], out: Sequence[Result], todo=todo, kind=kind, bar=bar) -> None:
            items = []
            for i, res in zip(idx, out):
                key = todo[i].key()
                results[key] = res
                items.append((key, kind, res.to_dict()))
            if cache is not None:
                cache.put_many(identity, items)
            stats.computed += len(idx)
            bar.update(len(idx))

        start = time.perf_counter()
        try:
            method(todo, on_batch=on_batch)  # type: ignore[operator]
        finally:
            bar.close()
            stats.seconds[kind] = stats.seconds.get(kind, 0.0) + time.perf_counter() - start
    return results, stats


def memo_call(
    model: ModelAdapter,
    *,
    identity: str,
    known: dict[str, Result],
    cache: RequestCache | None = None,
    resume: bool = False,
    stats: ExecutionStats | None = None,
):
    """A ``call(requests) -> Results`` for adaptive probes: the requests not in ``known`` (which
    it grows) go through :func:`execute` as one batched, deduplicated, cached run, quietly; the
    model time and counts are added to ``stats``."""
    from trustslm.probes.base import Results

    def call(requests: Sequence[Request]) -> Results:
        todo = [r for r in requests if r.key() not in known]
        if todo:
            out, more = execute(model, todo, identity=identity, cache=cache, resume=resume, progress=False)
            known.update(out)
            if stats is not None:
                stats.cache_hits += more.cache_hits
                stats.computed += more.computed
                for kind, seconds in more.seconds.items():
                    stats.seconds[kind] = stats.seconds.get(kind, 0.0) + seconds
        return Results(known)

    return call
