"""What a suite's sample counts cost and buy: per probe, its requests, its estimated model time and
its interval's width, against an audit of the same model on the whole sets.

    python bench/suite_cost.py --whole WHOLE/report.json --suite SUITE/report.json

``WHOLE`` is an audit on every item (for the smoke suite: its version 1, ``git show
cb718b5:probes/suites/smoke.yaml``); ``SUITE`` the audit to price. The suite's audit can be run
from a copy of the whole audit's request cache (``TRUSTSLM_CACHE_DIR=COPY trustslm audit MODEL
--resume``): its requests are a subset, so every answer comes from the cache and the widths are
the ones a fresh run gives but for sampled texts that a different batch changes by float rounding.

A probe's time is estimated as its model time plus overhead in ``WHOLE`` times the share of its
requests kept (an estimate: fewer rows make fuller batches rarer, so the real saving is smaller;
the real figure is a fresh audit's wall time). Dimension widths are compared with the default
audit of 2026-12-06 (docs/measured.md, "The default audit"), the widths issue 20 asks the
default audit to keep.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: The dimension and overall interval widths of the default audit of SmolLM2 on 2026-12-06
#: (docs/measured.md: robustness [27.5, 42.6], privacy [82.9, 93.3], fairness [76.9, 92.0],
#: toxicity [68.6, 81.6], truthfulness [36.2, 45.4], overall [61.9, 67.5]).
FILING_DAY_WIDTHS = {"robustness": 42.6 - 27.5, "privacy": 93.3 - 82.9, "fairness": 92.0 - 76.9,
                     "toxicity": 81.6 - 68.6, "truthfulness": 45.4 - 36.2, "overall": 67.5 - 61.9}


def _width(d: dict) -> float:
    return float(d["ci_high"]) - float(d["ci_low"])


def compare(whole: dict, suite: dict) -> tuple[list[dict], dict[str, dict]]:
    """Rows per probe that ran in both, and per dimension (and overall) the widths."""
    ran = {r["probe_id"]: r for r in whole["results"] if r["status"] == "ok"}
    rows = []
    for r in suite["results"]:
        w = ran.get(r["probe_id"])
        if r["status"] != "ok" or w is None:
            continue
        speed = w.get("speed") or {}
        seconds = float(speed.get("model_time_s", 0.0)) + float(speed.get("overhead_s", 0.0))
        share = r["n_requests"] / w["n_requests"] if w["n_requests"] else 0.0
        rows.append({"probe": r["probe_id"], "requests": (w["n_requests"], r["n_requests"]),
                     "seconds": (seconds, seconds * share),
                     "width": (_width(w["score"]), _width(r["score"])),
                     "score": (w["score"]["score"], r["score"]["score"])})
    dims = {}
    for name in sorted(set(whole["dimensions"]) | set(suite["dimensions"])):
        a, b = whole["dimensions"].get(name), suite["dimensions"].get(name)
        if a and b and a.get("status") == "measured" and b.get("status") == "measured":
            dims[name] = {"whole": _width(a), "suite": _width(b)}
    dims["overall"] = {"whole": _width(whole["overall"]), "suite": _width(suite["overall"])}
    return rows, dims


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--whole", type=Path, required=True, help="report.json of the audit on the whole sets")
    ap.add_argument("--suite", type=Path, required=True, help="report.json of the audit to price")
    args = ap.parse_args(argv)
    whole, suite = (json.loads(p.read_text()) for p in (args.whole, args.suite))
    rows, dims = compare(whole, suite)
    print(f"{'probe':40s} {'requests':>13s} {'est. seconds':>15s} {'score width':>13s} {'score':>13s}")
    for r in rows:
        print(f"{r['probe']:40s} {r['requests'][0]:5d} -> {r['requests'][1]:4d} {r['seconds'][0]:6.1f} -> {r['seconds'][1]:5.1f}"
              f" {r['width'][0]:5.1f} -> {r['width'][1]:4.1f} {r['score'][0]:5.1f} -> {r['score'][1]:4.1f}")
    before = sum(r["seconds"][0] for r in rows)
    after = sum(r["seconds"][1] for r in rows)
    print(f"requests: {sum(r['requests'][0] for r in rows)} -> {sum(r['requests'][1] for r in rows)}")
    print(f"model time and overhead: {before:.0f} s -> {after:.0f} s estimated ({after / before:.2f})")
    print(f"{'dimension':14s} {'whole':>6s} {'suite':>6s} {'2026-12-06':>11s}")
    wider = []
    for name, d in dims.items():
        limit = FILING_DAY_WIDTHS.get(name)
        print(f"{name:14s} {d['whole']:6.1f} {d['suite']:6.1f} {limit:11.1f}" if limit is not None
              else f"{name:14s} {d['whole']:6.1f} {d['suite']:6.1f}")
        if limit is not None and d["suite"] > limit + 1e-9:
            wider.append(name)
    print("wider than on 2026-12-06: " + (", ".join(wider) if wider else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
