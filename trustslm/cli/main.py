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
from pathlib import Path

from trustslm._version import __version__
from trustslm.errors import (
    EXIT_BAD_INPUT,
    EXIT_GATE_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNTIME,
    TrustSLMError,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        sys.stderr.write(f"trustslm: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trustslm", description="Audit the trustworthiness of small language models.")
    p.add_argument("--version", action="version", version=f"trustslm {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    a = sub.add_parser("audit", help="audit a model and write a report")
    a.add_argument("model", help="model folder, .gguf file, 'smollm2' (the demo model) or 'mock'")
    a.add_argument("--probes", type=_csv, default=None, help="probe ids or globs, comma-separated (default: all)")
    a.add_argument("--out", default="trustslm-report", help="output folder (default: trustslm-report)")
    a.add_argument("--policy", help="gate policy YAML: exit 1 when it fails")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--limit", type=int, help="use at most N items of each probe's data")
    a.add_argument("--resume", action="store_true", help="reuse results cached by an earlier or interrupted run")
    a.add_argument("--set", dest="sets", action="append", default=[], metavar="PROBE_ID.OPTION=VALUE",
                   help="set a probe option (repeatable)")
    a.add_argument("--config", help="YAML file of probe options")
    a.add_argument("--batch-size", type=int, default=32, help="requests per forward pass (default: 32)")
    a.add_argument("--allow-pickle", action="store_true",
                   help="DANGEROUS: load pickle weights when there are no safetensors (runs their code)")
    a.add_argument("--allow-download", action="store_true", help="fetch a Hugging Face hub id")
    a.add_argument("--cache-dir", help="cache folder (default: $TRUSTSLM_CACHE_DIR or ~/.cache/trustslm)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    pr = sub.add_parser("probes", help="probe plugins")
    prs = pr.add_subparsers(dest="probes_command", required=True, parser_class=_Parser)
    pl = prs.add_parser("list", help="list registered probes")
    pl.add_argument("--format", choices=["table", "json"], default="table")

    rp = sub.add_parser("report", help="report files")
    rps = rp.add_subparsers(dest="report_command", required=True, parser_class=_Parser)
    rr = rps.add_parser("render", help="render a report.json as Markdown or HTML")
    rr.add_argument("report")
    rr.add_argument("--format", choices=["md", "html"], default="md")
    rr.add_argument("--output", "-o", help="write here instead of stdout")
    return p


def cmd_audit(args: argparse.Namespace) -> int:
    from trustslm import api
    from trustslm.config import parse_set
    from trustslm.report.markdown import summary_table

    if args.batch_size < 1:
        raise _bad("--batch-size must be at least 1")
    report = api.audit(
        args.model, probes=args.probes, options=parse_set(args.sets), config=args.config,
        seed=args.seed, limit=args.limit, policy=args.policy, out=args.out, resume=args.resume,
        allow_pickle=args.allow_pickle, allow_download=args.allow_download, batch_size=args.batch_size,
        cache_dir=args.cache_dir, progress=not args.no_progress,
    )
    print(summary_table(report))
    print(f"  report: {Path(args.out) / 'report.html'}")
    if any(r.status == "error" for r in report.results):
        return EXIT_RUNTIME
    return EXIT_OK if report.gate.passed else EXIT_GATE_FAILED


def cmd_probes_list(args: argparse.Namespace) -> int:
    from trustslm import api

    rows = api.list_probes()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        print(f"{r['id']:<28} {r['dimension']:<12} v{r['version']:<4} needs {','.join(r['needs']):<16} {r['summary']}")
    return EXIT_OK


def cmd_report_render(args: argparse.Namespace) -> int:
    from trustslm import api

    text = api.render_report(args.report, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _bad(message: str) -> TrustSLMError:
    from trustslm.errors import BadInputError

    return BadInputError(message)


COMMANDS = {
    ("audit", None): cmd_audit,
    ("probes", "list"): cmd_probes_list,
    ("report", "render"): cmd_report_render,
}


def _sigterm(signum, frame):  # a kill is an interruption: finished batches stay cached
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sub = getattr(args, "probes_command", None) or getattr(args, "report_command", None)
    handler = COMMANDS[(args.command, sub)]
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        return handler(args)
    except TrustSLMError as exc:
        sys.stderr.write(f"trustslm: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("trustslm: interrupted; finished batches are cached, rerun with --resume\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # an internal error: one line unless --debug
        if args.debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        sys.stderr.write(f"trustslm: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)\n")
        return EXIT_RUNTIME
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
