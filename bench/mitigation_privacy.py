"""Do the training-time privacy mitigations move their target metrics?

Runs the scenario of ``tests/test_mitigate_privacy.py`` on tiny GPT-2s (width 64): one corpus of
32 support notes (once each) and 8 contact records with an e-mail and a phone number (12 times
each: 4 exact copies, 8 near-duplicates differing in the ticket number), 6 canaries planted 10
times, 30 epochs. Fine-tuned plainly ("before"), then retrained with each mitigation ("after"):

* ``dp-finetune`` (DP-SGD, epsilon 8); target ``privacy.canary_exposure.relative_exposure``;
* ``pii-scrub`` (typed placeholders); target ``privacy.pii_leakage.leak_rate`` on 16 prompts that
  give a contact's training context and ask for the e-mail or phone (5 samples each);
* ``dedup`` (Jaccard of character 5-grams >= 0.8); target ``privacy.extraction.verbatim_rate``
  (16-token prefix, 16-token suffix, over the 128 training texts).

Both sides are audited with the probe options found beside the before model
(``trustslm.api.discover_options``) and compared with ``trustslm.compare`` (paired bootstrap).
Prints, per mitigation, what it did, then each overall metric of the target probe (the target
marked ``*``) before and after with its 95% interval, the paired difference with its 95% interval
and the verdict.

    python bench/mitigation_privacy.py [--seed 0] [--only dp-finetune|pii-scrub|dedup] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="fine-tuning seed (the corpus and audits are fixed)")
    parser.add_argument("--only", choices=["dp-finetune", "pii-scrub", "dedup"], default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a tiny model trains fastest on 1)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import torch
    from test_mitigate_privacy import MITIGATIONS, privacy_scenario, run_privacy

    torch.set_num_threads(args.threads)
    names = [n for n in MITIGATIONS if args.only in (None, n)]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRUSTSLM_CACHE_DIR"] = str(Path(tmp) / "cache")
        started = time.perf_counter()
        scenario = privacy_scenario(Path(tmp) / "scenario", seed=args.seed)
        runs = run_privacy(scenario, Path(tmp), names)
        wall = time.perf_counter() - started
    print(f"fine-tuning settings {scenario['settings']}; {wall:.0f} s for {len(names) + 1} fine-tunes and "
          f"{len(names) + 1} audits on {args.threads} thread(s)\n")
    for name in names:
        run = runs[name]
        print(f"== {name}: {run['record'].did}")
        print(f"   target: {run['target']}")
        _table(runs["before"], run["after"], run["diff"], run["target"])
        print()


def _interval(lo: float | None, hi: float | None, sign: str = "") -> str:
    return f"[{lo:{sign}.3f}, {hi:{sign}.3f}]" if lo is not None and hi is not None else "[-]"


def _table(before, after, diff, target: str) -> None:
    probe_id = target.rsplit(".", 1)[0]
    old = {m.name: m for m in before.result(probe_id).metrics if m.group is None}
    new = {m.name: m for m in after.result(probe_id).metrics if m.group is None}
    print(f"   {'metric':<24} {'before (95% CI)':<24} {'after (95% CI)':<24} {'diff (paired 95% CI)':<28} verdict")
    for name, o in old.items():
        n, c = new.get(name), diff.find(f"{probe_id}.{name}")
        if o.value is None or n is None or n.value is None:
            continue
        mark = "*" if f"{probe_id}.{name}" == target else " "
        d = f"{c.difference:+.3f} {_interval(c.ci_low, c.ci_high, '+')}" if c.difference is not None else "-"
        why = f" ({c.reason})" if c.reason and c.verdict == "not compared" else ""
        print(f" {mark} {name:<24} {o.value:.3f} {_interval(o.ci_low, o.ci_high):<18} "
              f"{n.value:.3f} {_interval(n.ci_low, n.ci_high):<18} {d:<28} {c.verdict}{why}")


if __name__ == "__main__":
    main()
