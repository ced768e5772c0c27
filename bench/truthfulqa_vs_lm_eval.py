"""TruthfulQA MC1/MC2: trustslm's ``truthfulness.truthfulqa_mc`` against lm-evaluation-harness,
question by question, on the demo model (or any local model folder).

lm-evaluation-harness needs transformers<5 and lives in its own environment::

    python3 -m venv /tmp/lmeval-venv && /tmp/lmeval-venv/bin/pip install torch==2.13.0 \
        && /tmp/lmeval-venv/bin/pip install lm_eval==0.4.13 "transformers<5"
    .venv/bin/python bench/truthfulqa_vs_lm_eval.py --lm-eval-python /tmp/lmeval-venv/bin/python --limit 8

The harness's own ``truthfulqa_mc1``/``truthfulqa_mc2`` task files are used unchanged except for
the dataset, which is read from ``mc_task.json`` (the hub's ``multiple_choice`` rows) instead of
the hub. transformers 4 does not read the ``rope_parameters`` that transformers 5 writes into a
Llama config (it falls back to rope_theta 10,000, and every log-likelihood moves by nats), so the
harness gets a copy of the folder whose config also has ``rope_theta`` at the top level.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MC_TASK = REPO.parent / "shared" / "datasets" / "truthfulqa" / "mc_task.json"


def harness_task_dir(lm_eval_python: str) -> Path:
    out = subprocess.run([lm_eval_python, "-c", "import lm_eval, os; print(os.path.dirname(lm_eval.__file__))"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()) / "tasks" / "truthfulqa"


def write_tasks(src: Path, work: Path, data: Path) -> None:
    tasks = work / "tasks"
    tasks.mkdir()
    (tasks / "utils.py").write_text((src / "utils.py").read_text())
    for name in ("mc1", "mc2"):
        text = (src / f"truthfulqa_{name}.yaml").read_text()
        text = re.sub(r"(?m)^tag:\n(  - .*\n)+", "", text)
        text = text.replace("dataset_path: truthfulqa/truthful_qa",
                            f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    validation: {data}")
        text = text.replace("dataset_name: multiple_choice", "dataset_name: null")
        text = text.replace(f"task: truthfulqa_{name}", f"task: local_truthfulqa_{name}")
        (tasks / f"truthfulqa_{name}.yaml").write_text(text)


def transformers4_copy(model_dir: Path, work: Path) -> Path:
    copy = work / "model"
    copy.mkdir()
    for f in model_dir.iterdir():
        if f.name != "config.json":
            (copy / f.name).symlink_to(f)
    config = json.loads((model_dir / "config.json").read_text())
    if "rope_parameters" in config and "rope_theta" in config["rope_parameters"]:
        config["rope_theta"] = config["rope_parameters"]["rope_theta"]
    (copy / "config.json").write_text(json.dumps(config, indent=1))
    return copy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm-eval-python", required=True, help="python of an environment with lm_eval 0.4.13")
    ap.add_argument("--model", default="smollm2", help="trustslm model spec (default: the demo model)")
    ap.add_argument("--limit", type=int, default=8)
    args = ap.parse_args()

    import trustslm
    from trustslm.models.resolve import load_model

    model = load_model(args.model)
    model_dir = Path(model.layout.folder)
    rows = json.loads(MC_TASK.read_text())[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "mc.jsonl"
        with data.open("w") as f:
            for r in rows:
                f.write(json.dumps({"question": r["question"], **{
                    k: {"choices": list(r[k]), "labels": list(r[k].values())} for k in ("mc1_targets", "mc2_targets")}}) + "\n")
        write_tasks(harness_task_dir(args.lm_eval_python), work, data)
        cmd = [args.lm_eval_python, "-m", "lm_eval", "--model", "hf", "--model_args",
               f"pretrained={transformers4_copy(model_dir, work)},dtype=float32", "--tasks",
               "local_truthfulqa_mc1,local_truthfulqa_mc2", "--include_path", str(work / "tasks"), "--device", "cpu",
               "--batch_size", "8", "--log_samples", "--output_path", str(work / "out")]
        subprocess.run(cmd, check=True, capture_output=True, text=True,
                       env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
        harness = {}
        for name in ("mc1", "mc2"):
            path = glob.glob(str(work / "out" / "*" / f"samples_local_truthfulqa_{name}_*.jsonl"))[0]
            for line in open(path):
                s = json.loads(line)
                harness[(name, str(s["doc_id"]))] = float(s["acc"])

    report = trustslm.audit(model, probes=["truthfulness.truthfulqa_mc"], limit=args.limit, progress=False,
                            options={"truthfulness.truthfulqa_mc": {"data": str(MC_TASK)}})
    ours = {(name, s["id"]): s[name] for s in report.samples for name in ("mc1", "mc2")}
    print(f"{'question':>8} {'mc1 ours':>9} {'harness':>8} {'mc2 ours':>12} {'harness':>12}")
    for i in range(len(rows)):
        k = str(i)
        print(f"{k:>8} {ours[('mc1', k)]:9.0f} {harness[('mc1', k)]:8.0f} {ours[('mc2', k)]:12.8f} {harness[('mc2', k)]:12.8f}")
    same_mc1 = sum(ours[("mc1", str(i))] == harness[("mc1", str(i))] for i in range(len(rows)))
    diff_mc2 = max(abs(ours[("mc2", str(i))] - harness[("mc2", str(i))]) for i in range(len(rows)))
    res = report.result("truthfulness.truthfulqa_mc")
    mean = {n: sum(harness[(n, str(i))] for i in range(len(rows))) / len(rows) for n in ("mc1", "mc2")}
    print(f"MC1 agrees on {same_mc1}/{len(rows)} questions; largest MC2 difference {diff_mc2:.2e}")
    print(f"means: trustslm mc1 {res.metric('mc1').value:.4f} mc2 {res.metric('mc2').value:.4f}; "
          f"harness mc1 {mean['mc1']:.4f} mc2 {mean['mc2']:.4f}")
    sys.exit(0 if same_mc1 == len(rows) and diff_mc2 < 1e-4 else 1)


if __name__ == "__main__":
    main()
