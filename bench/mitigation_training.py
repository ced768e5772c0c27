"""Do the training-time mitigations of fairness and robustness move their target metrics?

Runs the two scenarios of ``tests/test_mitigate_training.py`` on tiny GPT-2s (width 64):

* ``counterfactual-augmentation`` on occupation sentences where each occupation only ever goes
  with one gender's pronoun; target ``bias.stereotype_pairs.pct_stereotype`` on held-out minimal
  pairs (0.5 = no preference);
* ``adversarial-augmentation`` (2 TextAttack-perturbed copies per question) on 30 made-up
  question/answer facts; target ``robustness.perturbation_consistency.answer_change_rate`` under
  typos.

For each: fine-tune plainly ("before") and with the mitigation ("after") with the same settings and
seed, audit both with the same probe options, compare with ``trustslm.compare`` (paired
bootstrap). Prints each metric of the target probe before and after with its 95% interval, the
paired difference with its 95% interval and the verdict, and the wall time.

    python bench/mitigation_training.py [--seed 0] [--only cda|typos] [--threads 1]
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
    parser.add_argument("--seed", type=int, default=0, help="fine-tuning seed (the audits use seed 0)")
    parser.add_argument("--only", choices=["cda", "typos"], default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a tiny model trains fastest on 1)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import torch
    from test_mitigate_training import cda_scenario, run_scenario, typo_scenario

    torch.set_num_threads(args.threads)
    wanted = [(k, f) for k, f in (("cda", cda_scenario), ("typos", typo_scenario)) if args.only in (None, k)]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRUSTSLM_CACHE_DIR"] = str(Path(tmp) / "cache")  # request cache and TextAttack's files
        for key, make in wanted:
            root = Path(tmp) / key
            scenario = make(root / "scenario", seed=args.seed)
            started = time.perf_counter()
            before, after, record, diff = run_scenario(scenario, root)
            wall = time.perf_counter() - started
            print(f"== {scenario['name']} (fine-tuning seed {args.seed}; {wall:.0f} s for 2 fine-tunes + 2 audits)")
            print(f"   {record.did}; settings {scenario['settings']}")
            print(f"   target: {scenario['target']}")
            _table(before, after, diff, scenario["probes"][0])
            print()


def _table(before, after, diff, probe_id: str) -> None:
    def interval(m) -> str:
        return f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None else "[-]"

    old = {m.name: m for r in before.results if r.probe_id == probe_id for m in r.metrics if m.group is None}
    new = {m.name: m for r in after.results if r.probe_id == probe_id for m in r.metrics if m.group is None}
    print(f"   {'metric':<22} {'before (95% CI)':<24} {'after (95% CI)':<24} {'diff (paired 95% CI)':<28} verdict")
    for name, o in old.items():
        n = new[name]
        c = diff.find(f"{probe_id}.{name}")
        goal = f" (best {o.target:g})" if o.target is not None else ""
        d = (f"{c.difference:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]" if c.ci_low is not None
             else f"{c.difference:+.3f}" if c.difference is not None else "-")
        print(f"   {name + goal:<22} {o.value:.3f} {interval(o):<18} {n.value:.3f} {interval(n):<18} {d:<28} "
              f"{c.verdict}{' (' + c.reason + ')' if c.reason else ''} (n={o.n})")
    c = diff.find(probe_id)
    if c.old is not None and c.new is not None:
        d = f"{c.difference:+.1f} [{c.ci_low:+.1f}, {c.ci_high:+.1f}]" if c.ci_low is not None else "-"
        print(f"   probe score {c.old:.1f} -> {c.new:.1f}, diff {d}, {c.verdict}")


if __name__ == "__main__":
    main()
