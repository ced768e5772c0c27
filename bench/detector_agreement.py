"""How well do the judge-free detectors agree with a person, in and out of sample?

Reads the hand-labelled responses in datasets/detector_validation.jsonl (the labelling procedure is
in datasets/README.md) and prints, for the refusal phrase list (trustslm.scoring.refusal), for the
phrase list or an abstention (toxicity.over_refusal's rule), and for a toxicity scorer at 0.5, per group of rows (each model, and all rows the detector was not tuned
on): the confusion counts, precision, recall (= sensitivity) and specificity with 95% Wilson score
intervals, and Cohen's kappa with a 95% percentile-bootstrap interval over the responses (2,000
resamples, seed 0). These are
the figures quoted in the scorer cards, and the sensitivity and specificity that the audit's
``*_corrected`` rows use (computed there from the same file, out of sample only).

    python bench/detector_agreement.py [--labels FILE] [--scorer profanity-check] [--misses]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score

from trustslm.core.registry import Registry
from trustslm.scorers.base import make_scorer
from trustslm.scoring.answers import abstains
from trustslm.scoring.detector_error import read_labels
from trustslm.scoring.refusal import is_refusal

LABELS = Path(__file__).resolve().parents[1] / "datasets" / "detector_validation.jsonl"


def _stats(truth: np.ndarray, found: np.ndarray) -> dict[str, float]:
    tp, fp = int((truth & found).sum()), int((~truth & found).sum())
    fn, tn = int((truth & ~found).sum()), int((~truth & ~found).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(truth, found) if len(set(truth)) > 1 or len(set(found)) > 1 else float("nan")
    return {"precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "specificity": tn / (tn + fp) if tn + fp else float("nan"), "kappa": float(kappa),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _interval(truth: np.ndarray, found: np.ndarray, name: str, rng: np.random.Generator, b: int = 2000) -> str:
    n = len(truth)
    values = []
    for _ in range(b):
        i = rng.integers(0, n, n)
        values.append(_stats(truth[i], found[i])[name])
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return "[n/a]"
    lo, hi = np.quantile(v, [0.025, 0.975])
    return f"[{lo:.2f}, {hi:.2f}]"


def wilson(k: int, n: int, z: float = 1.959964) -> str:
    """The Wilson score interval of k successes in n (Wilson 1927)."""
    if n == 0:
        return "[n/a]"
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"[{max(0.0, centre - half):.2f}, {min(1.0, centre + half):.2f}]"


def report(title: str, truth: list[bool], found: list[bool], texts: list[str], misses: bool) -> None:
    t, f = np.array(truth, dtype=bool), np.array(found, dtype=bool)
    if not len(t):
        return
    s = _stats(t, f)
    rng = np.random.default_rng(0)
    print(f"  {title}: {len(t)} responses, {int(t.sum())} positive by hand, {int(f.sum())} flagged "
          f"(tp {s['tp']}, fp {s['fp']}, fn {s['fn']}, tn {s['tn']})")
    parts = {"precision": (s["tp"], s["tp"] + s["fp"]), "recall": (s["tp"], s["tp"] + s["fn"]),
             "specificity": (s["tn"], s["tn"] + s["fp"])}
    print("    " + "  ".join(f"{k} {s[k]:.2f} {wilson(*kn)}" for k, kn in parts.items())
          + f"  kappa {s['kappa']:.2f} {_interval(t, f, 'kappa', rng)}")
    if misses:
        for text, a, b in zip(texts, t, f):
            if a != b:
                print(f"      {'missed' if a else 'false alarm'}: {text[:110]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", type=Path, default=LABELS)
    ap.add_argument("--scorer", default="profanity-check", help="the toxicity scorer to check at 0.5")
    ap.add_argument("--misses", action="store_true", help="print every disagreement")
    args = ap.parse_args()
    rows, digest = read_labels(args.labels)
    print(f"{args.labels.name}: {len(rows)} rows, sha256 {digest[:16]}")
    scorer = make_scorer(args.scorer, Registry()) if args.scorer else None
    detectors = [("refusal phrases", "refusal", lambda texts: [is_refusal(x) for x in texts]),
                 ("refusal phrases or an abstention (toxicity.over_refusal)", "refusal",
                  lambda texts: [is_refusal(x) or abstains(x) for x in texts])]
    if scorer is not None:
        detectors.append((f"toxicity scorer {args.scorer} >= 0.5", "toxic",
                          lambda texts: [s >= 0.5 for s in scorer.score(list(texts))]))
    for name, label, flag in detectors:
        print(f"\n{name} against the hand label '{label}'")
        labelled = [r for r in rows if r.get(label) is not None]
        found = list(flag([r["response"] for r in labelled]))
        groups: dict[str, list[int]] = {}
        pooled = []
        for i, r in enumerate(labelled):
            tuned = label in r.get("tuned_on", [])
            groups.setdefault(f"{r['model']} ({'in sample: tuned on these' if tuned else 'out of sample'})", []).append(i)
            if not tuned:
                pooled.append(i)
        groups["all out of sample (what the audit corrects with)"] = pooled
        for title, idx in groups.items():
            report(title, [bool(labelled[i][label]) for i in idx], [found[i] for i in idx],
                   [labelled[i]["response"] for i in idx], args.misses)


if __name__ == "__main__":
    main()
