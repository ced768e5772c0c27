"""Audit the four real models that install here and ship their reports as trustslm's reference points.

    python bench/references.py [--models NAME[,NAME]] [--work DIR] [--profile full|quick] [--package-only]
    python bench/references.py --check       # which shipped references are stale, and why (exit 1 if any)
    python bench/references.py --table       # the README's table of the shipped references
    python bench/references.py --rescore     # rescore finished audits from the request cache (same answers)

For each model (installed by ``bench/real_models.py`` into its default folder) this runs the
default audit (``trustslm audit MODEL --backend hf --out WORK/NAME --resume``; :data:`BACKEND`),
times it (a run stopped from outside and finished by a later run counts all its runs' time:
``WORK/NAME/runs.json``), and writes ``trustslm/report/reference_audits/NAME/``: the report (absolute paths cut to file
names), the unit tables (only those whose text cells are short labels; a probe whose units hold
longer text is left out and named), and ``reference.json``: the model, its size and quantisation,
the backend, the command, the audit's wall time, the machine, trustslm's version and commit.
No samples (prompts and answers) are shipped.

A reference counts for a probe only while its probe version, options and data hashes are the
ones the installed trustslm would run (:mod:`trustslm.report.standing`); ``--check`` lists the
probes for which they are not, and ``tests/test_references.py`` fails on them, so changing a
probe means rerunning this script (or the test's list of known stale probes says why not).
Audits run one after the other (never side by side: two on two cores slow each other).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from real_models import MODELS, default_dest  # noqa: E402

ORDER = ["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]
#: How each model is audited: what is named on the command line, and the backend. SmolLM2 is the
#: demo model (``smollm2``: the same GGUF, converted once, as the README's first command audits it);
#: the others are their GGUF files, converted by transformers alike. transformers batches requests,
#: which makes it the fastest backend for a whole audit on two cores (README, "Backends, measured").
BACKEND = {name: "hf" for name in ORDER}
#: Each model's name in the references' labels, and the quantisation of the GGUF file it came from.
LABEL = {"smollm2-135m-instruct": "SmolLM2-135M-Instruct", "gemma3-270m": "Gemma 3 270M (base)",
         "qwen2.5-coder-0.5b-instruct": "Qwen2.5-Coder-0.5B-Instruct",
         "qwen2.5-coder-1.5b-instruct": "Qwen2.5-Coder-1.5B-Instruct"}
SOURCE_QUANT = {"smollm2-135m-instruct": "Q4_1", "gemma3-270m": "Q4_K_M",
                "qwen2.5-coder-0.5b-instruct": "Q4_K_M (mostly Q5_0/Q8_0 tensors)",
                "qwen2.5-coder-1.5b-instruct": "Q4_K_M"}
#: The longest text a unit-table cell may hold to be shipped (labels such as a category or an attack name).
MAX_LABEL_CHARS = 64


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cut_paths(value):
    """The report with every absolute path cut to its file name (the maker's folders aren't shipped)."""
    if isinstance(value, dict):
        return {k: _cut_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_paths(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        return Path(value).name
    if isinstance(value, str):  # a path inside a sentence (a scorer's note): the home folder as ~
        return value.replace(str(Path.home()), "~").replace(str(ROOT), ".")
    return value


def _short_units(path: Path) -> tuple[list[str], list[str]]:
    """The unit-table lines whose string cells are all labels, and the probes left out."""
    keep, dropped = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        cells = [c for row in record["units"]["data"] for c in row if isinstance(c, str)]
        if any(len(c) > MAX_LABEL_CHARS for c in cells):
            dropped.append(record["probe_id"])
        else:
            keep.append(line)
    return keep, dropped


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "trustslm", "probes", "datasets"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


#: How often a running audit writes its elapsed time to ``WORK/NAME/runs.json`` (seconds).
HEARTBEAT_S = 30


def _run_timed(cmd: list[str], runs_file: Path) -> tuple[int, list[dict]]:
    """Run the audit, appending this run to ``runs_file`` and rewriting its elapsed time every
    :data:`HEARTBEAT_S` s, so that a run stopped from outside (the machine's session ended) still
    counts, to within that, towards the audit's time when ``--resume`` finishes it later. Returns
    the exit status and every run so far (the audit's time is their sum)."""
    runs = json.loads(runs_file.read_text()) if runs_file.is_file() else []
    mine = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": _commit(),
            "wall_time_s": 0.0, "finished": False}
    runs.append(mine)
    t0 = time.monotonic()
    stop = threading.Event()

    def write() -> None:  # atomic: a run killed while writing leaves the last whole file
        mine["wall_time_s"] = round(time.monotonic() - t0, 1)
        part = runs_file.with_suffix(".json.part")
        part.write_text(json.dumps(runs, indent=1) + "\n")
        os.replace(part, runs_file)

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            write()

    runs_file.parent.mkdir(parents=True, exist_ok=True)
    write()
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        rc = subprocess.run(cmd).returncode
    finally:
        stop.set()
        thread.join()
    mine["finished"] = rc in (0, 1)
    write()
    return rc, runs


def audit(name: str, work: Path, profile: str, rescore: bool = False) -> float:
    gguf = default_dest() / f"{name}.gguf"
    if name != "smollm2-135m-instruct" and not gguf.is_file():
        raise SystemExit(f"error: {gguf} is missing: run python bench/real_models.py --only {name}")
    named = "smollm2" if name == "smollm2-135m-instruct" else str(gguf)
    cmd = [sys.executable, "-m", "trustslm", "audit", named, "--backend", BACKEND[name], "--out", str(work / name),
           "--resume"] + (["--quick"] if profile == "quick" else [])
    log(f"== {name}: {' '.join(cmd)}")
    made_file = work / name / "made_with.json"
    if rescore:
        made = json.loads(made_file.read_text())
        made.setdefault("suite", _suite(work / name))  # the suite the timed run ran, before its report is replaced
        t0 = time.monotonic()
        rc, wall, runs = subprocess.run(cmd).returncode, time.monotonic() - t0, None
    else:
        rc, runs = _run_timed(cmd, work / name / "runs.json")
        wall = sum(r["wall_time_s"] for r in runs)
    if rc not in (0, 1):  # 1: a gate failed, the report is written
        raise SystemExit(f"error: the audit of {name} exited {rc}")
    shown = "smollm2" if name == "smollm2-135m-instruct" else f"{name}.gguf"
    now = {"wall_time_s": round(wall, 1), "commit": _commit(),
           "made_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if runs is not None and len(runs) > 1:  # resumed: the time is the runs' sum, and the runs are kept
        now["runs"] = runs
    if rescore:  # the answers came from the first run's cache: its time is the audit's time
        made["rescored"] = {**now, "suite": _suite(work / name)}
    else:
        made = {**now, "suite": _suite(work / name), "profile": profile,
                "command": f"trustslm audit {shown} --backend {BACKEND[name]}" + (" --quick" if profile == "quick" else "")}
    made_file.write_text(json.dumps(made) + "\n")
    return wall


def _suite(folder: Path) -> str | None:
    """The suite (``name@version``) of the report in ``folder``, if it has one."""
    path = folder / "report.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("run", {}).get("suite")


def package(name: str, work: Path) -> Path:
    from trustslm.report.standing import REFERENCE_DIR

    src = work / name
    report = json.loads((src / "report.json").read_text(encoding="utf-8"))
    made = json.loads((src / "made_with.json").read_text())
    wall = made["wall_time_s"]
    dest = REFERENCE_DIR / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "report.json").write_text(json.dumps(_cut_paths(report), indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    keep, dropped = _short_units(src / "units.jsonl")
    (dest / "units.jsonl").write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    model = report["model"]
    meta = {
        "name": name,
        "model": LABEL[name],
        "parameters": model.get("parameters"),
        "weights": (f"the {SOURCE_QUANT[name]} GGUF as it is" if model.get("backend") == "llama.cpp"
                    else f"{model.get('dtype')}, dequantised by transformers from the {SOURCE_QUANT[name]} GGUF"),
        "file_sha256": MODELS[name].sha256,
        "backend": model.get("backend"),
        "profile": report["run"]["profile"],
        "command": made["command"],
        "source_file": f"{name}.gguf (bench/real_models.py)",
        "audit_wall_time_s": round(wall, 1),
        "timed_suite": made.get("suite"),  # the suite the timed run ran (a rescored report's may be newer)
        "machine": f"{os.cpu_count()} CPU cores, no GPU ({platform.machine()})",
        "trustslm_version": report["trustslm_version"],
        "commit": made["commit"],
        "made_at": made["made_at"],
        "rescored": made.get("rescored"),
        "runs": made.get("runs"),
        "units_left_out": dropped,
    }
    (dest / "reference.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    log(f"   wrote {dest} ({wall / 60:.1f} min audit; units left out: {dropped or 'none'})")
    return dest


def check() -> int:
    from trustslm.report.standing import load_references, stale_probes

    refs = load_references()
    bad = 0
    for ref in refs:
        stale = stale_probes(ref)
        print(f"{ref.name}: {len(ref.report.results)} probes, {len(stale)} stale")
        for pid, why in stale.items():
            print(f"  {pid}: {why}")
        bad += bool(stale)
    return 1 if bad else 0


def _minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s"


def table() -> str:
    """The README's table of the shipped references: size, backend, audit time, the dimension
    scores and the overall score with their 95% intervals, read from the shipped files."""
    from trustslm.core.types import DIMENSIONS
    from trustslm.report.format import score_text
    from trustslm.report.standing import load_references

    head = ["reference", "parameters", "backend", "audit time", *DIMENSIONS, "overall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ref in load_references():
        meta, report = ref.meta, ref.report
        runs = meta.get("runs") or []
        time_cell = _minutes(meta["audit_wall_time_s"]) + (f" ({len(runs)} runs)" if len(runs) > 1 else "")
        timed = meta.get("timed_suite")
        if timed and timed != report.run.suite:  # rescored under another suite: say which one was timed
            time_cell += f" (suite {timed}; rescored on {report.run.suite})"
        dims = [report.dimensions[d] for d in DIMENSIONS]
        cells = [ref.label, f"{meta['parameters'] / 1e6:.0f}M", f"{meta['backend']}, {meta['weights']}", time_cell,
                 *(score_text(d.score, d.ci_low, d.ci_high) for d in dims),
                 score_text(report.overall.score, report.overall.ci_low, report.overall.ci_high)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ORDER))
    ap.add_argument("--work", type=Path, default=Path("/tmp/trustslm-references"))
    ap.add_argument("--profile", choices=["full", "quick"], default="full")
    ap.add_argument("--package-only", action="store_true", help="package finished audits in WORK, run none")
    ap.add_argument("--rescore", action="store_true",
                    help="rerun finished audits in WORK with --resume (their answers come from the request cache) "
                         "to score them with the installed trustslm; the audit time kept is the first run's")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--table", action="store_true", help="print the README's table of the shipped references")
    args = ap.parse_args(argv)
    if args.check:
        return check()
    if args.table:
        print(table())
        return 0
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"error: unknown model(s) {unknown}; known: {list(MODELS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not args.package_only:
            audit(name, args.work, args.profile, rescore=args.rescore)
        package(name, args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
