"""Token trees, the plain scoring pass and float64, on CrowS-Pairs batches as the transformers
backend plans them: how far each float32 path's sentence log-likelihoods are from the same
model run in float64, one sentence at a time (no padding)::

    .venv/bin/python bench/tree_vs_float64.py --data ../shared/datasets/crows_pairs/crows_pairs_anonymized.csv

The backend checks its first tree batch against the plain path within
``TREE_CHECK_TOLERANCE`` per continuation token (``trustslm/models/hf.py``); this shows why a
flat 1e-4 would not do: the plain path's own rounding on long sentences is larger.
"""

from __future__ import annotations

import argparse
import copy
import csv
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="crows_pairs_anonymized.csv")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batches", default="0,1", help="which of the planned batches (0: the longest sentences)")
    args = ap.parse_args()

    import torch

    from trustslm.models.base import LoglikelihoodRequest
    from trustslm.models.prefix_tree import attention_tokens, plan_trees, tree_loglikelihoods
    from trustslm.models.resolve import load_model

    adapter = load_model(args.model, backend="hf")
    with args.data.open(newline="", encoding="utf-8") as f:
        sentences = [s for row in csv.DictReader(f) for s in (row["sent_more"], row["sent_less"])]
    requests = [LoglikelihoodRequest(context="", continuation=s) for s in sentences]
    plan = adapter.plan_batches(requests)
    wide = copy.deepcopy(adapter.model).double()
    attention = attention_tokens(adapter.model)
    for b in (int(x) for x in args.batches.split(",")):
        rows = adapter._scoring_rows([requests[i] for i in plan[b]])
        trees, _ = plan_trees([inp for inp, _ in rows], attention)
        tree = [lp for lp, _ in tree_loglikelihoods(adapter.model, rows, trees, device=adapter.device,
                                                    guard=adapter._memory_guard)]
        plain = [lp for lp, _ in adapter._plain_results(rows)]
        exact = []
        with torch.inference_mode():
            for inp, cont in rows:
                logits = wide(input_ids=torch.tensor([inp])).logits[0]
                logprobs = torch.log_softmax(logits, dim=-1)[len(inp) - len(cont):]
                exact.append(logprobs.gather(1, torch.tensor(cont)[:, None]).sum().item())
        print(f"batch {b}: {len(rows)} sentences of {min(len(c) for _, c in rows)} to {max(len(c) for _, c in rows)} "
              f"scored tokens, {sum(len(t.tokens) for _, t in trees)} tree nodes in {len(trees)} tree(s)")
        for name, got in (("tree", tree), ("plain", plain)):
            errors = [abs(g - e) for g, e in zip(got, exact)]
            print(f"  {name:5s} vs float64: largest {max(errors):.2e} nats, mean {statistics.mean(errors):.2e}")
        print(f"  tree vs plain: largest {max(abs(t - p) for t, p in zip(tree, plain)):.2e} nats")


if __name__ == "__main__":
    main()
