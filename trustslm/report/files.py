"""Writing a report's files, and reading them back.

``report.json`` (the results), ``samples.jsonl``, ``units.jsonl`` and the renderings
(:data:`RENDERED_FILES`, each by the renderer registered under its format name in the entry-point
group ``trustslm.renderers``) are written so that a crash never leaves files of two runs side by
side (:func:`write_outputs`), and no name planted in the folder can redirect a write
(:mod:`trustslm.core.atomic`)."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from trustslm.core.errors import BadInputError
from trustslm.core.limits import MAX_REPORT_SIDE_FILE_BYTES
from trustslm.core.registry import Registry
from trustslm.core.textfiles import iter_bounded_lines, parse_json
from trustslm.core.types import TrustReport

#: The renderings written beside the results: file name -> report format (a renderer's name).
RENDERED_FILES = {"report.md": "md", "report.html": "html"}
OUTPUT_FILES = ("report.json", "samples.jsonl", "units.jsonl", *RENDERED_FILES)
#: The file that makes a report folder a report: written last, removed first.
COMMIT_FILE = "report.json"


def check_out_dir(out_dir: str | Path, files: Iterable[str] = OUTPUT_FILES) -> Path:
    """``out_dir`` as a path, or a one-line :class:`BadInputError` when it can't hold ``files``
    (default: a report's, :data:`OUTPUT_FILES`): it exists and is not a folder, or one of them in
    it is a folder. Cheap and read-only, so the CLI and the API can call it before an audit rather
    than lose its results."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"output folder {out_dir} is an existing file, not a folder")
    if out_dir.is_dir():
        for name in files:
            try:
                mode = os.lstat(out_dir / name).st_mode
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BadInputError(f"can't use {out_dir / name}: {exc.strerror or exc}") from None
            if stat.S_ISDIR(mode):
                raise BadInputError(f"can't write {out_dir / name}: it is a folder")
    return out_dir


def write_outputs(report: TrustReport, out_dir: Path, *, registry: Registry | None = None) -> list[Path]:
    """Write :data:`OUTPUT_FILES` into ``out_dir``; returns their paths.

    Every file is rendered and written to an exclusive temporary name in ``out_dir`` first; a
    failure there (a renderer that raises, a full disk) removes the temporary files and leaves the
    previous report as it was. Then the previous report's files are removed, ``report.json``
    first, and the new ones moved in, ``report.json`` last. A crash at any point leaves the old
    complete set, or new files without ``report.json`` (which every reader refuses as "report
    file not found"), never files of two runs together; a folder mixed by other means is caught
    when read back (:func:`load_report_dir` checks the samples against ``report.json``).
    """
    from trustslm.report.units import dump_units

    registry = registry or Registry()
    renderers = {name: registry.renderer(fmt) for name, fmt in RENDERED_FILES.items()}  # unknown: before writing
    out_dir = check_out_dir(out_dir)
    texts = {
        "report.json": report.to_json() + "\n",
        "samples.jsonl": "".join(json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n" for s in report.samples),
        "units.jsonl": dump_units(report.units),
    }
    texts.update((name, render(report)) for name, render in renderers.items())
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"can't create output folder {out_dir}: {exc.strerror or exc}") from None
    staged = _stage_all(out_dir, texts)
    _commit_all(out_dir, staged)
    return [out_dir / name for name in OUTPUT_FILES]


def write_files(out_dir: Path, texts: dict[str, str]) -> list[Path]:
    """Write ``texts`` (file name -> text) into ``out_dir``, creating it: every text is staged in an
    exclusive temporary file first and then moved in, so a failure leaves no temporary file and no
    half-written one (one-line :class:`BadInputError`). Returns the paths, in ``texts``' order."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"can't create output folder {out_dir}: {exc.strerror or exc}") from None
    _commit_staged(out_dir, _stage_all(out_dir, texts), list(texts))
    return [out_dir / name for name in texts]


def _stage_all(out_dir: Path, texts: dict[str, str]) -> dict[str, Path]:
    """Each text in its own exclusive temporary file in ``out_dir``; on any failure none is left."""
    from trustslm.core.atomic import discard, stage

    staged: dict[str, Path] = {}
    try:
        for name, text in texts.items():
            staged[name] = stage(out_dir / name, text)
    except BaseException as exc:
        for tmp in staged.values():
            discard(tmp)
        if isinstance(exc, OSError):
            raise BadInputError(f"can't write into {out_dir}: {exc.strerror or exc}") from None
        raise
    return staged


def _commit_all(out_dir: Path, staged: dict[str, Path]) -> None:
    """Remove the previous report (``report.json`` first), then move the staged files in
    (``report.json`` last)."""
    order = [COMMIT_FILE, *(n for n in OUTPUT_FILES if n != COMMIT_FILE)]
    _commit_staged(out_dir, staged, list(reversed(order)), remove_first=order)


def _commit_staged(out_dir: Path, staged: dict[str, Path], names: list[str],
                   remove_first: tuple[str, ...] | list[str] = ()) -> None:
    """Remove the files ``remove_first`` names, then move the staged files in, in the order of
    ``names``; whatever happens, no temporary file is left (one-line :class:`BadInputError`)."""
    from trustslm.core.atomic import commit, discard, sync_folder

    try:
        for name in remove_first:
            (out_dir / name).unlink(missing_ok=True)
        for name in names:
            commit(staged[name], out_dir / name)
    except OSError as exc:
        raise BadInputError(f"can't write {out_dir}: {exc.strerror or exc}") from None
    finally:
        for tmp in staged.values():  # gone once committed; left only after a failure
            discard(tmp)
    sync_folder(out_dir)


def load_report_dir(path: str | Path) -> TrustReport:
    """A report with its per-sample records: ``path`` is a ``report.json`` or the folder holding
    one. ``samples.jsonl`` beside it (one JSON object per line) fills ``report.samples`` and
    ``units.jsonl`` fills ``report.units``, each when the file is there; a malformed line is a
    one-line :class:`~trustslm.core.errors.BadInputError` naming the file and line."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    report = TrustReport.load(file)
    samples_file = file.with_name("samples.jsonl")
    if samples_file.is_file():
        samples = []
        for i, line in iter_bounded_lines(samples_file, "samples", MAX_REPORT_SIDE_FILE_BYTES):
            if not line.strip():
                continue
            record = parse_json(line, f"{samples_file}, line {i}")
            if not isinstance(record, dict):
                raise BadInputError(f"{samples_file}, line {i}: expected a JSON object, found "
                                    f"{type(record).__name__}")
            samples.append(record)
        _check_samples_match(samples_file, samples, report)
        report._samples = samples
    from trustslm.report.units import FILE_NAME as UNITS_FILE
    from trustslm.report.units import read_units

    units_file = file.with_name(UNITS_FILE)
    if units_file.is_file():
        report._units = read_units(units_file)
    return report


def _check_samples_match(samples_file: Path, samples: list[dict], report: TrustReport) -> None:
    """Refuse a ``samples.jsonl`` that is not the one written with this ``report.json``: each
    probe's number of records must be its ``n_samples``. :func:`write_outputs` never leaves two
    runs' files together; this catches a folder mixed by hand or by two runs writing at once."""
    counts = Counter(str(s.get("probe_id")) for s in samples)
    for r in report.results:
        found = counts.pop(r.probe_id, 0)
        if found != r.n_samples:
            raise BadInputError(f"{samples_file} does not belong to the report.json beside it: it holds {found} "
                                f"records of {r.probe_id!r}, the report says {r.n_samples}")
    if counts:
        raise BadInputError(f"{samples_file} does not belong to the report.json beside it: it holds records of "
                            f"{sorted(counts)[0]!r}, which the report does not have")


def report_arg(report: str | Path | TrustReport | None) -> tuple[TrustReport | None, str | None]:
    """A report given as a path (``report.json`` or its folder, read with its samples and units)
    or as a report, and the path it came from."""
    if report is None or isinstance(report, TrustReport):
        return report, None
    return load_report_dir(report), str(report)
