"""TruthfulQA MC1/MC2: trustslm's ``truthfulness.truthfulqa_mc`` against lm-evaluation-harness,
question by question, on the demo model (or any local model folder).

lm-evaluation-harness needs transformers<5 and lives in its own environment::

    python3 -m venv /tmp/lmeval-venv && /tmp/lmeval-venv/bin/pip install torch==2.13.0+cpu \
        && /tmp/lmeval-venv/bin/pip install "lm_eval[hf]==0.4.13" "transformers<5"
    .venv/bin/python bench/truthfulqa_vs_lm_eval.py --lm-eval-python /tmp/lmeval-venv/bin/python --limit 8

The harness's own ``truthfulqa_mc1``/``truthfulqa_mc2`` task files are used unchanged except for
the dataset, which is read from ``mc_task.json`` (the hub's ``multiple_choice`` rows) instead of
the hub. transformers 4 does not read the ``rope_parameters`` that transformers 5 writes into a
Llama config (it falls back to rope_theta 10,000, and every log-likelihood moves by nats), so the
harness gets a copy of the folder whose config also has ``rope_theta`` at the top level. The
``hf`` extra matters: lm_eval 0.4.13's own requirements leave out accelerate, which its ``hf``
model imports. ``+cpu`` is the CPU build (from a local wheel or the PyTorch CPU index); a plain
``torch==2.13.0`` from PyPI brings the CUDA libraries.

The helpers here (task files, the model folder and its copy, running the harness, reading its
samples, the per-question comparison) are shared with ``bench/lm_eval_compare.py``.
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
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MC_TASK = REPO.parent / "shared" / "datasets" / "truthfulqa" / "mc_task.json"
OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def harness_task_dir(lm_eval_python: str, task: str = "truthfulqa") -> Path:
    """The folder of the harness's own task files for ``task`` (``lm_eval/tasks/TASK``)."""
    out = subprocess.run([lm_eval_python, "-c", "import lm_eval, os; print(os.path.dirname(lm_eval.__file__))"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()) / "tasks" / task


def write_tasks(src: Path, work: Path, data: Path) -> None:
    """``work/tasks``: the harness's truthfulqa_mc1/mc2 (as local_truthfulqa_mc1/mc2) reading ``data``."""
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


def write_mc_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    """mc_task.json rows as the hub's ``multiple_choice`` rows (``{"choices": [...], "labels": [...]}``)."""
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps({"question": r["question"], **{
                k: {"choices": list(r[k]), "labels": list(r[k].values())} for k in ("mc1_targets", "mc2_targets")}}) + "\n")


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


def model_folder(spec: str) -> Path:
    """The safetensors folder trustslm loads for ``spec``: the demo model's converted folder in
    trustslm's cache (converted on first use) without loading the model, or ``spec`` itself."""
    from trustslm.core.resources import cache_dir
    from trustslm.models.demo import ensure_demo_model, is_demo_name

    if is_demo_name(spec):
        return ensure_demo_model(cache_dir())[0]
    path = Path(spec).expanduser().resolve()
    if not (path / "config.json").is_file():
        raise SystemExit(f"{spec}: not a model folder with a config.json (or 'smollm2')")
    return path


def run_lm_eval(lm_eval_python: str, model: Path, tasks: list[str], include_path: Path, out: Path, *,
                batch_size: int | str = 8, limit: int | None = None) -> float:
    """Run ``lm_eval`` (hf, float32, CPU, samples logged) offline; its wall time in seconds.
    ``model`` is the transformers-4 copy. Its output goes to ``OUT.log`` beside ``out``; on
    failure, it is shown and the run stops."""
    cmd = [lm_eval_python, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
           "--tasks", ",".join(tasks), "--include_path", str(include_path), "--device", "cpu",
           "--batch_size", str(batch_size), "--log_samples", "--output_path", str(out)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **OFFLINE_ENV})
    wall = time.perf_counter() - start
    out.with_name(out.name + ".log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"lm_eval exited with {proc.returncode}: {' '.join(cmd)}")
    return wall


def harness_samples(out: Path, task: str) -> list[dict[str, Any]]:
    """The logged samples of ``task`` under an ``--output_path``, in document order."""
    paths = glob.glob(str(out / "*" / f"samples_{task}_*.jsonl"))
    if len(paths) != 1:
        raise SystemExit(f"expected one samples file of {task} under {out}, found {len(paths)}")
    with open(paths[0]) as f:
        return sorted((json.loads(line) for line in f), key=lambda s: s["doc_id"])


def harness_results(out: Path) -> dict[str, Any]:
    """The ``results_*.json`` under an ``--output_path`` (one run)."""
    paths = glob.glob(str(out / "*" / "results_*.json"))
    if len(paths) != 1:
        raise SystemExit(f"expected one results file under {out}, found {len(paths)}")
    return json.loads(Path(paths[0]).read_text())


def harness_tqa(out: Path, prefix: str = "local_truthfulqa") -> dict[tuple[str, str], float]:
    """``{("mc1"|"mc2", question index): value}`` from the harness's logged samples."""
    return {(name, str(s["doc_id"])): float(s["acc"])
            for name in ("mc1", "mc2") for s in harness_samples(out, f"{prefix}_{name}")}


def compare_tqa(n: int, ours: dict[tuple[str, str], float], harness: dict[tuple[str, str], float], *,
                show: int | None = None) -> tuple[int, float]:
    """Print the questions side by side (the first ``show``, all when None) and return the number
    of questions whose MC1 agrees and the largest MC2 difference."""
    keys = [str(i) for i in range(n)]
    print(f"{'question':>8} {'mc1 ours':>9} {'harness':>8} {'mc2 ours':>12} {'harness':>12}")
    for k in keys[:show]:
        print(f"{k:>8} {ours[('mc1', k)]:9.0f} {harness[('mc1', k)]:8.0f} {ours[('mc2', k)]:12.8f} {harness[('mc2', k)]:12.8f}")
    if show is not None and n > show:
        print(f"{'...':>8} ({n - show} more)")
    same_mc1 = sum(ours[("mc1", k)] == harness[("mc1", k)] for k in keys)
    diff_mc2 = max(abs(ours[("mc2", k)] - harness[("mc2", k)]) for k in keys)
    print(f"MC1 agrees on {same_mc1}/{n} questions; largest MC2 difference {diff_mc2:.2e}")
    return same_mc1, diff_mc2


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
        write_mc_jsonl(rows, data)
        write_tasks(harness_task_dir(args.lm_eval_python), work, data)
        run_lm_eval(args.lm_eval_python, transformers4_copy(model_dir, work),
                    ["local_truthfulqa_mc1", "local_truthfulqa_mc2"], work / "tasks", work / "out", batch_size=8)
        harness = harness_tqa(work / "out")

    report = trustslm.audit(model, probes=["truthfulness.truthfulqa_mc"], limit=args.limit, progress=False,
                            options={"truthfulness.truthfulqa_mc": {"data": str(MC_TASK)}})
    ours = {(name, s["id"]): s[name] for s in report.samples for name in ("mc1", "mc2")}
    same_mc1, diff_mc2 = compare_tqa(len(rows), ours, harness)
    res = report.result("truthfulness.truthfulqa_mc")
    mean = {n: sum(harness[(n, str(i))] for i in range(len(rows))) / len(rows) for n in ("mc1", "mc2")}
    print(f"means: trustslm mc1 {res.metric('mc1').value:.4f} mc2 {res.metric('mc2').value:.4f}; "
          f"harness mc1 {mean['mc1']:.4f} mc2 {mean['mc2']:.4f}")
    sys.exit(0 if same_mc1 == len(rows) and diff_mc2 < 1e-4 else 1)


if __name__ == "__main__":
    main()
