"""Do the training-time mitigations move their target metrics, and at what utility cost?

Runs the synthetic scenarios of ``trustslm.testing.scenarios`` on tiny GPT-2s (width 64):
each fine-tunes a plain model on texts that induce the problem, then runs ``trustslm.mitigate``
on it with one mitigation (retrained from the plain model's training record with the same
settings and seed, both audited with the same probes, options and seed):

* privacy: ``dp-finetune`` (canary exposure), ``pii-scrub`` (leak of training e-mails and phones),
  ``dedup`` (verbatim extraction);
* fairness: ``counterfactual-augmentation`` (preference for the stereotyped pronoun);
* robustness: ``adversarial-augmentation`` (answer changes under typos).

Prints, per mitigation, what it did, each overall metric of the target probe (the target marked
``*``) before and after with the paired difference, its 95% interval and the verdict, then the
utility cost (perplexity on the held-out text, closed-book QA accuracy; a tiny model answers no
question right, so its accuracy stays 0) and the wall time.

    python bench/mitigation_scenarios.py [--only NAME[,NAME]] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    from trustslm.mitigations import scenarios

    makers = [scenarios.privacy_scenario, scenarios.cda_scenario, scenarios.typo_scenario]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="mitigation names, comma-separated (default: all five)")
    parser.add_argument("--seed", type=int, default=0, help="fine-tuning seed (the corpora and audits are fixed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a tiny model trains fastest on 1)")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    warnings.filterwarnings("ignore")

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRUSTSLM_CACHE_DIR"] = str(Path(tmp) / "cache")  # request cache and TextAttack's files
        for make in makers:
            root = Path(tmp) / make.__name__
            scenario = make(root / "scenario", seed=args.seed)
            names = [n for n in scenario.mitigations if wanted is None or n in wanted]
            if not names:
                continue
            started = time.perf_counter()
            runs = scenarios.run_scenario(scenario, root, names)
            wall = time.perf_counter() - started
            print(f"##### {scenario.name} scenario, fine-tuning {scenario.settings}: {wall:.0f} s for "
                  f"{len(names) + 1} fine-tunes, {2 * len(names)} audits and utility measurements\n")
            for name in names:
                _print(name, scenario.targets[name], runs[name])


def _print(name: str, target: str, run) -> None:
    step = run.steps[0]
    print(f"== {name}: {step.did} ({step.wall_time_s:.0f} s)")
    print(f"   {'metric':<48} {'before':>8} {'after':>8}  {'difference (paired 95% CI)':<30} verdict")
    probe = target.rsplit(".", 1)[0]
    for row in run.targets:
        if not row["metric"].startswith(probe + ".") or row["before"] is None or row["after"] is None:
            continue
        mark = "*" if row["metric"] == target else " "
        diff = (f"{row['difference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
                if row["ci_low"] is not None else f"{row['difference']:+.3f}")
        print(f" {mark} {row['metric']:<48} {row['before']:8.3f} {row['after']:8.3f}  {diff:<30} {row['verdict']}")
    for u in run.utility:
        print(f"   cost: {u.description:<42} {u.before:8.3f} {u.after:8.3f}  "
              f"{u.difference:+.3f} [{u.ci_low:+.3f}, {u.ci_high:+.3f}]  {u.cost} (n={u.n})")
    print()


if __name__ == "__main__":
    main()
