"""Several reports side by side (``trustslm leaderboard``): one row for the overall score, one per
dimension and, under each dimension, one per probe; one column per report; the best score of a
row marked only where it is significantly better than the runner-up's.

The test, per row. The row's highest score is compared with the second highest (and only those
two: a leaderboard of many reports costs one comparison per pair of leader and runner-up, not one
per pair of reports). Where the two reports can be paired (:func:`trustslm.gate.compare.compare`:
the same probe versions, options and data, and both wrote ``units.jsonl``), the test is the paired
bootstrap over the units both scored: significant when the 95% interval of the difference lies
above 0. Where they can't (``not compared``, with the comparison's reason), the test is unpaired:
``z = (a - b) / sqrt(se_a^2 + se_b^2)`` with each score's standard error read from its 95% interval
(``se = (ci_high - ci_low) / (2 * 1.96)``), significant when ``z > 1.96``. Each row says which test
decided it. Equal top scores are a tie, never marked.

The renderers (:func:`render_leaderboard_markdown`, :func:`render_leaderboard_html`) are pure
functions of a :class:`Leaderboard`. The HTML page is self-contained, like ``report.html``: inline
CSS, no scripts, no network. It is sortable without a script: one table is rendered per sort order
(the default order, and each report's column, highest first) and CSS ``:target`` shows the one a
column header's link (``#sort-...``) names. Every text that came from a report (model names, probe
ids, reasons) is escaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal
from urllib.parse import quote

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.core.types import DIMENSIONS, TrustReport
from trustslm.gate.compare import DEFAULT_COMPARE_RESAMPLES, ReportDiff, compare
from trustslm.report.format import md_code, md_text, score_text
from trustslm.scoring import CONFIDENCE

#: Two-sided 95% normal quantile: the intervals' half-width in standard errors, and the unpaired
#: test's critical value.
Z_95 = 1.96
PAIRED = "paired bootstrap"
UNPAIRED = "unpaired, normal approximation from the two intervals"
MISSING = "—"
STAR = "★"
#: The anchor of the table in its default row order.
DEFAULT_ANCHOR = "sort-default"

Level = Literal["overall", "dimension", "probe"]


@dataclass(frozen=True)
class Entry:
    """A report to set in the leaderboard, and where it came from.

    ``source``: a short name of where it was read (its folder's name), added to the model's name
    where two columns would otherwise share a label. ``href``: a link to its ``report.html``,
    relative to the leaderboard page (None: no link). ``label``: the column's label in place of the
    model's name (the references' labels)."""

    report: TrustReport
    source: str | None = None
    href: str | None = None
    label: str | None = None
    reference: bool = False


@dataclass(frozen=True)
class Column:
    """One report's column: its unique label and the anchor of the table sorted by it."""

    label: str
    anchor: str
    entry: Entry


@dataclass(frozen=True)
class Cell:
    """One report's score for a row, or why it has none (``missing``: ``not run``,
    ``skipped: REASON``, ``error: REASON``, ``not measured``, ``not scored``)."""

    score: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    missing: str | None = None
    href: str | None = None

    @property
    def text(self) -> str:
        """``64.9 [61.9, 67.6]``, or ``—``."""
        return MISSING if self.score is None else score_text(self.score, self.ci_low, self.ci_high)


@dataclass(frozen=True)
class Row:
    """One target (``overall``, a dimension or a probe id) across the reports.

    ``best`` and ``runner_up`` are the columns of the two highest scores; ``significant`` says
    whether ``best`` is marked; ``test`` says which test decided (``paired`` or ``unpaired``; None
    where no test ran: fewer than two scores, or a tie); ``detail`` gives the test's numbers, and
    for an unpaired test why the paired one was not possible."""

    target: str
    level: Level
    dimension: str | None
    cells: tuple[Cell, ...]
    best: int | None = None
    runner_up: int | None = None
    significant: bool = False
    test: Literal["paired", "unpaired"] | None = None
    detail: str = ""

    @property
    def marked(self) -> int | None:
        """The column marked best, or None."""
        return self.best if self.significant else None

    @property
    def test_text(self) -> str:
        """What the row's test column says."""
        scored = sum(c.score is not None for c in self.cells)
        if scored < 2:
            return "no score" if scored == 0 else "one score only"
        if self.test is None:
            return "not significant: a tie"
        name = PAIRED if self.test == "paired" else UNPAIRED
        return name if self.significant else f"not significant ({name})"


@dataclass(frozen=True)
class Leaderboard:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    resamples: int
    confidence_level: float = CONFIDENCE

    def row(self, target: str) -> Row:
        for r in self.rows:
            if r.target == target:
                return r
        raise KeyError(f"the leaderboard has no row {target!r}")

    def sorted_rows(self, column: int | None = None) -> list[Row]:
        """The rows in the default order (``column`` None: overall, then each dimension followed
        by its probes), or sorted by ``column``'s score, highest first, within each level: the
        overall row stays on top, the dimensions are ordered among themselves and each keeps its
        probes under it, ordered among themselves. Rows without a score in that column come last,
        in the default order."""
        if column is None:
            return list(self.rows)

        def key(r: Row) -> tuple[bool, float]:
            s = r.cells[column].score
            return (s is None, -(s or 0.0))

        out = [r for r in self.rows if r.level == "overall"]
        for dim in sorted((r for r in self.rows if r.level == "dimension"), key=key):
            out.append(dim)
            out.extend(sorted((r for r in self.rows if r.level == "probe" and r.dimension == dim.target), key=key))
        return out


# -- building ------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def _columns(entries: Sequence[Entry]) -> tuple[Column, ...]:
    """Unique labels: the model's name (or the entry's own label); where two columns share one, the
    source is added (``mock (run-a)``), and a number where that is still not enough."""
    base = [e.label if e.label is not None else e.report.model.name for e in entries]
    counts = {b: base.count(b) for b in base}
    labels = [f"{b} ({e.source})" if counts[b] > 1 and e.source else b for b, e in zip(base, entries)]
    seen: dict[str, int] = {}
    out = []
    for i, (label, e) in enumerate(zip(labels, entries), start=1):
        n = seen.get(label, 0) + 1
        seen[label] = n
        unique = label if n == 1 else f"{label} #{n}"
        slug = _slug(unique)
        out.append(Column(label=unique, anchor=f"sort-{i}" + (f"-{slug}" if slug else ""), entry=e))
    return tuple(out)


def _probe_href(href: str | None, probe_id: str) -> str | None:
    return None if href is None else f"{href}#{quote(probe_id, safe='')}"


def _cell(report: TrustReport, target: str, level: Level, href: str | None) -> Cell:
    if level == "overall":
        o = report.overall
        if o.score is None:
            return Cell(None, missing="not measured")
        return Cell(o.score, o.ci_low, o.ci_high, href=href)
    if level == "dimension":
        d = report.dimensions.get(target)
        if d is None or d.score is None:
            return Cell(None, missing="not measured")
        return Cell(d.score, d.ci_low, d.ci_high, href=href)
    result = next((r for r in report.results if r.probe_id == target), None)
    if result is None:
        return Cell(None, missing="not run")
    if result.status != "ok":
        return Cell(None, missing=f"{result.status}: {result.reason}", href=_probe_href(href, target))
    if result.score is None:
        return Cell(None, missing="not scored (the probe scores no metric)", href=_probe_href(href, target))
    s = result.score
    return Cell(s.score, s.ci_low, s.ci_high, href=_probe_href(href, target))


def _targets(reports: Sequence[TrustReport]) -> list[tuple[str, Level, str | None]]:
    """(target, level, dimension) in the default order: overall, then each dimension and its
    probes (those of any report, in the order they first appear)."""
    probes: dict[str, str] = {}
    for report in reports:
        for r in report.results:
            probes.setdefault(r.probe_id, r.dimension)
    out: list[tuple[str, Level, str | None]] = [("overall", "overall", None)]
    for dim in DIMENSIONS:
        out.append((dim, "dimension", dim))
        out.extend((pid, "probe", dim) for pid, d in probes.items() if d == dim)
    return out


def unpaired_z(a: Cell, b: Cell) -> float | None:
    """``(a - b) / sqrt(se_a^2 + se_b^2)``, each standard error read from the score's 95% interval
    (``(ci_high - ci_low) / (2 * 1.96)``); None where an interval is missing. Infinite where both
    intervals have no width and the scores differ."""
    if a.score is None or b.score is None or a.ci_low is None or a.ci_high is None or b.ci_low is None \
            or b.ci_high is None:
        return None
    se_a, se_b = (a.ci_high - a.ci_low) / (2 * Z_95), (b.ci_high - b.ci_low) / (2 * Z_95)
    diff = a.score - b.score
    se = math.sqrt(se_a ** 2 + se_b ** 2)
    if se == 0:
        return math.copysign(math.inf, diff) if diff else 0.0
    return diff / se


def build_leaderboard(entries: Sequence[Entry], *, registry: Registry | None = None,
                      resamples: int = DEFAULT_COMPARE_RESAMPLES) -> Leaderboard:
    """The leaderboard of ``entries`` (at least two): every row's cells, its best and runner-up,
    and whether the best is significantly better (see the module docstring for the tests).
    Compares at most one pair of reports per distinct (runner-up, best) pair of columns, each
    resampling only the targets of its rows."""
    if len(entries) < 2:
        raise BadInputError(f"a leaderboard needs at least 2 reports, got {len(entries)}")
    columns = _columns(entries)
    registry = registry or Registry()
    rows: list[Row] = []
    for target, level, dim in _targets([e.report for e in entries]):
        cells = tuple(_cell(e.report, target, level, e.href) for e in entries)
        rows.append(Row(target=target, level=level, dimension=dim, cells=cells))

    ranked: list[Row] = []
    pairs: dict[tuple[int, int], set[str]] = {}
    for row in rows:
        scores = {i: c.score for i, c in enumerate(row.cells) if c.score is not None}
        scored = sorted(scores, key=lambda i: -scores[i])  # stable: the first column wins a tie
        if not scored:
            ranked.append(row)
            continue
        best = scored[0]
        runner_up = scored[1] if len(scored) > 1 else None
        row = Row(row.target, row.level, row.dimension, row.cells, best=best, runner_up=runner_up)
        if runner_up is not None and row.cells[best].score != row.cells[runner_up].score:
            pairs.setdefault((runner_up, best), set()).add(row.target)
        ranked.append(row)

    diffs: dict[tuple[int, int], ReportDiff | str] = {}
    for (ru, best), targets in pairs.items():
        try:
            diffs[(ru, best)] = compare(entries[ru].report, entries[best].report, targets=targets, registry=registry,
                                        resamples=resamples)
        except BadInputError as exc:
            diffs[(ru, best)] = str(exc)

    out = []
    for row in ranked:
        key = (row.runner_up, row.best)
        if key not in diffs:  # fewer than two scores, or a tie
            out.append(row)
            continue
        out.append(_tested(row, diffs[key], columns))
    return Leaderboard(columns=columns, rows=tuple(out), resamples=resamples)


def _tested(row: Row, diff: ReportDiff | str, columns: tuple[Column, ...]) -> Row:
    assert row.best is not None and row.runner_up is not None
    lead, second = columns[row.best].label, columns[row.runner_up].label
    why = diff if isinstance(diff, str) else None
    if not isinstance(diff, str):
        try:
            change = diff.find(row.target)
        except KeyError:
            why = f"the comparison has no row {row.target}"
        else:
            if change.verdict in ("better", "worse", "no significant change"):
                d, lo, hi = change.difference, change.ci_low, change.ci_high
                numbers = (f"{lead} - {second}: {d:+.1f}" if d is not None else f"{lead} - {second}") + (
                    f" [{lo:+.1f}, {hi:+.1f}]" if lo is not None and hi is not None else "")
                return Row(row.target, row.level, row.dimension, row.cells, row.best, row.runner_up,
                           significant=change.verdict == "better", test="paired",
                           detail=f"{numbers} ({PAIRED}, {diff.resamples} resamples)")
            why = change.reason or change.verdict
    z = unpaired_z(row.cells[row.best], row.cells[row.runner_up])
    significant = z is not None and z > Z_95
    numbers = "no interval to test" if z is None else f"z = {z:.2f}"
    return Row(row.target, row.level, row.dimension, row.cells, row.best, row.runner_up, significant=significant,
               test="unpaired",
               detail=f"{lead} vs {second}: {numbers} ({'>' if significant else 'not >'} {Z_95}); "
                      f"not paired: {why} (old: {second}, new: {lead})")


# -- Markdown ------------------------------------------------------------------------------------

def _legend(board: Leaderboard) -> dict[str, str]:
    """What the marks, the tests and the missing cells mean (plain text)."""
    level = f"{board.confidence_level * 100:g}%"
    return {
        "mark": f"the row's highest score, significantly higher than the second highest at the {level} level; "
                "only the highest two of a row are compared, and equal top scores are a tie (not marked).",
        "paired": f"the two reports compared unit by unit (as `trustslm diff` does; {board.resamples} resamples of "
                  f"the units both scored): significant when the {level} interval of the difference lies above 0.",
        "unpaired": f"where the two reports can't be paired (no shared units, another probe version, other data "
                    f"or options): z = (a - b) / sqrt(se_a^2 + se_b^2), with se = (ci_high - ci_low) / (2 x {Z_95}) "
                    f"from each score's {level} interval; significant when z > {Z_95}.",
        "missing": "the report has no score there (not run, skipped, failed, or a dimension not measured).",
    }


def render_leaderboard_markdown(board: Leaderboard) -> str:
    """The leaderboard as Markdown: the table in its default order (a marked best in bold), the
    test of each row, and notes on the tests, the missing scores and the columns."""
    cols = board.columns
    lines = ["# Leaderboard", "",
             f"{len(cols)} reports; scores 0-100 with their {board.confidence_level * 100:g}% intervals.", "",
             "| target | " + " | ".join(md_text(c.label) for c in cols) + " | test |",
             "|---|" + "---|" * len(cols) + "---|"]
    for row in board.rows:
        name = {"overall": "overall", "dimension": row.target}.get(row.level) or f"↳ {md_code(row.target)}"
        cells = []
        for i, cell in enumerate(row.cells):
            text = cell.text
            cells.append(f"**{text}**" if row.marked == i else text)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {md_text(row.test_text)} |")
    legend = _legend(board)
    lines += ["", f"**Bold**: {legend['mark']}", "",
              f"Tests: *{md_text(PAIRED)}*: {legend['paired']} *{md_text(UNPAIRED)}*: {legend['unpaired']}", "",
              f"{MISSING}: {legend['missing']}"]
    unpaired = [r for r in board.rows if r.test == "unpaired"]
    if unpaired:
        lines += ["", "Rows tested unpaired:", ""]
        lines += [f"- {md_text(r.target)}: {md_text(r.detail, 600)}" for r in unpaired]
    missing = []
    for i, col in enumerate(cols):
        by_why: dict[str, list[str]] = {}
        for row in board.rows:
            cell = row.cells[i]
            if cell.score is None and row.level == "probe":
                by_why.setdefault(cell.missing or "no score", []).append(row.target)
        if by_why:
            parts = "; ".join(f"{md_text(why, 200)}: {', '.join(md_text(t) for t in targets)}"
                              for why, targets in by_why.items())
            missing.append(f"- {md_text(col.label)}: {parts}")
    if missing:
        lines += ["", "Probes without a score:", "", *missing]
    lines += ["", "Columns:", ""]
    for col in cols:
        r = col.entry.report
        where = f", from {md_text(col.entry.source)}" if col.entry.source else ""
        ref = " (a reference audit shipped with trustslm)" if col.entry.reference else ""
        lines.append(f"- {md_text(col.label)}: model {md_code(r.model.spec)}, hash {md_code(r.model.hash[:16])}"
                     f"{where}{ref}; trustslm {md_code(r.trustslm_version)}, started {md_code(r.run.started_at)}")
    return "\n".join(lines) + "\n"


# -- HTML ----------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#1d232a;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #dde;padding:.25rem .6rem;text-align:left;font-size:.9rem}
th{background:#f3f5f8}.muted{color:#667}code{background:#f3f5f8;padding:0 .2rem}
th a{color:inherit}th.sorted-by{background:#e3ebf8}
tr.overall th,tr.overall td{border-top:2px solid #99a}tr.overall th{font-weight:700}
tr.dimension th{font-weight:600}tr.probe th{font-weight:400;padding-left:1.6rem}
td.score{white-space:nowrap;font-variant-numeric:tabular-nums}td.score a{color:inherit;text-decoration:none}
td.score a:hover{text-decoration:underline}
td.best{background:#e4f4e8;font-weight:700}td.best .star{color:#11702f}
td.missing{color:#889;text-align:center}td.test{font-size:.8rem;color:#556}
.board{display:none}.board:target{display:block}.board.default{display:block}
.board:target~.board.default{display:none}
"""


def _cell_html(cell: Cell, marked: bool) -> str:
    if cell.score is None:
        dash = f'<a href="{escape(cell.href)}">{MISSING}</a>' if cell.href else MISSING
        return f'<td class="missing" title="{escape(cell.missing or "no score")}">{dash}</td>'
    text = escape(cell.text)
    if marked:
        text = f'<span class="star">{STAR}</span> {text}'
    if cell.href:
        text = f'<a href="{escape(cell.href)}">{text}</a>'
    return f'<td class="score{" best" if marked else ""}">{text}</td>'


def _table_html(board: Leaderboard, column: int | None) -> str:
    head = [f'<th><a href="#{DEFAULT_ANCHOR}">target</a></th>']
    for i, col in enumerate(board.columns):
        r = col.entry.report
        title = f"model {r.model.spec}, hash {r.model.hash[:16]}" + (f", from {col.entry.source}" if col.entry.source else "")
        arrow = " ▼" if i == column else ""
        head.append(f'<th class="col{" sorted-by" if i == column else ""}" title="{escape(title)}">'
                    f'<a href="#{escape(col.anchor)}">{escape(col.label)}</a>{arrow}</th>')
    head.append("<th>test</th>")
    body = []
    for row in board.sorted_rows(column):
        cells = "".join(_cell_html(c, row.marked == i) for i, c in enumerate(row.cells))
        body.append(f'<tr class="{row.level}" data-target="{escape(row.target)}"><th scope="row">{escape(row.target)}</th>'
                    f'{cells}<td class="test" title="{escape(row.detail)}">{escape(row.test_text)}</td></tr>')
    return f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _code(html: str) -> str:
    """Markdown code spans of an escaped text as ``<code>``."""
    return re.sub(r"`([^`<>]*)`", r"<code>\1</code>", html)


def render_leaderboard_html(board: Leaderboard) -> str:
    """The leaderboard as one self-contained page: a table per sort order switched by CSS
    ``:target`` (no script), a legend, the rows tested unpaired with why, and the columns."""
    sections = []
    for i, col in enumerate(board.columns):
        sections.append(f'<section class="board" id="{escape(col.anchor)}" data-sort="{escape(col.anchor)}">'
                        f'<p class=muted>Sorted by <b>{escape(col.label)}</b>, highest first, within each level '
                        f'(<a href="#{DEFAULT_ANCHOR}">default order</a>).</p>{_table_html(board, i)}</section>')
    sections.append(f'<section class="board default" id="{DEFAULT_ANCHOR}" data-sort="{DEFAULT_ANCHOR}">'
                    f'<p class=muted>Default order: overall, then each dimension and its probes. A column\'s '
                    f'header sorts by it.</p>{_table_html(board, None)}</section>')
    legend = _legend(board)
    body = [f"<h1>Leaderboard</h1><p class=muted>{len(board.columns)} reports; scores 0-100 with their "
            f"{board.confidence_level * 100:g}% intervals. A score links to its report's page, at the probe's "
            "section and its samples, where the report folder has a <code>report.html</code>.</p>",
            "".join(sections),
            "<h2>Legend</h2><ul class=legend>",
            f'<li><span class="star">{STAR}</span> <b>marked</b> (green, bold): {escape(legend["mark"])}</li>',
            f"<li><b>{escape(PAIRED)}</b>: {_code(escape(legend['paired']))}</li>",
            f"<li><b>{escape(UNPAIRED)}</b>: {escape(legend['unpaired'])}</li>",
            f"<li>{MISSING}: {escape(legend['missing'])} Hover over it for why.</li>",
            "<li>The test column says which test decided each row; hover over it for the difference and its "
            "interval, or z.</li></ul>"]
    unpaired = [r for r in board.rows if r.test == "unpaired"]
    if unpaired:
        body.append("<h2>Rows tested unpaired</h2><ul>")
        body += [f"<li><code>{escape(r.target)}</code>: {escape(r.detail)}</li>" for r in unpaired]
        body.append("</ul>")
    body.append("<h2>Reports</h2><table><tr><th>column</th><th>model</th><th>hash</th><th>from</th>"
                "<th>trustslm</th><th>started</th></tr>")
    for col in board.columns:
        r, e = col.entry.report, col.entry
        where = escape(e.source or "")
        if e.href:
            where = f'<a href="{escape(e.href)}">{where or "report"}</a>'
        if e.reference:
            where += " (reference audit)"
        body.append(f"<tr><td>{escape(col.label)}</td><td><code>{escape(r.model.spec)}</code></td>"
                    f"<td><code>{escape(r.model.hash[:16])}</code></td><td>{where}</td>"
                    f"<td>{escape(r.trustslm_version)}</td><td>{escape(r.run.started_at)}</td></tr>")
    body.append("</table>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Leaderboard</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
