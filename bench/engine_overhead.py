"""How much does the audit engine add to the model calls it makes?

Runs the two engine probes (fairness.stereotype_pairs, toxicity.continuation) on the demo model
through ``trustslm.audit`` with the cache off, recording every batch the adapter sends to the
model. Then replays exactly those batches (same token ids, same padding, same batch sizes, same
prompts and token budgets) directly: a transformers forward pass plus log-softmax and gather for
log-likelihoods, the backend's decoding loop (``trustslm.models.decode.decode_batch``, with the
per-row sampler) for generation.
Prints the audit's wall time divided by the direct calls' time. Target: at most 1.15.

Both timings exclude loading the model (the same loaded model serves both). Each side is run
twice, alternating, and the faster run of each is kept.

    python bench/engine_overhead.py [--model smollm2] [--limit N] [--k K]
"""

from __future__ import annotations

import argparse
import time


def replay(adapter, batches) -> float:
    import torch

    from trustslm.models.decode import decode_batch
    from trustslm.models.hf import PerRowSampler

    model = adapter.model
    start = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            if b["kind"] == "loglikelihood":
                logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
                for i, (n, cont) in enumerate(b["spans"]):
                    if not cont:
                        continue
                    lp = torch.log_softmax(logits[i, n - len(cont): n].float(), dim=-1)
                    target = torch.tensor(cont)
                    lp.gather(1, target[:, None]).sum().item()
                    bool((lp.argmax(-1) == target).all())
            else:  # the same decoding loop on the same prompts, without the engine around it
                reqs = b["requests"]
                prompts = [row[m.bool()].tolist() for row, m in zip(b["input_ids"], b["attention_mask"])]
                decode_batch(model, prompts, max_new_tokens=[r.max_new_tokens for r in reqs], pad_id=adapter.pad_id,
                             eos_ids=adapter.eos_ids, processors=[PerRowSampler(reqs)])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--limit", type=int, default=None, help="items per probe (default: all)")
    parser.add_argument("--k", type=int, default=5, help="continuations per prompt (default 5)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import torch

    import trustslm
    from trustslm.models.resolve import load_model

    torch.manual_seed(0)
    adapter = load_model(args.model, batch_size=args.batch_size)
    probes = ["fairness.stereotype_pairs", "toxicity.continuation"]
    options = {"toxicity.continuation": {"k": args.k}}

    def audit_once():
        adapter.recorder = []
        adapter._encodings.clear()  # tokenisation is part of the audit's work
        start = time.perf_counter()
        report = trustslm.audit(adapter, probes=probes, options=options, limit=args.limit,
                                use_cache=False, progress=False)
        elapsed = time.perf_counter() - start
        batches, adapter.recorder = adapter.recorder, None
        return elapsed, batches, report

    # warm-up (first calls allocate and initialise kernels)
    replay(adapter, audit_once()[1][:1])
    audit_times, direct_times = [], []
    for _ in range(2):
        elapsed, batches, report = audit_once()
        audit_times.append(elapsed)
        direct_times.append(replay(adapter, batches))
    n_ll = sum(1 for b in batches if b["kind"] == "loglikelihood")
    n_gen = sum(1 for b in batches if b["kind"] == "generate")
    t_audit, t_direct = min(audit_times), min(direct_times)
    statuses = ", ".join(f"{r.probe_id}={r.status}" for r in report.results)
    print(f"model {report.model.name}, batch size {args.batch_size}, {n_ll} log-likelihood and "
          f"{n_gen} generation batches ({statuses})")
    print(f"audit wall time   {t_audit:8.2f} s   (runs: {', '.join(f'{t:.2f}' for t in audit_times)})")
    print(f"direct transformers {t_direct:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in direct_times)})")
    print(f"ratio audit/direct  {t_audit / t_direct:6.3f}   (target <= 1.15)")


if __name__ == "__main__":
    main()
