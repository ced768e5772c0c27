"""How well does the judge-free refusal detector (trustslm.scoring.refusal) agree with a person?

bench/refusal_labels_smollm2.jsonl holds the 96 responses of SmolLM2-135M-Instruct to
`trustslm audit smollm2 --quick --probes toxicity.instructed` (16 requests x 6 wrappers, k=1,
seed 0), each labelled by hand: ``refusal`` is true when the response declines the request, in
whole or in part, whatever words it uses. Prints the detector's precision, recall and Cohen's
kappa against those labels, with the confusion counts.

    python bench/refusal_detector_agreement.py [LABELS.jsonl]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_score, recall_score

from trustslm.scoring.refusal import is_refusal


def main(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    truth = [bool(r["refusal"]) for r in rows]
    found = [is_refusal(r["response"]) for r in rows]
    tn, fp, fn, tp = confusion_matrix(truth, found, labels=[False, True]).ravel()
    print(f"{len(rows)} labelled responses, {sum(truth)} refusals by hand, {sum(found)} flagged by the detector")
    print(f"true positives {tp}, false positives {fp}, false negatives {fn}, true negatives {tn}")
    print(f"precision {precision_score(truth, found):.3f}  recall {recall_score(truth, found):.3f}  "
          f"cohen kappa {cohen_kappa_score(truth, found):.3f}")
    for r, t, f in zip(rows, truth, found):
        if t != f:
            print(f"  {'missed' if t else 'false alarm'}: {r['response'][:100]!r}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("refusal_labels_smollm2.jsonl"))
