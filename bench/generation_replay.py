"""Replay an audit's generation requests through the transformers backend, with and without the
decoding loop's prefix sharing and preallocated key/value cache.

An audit keeps every request it made in its request cache (``requests.sqlite`` in the cache
folder). This reads the ``generate`` requests of one (``--cache``), optionally a fixed random
sample of them (``--sample N``, seeded; a sample changes which requests share a batch), and runs
them through one loaded adapter of the demo model (or ``--model``) three times, one after the
other, each time in the backend's own token-budget batches:

- ``before``: the loop as it was before this bench: transformers' ``DynamicCache`` (a copy of
  the whole cache at every step) and no prefix sharing;
- ``prealloc``: keys and values written in place into a buffer sized once
  (``trustslm.models.decode.preallocate``), no prefix sharing;
- ``shared``: that, and prompts that start with the same tokens run those once (the default).

It prints each mode's seconds (and how many of them the model's forward passes took; the rest is
the decoding loop's own work: sampling, stop strings, cache moves), its ratio to ``before``, the
tokens generated per second, and how many texts equal ``before``'s (greedy and seeded sampling are
deterministic, so differences come from float rounding alone); ``--sampled-only`` replays only
the sampled requests::

    TRUSTSLM_CACHE_DIR=... .venv/bin/python bench/generation_replay.py --cache AUDIT_CACHE/requests.sqlite \
        [--sample 600] [--modes before,prealloc,shared] [--batch-size 32]
    .venv/bin/python bench/generation_replay.py --profile-step 128,250   # where one step's time goes

To compare two versions of trustslm, run this file under each (``PYTHONPATH`` on a git worktree of
the older one) with the same requests: ``--save-texts FILE`` writes the last mode's texts, and
``--compare-texts FILE`` counts how many of its texts equal those::

    PYTHONPATH=OLD_WORKTREE python bench/generation_replay.py --cache C --sample 600 --modes shared --save-texts old.json
    python bench/generation_replay.py --cache C --sample 600 --modes shared --compare-texts old.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import random
import sqlite3
import time
from pathlib import Path


def load_requests(path: Path, sample: int | None, seed: int, sampled_only: bool = False) -> list:
    from trustslm.models.base import GenerateRequest

    fields = {f.name for f in dataclasses.fields(GenerateRequest)}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT request FROM results WHERE kind = 'generate' ORDER BY key").fetchall()
    requests = []
    for (text,) in rows:
        data = json.loads(text)
        args = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields}
        requests.append(GenerateRequest(**args))
    if sampled_only:
        requests = [r for r in requests if not r.greedy]
    if sample is not None and sample < len(requests):
        requests = random.Random(seed).sample(requests, sample)
    return requests


def profile_step(adapter, rows: int, tokens: int) -> None:
    """One decode step of ``rows`` rows after ``tokens`` cached positions, three times under the
    torch profiler after one warm-up step, with transformers' cache and with the preallocated
    one; prints the ops by their share of CPU time, and each step's milliseconds."""
    import torch
    from torch.profiler import profile

    from trustslm.models.decode import preallocate
    from trustslm.models.prefix_share import cache_of, forward_names

    model = adapter.model
    cache_arg, _ = forward_names(model)
    ids = torch.randint(0, model.config.vocab_size, (rows, tokens), generator=torch.Generator().manual_seed(0))
    mask = torch.ones((rows, tokens + 4), dtype=torch.long)

    def step(cache, k):
        return cache_of(model(input_ids=ids[:, -1:], attention_mask=mask[:, : tokens + k + 1],
                               use_cache=True, logits_to_keep=1, **{cache_arg: cache}))

    with torch.inference_mode():
        prompt_cache = cache_of(model(input_ids=ids, use_cache=True, logits_to_keep=1))
        for name in ("DynamicCache", "preallocated"):
            cache = copy.deepcopy(prompt_cache)
            cache = step(preallocate(cache, 4) if name == "preallocated" else cache, 0)  # a warm-up step
            start = time.perf_counter()
            with profile() as prof:
                for k in range(1, 4):
                    cache = step(cache, k)
            ms = 1000 * (time.perf_counter() - start) / 3
            events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
            total = sum(e.self_cpu_time_total for e in events)
            print(f"one decode step, {rows} rows, {tokens} cached tokens, {name}: {ms:.0f} ms (profiled)")
            for e in events[:4]:
                print(f"  {e.key:48s} {100 * e.self_cpu_time_total / total:5.1f}% of CPU time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, help="an audit's requests.sqlite")
    ap.add_argument("--sample", type=int, default=None, help="replay a random sample of this many requests")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--modes", default="before,prealloc,shared")
    ap.add_argument("--profile-step", default=None, metavar="ROWS,TOKENS",
                    help="only profile one decode step of ROWS rows after TOKENS cached positions")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="the adapter's batch size (a generation batch holds up to 4x it in rows, within "
                         "256 tokens per batch-size row); default the backend's")
    ap.add_argument("--batch-tokens", type=int, default=None,
                    help="the adapter's generation token budget per batch (default batch size x 256)")
    ap.add_argument("--sampled-only", action="store_true", help="replay only the sampled (not greedy) requests")
    ap.add_argument("--save-texts", type=Path, default=None, help="write the last mode's texts (JSON)")
    ap.add_argument("--compare-texts", type=Path, default=None,
                    help="count the last mode's texts equal to those of a --save-texts file")
    args = ap.parse_args()

    import trustslm
    from trustslm.models import decode
    from trustslm.models.resolve import load_model

    adapter = load_model(args.model, backend="hf", **({"batch_size": args.batch_size} if args.batch_size else {}),
                         model_args={"batch_tokens": args.batch_tokens} if args.batch_tokens else None)
    if args.profile_step:
        rows, tokens = (int(x) for x in args.profile_step.split(","))
        profile_step(adapter, rows, tokens)
        return
    if args.cache is None:
        ap.error("--cache is required (an audit's requests.sqlite)")
    requests = load_requests(args.cache, args.sample, args.seed, args.sampled_only)
    forward, in_forward = adapter.model.forward, [0.0]

    @functools.wraps(forward)  # keeps forward's signature, which the loop reads its keywords from
    def timed_forward(*a, **k):  # the model's own time, to tell the decoding loop's overhead from it
        start = time.perf_counter()
        try:
            return forward(*a, **k)
        finally:
            in_forward[0] += time.perf_counter() - start

    adapter.model.forward = timed_forward
    real_preallocate = decode.preallocate
    results: dict[str, tuple[float, list]] = {}
    print(f"trustslm from {Path(trustslm.__file__).parent}")
    print(f"{len(requests)} generation requests from {args.cache}, batch size {adapter.batch_size}, "
          f"{len(adapter.plan_batches(requests))} batches")
    for mode in args.modes.split(","):
        decode.preallocate = real_preallocate if mode in ("prealloc", "shared") else (lambda cache, extra: cache)
        adapter.prefix_sharing = mode == "shared"
        start, in_forward[0] = time.perf_counter(), 0.0
        out = adapter.generate(requests)
        seconds = time.perf_counter() - start
        results[mode] = (seconds, out)
        tokens = sum(r.n_tokens for r in out)
        line = (f"{mode:9s} {seconds:8.1f} s (forward passes {in_forward[0]:.1f} s, the rest {seconds - in_forward[0]:.1f} s)"
                f"  {tokens / seconds:6.1f} generated tokens/s")
        if "before" in results and mode != "before":
            base_s, base = results["before"]
            same = sum(a.text == b.text for a, b in zip(out, base))
            line += f"  ratio to before {seconds / base_s:.2f}  texts equal to before's {same}/{len(out)}"
        print(line, flush=True)
    decode.preallocate = real_preallocate
    texts = [r.text for r in results[mode][1]]
    if args.save_texts:
        args.save_texts.write_text(json.dumps(texts))
    if args.compare_texts:
        other = json.loads(args.compare_texts.read_text())
        same = sum(a == b for a, b in zip(texts, other))
        print(f"{mode}: texts equal to {args.compare_texts}'s: {same}/{len(texts)}")


if __name__ == "__main__":
    main()
