"""CrowS-Pairs and TruthfulQA MC side by side: lm-evaluation-harness 0.4.13 and trustslm on the
same model folder and the same data, values, per-item agreement and wall times.

lm-evaluation-harness needs transformers<5 and lives in its own environment (recipe in
``bench/truthfulqa_vs_lm_eval.py``)::

    .venv/bin/python bench/lm_eval_compare.py --lm-eval-python /tmp/lmeval-venv/bin/python --limit 20
    .venv/bin/python bench/lm_eval_compare.py --lm-eval-python /tmp/lmeval-venv/bin/python   # everything

Tasks (``--tasks crows,tqa``):

* ``crows``: the harness's ``crows_pairs_english`` (its own yaml and ``utils.py``: empty context,
  choices ``[sent_more, sent_less]``, ``pct_stereotype = 1`` when ``LL(sent_more) > LL(sent_less)``
  strictly, ``likelihood_diff = |LL(sent_more) - LL(sent_less)|``) with the dataset swapped for
  the released CrowS-Pairs CSV (``crows_pairs_anonymized.csv``, 1,508 pairs), against trustslm's
  ``fairness.stereotype_pairs`` on that CSV. The harness's own task reads the hub dataset
  ``jannalu/crows_pairs_multilingual``, config ``english``, split ``test``: no filter is applied
  to it (only the per-bias subtasks filter, by ``bias_type.startswith``), but that config is a
  different file, Névéol et al.'s revised English CrowS-Pairs (1,677 pairs), so the stock task's
  figure is not the one compared here.
* ``tqa``: the harness's ``truthfulqa_mc1`` and ``truthfulqa_mc2`` reading ``mc_task.json``
  (as ``bench/truthfulqa_vs_lm_eval.py`` rewires them; 817 questions), against trustslm's
  ``truthfulness.truthfulqa_mc`` on ``mc_task.json``.

Each tool runs as its own process, one after the other (never at once), timed from start to
exit (imports and model load included); the times each reports for itself are shown beside.
The harness gets the transformers-4 copy of the folder (``rope_theta`` at the top level of its
config), trustslm the folder itself, on the CPU in float32, with the same batch size, and
trustslm with a fresh, empty cache folder so nothing is reused. Exit status 0 when every item
agrees (CrowS: the preferred sentence; TruthfulQA: MC1 exactly, MC2 within 1e-4).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from truthfulqa_vs_lm_eval import (  # noqa: E402
    MC_TASK,
    OFFLINE_ENV,
    REPO,
    compare_tqa,
    harness_results,
    harness_samples,
    harness_task_dir,
    harness_tqa,
    model_folder,
    run_lm_eval,
    transformers4_copy,
    write_mc_jsonl,
    write_tasks,
)

CROWS_CSV = REPO.parent / "shared" / "datasets" / "crows_pairs" / "crows_pairs_anonymized.csv"
CROWS_TASK = "local_crows_pairs_english"
TQA_TASKS = ["local_truthfulqa_mc1", "local_truthfulqa_mc2"]


def write_crows_task(src: Path, tasks: Path, csv_path: Path) -> None:
    """``tasks``: the harness's ``crows_pairs_english`` (as ``local_crows_pairs_english``) and its
    ``utils.py``, unchanged except that the data is ``csv_path`` instead of the hub dataset."""
    tasks.mkdir()
    (tasks / "utils.py").write_text((src / "utils.py").read_text())
    text = (src / "crows_pairs_english.yaml").read_text()
    text = re.sub(r"(?m)^tag:\n(  - .*\n)+", "", text)
    edits = [(r"(?m)^dataset_path: .*$",
              f"dataset_path: csv\ndataset_kwargs:\n  data_files:\n    test: {json.dumps(str(csv_path))}"),
             (r"(?m)^dataset_name: english$", "dataset_name: null"),
             (r"(?m)^task: crows_pairs_english$", f"task: {CROWS_TASK}")]
    for pattern, new in edits:
        text, n = re.subn(pattern, lambda _m, new=new: new, text)
        if n != 1:
            raise SystemExit(f"{src / 'crows_pairs_english.yaml'}: expected one line matching {pattern!r}, found {n}")
    (tasks / "crows_pairs_english.yaml").write_text(text)


def run_trustslm(folder: Path, probe: str, options: dict[str, str], out: Path, cache: Path, *,
                 batch_size: int, limit: int | None, extra: list[str]) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
    """``trustslm audit`` of one probe in its own process; its wall time, report and samples."""
    cmd = [sys.executable, "-m", "trustslm", "audit", str(folder), "--probes", probe,
           *[a for k, v in options.items() for a in ("--set", f"{probe}.{k}={v}")],
           "--out", str(out), "--no-progress", "--cache-dir", str(cache),
           "--device", "cpu", "--dtype", "float32", "--batch-size", str(batch_size)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    cmd += extra
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **OFFLINE_ENV})
    wall = time.perf_counter() - start
    out.with_name(out.name + ".log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 and not (out / "report.json").is_file():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"trustslm exited with {proc.returncode}: {shlex.join(cmd)}")
    if proc.returncode != 0:
        print(f"  (trustslm exited with {proc.returncode}, a gate failure; its report is used)")
    report = json.loads((out / "report.json").read_text())
    with (out / "samples.jsonl").open() as f:
        samples = [s for s in map(json.loads, f) if s.get("probe_id") == probe]
    return wall, report, samples


def probe_result(report: dict[str, Any], probe: str) -> dict[str, Any]:
    (res,) = [r for r in report["results"] if r["probe_id"] == probe]
    if res["status"] != "ok":
        raise SystemExit(f"trustslm: {probe} {res['status']}: {res.get('reason')}")
    return res


def metric(res: dict[str, Any], name: str) -> float:
    (m,) = [m for m in res["metrics"] if m["name"] == name and m["group"] is None]
    return float(m["value"])


def loglikelihoods(sample: dict[str, Any]) -> list[float]:
    """The log-likelihood of each choice of a logged harness sample (``filtered_resps``: ``[ll, greedy]``)."""
    return [float(r[0]) for r in sample["filtered_resps"]]


def timing_lines(name: str, lm_wall: float, ts_wall: float, lm_results: dict[str, Any], ts_res: dict[str, Any]) -> None:
    print(f"  wall time (process, imports and model load included): lm-eval {lm_wall:.1f} s, "
          f"trustslm {ts_wall:.1f} s, trustslm/lm-eval {ts_wall / lm_wall:.2f}")
    lm_own = lm_results.get("total_evaluation_time_seconds")
    lm_own_text = f"{float(lm_own):.1f} s" if lm_own is not None else "n/a"
    print(f"  their own timers: lm-eval total_evaluation_time_seconds {lm_own_text}, "
          f"trustslm {name} wall_time_s {ts_res.get('wall_time_s', float('nan')):.1f} s")


def crows(args: argparse.Namespace, folder: Path, hf_copy: Path, work: Path) -> dict[str, Any]:
    print(f"== CrowS-Pairs ({CROWS_CSV.name}) ==")
    write_crows_task(harness_task_dir(args.lm_eval_python, "crows_pairs"), work / "crows_tasks", CROWS_CSV)
    lm_wall = run_lm_eval(args.lm_eval_python, hf_copy, [CROWS_TASK], work / "crows_tasks", work / "crows_lm_eval",
                          batch_size=args.batch_size, limit=args.limit)
    lm_results = harness_results(work / "crows_lm_eval")
    theirs = harness_samples(work / "crows_lm_eval", CROWS_TASK)
    probe = "fairness.stereotype_pairs"
    ts_wall, report, ours = run_trustslm(folder, probe, {"data": str(CROWS_CSV), "format": "crows_pairs_csv"},
                                         work / "crows_trustslm", work / "crows_cache", batch_size=args.batch_size,
                                         limit=args.limit, extra=args.trustslm_args)
    res = probe_result(report, probe)
    if len(ours) != len(theirs):
        raise SystemExit(f"CrowS: trustslm scored {len(ours)} pairs, lm-eval {len(theirs)}")
    ours_by_id = {s["id"]: s for s in ours}
    agree, disagree, worst_ll = 0, [], 0.0
    for t in theirs:
        o = ours_by_id[str(t["doc_id"])]
        if (t["doc"]["sent_more"], t["doc"]["sent_less"]) != (o["sent_more"], o["sent_less"]):
            raise SystemExit(f"CrowS pair {t['doc_id']}: the tools read different sentences")
        ll_more, ll_less = loglikelihoods(t)
        worst_ll = max(worst_ll, abs(ll_more - o["logprob_more"]), abs(ll_less - o["logprob_less"]))
        if bool(t["pct_stereotype"]) == bool(o["stereotype_preferred"]):
            agree += 1
        else:
            disagree.append((t["doc_id"], ll_more - ll_less, o["logprob_more"] - o["logprob_less"]))
    task = lm_results["results"][CROWS_TASK]
    values = {"trustslm": metric(res, "pct_stereotype"), "lm_eval": float(task["pct_stereotype,none"])}
    diffs = {"trustslm": metric(res, "likelihood_diff"), "lm_eval": float(task["likelihood_diff,none"])}
    n = len(theirs)
    print(f"  pairs: {n}")
    print(f"  pct_stereotype: trustslm {values['trustslm']:.6f}, lm-eval {values['lm_eval']:.6f}, "
          f"|difference| {abs(values['trustslm'] - values['lm_eval']):.2e}")
    print(f"  likelihood_diff: trustslm {diffs['trustslm']:.6f}, lm-eval {diffs['lm_eval']:.6f}, "
          f"|difference| {abs(diffs['trustslm'] - diffs['lm_eval']):.2e}")
    print(f"  per pair: the same sentence preferred in {agree}/{n} pairs; "
          f"largest |log-likelihood difference| of one sentence {worst_ll:.2e} nats")
    for doc_id, theirs_margin, ours_margin in disagree[:10]:
        print(f"    pair {doc_id}: LL(more)-LL(less) lm-eval {theirs_margin:+.6f}, trustslm {ours_margin:+.6f}")
    timing_lines(probe, lm_wall, ts_wall, lm_results, res)
    return {"n": n, "pct_stereotype": values, "likelihood_diff": diffs, "agree": agree,
            "max_abs_loglikelihood_diff": worst_ll, "wall_s": {"lm_eval": lm_wall, "trustslm": ts_wall},
            "ok": agree == n}


def tqa(args: argparse.Namespace, folder: Path, hf_copy: Path, work: Path) -> dict[str, Any]:
    print(f"== TruthfulQA MC1/MC2 ({MC_TASK.name}) ==")
    tqa_work = work / "tqa"
    tqa_work.mkdir()
    data = tqa_work / "mc.jsonl"
    write_mc_jsonl(json.loads(MC_TASK.read_text()), data)
    write_tasks(harness_task_dir(args.lm_eval_python), tqa_work, data)
    lm_wall = run_lm_eval(args.lm_eval_python, hf_copy, TQA_TASKS, tqa_work / "tasks", tqa_work / "lm_eval",
                          batch_size=args.batch_size, limit=args.limit)
    lm_results = harness_results(tqa_work / "lm_eval")
    harness = harness_tqa(tqa_work / "lm_eval")
    probe = "truthfulness.truthfulqa_mc"
    ts_wall, report, samples = run_trustslm(folder, probe, {"data": str(MC_TASK), "format": "truthfulqa_mc_json"},
                                            tqa_work / "trustslm", tqa_work / "cache", batch_size=args.batch_size,
                                            limit=args.limit, extra=args.trustslm_args)
    res = probe_result(report, probe)
    ours = {(name, s["id"]): float(s[name]) for s in samples for name in ("mc1", "mc2")}
    n = len(samples)
    if 2 * n != len(harness):
        raise SystemExit(f"TruthfulQA: trustslm scored {n} questions, lm-eval {len(harness) // 2}")
    values = {name: {"trustslm": metric(res, name), "lm_eval": float(lm_results["results"][task]["acc,none"])}
              for name, task in zip(("mc1", "mc2"), TQA_TASKS)}
    print(f"  questions: {n}")
    for name, v in values.items():
        print(f"  {name}: trustslm {v['trustslm']:.6f}, lm-eval {v['lm_eval']:.6f}, "
              f"|difference| {abs(v['trustslm'] - v['lm_eval']):.2e}")
    same_mc1, diff_mc2 = compare_tqa(n, ours, harness, show=args.show)
    timing_lines(probe, lm_wall, ts_wall, lm_results, res)
    return {"n": n, **values, "mc1_agree": same_mc1, "max_mc2_diff": diff_mc2,
            "wall_s": {"lm_eval": lm_wall, "trustslm": ts_wall}, "ok": same_mc1 == n and diff_mc2 < 1e-4}


TASKS = {"crows": crows, "tqa": tqa}


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--lm-eval-python", required=True, help="python of an environment with lm_eval 0.4.13 and transformers<5")
    ap.add_argument("--model", default="smollm2", help="trustslm model spec: 'smollm2' (the demo model's folder) or a model folder")
    ap.add_argument("--tasks", default="crows,tqa", help="comma-separated, among crows, tqa (default: both)")
    ap.add_argument("--limit", type=int, default=None, help="the first N items of each task, for both tools (default: all)")
    ap.add_argument("--batch-size", type=int, default=32, help="the batch size of both tools (default: 32)")
    ap.add_argument("--trustslm-args", default="", help="extra arguments appended to each trustslm audit, one shell-quoted string "
                    "(write it with =, e.g. --trustslm-args='--suite standard')")
    ap.add_argument("--show", type=int, default=20, help="TruthfulQA questions listed side by side (default: 20)")
    ap.add_argument("--keep", metavar="DIR", help="keep both tools' outputs in DIR (default: a temporary folder, removed)")
    ap.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    args = ap.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        ap.error(f"--tasks: unknown {', '.join(unknown) or '(none given)'} (known: {', '.join(TASKS)})")
    args.trustslm_args = shlex.split(args.trustslm_args)

    folder = model_folder(args.model)
    if args.keep:
        work = Path(args.keep).resolve()
        work.mkdir(parents=True, exist_ok=False)
    else:
        work = Path(tempfile.mkdtemp(prefix="lm_eval_compare."))
    print(f"model folder: {folder}; batch size {args.batch_size}; limit {args.limit or 'none'}; outputs in {work}")
    summary: dict[str, Any] = {"model_folder": str(folder), "batch_size": args.batch_size, "limit": args.limit}
    try:
        hf_copy = transformers4_copy(folder, work)
        for name in tasks:
            summary[name] = TASKS[name](args, folder, hf_copy, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    sys.exit(0 if all(summary[name]["ok"] for name in tasks) else 1)


if __name__ == "__main__":
    main()
