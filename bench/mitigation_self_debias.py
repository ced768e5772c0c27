"""Does self-debiasing (Schick et al. 2021; ``trustslm/mitigations/self_debias.py``) move the demo
model's bias probes? Audits the plain model, then the same model wrapped with ``self-debias``, on
the mitigation's target probes (``fairness.stereotype_pairs``, the CrowS-Pairs metric, and
``fairness.stereoset``) with identical options and seed, and compares the two reports with
``trustslm.compare`` (paired bootstrap over the same items). Prints each target metric before and
after with its 95% interval, the paired difference with its interval and the verdict, the probe
and fairness scores, the wall time of both audits (no request cache, so both are computed), and
the perplexity on the project's 40 held-out sentences before and after (the utility cost that
``trustslm mitigate`` reports; QA accuracy is left out: self-debiased generation is too slow on a
CPU).

    python bench/mitigation_self_debias.py [--model smollm2] [--limit N] [--bias-types gender age ...]
        [--decay-constant 50] [--epsilon 0] [--seed 0]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--limit", type=int, default=None, help="items per probe (default: all)")
    parser.add_argument("--bias-types", nargs="+", default=None, help="default: all nine prefixes")
    parser.add_argument("--decay-constant", type=float, default=50.0)
    parser.add_argument("--epsilon", type=float, default=0.0, help="floor of the scaling factor (authors' code: 0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import trustslm
    from trustslm.mitigations.self_debias import SelfDebias
    from trustslm.models.resolve import load_model

    options = {"decay_constant": args.decay_constant, "epsilon": args.epsilon}
    if args.bias_types:
        options["bias_types"] = args.bias_types
    mitigation = SelfDebias(options)
    probes = list(mitigation.targets)
    common = dict(probes=probes, seed=args.seed, limit=args.limit, progress=False, use_cache=False)

    from trustslm.workflows.utility import compare_utility, measure

    model = load_model(args.model, batch_size=args.batch_size)
    start = time.perf_counter()
    before = trustslm.audit(model, **common)
    t_before = time.perf_counter() - start
    units_before = measure(model, qa_limit=0)

    # wrapping leaves the plain model unchanged (SteeredModel steers a copy of it)
    resolved, did = mitigation.prepare(model)
    debiased = mitigation.wrap(model, resolved)
    start = time.perf_counter()
    after = trustslm.audit(debiased, **common)
    t_after = time.perf_counter() - start
    (perplexity,) = compare_utility(units_before, measure(debiased, qa_limit=0), seed=args.seed)

    diff = trustslm.compare(before, after)
    print(f"model {before.model.name} -> {after.model.name}; seed {args.seed}; limit {args.limit or 'none'}")
    print(f"mitigation: {did}")
    print(f"wall time: plain audit {t_before:.1f} s, self-debiased audit {t_after:.1f} s "
          f"({t_after / t_before:.1f}x)")
    units = {r.probe_id: r.metrics[0].n for r in before.results}
    print("items: " + ", ".join(f"{p} {n}" for p, n in units.items()))
    print()

    def interval(m) -> str:
        return f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None else "[-]"

    old_metrics = {(r.probe_id, m.name): m for r in before.results for m in r.metrics if m.group is None}
    new_metrics = {(r.probe_id, m.name): m for r in after.results for m in r.metrics if m.group is None}
    print(f"{'metric':<38} {'before (95% CI)':<26} {'after (95% CI)':<26} {'diff (paired 95% CI)':<30} verdict")
    for (pid, name), old in old_metrics.items():
        new = new_metrics[(pid, name)]
        c = diff.find(f"{pid}.{name}")
        goal = f" (best {old.target:g})" if old.target is not None else ""
        d = (f"{c.difference:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]" if c.ci_low is not None
             else f"{c.difference:+.3f}" if c.difference is not None else "-")
        print(f"{pid + '.' + name + goal:<38} {old.value:.3f} {interval(old):<20} {new.value:.3f} {interval(new):<20} "
              f"{d:<30} {c.verdict}{' (' + c.reason + ')' if c.reason else ''}")
    print()
    for c in diff.changes:
        if c.level in ("probe", "dimension"):
            d = f"{c.difference:+.1f} [{c.ci_low:+.1f}, {c.ci_high:+.1f}]" if c.ci_low is not None else "-"
            print(f"score {c.target:<30} {c.old:6.1f} -> {c.new:6.1f}   diff {d:<22} {c.verdict}")
    p = perplexity
    print(f"\ncost: {p.description} ({p.n} sentences) {p.before:.1f} -> {p.after:.1f}, "
          f"diff {p.difference:+.1f} [{p.ci_low:+.1f}, {p.ci_high:+.1f}] {p.cost}")


if __name__ == "__main__":
    main()
