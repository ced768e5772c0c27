"""``trustslm leaderboard``: read several reports (and optionally the shipped reference audits),
build their leaderboard (:mod:`trustslm.report.leaderboard`) and write ``leaderboard.md`` and
``leaderboard.html`` into the output folder.

Both files are rendered first, then written as a report's are
(:func:`trustslm.report.files.write_files`: each to an exclusive temporary name in the folder,
then moved in), so a failure leaves the previous leaderboard as it was and no name planted in the
folder redirects a write."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.core.types import TrustReport
from trustslm.gate.compare import DEFAULT_COMPARE_RESAMPLES
from trustslm.report import standing
from trustslm.report.files import check_out_dir, load_report_dir, write_files
from trustslm.report.leaderboard import (
    Entry,
    build_leaderboard,
    render_leaderboard_html,
    render_leaderboard_markdown,
)

DEFAULT_OUT = "trustslm-leaderboard"
#: What the leaderboard writes: file name -> renderer.
LEADERBOARD_FILES = {"leaderboard.md": render_leaderboard_markdown, "leaderboard.html": render_leaderboard_html}


def report_link(folder: Path, out: Path) -> str | None:
    """The link from a page in ``out`` to ``folder``'s ``report.html`` (relative, percent-encoded,
    so no folder name reads as a URL scheme), or None where there is no such file."""
    page = folder / "report.html"
    if not page.is_file():
        return None
    try:
        rel = Path(os.path.relpath(os.path.abspath(page), os.path.abspath(out))).as_posix()
    except ValueError:  # another drive (Windows): no relative link
        return None
    link = quote(rel, safe="/")
    return link if link.startswith("../") else f"./{link}"


def _entry(report: str | Path | TrustReport, out: Path) -> Entry:
    if isinstance(report, TrustReport):
        return Entry(report)
    path = Path(report)
    loaded = load_report_dir(path)
    folder = path if path.is_dir() else path.parent
    return Entry(loaded, source=Path(os.path.abspath(folder)).name or str(folder), href=report_link(folder, out))


def _reference_entries(out: Path) -> list[Entry]:
    entries = []
    for ref in standing.load_references():
        report = load_report_dir(ref.path)  # its unit tables too, for the paired test
        entries.append(Entry(report, source=ref.name, href=report_link(ref.path, out),
                             label=f"{ref.label} (reference)", reference=True))
    return entries


def leaderboard(reports: Sequence[str | Path | TrustReport] | str | Path | TrustReport, *,
                out: str | Path | None = None, with_references: bool = False, registry: Registry | None = None,
                resamples: int = DEFAULT_COMPARE_RESAMPLES) -> list[Path]:
    """Write the leaderboard of ``reports`` (report folders, ``report.json`` files or reports) into
    ``out`` (default :data:`DEFAULT_OUT`): ``leaderboard.md`` and ``leaderboard.html``; returns
    their paths. ``with_references`` adds the shipped reference audits as columns. A path that is
    not a report, or fewer than two reports in all, is a one-line :class:`BadInputError`."""
    if isinstance(reports, (str, Path, TrustReport)):
        reports = [reports]
    out_dir = check_out_dir(out if out is not None else DEFAULT_OUT, LEADERBOARD_FILES)
    entries = [_entry(r, out_dir) for r in reports]
    if with_references:
        entries += _reference_entries(out_dir)
    if len(entries) < 2:
        refs = " (with the shipped references)" if with_references else ""
        raise BadInputError(f"a leaderboard needs at least 2 reports{refs}, got {len(entries)}")
    board = build_leaderboard(entries, registry=registry, resamples=resamples)
    return write_files(out_dir, {name: render(board) for name, render in LEADERBOARD_FILES.items()})
