"""Writing a report's files. ``report.json`` and ``samples.jsonl`` are written first (the results
themselves), then the renderings; each file is written to a temporary name and moved into place,
so an interrupted write never leaves a half file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from trustslm.report.types import TrustReport

OUTPUT_FILES = ("report.json", "samples.jsonl", "report.md", "report.html")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(report: TrustReport, out_dir: Path) -> list[Path]:
    from trustslm.report.html import render_html
    from trustslm.report.markdown import render_markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in OUTPUT_FILES]
    _write(paths[0], report.to_json() + "\n")
    _write(paths[1], "".join(json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n" for s in report.samples))
    _write(paths[2], render_markdown(report))
    _write(paths[3], render_html(report))
    return paths
