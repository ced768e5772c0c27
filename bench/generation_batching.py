"""Is generation batched, and what does batching buy? Continuations per second at batch 1
versus the batch size the audit uses.

Generates the same continuations (the first ``--prompts`` prompts of ``toxicity.continuation``'s
default set, ``--k`` samples each, its sampling settings) through trustslm's model adapter twice:
one request per forward pass, then ``--batch-size`` requests per pass (the audit's default, 32).
Both exclude loading the model; sampling is seeded per request, so both produce the same texts
(checked). Prints continuations per second for each and their ratio.

    python bench/generation_batching.py [--model smollm2] [--prompts 16] [--k 4] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    args = parser.parse_args()

    from trustslm.core.resources import datasets_dir
    from trustslm.models.base import GenerateRequest
    from trustslm.models.resolve import load_model

    lines = (datasets_dir() / "toxicity_prompts.jsonl").read_text().splitlines()
    prompts = [json.loads(line)["prompt"] for line in lines if line.strip()][: args.prompts]
    requests = [GenerateRequest(prompt=p, max_new_tokens=args.max_new_tokens, temperature=1.0, top_p=0.9, seed=0,
                                sample_index=j) for p in prompts for j in range(args.k)]
    model = load_model(args.model)
    texts, rates = {}, {}
    for batch in (1, args.batch_size):
        model.batch_size = batch
        start = time.perf_counter()
        results = model.generate(requests)
        seconds = time.perf_counter() - start
        texts[batch] = [r.text for r in results]
        rates[batch] = len(requests) / seconds
        print(f"batch {batch:>3}: {len(requests)} continuations in {seconds:6.1f} s = {rates[batch]:6.2f} per second")
    same = sum(a == b for a, b in zip(texts[1], texts[args.batch_size]))
    print(f"same continuation at both batch sizes: {same} of {len(requests)}")
    print(f"speed-up of batch {args.batch_size} over batch 1: {rates[args.batch_size] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
