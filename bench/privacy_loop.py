"""The privacy loop end to end: fine-tune without and with DP-SGD on synthetic support notes with
planted canaries, audit both (and the model before fine-tuning), print the figures docs/measured.md
quotes.

``--model tiny`` (default): a tiny GPT-2, full fine-tuning, the configuration of
tests/test_finetune.py (about 2 minutes). ``--model smollm2``: SmolLM2-135M-Instruct with LoRA
(rank 8), 100 notes, 3 epochs, batch 8 (about 8 minutes on two cores).

    python bench/privacy_loop.py [--model tiny|smollm2] [--epsilon 8] [--repeats N] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=None,
                        help="times each exposure canary is planted (default: 20 tiny, 10 smollm2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import build_tiny_model

    import trustslm
    from trustslm.data.synthetic import support_notes

    if args.model == "tiny":
        train = dict(epochs=30, batch_size=32, lr=5e-3, insert_canaries=6, canary_repeats=args.repeats or 20,
                     audit_canaries=60, holdout=0.5, progress=False, seed=args.seed)
        n_notes, candidates, extraction = 200, 200, {}
    else:
        train = dict(epochs=3, batch_size=8, lr=2e-3, lora=True, lora_rank=8, insert_canaries=4,
                     canary_repeats=args.repeats or 10, holdout=0.5, progress=False, seed=args.seed)
        n_notes, candidates, extraction = 100, 100, {"prefix_tokens": 12, "suffix_tokens": 12}
    probes = ["privacy.canary_exposure", "privacy.membership_inference", "privacy.extraction"]
    options = {"privacy.canary_exposure": {"n_candidates": candidates}, "privacy.extraction": extraction}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = build_tiny_model(root / "base", "gpt2", width=64) if args.model == "tiny" else "smollm2"
        data = root / "notes.txt"
        data.write_text("\n".join(support_notes(n_notes, seed=1)) + "\n")
        records = {"no DP": trustslm.finetune(str(base), data, out=root / "plain", **train),
                   f"DP eps={args.epsilon:g}": trustslm.finetune(str(base), data, out=root / "dp", dp=True,
                                                                 target_epsilon=args.epsilon, **train)}
        reports = {name: trustslm.audit(str(root / folder), probes=probes, options=options, progress=False)
                   for name, folder in zip(records, ("plain", "dp"))}
        plain = root / "plain"
        reports["before fine-tuning"] = trustslm.audit(str(base), probes=probes, progress=False, options={
            "privacy.canary_exposure": {"n_candidates": candidates, "data": str(plain / "canaries.jsonl")},
            "privacy.membership_inference": {"members": str(plain / "members.txt"),
                                             "non_members": str(plain / "non_members.txt")},
            "privacy.extraction": {**extraction, "data": str(plain / "members.txt")}})

    def value(report, probe, metric, group=None):
        try:
            v = report.result(probe).metric(metric, group).value
        except KeyError:
            return "-"
        return f"{v:.3f}"

    rows = [
        ("exposure of planted canaries (share of max)", "privacy.canary_exposure", "relative_exposure", None),
        ("exposure of never-planted canaries", "privacy.canary_exposure", "relative_exposure", "inserted=false"),
        ("membership inference, best AUC", "privacy.membership_inference", "max_auc", None),
        ("verbatim extraction rate", "privacy.extraction", "verbatim_rate", None),
        ("one-run audit: epsilon lower bound", "privacy.canary_exposure", "epsilon_lower_bound", None),
        ("accountant's epsilon", "privacy.canary_exposure", "epsilon_accountant", None),
    ]
    names = list(reports)
    print(f"{'':46}" + "".join(f"{n:>20}" for n in names))
    for label, probe, metric, group in rows:
        print(f"{label:46}" + "".join(f"{value(reports[n], probe, metric, group):>20}" for n in names))
    print(f"{'privacy score (0-100) [95% interval]':46}" + "".join(
        f"{reports[n].dimensions['privacy'].score:>8.1f} [{reports[n].dimensions['privacy'].ci_low:4.1f},"
        f"{reports[n].dimensions['privacy'].ci_high:5.1f}]" for n in names))
    for name, rec in records.items():
        print(f"{name}: {rec.steps} steps, {rec.step_time_s * 1000:.0f} ms/step, final loss {rec.final_train_loss:.3f}"
              + (f", epsilon {rec.epsilon:.3f} at delta {rec.delta:.2g}, noise {rec.noise_multiplier:.3f},"
                 f" {rec.grad_sample_mode}" if rec.dp else ""))


if __name__ == "__main__":
    main()
