"""The transformers backend's decoding loop against ``model.generate``, on the demo model.

Two request sets, each a probe's own:

- ``qa``: ``truthfulness.closed_book_qa``'s greedy answers (``Question: ...\\nAnswer:``, at most 24
  tokens, cut at the first newline), ``--questions`` of them;
- ``samples``: ``toxicity.continuation``'s sampled continuations (20 tokens, top-p 0.9),
  ``--prompts`` prompts x ``--k`` samples.

Each set runs three times through the same adapter: in batches of ``--batch-size`` (default 32)
of the backend's order, with the path the loop replaced (``model.generate`` on the left-padded
batch with the same per-row sampler, every row run to the batch's largest ``max_new_tokens``, the
stop string applied afterwards) and with trustslm's loop (``HFModel._generate_batch``: rows leave
the batch when they end, a prompt's samples share its prompt pass); then with the loop in the
backend's token-budget batches. Prints the seconds of each, the ratios to ``generate``, and how
many texts are the same. ``--top-p-only`` times only transformers' sorting top-p warper against
``NucleusFilter`` on 48 random rows of SmolLM2's vocabulary size::

    .venv/bin/python bench/decode_loop.py [--questions 64] [--prompts 16] [--k 8] [--top-p-only]
"""

from __future__ import annotations

import argparse
import json
import time


def generate_batch_with_generate(adapter, batch):
    """The backend's generation before models/decode.py: transformers' ``generate`` on the
    left-padded batch, then the stop strings cut the text."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    from trustslm.models.base import apply_stop
    from trustslm.models.hf import PerRowSampler

    prompts = [adapter.encode_prompt(r) for r in batch]
    width = max(len(p) for p in prompts)
    ids = torch.full((len(batch), width), adapter.pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    config = GenerationConfig(max_new_tokens=max(r.max_new_tokens for r in batch), do_sample=False, num_beams=1,
                              pad_token_id=adapter.pad_id, eos_token_id=adapter.eos_ids or None)
    processors = LogitsProcessorList([PerRowSampler(batch)] if any(not r.greedy for r in batch) else [])
    with torch.inference_mode():
        out = adapter.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                     logits_processor=processors)
    texts = []
    eos = set(adapter.eos_ids)
    for i, r in enumerate(batch):
        new = out[i, width:].tolist()[: r.max_new_tokens]
        stop = next((j for j, t in enumerate(new) if t in eos), None)
        text = adapter.tokenizer.decode(new if stop is None else new[:stop], skip_special_tokens=True)
        texts.append(apply_stop(text, r.stop)[0])
    return texts


def time_top_p(rows: int = 48, vocab: int = 49152, repeats: int = 10) -> None:
    """Seconds per call of transformers' sorting top-p warper and of ``NucleusFilter`` on the
    same random scores (one thread), and whether they keep the same tokens."""
    import torch
    from transformers import TopPLogitsWarper

    from trustslm.models.hf import NucleusFilter

    torch.set_num_threads(1)
    scores = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0)) * 4
    ids = torch.zeros((rows, 1), dtype=torch.long)
    seconds, kept = {}, {}
    for f in (TopPLogitsWarper(0.9), NucleusFilter(0.9)):
        kept[type(f).__name__] = torch.isinf(f(ids, scores))
        start = time.perf_counter()
        for _ in range(repeats):
            f(ids, scores)
        seconds[type(f).__name__] = (time.perf_counter() - start) / repeats
    same = torch.equal(kept["TopPLogitsWarper"], kept["NucleusFilter"])
    print(f"top-p 0.9 on {rows} rows x {vocab} tokens, one thread: TopPLogitsWarper {seconds['TopPLogitsWarper']:.3f} s, "
          f"NucleusFilter {seconds['NucleusFilter']:.3f} s a call (ratio "
          f"{seconds['NucleusFilter'] / seconds['TopPLogitsWarper']:.2f}); same tokens kept: {same}")


def run(adapter, requests, batch_fn, size: int | None) -> tuple[float, list[str]]:
    """Seconds and texts of ``requests`` in batches of ``size`` of the backend's order, or (None)
    in the backend's own token-budget batches."""
    texts: list[str | None] = [None] * len(requests)
    order = adapter.batch_order(requests)
    batches = adapter.plan_batches(requests) if size is None else [order[i : i + size] for i in range(0, len(order), size)]
    start = time.perf_counter()
    for batch in batches:
        for i, text in zip(batch, batch_fn([requests[i] for i in batch])):
            texts[i] = text
    return time.perf_counter() - start, texts  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top-p-only", action="store_true", help="time only the top-p filters")
    args = parser.parse_args()
    if args.top_p_only:
        time_top_p()
        return

    from trustslm.core.resources import datasets_dir
    from trustslm.models.base import GenerateRequest
    from trustslm.models.resolve import load_model
    from trustslm.probes.closed_book import TEMPLATE

    def read(name):
        return [json.loads(line) for line in (datasets_dir() / name).read_text().splitlines() if line.strip()]

    sets = {
        "qa": [GenerateRequest(prompt=TEMPLATE.format(question=q["question"]), max_new_tokens=24, stop=("\n",))
               for q in read("closed_book_qa.jsonl")[: args.questions]],
        "samples": [GenerateRequest(prompt=p["prompt"], max_new_tokens=20, temperature=1.0, top_p=0.9, sample_index=j)
                    for p in read("toxicity_prompts.jsonl")[: args.prompts] for j in range(args.k)],
    }
    adapter = load_model(args.model, batch_size=args.batch_size)
    adapter.generate(sets["qa"][:2])  # warm-up
    size = args.batch_size
    for name, requests in sets.items():
        t_old, old = run(adapter, requests, lambda b: generate_batch_with_generate(adapter, b), size)
        t_new, new = run(adapter, requests, lambda b: [r.text for r in adapter._generate_batch(b)], size)
        t_budget, budget = run(adapter, requests, lambda b: [r.text for r in adapter._generate_batch(b)], None)
        same = sum(a == b for a, b in zip(old, new))
        same_budget = sum(a == b for a, b in zip(old, budget))
        print(f"{name:8} {len(requests):4} requests, batches of {size}: model.generate {t_old:7.1f} s, decode loop "
              f"{t_new:7.1f} s (ratio {t_new / t_old:.2f}, same text {same} of {len(requests)}); decode loop in "
              f"token-budget batches {t_budget:7.1f} s (ratio {t_budget / t_old:.2f}, same text {same_budget})")


if __name__ == "__main__":
    main()
