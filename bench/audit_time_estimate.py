"""How long would the default (and --quick) audit of MODEL take on BACKEND here? An extrapolation,
for models too slow to audit whole on two cores.

    .venv/bin/python bench/audit_time_estimate.py MODEL [--backend hf|llama.cpp] [--sample 24] [--model-arg K=V]

1. Plans the audit exactly as ``trustslm audit`` does (all default probes, their data, the full and
   the quick profile) and collects every request the probes ask for up front, deduplicated by key
   as the engine does.
2. Times a random sample (seed 0) of each request kind on the model, through the backend's own
   batch loop, and multiplies each kind's seconds per request by its count.
3. Prints model time per kind, per profile, and the total.

What it leaves out, so the figure is a lower bound on model time: the requests an adaptive probe
(TextAttack's search in ``robustness.adversarial_classification``) makes while it runs, and the
non-model time (data, scorers, bootstrap), which the SmolLM2 reference run measures (see the
README's backends section for both, and the ratio of this estimate to a real run).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def planned_requests(capabilities: frozenset[str], *, quick: bool, split_tokens) -> dict[str, list]:
    from trustslm.core.errors import ProbeSkipped
    from trustslm.core.registry import Registry
    from trustslm.engine import run as engine
    from trustslm.probes.base import ProbeContext

    registry = Registry()
    planned = engine.plan(registry, None, quick=quick)
    ctx = ProbeContext(seed=0, limit=None, capabilities=capabilities, registry=registry, progress=False,
                       split_tokens=split_tokens)
    engine.load_data(planned, ctx)
    unique: dict[str, object] = {}
    for p in planned:
        if p.status != "ok" or p.probe.needs - capabilities:
            continue
        try:
            p.probe.check(ctx)
            for r in p.probe.requests(p.data, ctx):
                unique.setdefault(r.key(), r)
        except ProbeSkipped:
            continue
    by_kind: dict[str, list] = {}
    for r in unique.values():
        by_kind.setdefault(r.kind, []).append(r)
    return by_kind


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--sample", type=int, default=24, help="requests timed per kind (default 24)")
    ap.add_argument("--model-arg", action="append", default=[])
    args = ap.parse_args()

    from trustslm.models.resolve import load_model

    model_args = dict(a.split("=", 1) for a in args.model_arg)
    t0 = time.perf_counter()
    model = load_model(args.model, backend=args.backend, model_args=model_args)
    load_s = time.perf_counter() - t0
    info = model.info()
    print(f"model {info.name} ({info.parameters or 0:,} parameters, {info.dtype}) on {info.backend}: "
          f"loaded in {load_s:.1f} s", flush=True)
    rng = random.Random(0)
    per_request: dict[str, float] = {}
    profiles = {name: planned_requests(model.capabilities, quick=name == "quick", split_tokens=model.split_tokens)
                for name in ("default", "quick")}
    for kind in ("loglikelihood", "token_scores", "generate"):
        pool = profiles["default"].get(kind, [])
        if not pool:
            continue
        sample = rng.sample(pool, min(args.sample, len(pool)))
        getattr(model, kind)(sample[:2])  # warm-up (first-call costs: weight repacking, allocation)
        start = time.perf_counter()
        getattr(model, kind)(sample)
        per_request[kind] = (time.perf_counter() - start) / len(sample)
        print(f"  {kind}: {per_request[kind]:.3f} s per request (timed {len(sample)})", flush=True)
    for name, by_kind in profiles.items():
        total = 0.0
        parts = []
        for kind, reqs in sorted(by_kind.items()):
            seconds = per_request.get(kind, 0.0) * len(reqs)
            total += seconds
            parts.append(f"{kind} {len(reqs)} x {per_request.get(kind, 0.0):.3f} s = {seconds / 60:.1f} min")
        print(f"{name}: model time {total / 60:.1f} min ({'; '.join(parts)})", flush=True)
    model.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
