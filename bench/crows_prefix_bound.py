"""How much of CrowS-Pairs' work prefix sharing could save at most.

CrowS-Pairs scores two whole sentences per pair (an empty context: every token is scored), and
the two sentences of a pair differ in a few words. The forward pass over the tokens that the two
sentences start with is the same for both, so running it once is the most any prefix sharing can
save; everything after the first differing token depends on it and must run twice. This prints
that bound, counted in tokens as the transformers backend encodes the requests (the BOS token
included)::

    .venv/bin/python bench/crows_prefix_bound.py --data ../shared/datasets/crows_pairs/crows_pairs_anonymized.csv

trustslm shares a prefix only within the requests' contexts, so it shares nothing on CrowS-Pairs.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="crows_pairs_anonymized.csv")
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args()

    from trustslm.models.base import LoglikelihoodRequest
    from trustslm.models.prefix_share import MIN_SHARED_PREFIX, common_length
    from trustslm.models.resolve import load_model

    adapter = load_model(args.model, backend="hf")
    with args.data.open(newline="", encoding="utf-8") as f:
        pairs = [(row["sent_more"], row["sent_less"]) for row in csv.DictReader(f)]

    def tokens(sentence: str) -> list[int]:
        context, continuation = adapter.encode_loglikelihood(LoglikelihoodRequest(context="", continuation=sentence))
        return list(context) + list(continuation)

    total = shared = shared_rule = 0
    for more, less in pairs:
        a, b = tokens(more), tokens(less)
        k = common_length(a, b)
        total += len(a) + len(b)
        shared += k
        shared_rule += k if k >= MIN_SHARED_PREFIX else 0
    print(f"{len(pairs)} pairs, {total} tokens in their sentences")
    print(f"tokens in a pair's common prefix (run once instead of twice): {shared} ({shared / total:.3f} of all)")
    print(f"  in prefixes of at least {MIN_SHARED_PREFIX} tokens (trustslm's rule): {shared_rule} ({shared_rule / total:.3f})")
    print(f"so the least share of the tokens a forward pass must still run: {1 - shared / total:.3f}")


if __name__ == "__main__":
    main()
