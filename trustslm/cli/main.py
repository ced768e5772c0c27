"""The ``trustslm`` command: a few lines per command over :mod:`trustslm.api`.

Exit codes: 0 success (gate passed or no policy), 1 gate failed, 2 bad input or usage,
3 runtime error (including a probe that failed; its report is still written), 130 interrupted
(finished batches are cached: rerun with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

from trustslm._version import __version__
from trustslm.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_GATE_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNTIME,
    TrustSLMDeprecationWarning,
    TrustSLMError,
)
from trustslm.core.textfiles import one_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        sys.stderr.write(f"trustslm: error: {one_line(message)} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trustslm", description="Audit the trustworthiness of small language models.")
    p.add_argument("--version", action="version", version=f"trustslm {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    a = sub.add_parser("audit", help="audit a model and write a report")
    a.add_argument("model", help="model folder, .gguf file, 'smollm2' (the demo model), an http(s):// URL of an "
                                 "OpenAI-compatible server, 'mock' or KIND:ARG (a backend plugin)")
    a.add_argument("--backend", help="hf (default), llama.cpp, openai (default for a URL) or vllm")
    a.add_argument("--model-arg", dest="model_args", action="append", default=[], metavar="KEY=VALUE",
                   help="a backend option of the model (repeatable), e.g. n_ctx=4096 for llama.cpp or "
                        "model=NAME for a server (docs/backends.md lists them)")
    a.add_argument("--device", help="hf and vllm: auto (default), cpu, cuda[:N] or mps; llama.cpp: cpu or gpu "
                                    "(the --model-arg device=...)")
    a.add_argument("--dtype", help="hf and vllm: auto (default), float32, bfloat16 or float16")
    a.add_argument("--concurrency", type=int, help="openai: requests in flight at once (default: 4)")
    a.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local (default) or ray: batches go to model replicas on a Ray cluster")
    a.add_argument("--replicas", type=_replicas, default="auto",
                   help="with --executor ray: N replicas, or auto (one per GPU, else per CPU)")
    a.add_argument("--suite", help="the probes, data and sample counts to run: smoke (default: every probe on the "
                                   "project's own small sets, offline), standard (the published benchmarks, fetched at "
                                   "pinned revisions), or a suite YAML file; `trustslm suites list`")
    a.add_argument("--data-dir", metavar="DIR", help="local copies of the published benchmarks, for a machine without "
                                                     "internet (layout: docs/datasets.md)")
    a.add_argument("--probes", type=_csv, default=None,
                   help="probe ids or globs, comma-separated, among the suite's (default: all of them)")
    a.add_argument("--out", default="trustslm-report", help="output folder (default: trustslm-report)")
    a.add_argument("--policy", help="gate policy YAML: exit 1 when it fails")
    a.add_argument("--baseline", metavar="REPORT",
                   help="the predecessor's report.json (or its folder): also fail on significant regressions from it")
    _ci_output_flags(a)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--limit", type=int, help="use at most N items of each probe's data")
    a.add_argument("--resume", action="store_true", help="reuse results cached by an earlier or interrupted run")
    a.add_argument("--quick", action="store_true", help="quick profile: fewer samples per prompt (each spec's 'quick')")
    a.add_argument("--scorer", metavar="SCORER",
                   help="toxicity scorer of every probe that uses one (e.g. detoxify, hf-classifier:PATH); "
                        "a named scorer never falls back (default: each spec's, 'auto')")
    a.add_argument("--set", dest="sets", action="append", default=[], metavar="PROBE_ID.OPTION=VALUE",
                   help="set a probe option (repeatable)")
    a.add_argument("--config", help="YAML file of probe options")
    a.add_argument("--canaries", metavar="FILE", help="canary file (for the probes that take one: canary exposure)")
    a.add_argument("--members", metavar="FILE",
                   help="training texts (for the probes that take them: membership inference, extraction)")
    a.add_argument("--non-members", metavar="FILE", help="held-out texts from the same distribution")
    a.add_argument("--reference-model", metavar="MODEL",
                   help="the model it was fine-tuned from (the reference of membership inference)")
    a.add_argument("--batch-size", type=_batch_size, default=32,
                   help="requests per forward pass, or auto: the largest that fits, halved on out-of-memory "
                        "(default: 32)")
    a.add_argument("--allow-pickle", action="store_true",
                   help="DANGEROUS: load pickle weights when there are no safetensors (runs their code)")
    a.add_argument("--allow-download", action="store_true", help="fetch a Hugging Face hub id")
    a.add_argument("--cache-dir", help="cache folder (default: $TRUSTSLM_CACHE_DIR or ~/.cache/trustslm)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    f = sub.add_parser("finetune", help="fine-tune a causal LM, optionally with DP-SGD, planting canaries")
    f.add_argument("model", help="model folder, .gguf file or 'smollm2'")
    f.add_argument("data", help="training texts: .txt (one per line) or JSONL with 'text'")
    f.add_argument("--out", required=True, help="output folder (must be new or empty)")
    f.add_argument("--epochs", type=int, default=3)
    f.add_argument("--batch-size", type=int, default=16)
    f.add_argument("--lr", type=float, default=5e-4)
    f.add_argument("--max-length", type=int, default=128)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the saved model)")
    f.add_argument("--lora-rank", type=int, default=8)
    f.add_argument("--dp", action="store_true", help="train with DP-SGD (Opacus)")
    f.add_argument("--target-epsilon", type=float)
    f.add_argument("--delta", type=float, help="default: min(1e-5, 1/(10 N))")
    f.add_argument("--max-grad-norm", type=float, default=1.0)
    f.add_argument("--accountant", choices=["prv", "rdp", "gdp"], default="prv")
    f.add_argument("--grad-sample-mode", choices=["auto", "hooks", "ghost"], default="auto",
                   help="per-sample clipping: hooks (fast, memory per sample) or ghost clipping (default: auto)")
    f.add_argument("--insert-canaries", type=int, default=0, metavar="N",
                   help="plant N random canaries (and keep N unplanted as a control)")
    f.add_argument("--canary-repeats", type=int, default=10)
    f.add_argument("--audit-canaries", type=int, default=0, metavar="M",
                   help="M canaries each planted once with probability 1/2 (one-run DP audit)")
    f.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION",
                   help="hold out this share of the texts as non-members for membership inference")
    f.add_argument("--no-progress", action="store_true")

    m = sub.add_parser("mitigate", help="apply mitigations, then audit before and after with the same probes")
    m.add_argument("model", help="model folder, .gguf file or 'smollm2'")
    m.add_argument("--with", dest="names", type=_csv, required=True, metavar="NAME[,NAME]",
                   help="mitigations to apply (trustslm mitigations list)")
    m.add_argument("--data", metavar="FILE", help="fine-tuning texts for training mitigations "
                   "(default: the data named in the model's training_record.json)")
    m.add_argument("--out", required=True, help="output folder (must be new or empty)")
    m.add_argument("--probes", type=_csv, default=None,
                   help="probe ids or globs to audit before and after (default: the mitigations' targets)")
    m.add_argument("--set", dest="sets", action="append", default=[], metavar="MITIGATION.OPTION=VALUE",
                   help="set a mitigation option (repeatable)")
    m.add_argument("--probe-set", dest="probe_sets", action="append", default=[], metavar="PROBE_ID.OPTION=VALUE",
                   help="set a probe option for both audits (repeatable)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--limit", type=int, help="use at most N items of each probe's data")
    m.add_argument("--quick", action="store_true", help="quick profile for both audits")
    m.add_argument("--qa-limit", type=int, help="use at most N questions for the QA-accuracy utility cost "
                   "(0: don't measure it, for a mitigation too slow to generate with)")
    m.add_argument("--batch-size", type=int, default=32, help="requests per forward pass (default: 32)")
    m.add_argument("--allow-pickle", action="store_true",
                   help="DANGEROUS: load pickle weights when there are no safetensors (runs their code)")
    m.add_argument("--cache-dir", help="cache folder (default: $TRUSTSLM_CACHE_DIR or ~/.cache/trustslm)")
    m.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    v = sub.add_parser("variants", help="build compressed variants (quantised, pruned), audit each against its "
                                        "full-precision reference, and compare them item by item")
    v.add_argument("model", help="model folder (converted to GGUF at F32), .gguf file or 'smollm2'")
    v.add_argument("--out", required=True, help="output folder (must be new or empty)")
    v.add_argument("--quant", type=_csv, default=None, metavar="TYPE[,TYPE]",
                   help="llama.cpp quantisation types to build (default: Q8_0,Q5_K_M,Q4_K_M,Q3_K_M,Q2_K; 'none' for none)")
    v.add_argument("--prune", type=float, metavar="SHARE", help="also a variant with this share of each block linear "
                                                                 "layer's weights zeroed by magnitude (e.g. 0.5)")
    v.add_argument("--variant", dest="given", action="append", default=[], metavar="NAME=PATH",
                   help="a variant file of your own (a GGUF with the reference's tokenizer; repeatable)")
    v.add_argument("--backend", default="llama.cpp", help="the backend every file is audited with: llama.cpp "
                                                          "(default: the shipped kernels) or hf (dequantised)")
    v.add_argument("--suite", help="smoke (default), standard or a suite YAML file, as for audit")
    v.add_argument("--data-dir", metavar="DIR", help="local copies of the published benchmarks")
    v.add_argument("--probes", type=_csv, default=None, help="probe ids or globs, comma-separated (default: the suite's)")
    v.add_argument("--set", dest="sets", action="append", default=[], metavar="PROBE_ID.OPTION=VALUE",
                   help="set a probe option for every audit (repeatable)")
    v.add_argument("--policy", help="gate policy YAML, applied to each variant with the reference as its baseline "
                                    "(its regressions section): exit 1 when any variant fails")
    v.add_argument("--junit", metavar="FILE", help="also write every variant's gate as JUnit XML")
    v.add_argument("--sarif", metavar="FILE", help="also write every variant's gate failures as SARIF 2.1.0")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--limit", type=int, help="use at most N items of each probe's data")
    v.add_argument("--quick", action="store_true", help="quick profile for every audit")
    v.add_argument("--resume", action="store_true", help="reuse requests cached by an earlier or interrupted run "
                                                         "(the files are rebuilt, byte for byte)")
    v.add_argument("--allow-pickle", action="store_true",
                   help="DANGEROUS: load pickle weights when there are no safetensors (runs their code)")
    v.add_argument("--cache-dir", help="cache folder (default: $TRUSTSLM_CACHE_DIR or ~/.cache/trustslm)")
    v.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    mi = sub.add_parser("mitigations", help="mitigation plugins")
    mis = mi.add_subparsers(dest="mitigations_command", required=True, parser_class=_Parser)
    ml = mis.add_parser("list", help="list registered mitigations")
    ml.add_argument("--format", choices=["table", "json"], default="table")

    pr = sub.add_parser("probes", help="probe plugins")
    prs = pr.add_subparsers(dest="probes_command", required=True, parser_class=_Parser)
    pl = prs.add_parser("list", help="list registered probes")
    pl.add_argument("--format", choices=["table", "json"], default="table")

    su = sub.add_parser("suites", help="suites: named choices of probes, data and sample counts")
    sus = su.add_subparsers(dest="suites_command", required=True, parser_class=_Parser)
    sl = sus.add_parser("list", help="list the built-in suites")
    sl.add_argument("--format", choices=["table", "json"], default="table")

    sc = sub.add_parser("scorers", help="toxicity scorer plugins")
    scs = sc.add_subparsers(dest="scorers_command", required=True, parser_class=_Parser)
    scs.add_parser("list", help="list registered scorers")
    ck = scs.add_parser("check", help="agreement of a scorer with labelled texts (AUROC, Pearson's r)")
    ck.add_argument("scorer", help="profanity-check, detoxify[:ARG], hf-classifier:PATH[#LABEL], ...")
    ck.add_argument("--labels", nargs="+", required=True, metavar="FILE",
                    help="JSONL files of texts with a 0/1 label or a score (e.g. Perspective's toxicity)")
    ck.add_argument("--text-field", help="dotted path of the text (default: text, prompt.text, ...)")
    ck.add_argument("--label-field", help="dotted path of the label (default: toxicity, label, prompt.toxicity, ...)")
    ck.add_argument("--threshold", type=float, default=0.5, help="a label at or above it is toxic (default: 0.5)")
    ck.add_argument("--limit", type=int, help="check the first N texts only")
    ck.add_argument("--out", help="also write the result as JSON here")
    ck.add_argument("--no-progress", action="store_true")

    g = sub.add_parser("gate", help="evaluate the release gate on an existing report (no model needed)")
    g.add_argument("report", help="report.json or its folder")
    g.add_argument("--policy", help="gate policy YAML")
    g.add_argument("--baseline", metavar="REPORT", help="the predecessor's report.json (or its folder)")
    _ci_output_flags(g)
    g.add_argument("--no-progress", action="store_true")

    d = sub.add_parser("diff", help="compare two reports metric by metric, with paired intervals")
    d.add_argument("old", help="the old report.json (or its folder)")
    d.add_argument("new", help="the new report.json (or its folder)")
    d.add_argument("--format", choices=["md", "json"], default="md")
    d.add_argument("--resamples", type=int, default=None,
                   help="paired bootstrap resamples (default: 1000, as the reports' own intervals)")
    d.add_argument("--output", "-o", help="write here instead of stdout")
    d.add_argument("--no-progress", action="store_true")

    lb = sub.add_parser("leaderboard", help="several reports side by side in one table and one HTML page; a row's "
                                            "best score marked only where significantly better than the runner-up")
    lb.add_argument("reports", nargs="*", metavar="REPORT", help="report.json files or their folders (at least 2, "
                                                                   "counting the references)")
    lb.add_argument("--out", default="trustslm-leaderboard",
                    help="output folder of leaderboard.md and leaderboard.html (default: trustslm-leaderboard)")
    lb.add_argument("--with-references", action="store_true",
                    help="also add the reference audits shipped with trustslm as columns")

    c = sub.add_parser("card", help="write a report's trust results into a model folder's README model card")
    c.add_argument("model_dir", help="the model folder (its README.md is updated or created)")
    c.add_argument("--report", required=True, help="report.json or its folder")

    rp = sub.add_parser("report", help="report files")
    rps = rp.add_subparsers(dest="report_command", required=True, parser_class=_Parser)
    rr = rps.add_parser("render", help="render a report.json in a registered format (Markdown, HTML, ...)")
    rr.add_argument("report")
    rr.add_argument("--format", default="md", metavar="NAME",
                    help="a report format registered in the entry-point group trustslm.renderers: md (default), "
                         "html, html-fragment, junit, sarif, or a plugin's")
    rr.add_argument("--output", "-o", help="write here instead of stdout")
    return p


def _ci_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--junit", metavar="FILE", help="also write the gate as JUnit XML (one test case per rule)")
    p.add_argument("--sarif", metavar="FILE", help="also write the gate's failures as SARIF 2.1.0 (code scanning)")


def _write_ci_outputs(report, args: argparse.Namespace) -> None:
    from trustslm.report.junit import render_junit
    from trustslm.report.sarif import render_sarif

    outputs = []
    if args.junit:
        outputs.append((Path(args.junit), render_junit(report)))
    if args.sarif:
        policy_text = _policy_text(args.policy) if args.policy else None
        outputs.append((Path(args.sarif), render_sarif(report, policy_text=policy_text)))
    for path, text in outputs:
        _write_text(path, text)


def _policy_text(path: str) -> str:
    """The policy file's text, read as boundedly as the policy itself was."""
    from trustslm.core.errors import PolicyError
    from trustslm.core.limits import MAX_YAML_FILE_BYTES
    from trustslm.core.textfiles import read_bounded_text

    return read_bounded_text(path, "policy", MAX_YAML_FILE_BYTES, PolicyError)


def _write_text(path: str | Path, text: str) -> None:
    """Write an output file the user named; a folder or a file in the way is a one-line error."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _bad(f"can't write {path}: {exc.strerror or exc}") from None


def _check_outputs(args: argparse.Namespace, folder: str | None = None) -> None:
    """Refuse outputs that can't be written (a file where a folder is needed, a folder where a file
    is) before the work that fills them runs, rather than lose that work at the end: the report
    folder and the ``--junit``, ``--sarif`` and ``--output`` files the command has."""
    if folder is not None:
        from trustslm.report.files import check_out_dir

        check_out_dir(folder)
        _check_first_existing(Path(folder), "--out")
    file_flags = ("junit", "sarif", "output") if folder is not None else ("junit", "sarif", "output", "out")
    for flag in file_flags:  # ``scorers check --out`` names a file
        path = getattr(args, flag, None)
        if path is None:
            continue
        if Path(path).is_dir():
            raise _bad(f"--{flag} {path} is a folder; name a file")
        _check_first_existing(Path(path).parent, f"--{flag}")


def _check_first_existing(path: Path, flag: str) -> None:
    """The nearest existing folder at or above ``path`` must be a folder (``--out a.txt/x``)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise _bad(f"{flag} {path}: {candidate} is a file, not a folder")
            return


def _gate_exit(report) -> int:
    if any(r.status == "error" for r in report.results):
        return EXIT_RUNTIME
    return EXIT_OK if report.gate.passed else EXIT_GATE_FAILED


def cmd_audit(args: argparse.Namespace) -> int:
    from trustslm import api
    from trustslm.core.registry import Registry
    from trustslm.engine.options import parse_set
    from trustslm.report.markdown import summary_table
    from trustslm.workflows.discover import options_from_training

    _check_outputs(args, folder=args.out)  # before any model loads: a bad --out would lose the audit
    options = parse_set(args.sets)
    registry = Registry()
    given = {name: getattr(args, flag) for flag, name in AUDIT_SHORTCUTS if getattr(args, flag) is not None}
    for pid, found in options_from_training(registry, args.probes, given).items():
        for option, value in found.items():
            options.setdefault(pid, {}).setdefault(option, value)
    report = api.audit(
        args.model, probes=args.probes, options=options, config=args.config,
        seed=args.seed, limit=args.limit, policy=args.policy, out=args.out, resume=args.resume,
        allow_pickle=args.allow_pickle, allow_download=args.allow_download, batch_size=args.batch_size,
        cache_dir=args.cache_dir, progress=not args.no_progress, quick=args.quick,
        scorer=args.scorer, baseline=args.baseline, registry=registry, model_args=_audit_model_args(args),
        backend=args.backend, executor=args.executor, replicas=args.replicas, suite=args.suite,
        data_dir=args.data_dir,
    )
    _write_ci_outputs(report, args)
    print(summary_table(report))
    print(f"  report: {Path(args.out) / 'report.html'}")
    return _gate_exit(report)


def cmd_gate(args: argparse.Namespace) -> int:
    from trustslm import api
    from trustslm.report.markdown import gate_lines

    if not args.policy and not args.baseline:
        raise _bad("give --policy, --baseline or both")
    _check_outputs(args)
    report = api.evaluate_gate(args.report, policy=args.policy, baseline=args.baseline, progress=not args.no_progress)
    _write_ci_outputs(report, args)
    print("\n".join(gate_lines(report)))
    return EXIT_OK if report.gate.passed else EXIT_GATE_FAILED


def cmd_diff(args: argparse.Namespace) -> int:
    from trustslm import api
    from trustslm.report.diff import render_diff_markdown

    if args.resamples is not None and args.resamples < 200:
        raise _bad("--resamples must be at least 200")
    _check_outputs(args)
    diff = api.compare(args.old, args.new, resamples=args.resamples, progress=not args.no_progress)
    text = diff.model_dump_json(indent=2) + "\n" if args.format == "json" else render_diff_markdown(diff)
    if args.output:
        _write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from trustslm import api

    _check_first_existing(Path(args.out), "--out")
    md, html = api.leaderboard(args.reports, out=args.out, with_references=args.with_references)
    print(f"leaderboard: {md} and {html}")
    return EXIT_OK


def cmd_card(args: argparse.Namespace) -> int:
    from trustslm import api

    path = api.update_card(args.model_dir, args.report)
    print(f"model card updated: {path}")
    return EXIT_OK


def _audit_model_args(args: argparse.Namespace) -> dict[str, Any]:
    """``--model-arg`` items with the shortcut flags (``--device``, ``--dtype``, ``--concurrency``)
    added: each is the backend option of that name, checked by the backend like any other."""
    out: dict[str, Any] = _model_args(args.model_args)
    for flag in ("device", "dtype", "concurrency"):
        value = getattr(args, flag)
        if value is not None:
            if flag in out and str(out[flag]) != str(value):
                raise _bad(f"--{flag} {value} contradicts --model-arg {flag}={out[flag]}")
            out[flag] = value
    return out


def _batch_size(text: str) -> int | str:
    if text.strip() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _replicas(text: str) -> int | str:
    return _batch_size(text)


def _model_args(items: list[str]) -> dict[str, str]:
    """``["dtype=bfloat16", "device=cuda"]`` -> ``{"dtype": "bfloat16", "device": "cuda"}``; the
    values stay strings (the backend's option types convert them)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _bad(f"--model-arg {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


#: Flags of ``audit`` that give by hand what a fine-tuning folder offers (``trustslm.probes.base.TRAINING_INPUTS``):
#: each sets the option of every selected probe whose kind takes it (``Probe.training_inputs``);
#: ``--set`` for the same option wins.
AUDIT_SHORTCUTS = (
    ("canaries", "canaries"),
    ("members", "members"),
    ("non_members", "non_members"),
    ("reference_model", "base_model"),
)


def cmd_finetune(args: argparse.Namespace) -> int:
    from trustslm import api

    keys = ("epochs", "batch_size", "lr", "max_length", "seed", "lora", "lora_rank", "dp", "target_epsilon",
            "delta", "max_grad_norm", "accountant", "grad_sample_mode", "insert_canaries", "canary_repeats",
            "audit_canaries", "holdout")
    options = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    record = api.finetune(args.model, args.data, out=args.out, progress=not args.no_progress, **options)
    eps = f"epsilon {record.epsilon:.3f} at delta {record.delta:.2g} ({record.accountant} accountant)" if record.dp else "no DP"
    print(f"fine-tuned {record.base_model['name']} for {record.steps} steps, {eps}; final loss "
          f"{record.final_train_loss:.4f}")
    print(f"  model and training_record.json: {args.out}")
    return EXIT_OK


def cmd_probes_list(args: argparse.Namespace) -> int:
    from trustslm import api

    rows = api.list_probes()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        print(f"{r['id']:<36} {r['dimension']:<12} v{r['version']:<4} needs {','.join(r['needs']):<27} {r['summary']}")
    return EXIT_OK


def cmd_suites_list(args: argparse.Namespace) -> int:
    from trustslm import api

    rows = api.list_suites()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        print(f"{r['name']:<10} v{r['version']:<3} {len(r['probes']):>3} probes  {r['summary']}")
    return EXIT_OK


def cmd_scorers_list(args: argparse.Namespace) -> int:
    from trustslm import api

    print("\n".join(api.list_scorers()))
    return EXIT_OK


def cmd_scorers_check(args: argparse.Namespace) -> int:
    from trustslm import api

    if args.limit is not None and args.limit < 1:
        raise _bad("--limit must be at least 1")
    if not 0 < args.threshold < 1:
        raise _bad("--threshold must be between 0 and 1")
    _check_outputs(args)
    r = api.check_scorer(args.scorer, args.labels, text_field=args.text_field, label_field=args.label_field,
                         threshold=args.threshold, limit=args.limit, progress=not args.no_progress)
    print(f"scorer {r.scorer.name} {r.scorer.version}: {r.n} texts ({r.n_toxic} labelled toxic at {r.threshold}; "
          f"label field {r.label_field})")
    if r.auroc is not None:
        print(f"  AUROC      {r.auroc:.3f} [{r.auroc_ci[0]:.3f}, {r.auroc_ci[1]:.3f}]")
    else:
        print(f"  AUROC      none: every label is on one side of {r.threshold}")
    if r.pearson is not None:
        print(f"  Pearson r  {r.pearson:.3f} [{r.pearson_ci[0]:.3f}, {r.pearson_ci[1]:.3f}]")
    print(f"  agreement  {r.agreement:.3f} at {r.threshold}; {r.seconds:.1f} s to score")
    if args.out:
        _write_text(args.out, r.model_dump_json(indent=2) + "\n")
    return EXIT_OK


def cmd_mitigate(args: argparse.Namespace) -> int:
    from trustslm import api
    from trustslm.engine.options import parse_set

    if args.batch_size < 1:
        raise _bad("--batch-size must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise _bad("--limit must be at least 1")
    if args.qa_limit is not None and args.qa_limit < 0:
        raise _bad("--qa-limit must be at least 0")
    _check_first_existing(Path(args.out), "--out")
    run = api.mitigate(
        args.model, args.names, out=args.out, data=args.data, options=parse_set(args.sets), probes=args.probes,
        probe_options=parse_set(args.probe_sets), seed=args.seed, limit=args.limit, quick=args.quick,
        utility_qa_limit=args.qa_limit, allow_pickle=args.allow_pickle, batch_size=args.batch_size,
        cache_dir=args.cache_dir, progress=not args.no_progress,
    )
    for s in run.steps:
        print(f"{s.name} ({s.dimension}): {s.did}")
    for t in run.targets:
        print(f"  {t['metric']}: {_num(t['before'])} -> {_num(t['after'])} ({t['verdict']})")
    for u in run.utility:
        print(f"  cost: {u.name} {_num(u.before)} -> {_num(u.after)} ({u.cost})")
    print(f"  mitigated model: {run.mitigated_model}; before/after: {Path(args.out) / 'mitigation.md'}")
    return EXIT_OK


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def cmd_variants(args: argparse.Namespace) -> int:
    from trustslm import api
    from trustslm.engine.options import parse_set
    from trustslm.workflows.variants import DEFAULT_QUANTS, parse_variant_args

    quant = DEFAULT_QUANTS if args.quant is None else [q for q in args.quant if q.lower() != "none"]
    _check_first_existing(Path(args.out), "--out")
    _check_outputs(args)
    run = api.variants(
        args.model, out=args.out, quant=quant, prune=args.prune, given=parse_variant_args(args.given),
        probes=args.probes, options=parse_set(args.sets), seed=args.seed, limit=args.limit, quick=args.quick,
        suite=args.suite, data_dir=args.data_dir, policy=args.policy, backend=args.backend,
        cache_dir=args.cache_dir, allow_pickle=args.allow_pickle, resume=args.resume, progress=not args.no_progress)
    for v in [run.reference, *run.variants]:
        overall = next((s for s in v.scores if s.target == "overall"), None)
        bpw = f"{v.quantisation.bits_per_weight:.2f} bits/weight" if v.quantisation else ""
        if v.status != "ok":
            print(f"{v.name:<16} {bpw:<18} failed: {v.reason}")
            continue
        change = "" if overall is None or overall.difference is None else \
            f" ({overall.difference:+.1f} [{_num1(overall.ci_low)}, {_num1(overall.ci_high)}], {overall.verdict})"
        score = "–" if overall is None or overall.variant is None else f"{overall.variant:.1f}"
        flagged = "" if v is run.reference else f"; outputs changed in {len(v.flagged_probes)} probes"
        print(f"{v.name:<16} {bpw:<18} overall {score}{change}{flagged}")
    out = Path(args.out)
    print(f"  comparison: {out / 'variants.md'} and {out / 'variants.html'}")
    for flag, name in ((args.junit, "gate.junit.xml"), (args.sarif, "gate.sarif")):
        if flag and (out / name).is_file():
            _write_text(flag, (out / name).read_text(encoding="utf-8"))
    if run.gate_passed is None:
        return EXIT_OK
    print(f"  gate: {'passed' if run.gate_passed else 'FAILED'}")
    return EXIT_OK if run.gate_passed else EXIT_GATE_FAILED


def _num1(x: float | None) -> str:
    return "–" if x is None else f"{x:+.1f}"


def cmd_mitigations_list(args: argparse.Namespace) -> int:
    from trustslm import api

    rows = api.list_mitigations()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        print(f"{r['name']:<28} {r['dimension']:<13} {r['kind']:<9} {r['summary']}")
    return EXIT_OK


def cmd_report_render(args: argparse.Namespace) -> int:
    from trustslm import api
    from trustslm.core.registry import Registry

    registry = Registry()
    known = registry.renderer_names()
    if args.format not in known:  # before the report is read
        raise _bad(f"unknown report format {args.format!r}; known: {', '.join(known)}")
    _check_outputs(args)
    text = api.render_report(args.report, args.format, registry=registry)
    if args.output:
        _write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _bad(message: str) -> TrustSLMError:
    from trustslm.core.errors import BadInputError

    return BadInputError(message)


COMMANDS = {
    ("audit", None): cmd_audit,
    ("card", None): cmd_card,
    ("diff", None): cmd_diff,
    ("gate", None): cmd_gate,
    ("leaderboard", None): cmd_leaderboard,
    ("finetune", None): cmd_finetune,
    ("mitigate", None): cmd_mitigate,
    ("mitigations", "list"): cmd_mitigations_list,
    ("probes", "list"): cmd_probes_list,
    ("report", "render"): cmd_report_render,
    ("scorers", "list"): cmd_scorers_list,
    ("scorers", "check"): cmd_scorers_check,
    ("suites", "list"): cmd_suites_list,
    ("variants", None): cmd_variants,
}


def _sigterm(signum, frame):  # a kill is an interruption: finished batches stay cached
    raise KeyboardInterrupt


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A deprecation notice as one line on stderr; other warnings as Python shows them."""
    if issubclass(category, TrustSLMDeprecationWarning):
        sys.stderr.write(f"trustslm: warning: {one_line(str(message))}\n")
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _undecodable(argv: list[str]) -> str | None:
    """The first argument that is not UTF-8 text (Python passes its bytes on as lone surrogates, which
    no report, cache key or terminal can encode), or None."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return arg
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    bad = _undecodable(argv)
    if bad is not None:
        sys.stderr.write(f"trustslm: error: argument '{one_line(bad)}' is not UTF-8 text\n")
        return EXIT_BAD_INPUT
    args = build_parser().parse_args(argv)
    sub = (getattr(args, "probes_command", None) or getattr(args, "report_command", None)
           or getattr(args, "scorers_command", None) or getattr(args, "mitigations_command", None)
           or getattr(args, "suites_command", None))
    handler = COMMANDS[(args.command, sub)]
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", TrustSLMDeprecationWarning)
            warnings.showwarning = _one_line_warning
            return handler(args)
    except TrustSLMError as exc:
        sys.stderr.write(f"trustslm: error: {one_line(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("trustslm: interrupted; finished batches are cached, rerun with --resume\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # an internal error: one line unless --debug
        if args.debug:
            raise
        first = one_line((str(exc).strip().splitlines() or [""])[0])
        sys.stderr.write(f"trustslm: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)\n")
        return EXIT_RUNTIME
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
