"""The transformers backend's scoring pass with and without ``logits_to_keep``: TruthfulQA-MC
log-likelihoods (the ``truthfulness.truthfulqa_mc`` probe's own requests, as in
``bench/prefix_reuse.py``) timed on a GGUF model through transformers, projecting onto the
vocabulary only the columns some continuation scores (``keep``, what the backend does) or every
position (``full``, what it did before), and the largest difference in log-probability. Prefix
sharing is off in both, so every request takes the plain path that ``logits_to_keep`` changed
(Gemma 3's sliding-window cache takes it always)::

    .venv/bin/python bench/logits_keep.py --model ~/.cache/trustslm/real-models/gemma3-270m.gguf --questions 10

Prints each mode's seconds per request and the ratio full / keep.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefix_reuse import MC_TASK, build_requests  # noqa: E402


def timed(adapter, requests, *, keep: bool) -> tuple[float, list]:
    import trustslm.models.prefix_share as prefix_share

    real = prefix_share.forward_names
    if not keep:  # as if the model's forward could not keep positions: every position is projected
        prefix_share.forward_names = lambda model: (real(model)[0], None)
    adapter._encodings.clear()
    try:
        start = time.perf_counter()
        results = adapter.loglikelihood(requests)
        return time.perf_counter() - start, results
    finally:
        prefix_share.forward_names = real


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a GGUF file (or a model folder) transformers loads")
    ap.add_argument("--questions", type=int, default=10)
    args = ap.parse_args()
    from trustslm.models.resolve import load_model

    adapter = load_model(args.model, backend="hf", model_args={"prefix_sharing": False})
    requests = build_requests(MC_TASK, args.questions)
    adapter.loglikelihood(requests[:4])  # warm-up
    seconds = {}
    results = {}
    for mode in ("keep", "full"):
        seconds[mode], results[mode] = timed(adapter, requests, keep=mode == "keep")
        print(f"{mode}: {len(requests)} requests in {seconds[mode]:.1f} s "
              f"({seconds[mode] / len(requests):.3f} s per request)")
    diff = max(abs(a.logprob - b.logprob) for a, b in zip(results["keep"], results["full"], strict=True))
    same_greedy = all(a.is_greedy == b.is_greedy for a, b in zip(results["keep"], results["full"], strict=True))
    print(f"full / keep: {seconds['full'] / seconds['keep']:.1f}x; largest log-prob difference {diff:.2e}; "
          f"is_greedy identical: {same_greedy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
