"""How much of CrowS-Pairs' work prefix sharing could save at most, and how much the transformers
backend's token trees save.

CrowS-Pairs scores two whole sentences per pair (an empty context: every token is scored), and
the two sentences of a pair differ in a few words. The forward pass over the tokens that the two
sentences start with is the same for both, so running it once is the most any prefix sharing can
save; everything after the first differing token depends on it and must run twice. This prints
that bound, counted in tokens as the transformers backend encodes the requests (the BOS token
included)::

    .venv/bin/python bench/crows_prefix_bound.py --data ../shared/datasets/crows_pairs/crows_pairs_anonymized.csv

The prefixes the sentences of different pairs share count too, which only a tree over many
sentences exploits: the script also prints the nodes of one tree over all sentences, and those
of the trees the backend plans for its batches (:mod:`trustslm.models.prefix_tree`: whole texts
by length band, then tokens, ``--batch-size`` at a time; counted as the backend pads them).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="crows_pairs_anonymized.csv")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    from trustslm.models.base import LoglikelihoodRequest
    from trustslm.models.prefix_share import MIN_SHARED_PREFIX, common_length
    from trustslm.models.prefix_tree import attention_tokens, build_tree, plan_trees
    from trustslm.models.resolve import load_model

    adapter = load_model(args.model, backend="hf", batch_size=args.batch_size)
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
    sentences = [s for pair in pairs for s in pair]
    requests = [LoglikelihoodRequest(context="", continuation=s) for s in sentences]
    inputs = [inp for inp, _ in adapter._scoring_rows(requests)]  # what a forward pass runs: all but the last token
    plain = sum(map(len, inputs))
    print(f"tokens the plain pass runs (all but each sentence's last): {plain}")
    print(f"nodes of one tree over all {len(inputs)} sentences: {len(build_tree(inputs).tokens) / plain:.3f} of those")
    attention = attention_tokens(adapter.model)
    nodes = padded = 0
    for batch in adapter.plan_batches(requests):
        trees, _ = plan_trees([inputs[i] for i in batch], attention)
        nodes += sum(len(tree.tokens) for _, tree in trees)
        padded += len(trees) * max(len(tree.tokens) for _, tree in trees)
    print(f"nodes of the backend's trees at batch size {args.batch_size}: {nodes / plain:.3f} of those "
          f"({padded / plain:.3f} with the padding of stacked trees; attention_tokens {attention:.0f})")


if __name__ == "__main__":
    main()
