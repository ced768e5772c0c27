"""TruthfulQA generation: trustslm's ``truthfulness.truthfulqa_gen`` against lm-evaluation-harness
0.4.13's ``truthfulqa_gen``, question by question, on the demo model (or any local model folder).

The harness runs in its own environment (recipe in ``bench/truthfulqa_vs_lm_eval.py``)::

    .venv/bin/python bench/truthfulqa_gen_vs_lm_eval.py --lm-eval-python /tmp/lmeval-venv/bin/python --limit 50

The harness's own ``truthfulqa_gen.yaml`` and ``utils.py`` are used unchanged except for the
dataset: the first ``--limit`` rows of ``TruthfulQA.csv`` written as the hub's ``generation`` rows
(answers split on ``;`` and stripped). Both sides decode greedily on CPU in float32, the harness
one question at a time. The script prints, per question, whether the two answers are the same
text, and for the questions where they are, the largest difference of each of the twelve scores
(they should agree to float rounding: the same functions on the same strings); then both sides'
means. It exits 1 when a score differs on an identical answer.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
from pathlib import Path

from truthfulqa_vs_lm_eval import harness_samples, harness_task_dir, run_lm_eval, transformers4_copy

REPO = Path(__file__).resolve().parents[1]
TQA_CSV = REPO.parent / "shared" / "datasets" / "truthfulqa" / "TruthfulQA.csv"
TASK = "local_truthfulqa_gen"
SCORES = [f"{s}_{k}" for s in ("bleu", "rouge1", "rouge2", "rougeL") for k in ("max", "acc", "diff")]


def write_generation_jsonl(csv_path: Path, limit: int, out: Path) -> int:
    """The first ``limit`` rows of TruthfulQA's CSV as the hub's ``generation`` rows."""
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))[:limit]

    def split(text: str) -> list[str]:
        return [a.strip() for a in text.split(";") if a.strip()]

    with out.open("w") as f:
        for r in rows:
            f.write(json.dumps({"type": r["Type"], "category": r["Category"], "question": r["Question"],
                                "best_answer": r["Best Answer"], "correct_answers": split(r["Correct Answers"]),
                                "incorrect_answers": split(r["Incorrect Answers"]), "source": r.get("Source", "")}) + "\n")
    return len(rows)


def write_gen_task(src: Path, work: Path, data: Path) -> Path:
    """``work/tasks``: the harness's truthfulqa_gen (as ``local_truthfulqa_gen``) reading ``data``."""
    tasks = work / "tasks"
    tasks.mkdir()
    (tasks / "utils.py").write_text((src / "utils.py").read_text())
    text = (src / "truthfulqa_gen.yaml").read_text()
    text = re.sub(r"(?m)^tag:\n(  - .*\n)+", "", text)
    text = text.replace("dataset_path: truthfulqa/truthful_qa",
                        f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    validation: {data}")
    text = text.replace("dataset_name: generation", "dataset_name: null")
    text = text.replace("task: truthfulqa_gen", f"task: {TASK}")
    if f"task: {TASK}" not in text or "dataset_path: json" not in text:
        raise SystemExit("the harness's truthfulqa_gen.yaml is not the 0.4.13 one this script rewrites")
    (tasks / "truthfulqa_gen.yaml").write_text(text)
    return tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm-eval-python", required=True, help="python of an environment with lm_eval 0.4.13")
    ap.add_argument("--model", default="smollm2", help="trustslm model spec (default: the demo model)")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--show", type=int, default=10, help="questions printed side by side")
    args = ap.parse_args()

    import trustslm
    from trustslm.models.resolve import load_model

    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "generation.jsonl"
        n = write_generation_jsonl(TQA_CSV, args.limit, data)
        tasks = write_gen_task(harness_task_dir(args.lm_eval_python), work, data)
        lm_wall = run_lm_eval(args.lm_eval_python, transformers4_copy(Path(model.layout.folder), work), [TASK], tasks,
                              work / "out", batch_size=1)
        theirs = harness_samples(work / "out", TASK)

    probe = "truthfulness.truthfulqa_gen"
    report = trustslm.audit(model, suite="standard", probes=[probe], limit=args.limit, progress=False,
                            options={probe: {"data": str(TQA_CSV)}})
    ours = {s["id"]: s for s in report.samples}
    if len(theirs) != n or len(ours) != n:
        raise SystemExit(f"trustslm scored {len(ours)} questions, the harness {len(theirs)}, of {n}")

    same, worst = 0, dict.fromkeys(SCORES, 0.0)
    print(f"{'question':>8}  same answer  {'bleu_acc ours':>13} {'harness':>8}  {'rouge1_max ours':>15} {'harness':>8}")
    for i, t in enumerate(theirs):
        o = ours[str(i)]
        answer = t["filtered_resps"][0] if isinstance(t["filtered_resps"], list) else t["filtered_resps"]
        identical = answer == o["answer"]
        if identical:
            same += 1
            for k in SCORES:
                worst[k] = max(worst[k], abs(float(o[k]) - float(t[k])))
        if i < args.show:
            print(f"{i:>8}  {'yes' if identical else 'NO ':>11}  {o['bleu_acc']:13.0f} {float(t['bleu_acc']):8.0f}  "
                  f"{o['rouge1_max']:15.4f} {float(t['rouge1_max']):8.4f}")
    print(f"identical answers: {same}/{n}")
    print("largest score difference on identical answers: "
          + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    res = report.result(probe)
    for k in ("bleu_acc", "rouge1_acc", "bleu_max", "rougeL_acc"):
        mean = sum(float(t[k]) for t in theirs) / n
        print(f"  {k}: trustslm {res.metric(k).value:.4f}, harness {mean:.4f}")
    print(f"harness wall time {lm_wall:.1f} s (process and model load included)")
    # the samples are rounded to 4 decimals
    sys.exit(0 if all(v <= 1e-4 for v in worst.values()) else 1)


if __name__ == "__main__":
    main()
