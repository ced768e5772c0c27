"""Estimate, without running the model, what other generation batch plans would cost.

Reads an audit's generation requests and their results from its request cache (each result's
token count says when its row ended), plans them the way the transformers backend does, and
prices each decode step with a straight line through measured step times (``--steps``, rows:ms;
the defaults are SmolLM2's ``bench/generation_replay.py --profile-step 8,80`` / ``32,80`` /
``128,80`` on this project's 2-core machine). It prints the decode time of:

- today's plan, at each ``--budgets`` token budget (rows leave a batch when they end);
- every step at the most rows (128): the bound of a loop that refills rows as they end;
- waves of ``W`` batches in which the rows still running when a batch is down to a share of its
  rows are carried into the next one (their prompt and tokens so far run again in its prompt
  pass, priced at ``--prefill-tok-s`` tokens a second).

These are estimates from a linear model of a step, not measurements::

    python bench/generation_plan_estimate.py --cache AUDIT_CACHE/requests.sqlite
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation_replay import load_requests  # noqa: E402


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``seconds = a + b * rows`` through (rows, ms) points."""
    n = len(points)
    mx = sum(r for r, _ in points) / n
    my = sum(ms for _, ms in points) / n / 1000
    b = sum((r - mx) * (ms / 1000 - my) for r, ms in points) / sum((r - mx) ** 2 for r, _ in points)
    return my - b * mx, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="an audit's requests.sqlite")
    ap.add_argument("--steps", default="8:136,32:161,128:382", help="measured decode steps, rows:ms")
    ap.add_argument("--budgets", default="8192,16384,32768")
    ap.add_argument("--prefill-tok-s", type=float, default=600.0)
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args()

    from trustslm.models.resolve import load_model

    a, b = fit([(int(r), float(ms)) for r, ms in (p.split(":") for p in args.steps.split(","))])
    print(f"step model: {1000 * a:.0f} ms + {1000 * b:.2f} ms a row")
    requests = load_requests(args.cache, None, 0)
    with sqlite3.connect(f"file:{args.cache}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT result FROM results WHERE kind = 'generate' ORDER BY key").fetchall()
    results = [json.loads(text) for (text,) in rows]
    # the steps a row takes: its tokens, and one more for the token that ended it (not kept)
    steps = [r["n_tokens"] + (r["finish_reason"] != "length") for r in results]
    adapter = load_model(args.model, backend="hf")
    lengths = [adapter.request_length(r) for r in requests]
    most = 4 * adapter.batch_size

    def cost(live: int) -> float:
        return a + b * live

    def decode(batch: list[int]) -> float:
        return sum(cost(sum(steps[i] > s for i in batch)) for s in range(max(steps[i] for i in batch)))

    for budget in (int(x) for x in args.budgets.split(",")):
        adapter.batch_tokens = budget
        plan = adapter.plan_batches(requests)
        print(f"budget {budget}: {len(plan)} batches, decode {sum(decode(bt) for bt in plan):.0f} s")
    adapter.batch_tokens = None
    plan = adapter.plan_batches(requests)
    print(f"every step at {most} rows: decode {sum(steps) / most * cost(most):.0f} s")
    for waves in (2, 4, 8):
        for share in (0.125, 0.25, 0.5):
            total = again = 0.0
            for w in range(0, len(plan), waves):
                wave = plan[w : w + waves]
                cap, queue, carried = len(wave[0]), [i for bt in wave for i in bt], []
                while queue or carried:
                    take = max(0, cap - len(carried))
                    batch = carried + [(i, 0) for i in queue[:take]]
                    queue = queue[take:]
                    again += sum(lengths[i] + done for i, done in batch if done)
                    s, carried = 0, []
                    while True:
                        live = [(i, done) for i, done in batch if steps[i] - done > s]
                        if not live:
                            break
                        if queue and len(live) <= share * len(batch):
                            carried = [(i, done + s) for i, done in live]
                            break
                        total += cost(len(live))
                        s += 1
            print(f"waves of {waves}, carried at {share:.3f} of a batch: decode {total:.0f} s "
                  f"+ {again / args.prefill_tok_s:.0f} s of prompts run again")


if __name__ == "__main__":
    main()
