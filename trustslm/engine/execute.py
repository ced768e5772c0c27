"""Run every probe's requests against a model once: deduplicated, cached, with a progress bar.

Requests of all probes are merged and deduplicated by key. With ``resume``, results already in
the cache (under the model's identity, :attr:`~trustslm.core.types.ModelInfo.identity`) are taken
from it, each only after its row and its value check out (:func:`result_from_cache`); the rest go
to the adapter, which sorts and batches them, and each finished batch is written to the cache at once. Because the adapter forms batches as contiguous
runs of one deterministic order, the batches left after an interruption are exactly the ones an
uninterrupted run would have computed, so a resumed run gives the same report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from trustslm.engine.cache import RequestCache, warn
from trustslm.engine.executors import Executor, LocalExecutor
from trustslm.models.base import (
    GenerateRequest,
    GenerationResult,
    LoglikelihoodResult,
    ModelAdapter,
    Request,
    Result,
    TokenScoresResult,
)


@dataclass
class ExecutionStats:
    cache_hits: int = 0
    computed: int = 0
    cache_rejected: int = 0  # rows found for a request that failed their checks (recomputed)
    seconds: dict[str, float] = field(default_factory=dict)  # model time per request kind
    cached_keys: set[str] = field(default_factory=set)  # the requests read from the cache

    def merge(self, other: ExecutionStats) -> None:
        self.cache_hits += other.cache_hits
        self.computed += other.computed
        self.cache_rejected += other.cache_rejected
        self.cached_keys |= other.cached_keys
        for kind, seconds in other.seconds.items():
            self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds


def execute(
    model: ModelAdapter,
    requests: Sequence[Request],
    *,
    identity: str,
    cache: RequestCache | None = None,
    resume: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
    label: str | None = None,
) -> tuple[dict[str, Result], ExecutionStats]:
    """Results of ``requests`` by request key; ``identity`` is the model's
    (:func:`~trustslm.models.base.model_info`), which cached results are stored and found under.
    ``executor`` computes the batches (default: in this process, :class:`LocalExecutor`);
    ``label`` heads the progress bars (e.g. the probe whose round this is)."""
    executor = executor or LocalExecutor()
    unique: dict[str, Request] = {}
    for r in requests:
        unique.setdefault(r.key(), r)
    stats = ExecutionStats()
    results: dict[str, Result] = {}
    if resume and cache is not None:
        results, stats.cache_rejected = _from_cache(cache, identity, unique)
        stats.cache_hits = len(results)
        stats.cached_keys = set(results)

    for kind in ("loglikelihood", "token_scores", "generate"):
        todo = [r for k, r in unique.items() if r.kind == kind and k not in results]
        if not todo:
            continue
        bar = tqdm(total=len(todo), desc=f"{label}: {kind} requests" if label else f"{kind} requests", unit="req", file=sys.stderr,
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
            executor.run(model, kind, todo, on_batch)
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
    executor: Executor | None = None,
    progress: bool = False,
    label: str | None = None,
):
    """A ``call(requests) -> Results`` for adaptive probes: the requests not in ``known`` (which
    it grows) go through :func:`execute` as one batched, deduplicated, cached run, quietly unless
    ``progress`` (a bar headed ``label`` for each call that computes something); the model time
    and counts are added to ``stats``."""
    from trustslm.probes.base import Results

    def call(requests: Sequence[Request]) -> Results:
        todo = [r for r in requests if r.key() not in known]
        if todo:
            out, more = execute(model, todo, identity=identity, cache=cache, resume=resume, progress=progress,
                                executor=executor, label=label)
            known.update(out)
            if stats is not None:
                stats.merge(more)
        return Results(known)

    return call


def _from_cache(cache: RequestCache, identity: str, unique: dict[str, Request]) -> tuple[dict[str, Result], int]:
    """The cached results of ``unique`` that check out, and how many rows did not (warned about
    in one line; those requests are recomputed and their rows replaced)."""
    found, rejected = cache.get_many(identity, {k: r.kind for k, r in unique.items()})
    results: dict[str, Result] = {}
    for key, data in found.items():
        result = result_from_cache(unique[key], data)
        if result is None:
            rejected += 1
        else:
            results[key] = result
    if rejected:
        warn(f"{rejected} cached result(s) in {cache.path} failed their checks (edited, copied from another "
             "model or damaged) and are recomputed")
    return results, rejected


def result_from_cache(request: Request, data: dict[str, Any]) -> Result | None:
    """``data`` as the result type of ``request``, or None when it is not one: exactly the
    type's fields, each of its type, and within what the request allows (a generation of at
    most ``max_new_tokens`` tokens). A cached row is data; nothing in it is trusted unchecked."""
    check = _CHECKS.get(request.kind)
    if check is None or not check(data, request):
        return None
    return _TYPES[request.kind].from_dict(data)


def _number(x: Any) -> bool:
    """A JSON number (NaN and infinities included: a model in half precision can give them)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _numbers(x: Any) -> bool:
    return isinstance(x, list) and all(_number(v) for v in x)


def _loglikelihood_ok(d: dict, request: Request) -> bool:
    return (set(d) == {"logprob", "is_greedy", "n_tokens"} and _number(d["logprob"])
            and isinstance(d["is_greedy"], bool) and _count(d["n_tokens"]))


def _generation_ok(d: dict, request: Request) -> bool:
    limit = request.max_new_tokens if isinstance(request, GenerateRequest) else 0
    return (set(d) == {"text", "n_tokens", "finish_reason"} and isinstance(d["text"], str)
            and _count(d["n_tokens"]) and d["n_tokens"] <= limit and d["finish_reason"] in ("stop", "length"))


def _token_scores_ok(d: dict, request: Request) -> bool:
    if set(d) != {"logprobs", "mu", "sigma"} or not _numbers(d["logprobs"]):
        return False
    return all(d[k] is None or (_numbers(d[k]) and len(d[k]) == len(d["logprobs"])) for k in ("mu", "sigma"))


_CHECKS = {"loglikelihood": _loglikelihood_ok, "generate": _generation_ok, "token_scores": _token_scores_ok}
_TYPES: dict[str, type] = {"loglikelihood": LoglikelihoodResult, "generate": GenerationResult,
                           "token_scores": TokenScoresResult}
