"""Do the attacks' model queries go through the engine's batched calls, and what does that buy?
Queries per second with the engine's batching versus one request per forward pass.

Runs the ``robustness.adversarial_classification`` attack loop (TextAttack's recipe, the probe's
prompts and seeding) on the first ``--per-task`` examples of each default task, twice: with the
model adapter's ``--batch-size`` (the audit's default, 32) and with batch size 1. Each time the
queries go through ``trustslm.engine.execute`` exactly as in an audit (deduplicated; no on-disk
cache, so both runs compute every query). A query is one text TextAttack asks about (one
log-likelihood request per label word). Prints queries per second for each, their ratio, and
whether both runs reached the same outcome on every example.

    python bench/attack_batching.py [--model smollm2] [--recipe deepwordbug] [--per-task 2] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--recipe", default="deepwordbug")
    parser.add_argument("--per-task", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--query-budget", type=int, default=300)
    args = parser.parse_args()

    from trustslm.core.resources import datasets_dir
    from trustslm.data.classification import load_classification
    from trustslm.engine.execute import memo_call
    from trustslm.models.resolve import load_model
    from trustslm.probes.base import limit_per
    from trustslm.robustness.attack import attack_items

    items = limit_per(load_classification(datasets_dir() / "robustness_classification.jsonl")[0], "task",
                      args.per_task)
    model = load_model(args.model)
    outcomes, rates = {}, {}
    for batch in (args.batch_size, 1):
        model.batch_size = batch
        known: dict = {}
        engine_call = memo_call(model, identity="bench", known=known)  # the audit's path, without the disk cache
        asked = [0]

        def call(requests, engine_call=engine_call, asked=asked):
            asked[0] += len(requests)
            return engine_call(requests)

        start = time.perf_counter()
        outcomes[batch] = attack_items(items, [args.recipe], call, seed=0, query_budget=args.query_budget,
                                       progress=False)
        seconds = time.perf_counter() - start
        queries = sum(o["queries"] for o in outcomes[batch])
        rates[batch] = queries / seconds
        print(f"batch {batch:>3}: {len(items)} examples, {queries} queries ({asked[0]} label log-likelihoods, "
              f"{len(known)} computed) in {seconds:6.1f} s = {rates[batch]:6.2f} queries per second")
    same = sum(a["status"] == b["status"] and a["perturbed"] == b["perturbed"]
               for a, b in zip(outcomes[args.batch_size], outcomes[1]))
    print(f"same outcome at both batch sizes: {same} of {len(items)}")
    print(f"speed-up of batch {args.batch_size} over batch 1: {rates[args.batch_size] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
