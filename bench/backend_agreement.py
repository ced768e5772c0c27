"""The same probes on the same GGUF file through two backends (default: transformers, which
dequantises it to float32, and llama.cpp, which runs its quantised kernels): does every metric
agree within its interval, and what is the wall-time ratio?

    .venv/bin/python bench/backend_agreement.py [--model smollm2] [--limit 30] [--out /tmp/agreement]

Runs ``trustslm audit MODEL --backend B --probes ... --limit N --quick`` once per backend, one
after the other (never side by side: two torch processes slow each other tenfold on two cores),
each with a fresh cache, then prints every overall metric of both reports with its interval,
whether each value lies inside the other's interval, and the wall times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

PROBES = ("fairness.stereotype_pairs,fairness.bbq,fairness.winobias,truthfulness.truthfulqa_mc,"
          "truthfulness.closed_book_qa,toxicity.continuation")


def audit(model: str, backend: str, out: Path, limit: int, probes: str) -> tuple[dict, float]:
    folder, cache = out / backend, out / f"cache-{backend}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trustslm", "audit", model, "--backend", backend, "--probes", probes,
                    "--limit", str(limit), "--quick", "--out", str(folder), "--no-progress", "--cache-dir", str(cache)],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads((folder / "report.json").read_text()), time.perf_counter() - start


def overall_metrics(report: dict) -> dict:
    return {(p["probe_id"], m["name"]): (m["value"], m["ci_low"], m["ci_high"])
            for p in report["results"] for m in p.get("metrics", [])
            if not m.get("group") and m.get("ci_low") is not None and m.get("value") is not None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--backends", default="hf,llama.cpp")
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--probes", default=PROBES)
    ap.add_argument("--out", default="/tmp/trustslm-agreement")
    args = ap.parse_args()
    a_name, b_name = args.backends.split(",")
    out = Path(args.out)
    (a, a_s), (b, b_s) = (audit(args.model, name, out, args.limit, args.probes) for name in (a_name, b_name))
    ma, mb = overall_metrics(a), overall_metrics(b)
    inside = 0
    keys = sorted(set(ma) & set(mb))
    for key in keys:
        (va, la, ha), (vb, lb, hb) = ma[key], mb[key]
        ok = la <= vb <= ha and lb <= va <= hb
        inside += ok
        print(f"{key[0]:<30} {key[1]:<26} {a_name} {va:.3f} [{la:.3f}, {ha:.3f}]  "
              f"{b_name} {vb:.3f} [{lb:.3f}, {hb:.3f}]  {'each inside the other' if ok else 'DIFFERENT'}")
    print(f"{inside} of {len(keys)} metrics: each value inside the other backend's interval")
    print(f"wall time: {a_name} {a_s:.0f} s, {b_name} {b_s:.0f} s, ratio {a_s / b_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
