"""``trustslm leaderboard``: several reports in one table and one page, the best of a row marked only
where it is significantly better than the runner-up (paired where the reports share their units,
unpaired from the two intervals where they don't), a page sortable without scripts, and one-line
errors for bad input. The reports are real mock audits: the default mock against one whose script
always prefers the stereotypical sentence of a pair."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, chromium, run_chromium, run_cli

import trustslm
from trustslm.core.errors import EXIT_BAD_INPUT, BadInputError
from trustslm.core.resources import datasets_dir
from trustslm.core.types import DIMENSIONS, TrustReport
from trustslm.models.mock import ScriptedModel
from trustslm.report import standing
from trustslm.report.files import load_report_dir, write_outputs
from trustslm.report.format import score_text
from trustslm.report.leaderboard import (
    DEFAULT_ANCHOR,
    PAIRED,
    UNPAIRED,
    Cell,
    Entry,
    build_leaderboard,
    render_leaderboard_html,
    render_leaderboard_markdown,
    unpaired_z,
)

PROBES = ["fairness.stereotype_pairs", "truthfulness.truthfulqa_mc", "truthfulness.calibration"]
LIMIT = 40


def _biased_script() -> dict:
    """A mock that finds every stereotypical sentence far more likely than its counterpart."""
    table = {}
    for line in (datasets_dir() / "stereotype_pairs.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            pair = json.loads(line)
            table[pair["sent_more"]] = -1.0
            table[pair["sent_less"]] = -50.0
    return {"name": "biased-mock", "loglikelihood": table}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Report folders: ``fair`` (the default mock), ``fair-copy`` (the same report again),
    ``biased``, ``fair-no-units`` (``fair`` without its unit tables) and ``evil`` (``fair`` with a
    model name holding HTML)."""
    cache, root = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("reports")
    args = dict(probes=PROBES, limit=LIMIT, bootstrap_resamples=100, cache_dir=cache, progress=False)
    fair = trustslm.audit("mock", **args)
    biased = trustslm.audit(ScriptedModel(_biased_script()), **args)
    write_outputs(fair, root / "fair")
    write_outputs(fair, root / "fair-copy")
    write_outputs(biased, root / "biased")
    shutil.copytree(root / "fair", root / "fair-no-units")
    (root / "fair-no-units" / "units.jsonl").unlink()
    evil = fair.model_copy(update={"model": fair.model.model_copy(update={"name": "<b>evil</b> | x"})})
    write_outputs(evil, root / "evil")
    return root


def _entries(root: Path, *names: str) -> list[Entry]:
    return [Entry(load_report_dir(root / n), source=n) for n in names]


def _score(report: TrustReport, target: str) -> tuple[float | None, float | None, float | None]:
    if target == "overall":
        o = report.overall
        return o.score, o.ci_low, o.ci_high
    if target in DIMENSIONS:
        d = report.dimensions[target]
        return d.score, d.ci_low, d.ci_high
    s = report.result(target).score
    return (s.score, s.ci_low, s.ci_high) if s else (None, None, None)


# -- the table ------------------------------------------------------------------------------------

def test_the_cells_are_the_reports_scores(root):
    entries = _entries(root, "fair", "biased")
    board = build_leaderboard(entries)
    assert [c.label for c in board.columns] == ["mock", "biased-mock"]
    assert [r.target for r in board.rows] == [
        "overall", "robustness", "privacy", "fairness", "fairness.stereotype_pairs", "toxicity", "truthfulness",
        *[r.probe_id for r in entries[0].report.results if r.dimension == "truthfulness"]]
    md = render_leaderboard_markdown(board)
    for row in board.rows:
        for entry, cell in zip(entries, row.cells):
            assert (cell.score, cell.ci_low, cell.ci_high) == _score(entry.report, row.target), row.target
            if cell.score is not None:
                assert cell.text == score_text(*_score(entry.report, row.target))
                assert cell.text in md
    assert board.row("robustness").cells[0].missing == "not measured"
    # the clearly biased model's fairness score is far below the default mock's
    assert board.row("fairness.stereotype_pairs").cells[1].score == 0.0
    assert board.row("fairness.stereotype_pairs").cells[0].score > 50


def test_the_clearly_better_report_is_marked_by_the_paired_test(root):
    board = build_leaderboard(_entries(root, "biased", "fair"))
    for target in ("fairness.stereotype_pairs", "fairness", "overall"):
        row = board.row(target)
        assert (row.best, row.runner_up, row.marked) == (1, 0, 1), target
        assert row.test == "paired" and row.test_text == PAIRED, (target, row.detail)
        assert "biased-mock" in row.detail and PAIRED in row.detail
    # the biased script changes nothing else: those rows tie and nothing is marked
    for target in ("truthfulness", "truthfulness.truthfulqa_mc", "truthfulness.calibration"):
        row = board.row(target)
        assert row.cells[0].score == row.cells[1].score
        assert row.marked is None and row.test is None and row.test_text == "not significant: a tie"
    assert board.row("toxicity").test_text == "no score"

    md = render_leaderboard_markdown(board)
    line = next(ln for ln in md.splitlines() if "`fairness.stereotype_pairs`" in ln)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == board.row("fairness.stereotype_pairs").cells[0].text  # not bold
    assert cells[2] == f"**{board.row('fairness.stereotype_pairs').cells[1].text}**"
    assert cells[3] == PAIRED
    assert "**" not in next(ln for ln in md.splitlines() if "`truthfulness.truthfulqa_mc`" in ln)

    html = render_leaderboard_html(board)
    default = html[html.index(f'id="{DEFAULT_ANCHOR}"'):]
    row_html = re.search(r'<tr class="probe" data-target="fairness.stereotype_pairs">.*?</tr>', default).group(0)
    assert row_html.count('class="score best"') == 1 and row_html.count("★") == 1
    biased = board.row("fairness.stereotype_pairs").cells[0].text
    assert row_html.index("★") > row_html.index(biased)  # the mark is in the second column
    assert '<td class="test" title="' in row_html and f">{PAIRED}</td>" in row_html


def test_identical_reports_tie_and_their_names_are_told_apart(root):
    board = build_leaderboard(_entries(root, "fair", "fair-copy"))
    assert [c.label for c in board.columns] == ["mock (fair)", "mock (fair-copy)"]
    assert len({c.anchor for c in board.columns}) == 2
    scored = [r for r in board.rows if r.cells[0].score is not None]
    assert scored and all(r.marked is None and r.test is None for r in scored)
    assert "**" not in render_leaderboard_markdown(board).split("**Bold**")[0]
    assert "★" not in render_leaderboard_html(board).split("<h2>Legend</h2>")[0]


def test_reports_without_shared_units_fall_back_to_the_unpaired_test_and_say_so(root):
    board = build_leaderboard(_entries(root, "biased", "fair-no-units"))
    row = board.row("fairness.stereotype_pairs")
    assert row.marked == 1 and row.test == "unpaired" and row.test_text == UNPAIRED
    assert "no unit table" in row.detail and "z = " in row.detail
    a, b = row.cells[1], row.cells[0]
    se = np.hypot((a.ci_high - a.ci_low) / 3.92, (b.ci_high - b.ci_low) / 3.92)
    assert f"z = {(a.score - b.score) / se:.2f}" in row.detail
    md = render_leaderboard_markdown(board)
    line = next(ln for ln in md.splitlines() if "`fairness.stereotype_pairs`" in ln)
    assert line.rstrip(" |").endswith(UNPAIRED) and "**" in line
    assert "Rows tested unpaired:" in md and "no unit table" in md.split("Rows tested unpaired:")[1]
    assert "<h2>Rows tested unpaired</h2>" in render_leaderboard_html(board)


def test_the_unpaired_test_reads_standard_errors_from_the_intervals():
    # se = width / 3.92: 10 / 3.92 each, so z = 5 / (sqrt(2) * 10 / 3.92) = 1.386: not significant
    assert unpaired_z(Cell(60.0, 55.0, 65.0), Cell(55.0, 50.0, 60.0)) == pytest.approx(5 / (2 ** 0.5 * 10 / 3.92))
    assert unpaired_z(Cell(80.0, 75.0, 85.0), Cell(60.0, 55.0, 65.0)) > 1.96
    assert unpaired_z(Cell(50.0, 50.0, 50.0), Cell(50.0, 50.0, 50.0)) == 0.0
    assert unpaired_z(Cell(None, missing="not run"), Cell(50.0, 40.0, 60.0)) is None


def test_a_missing_probe_says_why(root):
    fair = load_report_dir(root / "fair")
    skipped = fair.model_copy(update={"results": [
        r.model_copy(update={"status": "skipped", "reason": "the model can't do <that>", "score": None})
        if r.probe_id == "truthfulness.calibration" else r for r in fair.results if r.probe_id != "truthfulness.truthfulqa_mc"]})
    board = build_leaderboard([Entry(fair, source="fair"), Entry(skipped, source="partial", href="../p/report.html")])
    assert board.row("truthfulness.truthfulqa_mc").cells[1].missing == "not run"
    assert board.row("truthfulness.calibration").cells[1].missing == "skipped: the model can't do <that>"
    html = render_leaderboard_html(board)
    assert 'title="skipped: the model can&#x27;t do &lt;that&gt;"' in html and "<that>" not in html
    assert 'title="not run">—</td>' in html
    md = render_leaderboard_markdown(board)
    assert "not run: truthfulness.truthfulqa\\_mc" in md and "&lt;that&gt;" in md


# -- the page -------------------------------------------------------------------------------------

class _Page(HTMLParser):
    """Start tags with their attributes, and each pre-rendered table's rows: section id -> [(target,
    [cell texts])]."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[tuple[str, list[str]]]] = {}
        self.headers: dict[str, list[str]] = {}
        self._section: str | None = None
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self._section = a.get("id")
            self.tables[self._section] = []
            self.headers[self._section] = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and a.get("data-target") is not None and self._section:
            self.tables[self._section].append((a["data-target"], []))
        elif tag in ("td", "th") and self._section:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self._section:
            text = "".join(self._cell).strip()
            if self._in_head:
                self.headers[self._section].append(text)
            elif tag == "td" and self.tables[self._section]:
                self.tables[self._section][-1][1].append(text)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_the_page_has_no_scripts_escapes_names_and_links_each_score_to_its_report(root, tmp_path):
    out = tmp_path / "board"
    md_path, html_path = trustslm.leaderboard([root / "biased", root / "evil"], out=out)
    assert (md_path.name, html_path.name) == ("leaderboard.md", "leaderboard.html")
    html = html_path.read_text(encoding="utf-8")
    page = _parse(html)
    tags = page.tags
    assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "link", "img", "form")]
    for tag, attrs in tags:
        assert not any(k.startswith("on") for k in attrs), attrs
        for k, v in attrs.items():
            assert "://" not in (v or "") and not (v or "").lower().startswith(("javascript:", "data:")), (tag, attrs)
    style = html[html.index("<style>"): html.index("</style>")]
    assert not re.search(r"://|url\(|@import", style)
    # the model name is shown as text, never as markup, in both files
    assert "<b>evil</b>" not in html and "&lt;b&gt;evil&lt;/b&gt; | x" in html
    md = md_path.read_text(encoding="utf-8")
    assert "<b>" not in md and "&lt;b&gt;evil&lt;/b&gt; \\| x" in md
    # sort anchors: every column header links to a pre-rendered table of that id, plus the default one
    ids = {a.get("id") for _, a in tags if a.get("id")}
    hrefs = [a["href"] for t, a in tags if t == "a"]
    sorts = [h for h in hrefs if h.startswith("#sort-")]
    assert set(sorts) == {f"#{s}" for s in page.tables} and DEFAULT_ANCHOR in page.tables
    assert {s[1:] for s in sorts} <= ids and len(page.tables) == 3
    # each score links to its report's page; probe scores to the probe's section, which holds its samples
    probe_links = {h for h in hrefs if "#fairness.stereotype_pairs" in h}
    assert probe_links == {f"../../{root.name}/{name}/report.html#fairness.stereotype_pairs" for name in ("biased", "evil")}
    for link in set(h for h in hrefs if not h.startswith("#")):
        file, _, anchor = link.partition("#")
        target = (out / file).resolve()
        assert target.is_file() and target.name == "report.html", link
        if anchor:
            assert f'id="{anchor}"' in target.read_text(encoding="utf-8")
            assert f'id="samples-{anchor}"' in target.read_text(encoding="utf-8")
    # the legend says what the marks mean, which tests and at what level
    legend = html[html.index("<h2>Legend</h2>"):]
    assert "★" in legend and PAIRED in legend and UNPAIRED in legend and "95% level" in legend


def test_a_report_without_its_page_gets_no_link(root, tmp_path):
    shutil.copytree(root / "fair", tmp_path / "bare")
    (tmp_path / "bare" / "report.html").unlink()
    _, html_path = trustslm.leaderboard([root / "biased", tmp_path / "bare" / "report.json"], out=tmp_path / "out")
    hrefs = [a["href"] for t, a in _parse(html_path.read_text(encoding="utf-8")).tags if t == "a"]
    assert not [h for h in hrefs if "bare" in h] and [h for h in hrefs if "biased/report.html" in h]


def _expected_order(reports: list[TrustReport], column: int | None) -> list[str]:
    """The rows' order, computed from the reports: by default overall, the dimensions in report
    order each followed by its probes; sorted by a column, each level by that report's score, highest
    first, rows without a score last."""
    probes: dict[str, str] = {}
    for rep in reports:
        for r in rep.results:
            probes.setdefault(r.probe_id, r.dimension)

    def ordered(targets: list[str]) -> list[str]:
        if column is None:
            return targets
        scores = {t: _score(reports[column], t)[0] for t in targets}
        return sorted(targets, key=lambda t: (scores[t] is None, -(scores[t] or 0)))

    out = ["overall"]
    for dim in ordered(list(DIMENSIONS)):
        out += [dim, *ordered([p for p, d in probes.items() if d == dim])]
    return out


def _pixels(png: Path) -> np.ndarray | bytes:
    """The screenshot's pixels (with Pillow), else its bytes (Chromium encodes the same pixels alike)."""
    try:
        from PIL import Image
    except ImportError:
        return png.read_bytes()
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"))


def _same(a: np.ndarray | bytes, b: np.ndarray | bytes) -> bool:
    return a == b if isinstance(a, bytes) else bool(np.array_equal(a, b))


def test_chromium_shows_every_column_and_each_sort_order(root, tmp_path):
    browser = chromium()
    names = ["fair", "biased", "fair-no-units"]
    reports = [load_report_dir(root / n) for n in names]
    _, page = trustslm.leaderboard([root / n for n in names], out=tmp_path / "board")
    html = page.read_text(encoding="utf-8")
    board = build_leaderboard(_entries(root, *names))
    labels = [c.label for c in board.columns]
    assert labels == ["mock (fair)", "biased-mock", "mock (fair-no-units)"]
    orders = {None: _expected_order(reports, None), **{j: _expected_order(reports, j) for j in range(3)}}
    assert len({tuple(o) for o in orders.values()}) == 3  # fair and fair-no-units sort alike; the others differ

    for j, col in [(None, None), *enumerate(board.columns)]:
        anchor = DEFAULT_ANCHOR if col is None else col.anchor
        dom = run_chromium(browser, tmp_path, "--dump-dom", f"{page.as_uri()}#{anchor}").stdout
        assert "<script" not in dom
        parsed = _parse(dom)
        assert set(parsed.tables) == {DEFAULT_ANCHOR, *(c.anchor for c in board.columns)}
        for section, rows in parsed.tables.items():
            assert parsed.headers[section][1:4] == [lbl + (" ▼" if section == c.anchor else "")
                                                    for lbl, c in zip(labels, board.columns)]
        rows = parsed.tables[anchor]
        assert [t for t, _ in rows] == orders[j], anchor
        for target, cells in rows:  # the same cells whatever the order
            assert [c.replace("★", "").strip() for c in cells[:3]] == [c.text for c in board.row(target).cells]
        if j is not None:
            scored = [cells[j] for t, cells in rows if t in DIMENSIONS and cells[j] != "—"]
            values = [float(s.strip("★ ").split(" ")[0]) for s in scored]
            assert values == sorted(values, reverse=True)

    # only the targeted table is shown: the page at #sort-X looks exactly like a page holding that table alone
    def shot(name: str, text: str, fragment: str = "") -> np.ndarray | bytes:
        file, png = tmp_path / f"{name}.html", tmp_path / f"{name}.png"
        file.write_text(text, encoding="utf-8")
        run_chromium(browser, tmp_path, "--window-size=1200,2000", f"--screenshot={png}", file.as_uri() + fragment)
        return _pixels(png)

    def alone(keep: str) -> str:
        kept = re.sub(r'<section class="board[^"]*" id="(?!' + re.escape(keep) + r'")[^"]*".*?</section>', "", html)
        return kept.replace('<section class="board"', '<section class="board default"')

    target = board.columns[1].anchor
    at_target = shot("at-target", html, f"#{target}")
    assert _same(at_target, shot("alone-target", alone(target)))
    at_default = shot("at-default", html)
    assert _same(at_default, shot("alone-default", alone(DEFAULT_ANCHOR)))
    assert not _same(at_target, at_default)  # the control: the two orders look different


# -- references and bad input ---------------------------------------------------------------------

def test_with_references_adds_them_as_columns(root, tmp_path, monkeypatch):
    ref = standing.Reference(name="ref-biased", meta={"model": "Ref <Model>"}, path=root / "biased",
                             report=TrustReport.load(root / "biased" / "report.json"))
    monkeypatch.setattr(standing, "load_references", lambda folder=None: [ref])
    md, _ = trustslm.leaderboard([root / "fair"], out=tmp_path / "out", with_references=True)
    text = md.read_text(encoding="utf-8")
    assert "| target | mock | Ref &lt;Model&gt; (reference) | test |" in text
    assert "a reference audit shipped with trustslm" in text
    # the reference's unit tables were read: its rows are tested paired
    assert re.search(r"\| ↳ `fairness.stereotype_pairs` \| \*\*.*\*\* \| .* \| paired bootstrap \|", text)

    monkeypatch.setattr(standing, "load_references", lambda folder=None: [])
    with pytest.raises(BadInputError) as info:
        trustslm.leaderboard([root / "fair"], out=tmp_path / "out2", with_references=True)
    assert "at least 2 reports" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("bad", ["missing", "not-json", "folder-without-report"])
def test_a_path_that_is_not_a_report_is_one_line_error(root, tmp_path, bad):
    path = tmp_path / bad
    if bad == "not-json":
        path.write_text("{nope", encoding="utf-8")
    elif bad == "folder-without-report":
        path.mkdir()
    with pytest.raises(BadInputError) as info:
        trustslm.leaderboard([root / "fair", path], out=tmp_path / "out")
    assert "\n" not in str(info.value) and bad in str(info.value)
    with pytest.raises(BadInputError, match="at least 2 reports"):
        trustslm.leaderboard([root / "fair"], out=tmp_path / "out")
    (tmp_path / "blocked" / "leaderboard.html").mkdir(parents=True)
    with pytest.raises(BadInputError, match="it is a folder"):
        trustslm.leaderboard([root / "fair", root / "biased"], out=tmp_path / "blocked")


def test_cli_writes_both_files_and_refuses_a_bad_path_in_one_line(root, tmp_path):
    out = tmp_path / "lb"
    proc = run_cli("leaderboard", str(root / "fair"), str(root / "biased" / "report.json"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "leaderboard.md").is_file() and (out / "leaderboard.html").is_file()
    assert "leaderboard.md" in proc.stdout and "leaderboard.html" in proc.stdout
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    bad = run_cli("leaderboard", str(root / "fair"), str(tmp_path / "nope"), "--out", str(tmp_path / "lb2"))
    assert_one_line_error(bad, EXIT_BAD_INPUT, contains="nope")
    assert not (tmp_path / "lb2").exists()
