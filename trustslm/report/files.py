"""Writing a report's files. ``report.json``, ``samples.jsonl`` and ``units.jsonl`` are written first (the results
themselves), then the renderings (:data:`RENDERED_FILES`, each by the renderer registered under its
format name in the entry-point group ``trustslm.renderers``); each file is written to a temporary
name and moved into place, so an interrupted write never leaves a half file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from trustslm.core.registry import Registry
from trustslm.core.types import TrustReport

#: The renderings written beside the results: file name -> report format (a renderer's name).
RENDERED_FILES = {"report.md": "md", "report.html": "html"}
OUTPUT_FILES = ("report.json", "samples.jsonl", "units.jsonl", *RENDERED_FILES)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(report: TrustReport, out_dir: Path, *, registry: Registry | None = None) -> list[Path]:
    """Write :data:`OUTPUT_FILES` into ``out_dir``; returns their paths."""
    from trustslm.report.units import dump_units

    registry = registry or Registry()
    renderers = {name: registry.renderer(fmt) for name, fmt in RENDERED_FILES.items()}  # unknown: before writing
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in OUTPUT_FILES]
    _write(paths[0], report.to_json() + "\n")
    _write(paths[1], "".join(json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n" for s in report.samples))
    _write(paths[2], dump_units(report.units))
    for name, render in renderers.items():
        _write(out_dir / name, render(report))
    return paths


def load_report_dir(path: str | Path) -> TrustReport:
    """A report with its per-sample records: ``path`` is a ``report.json`` or the folder holding
    one. ``samples.jsonl`` beside it (one JSON object per line) fills ``report.samples`` and
    ``units.jsonl`` fills ``report.units``, each when the file is there; a malformed line is a
    one-line :class:`~trustslm.core.errors.BadInputError` naming the file and line."""
    from trustslm.core.errors import BadInputError

    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    report = TrustReport.load(file)
    samples_file = file.with_name("samples.jsonl")
    if samples_file.is_file():
        samples = []
        try:
            with open(samples_file, encoding="utf-8") as f:
                for i, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError as exc:
                        raise BadInputError(f"{samples_file}, line {i}: not JSON ({exc})") from None
                    if not isinstance(record, dict):
                        raise BadInputError(f"{samples_file}, line {i}: expected a JSON object, found "
                                            f"{type(record).__name__}")
                    samples.append(record)
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(f"can't read {samples_file}: {exc}") from None
        report._samples = samples
    from trustslm.report.units import FILE_NAME as UNITS_FILE
    from trustslm.report.units import read_units

    units_file = file.with_name(UNITS_FILE)
    if units_file.is_file():
        report._units = read_units(units_file)
    return report


def report_arg(report: str | Path | TrustReport | None) -> tuple[TrustReport | None, str | None]:
    """A report given as a path (``report.json`` or its folder, read with its samples and units)
    or as a report, and the path it came from."""
    if report is None or isinstance(report, TrustReport):
        return report, None
    return load_report_dir(report), str(report)
