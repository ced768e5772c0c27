"""Reading and writing speed of each file of a ``trustslm variants`` run on the llama.cpp backend.

The audits of a resumed run take their requests from the cache, so their reports carry no speed;
this script times every file of the run's ``models/`` folder (and the files given, read from
``variants.json``) on the same fixed requests, one file after the other in this process:

- ``--loglik N`` log-likelihood requests: the first N CrowS-Pairs-style sentence pairs of the
  project's own ``fairness.stereotype_pairs`` data, each sentence scored whole;
- ``--generate M`` greedy generations of 32 tokens from the first M of the project's closed-book
  questions.

Prints, per file: its bits per weight, log-likelihood tokens per second, generated tokens per
second, and both as ratios to the reference's::

    .venv/bin/python bench/variant_speed.py VARIANTS_OUT [--loglik 200] [--generate 16]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _requests(n_loglik: int, n_generate: int):
    from trustslm.core.resources import datasets_dir
    from trustslm.models.base import GenerateRequest, LoglikelihoodRequest

    pairs = [json.loads(line) for line in (datasets_dir() / "stereotype_pairs.jsonl").read_text().splitlines()
             if line.strip()]
    texts = [t for p in pairs for t in (p["sent_more"], p["sent_less"])][:n_loglik]
    qa = [json.loads(line) for line in (datasets_dir() / "closed_book_qa.jsonl").read_text().splitlines()
          if line.strip()][:n_generate]
    ll = [LoglikelihoodRequest("", t) for t in texts]
    gen = [GenerateRequest(f"Question: {q['question']}\nAnswer:", max_new_tokens=32, temperature=0.0) for q in qa]
    return ll, gen


def _time(path: Path, ll, gen) -> tuple[float, float]:
    from trustslm.models.resolve import load_model

    model = load_model(str(path), backend="llama.cpp")
    try:
        started = time.perf_counter()
        scored = model.loglikelihood(ll)
        ll_s = time.perf_counter() - started
        ll_tokens = sum(r.n_tokens for r in scored)
        started = time.perf_counter()
        out = model.generate(gen)
        gen_s = time.perf_counter() - started
        gen_tokens = sum(o.n_tokens for o in out)
    finally:
        model.close()
    return ll_tokens / ll_s, gen_tokens / gen_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="the output folder of trustslm variants")
    ap.add_argument("--loglik", type=int, default=200)
    ap.add_argument("--generate", type=int, default=16)
    args = ap.parse_args()
    run = json.loads((args.run / "variants.json").read_text())
    files = [(run["reference"]["name"], Path(run["reference"]["path"]), run["reference"]["quantisation"])]
    files += [(v["name"], Path(v["path"]), v["quantisation"]) for v in run["variants"]]
    ll, gen = _requests(args.loglik, args.generate)
    rows = []
    for name, path, q in files:
        rows.append((name, q["bits_per_weight"], *_time(path, ll, gen)))
    ref_ll, ref_gen = rows[0][2], rows[0][3]
    print(f"{len(ll)} log-likelihood requests, {len(gen)} greedy generations of 32 tokens, llama.cpp backend")
    print(f"{'file':<14} {'bits/weight':>11} {'loglik tok/s':>13} {'ratio':>6} {'generate tok/s':>15} {'ratio':>6}")
    for name, bpw, llr, genr in rows:
        print(f"{name:<14} {bpw:>11.2f} {llr:>13.1f} {llr / ref_ll:>6.2f} {genr:>15.1f} {genr / ref_gen:>6.2f}")


if __name__ == "__main__":
    main()
