"""Prefix sharing in the transformers backend: TruthfulQA-MC log-likelihoods on the demo model
(SmolLM2-135M-Instruct) with ``prefix_sharing`` on and off, timed, and the largest difference
in log-probability between the two.

The requests are the ``truthfulness.truthfulqa_mc`` probe's own (its six-shot QA prompt, then the
question; one request per MC1 and MC2 answer, duplicates removed as the runner removes them) for
the first ``--questions`` questions of ``mc_task.json``. ``--modes`` picks the runs, in order:
``off``, ``on`` (sharing, in the backend's longest-first batch order) and ``context`` (sharing,
with the requests ordered by context instead: a question's answers in one batch); differences are
against the first run::

    .venv/bin/python bench/prefix_reuse.py --questions 100 [--modes off,on,context]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MC_TASK = REPO.parent / "shared" / "datasets" / "truthfulqa" / "mc_task.json"


def build_requests(path: Path, n_questions: int) -> list:
    from trustslm.data.qa import load_truthfulqa
    from trustslm.probes.truthfulqa import _requests

    items = load_truthfulqa(path, "truthfulqa_mc_json")[0][:n_questions]
    requests = [r for item in items for which in ("mc1", "mc2") for r in _requests(item, which)]
    return list(dict.fromkeys(requests))


def timed(adapter, requests, *, sharing: bool) -> tuple[float, list, dict]:
    """Seconds for ``adapter.loglikelihood(requests)`` (tokenisation included), the results, and
    how many rows were in a shared group, how many tokens those groups shared, and how many rows
    were in batches that took the plain path (sharing would not have paid)."""
    import trustslm.models.prefix_share as prefix_share

    stats = {"rows": 0, "grouped": 0, "saved": 0, "groups": 0, "plain": 0}
    plan = prefix_share.plan_shared_batch

    def counting_plan(rows, *args, **kwargs):
        out = plan(rows, *args, **kwargs)
        stats["rows"] += len(rows)
        if out is None:
            stats["plain"] += len(rows)
            return out
        _, groups, _ = out
        stats["groups"] += len(groups)
        stats["grouped"] += sum(len(m) for _, m in groups)
        stats["saved"] += sum((len(m) - 1) * n for n, m in groups)
        return out

    prefix_share.plan_shared_batch = counting_plan
    adapter.prefix_sharing = sharing
    adapter._encodings.clear()
    try:
        start = time.perf_counter()
        results = adapter.loglikelihood(requests)
        return time.perf_counter() - start, results, stats
    finally:
        prefix_share.plan_shared_batch = plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", type=Path, default=MC_TASK)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--modes", default="off,on",
                        help="comma-separated runs among off, on, context; differences are against the first")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"off", "on", "context"}:
        parser.error("--modes: a comma-separated list of off, on, context")

    import torch

    from trustslm.models.resolve import load_model

    requests = build_requests(args.data, args.questions)
    adapter = load_model(args.model, batch_size=args.batch_size)
    tokens = sum(adapter.request_length(r) for r in requests)
    print(f"model {adapter.info().name}, torch threads {torch.get_num_threads()}, batch size {args.batch_size}")
    print(f"{args.questions} questions, {len(requests)} requests, {tokens} tokens")
    timed(adapter, requests[:8], sharing=True)  # warm-up
    by_length = adapter.batch_order

    def by_context(reqs):  # a question's answers together, longest context first
        rank = {i: n for n, i in enumerate(by_length(reqs))}
        return sorted(range(len(reqs)), key=lambda i: (-len(reqs[i].context), reqs[i].context, rank[i]))

    runs = []
    for mode in modes:
        adapter.batch_order = by_context if mode == "context" else by_length
        seconds, results, stats = timed(adapter, requests, sharing=mode != "off")
        runs.append((mode, seconds, results, stats if mode != "off" else None))
    adapter.batch_order = by_length
    first, t_first, ref = runs[0][0], runs[0][1], runs[0][2]
    for name, seconds, results, st in runs:
        delta = max(abs(a.logprob - b.logprob) for a, b in zip(results, ref, strict=True))
        greedy = sum(a.is_greedy != b.is_greedy or a.n_tokens != b.n_tokens for a, b in zip(results, ref, strict=True))
        line = (f"sharing {name:8s} {seconds:8.2f} s  {first}/this {t_first / seconds:5.2f}x  "
                f"max |Δ logprob| {delta:.2e}  is_greedy/n_tokens differ {greedy}")
        if st:
            line += (f"  | rows in a group {st['grouped']}/{st['rows']} ({st['groups']} groups, "
                     f"{st['plain']} rows in unshared batches), "
                     f"prefix tokens not recomputed {st['saved']} ({st['saved'] / tokens:.0%})")
        print(line)


if __name__ == "__main__":
    main()
