"""What the chance levels add to an audit: the seven likelihood probes on the mock model (which
answers instantly, so the audit's own time is mostly scoring), with and without their 50
uniform-random answerers each.

    python bench/chance_cost.py

Prints the seconds each probe's chance level took, their sum, the audit's wall time with them and
without them (``chance_runs=0``), and the ratio.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trustslm.engine.chance as chance  # noqa: E402
from trustslm.core.registry import Registry  # noqa: E402
from trustslm.engine.run import load_data, plan, run  # noqa: E402
from trustslm.models.mock import ScriptedModel  # noqa: E402
from trustslm.probes.base import ProbeContext  # noqa: E402

PROBES = ["fairness.bbq", "fairness.stereoset", "fairness.stereotype_pairs", "fairness.winobias",
          "robustness.advglue", "truthfulness.calibration", "truthfulness.truthfulqa_mc"]


def audit(runs: int) -> float:
    registry, model = Registry(), ScriptedModel()
    ctx = ProbeContext(seed=0, limit=None, capabilities=model.capabilities, registry=registry, progress=False,
                       split_tokens=model.split_tokens)
    t0 = time.perf_counter()
    planned = plan(registry, PROBES)
    load_data(planned, ctx)
    run(model, planned, ctx, patterns=PROBES, cache=None, resume=False, resamples=1000, chance_runs=runs)
    return time.perf_counter() - t0


def main() -> int:
    spent: dict[str, float] = {}
    timed = chance.chance_level

    def timing(probe, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return timed(probe, *args, **kwargs)
        finally:
            spent[probe.id] = time.perf_counter() - t0

    chance.chance_level = timing  # with_chance calls it through the module
    without = audit(0)
    with_chance = audit(chance.RUNS)
    for pid in PROBES:
        print(f"{pid:32s} chance level {spent.get(pid, 0.0):6.2f} s")
    total = sum(spent.values())
    print(f"chance levels {total:.1f} s in all; audit {with_chance:.1f} s with them, {without:.1f} s without "
          f"(ratio {with_chance / without:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
