"""A variants run (:class:`~trustslm.workflows.variants.VariantsRun`) as Markdown, as one
self-contained HTML page (inline SVG, no scripts: each dimension's score against bits per weight
with intervals, the reference at the right, and the flip rates), and its gate as one JUnit XML
document and one SARIF log holding every variant. Every string is escaped."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path
from typing import Any

from trustslm.core.types import DIMENSIONS
from trustslm.report.format import fmt, md_text
from trustslm.report.html import CSS

_ROWS = (*DIMENSIONS, "overall")
#: The report page's style, and the classes this page adds.
_CSS = CSS + ".worse{color:#b3261e;font-weight:600}.better{color:#11702f;font-weight:600}" \
             ".panels{display:flex;flex-wrap:wrap;gap:1rem}"


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _ci_pct(ci: Any) -> str:
    if not ci or ci[0] is None or (isinstance(ci[0], float) and math.isnan(ci[0])):
        return ""
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _bpw(v: Any) -> float | None:
    return v.quantisation.bits_per_weight if v.quantisation else None


def _score(v: Any, target: str) -> Any:
    return next((s for s in v.scores if s.target == target), None)


def _change_text(s: Any) -> str:
    if s is None or s.difference is None:
        return "–" if s is None or s.reason is None else f"not compared ({s.reason})"
    ci = f" [{s.ci_low:+.1f}, {s.ci_high:+.1f}]" if s.ci_low is not None and s.ci_high is not None else ""
    return f"{s.difference:+.1f}{ci} {s.verdict}"


def _types_text(q: Any) -> str:
    if q is None:
        return ""
    parts = []
    for cls, kinds in q.tensor_types.items():
        parts.append(f"{cls} " + "/".join(f"{k}" + (f"x{n}" if len(kinds) > 1 else "") for k, n in kinds.items()))
    return "; ".join(parts)


def render_variants_markdown(run: Any) -> str:
    ref = run.reference
    out = [f"# Compressed variants of {md_text(run.source.get('spec'))}", "",
           f"Reference: {md_text(ref.how)} ({_size(ref)}). Backend: {run.backend}. Seed {run.seed}"
           + (f", limit {run.limit}" if run.limit else "") + (", quick profile" if run.quick else "")
           + (f", suite {md_text(run.suite)}" if run.suite else "") + ". Every variant ran the same probes, data, "
           "options and seed as the reference; changes are paired-bootstrap 95% intervals of variant minus reference.", ""]
    for note in run.notes:
        out.append(f"- {md_text(note)}")
    if run.notes:
        out.append("")
    header = "| variant | bits/weight | size | " + " | ".join(_ROWS) + " | tokens/s |"
    out += ["## Scores", "", header, "|" + "---|" * (len(_ROWS) + 4)]
    ref_row = [f"**{REF_LABEL}** ({md_text(ref.quantisation.file_type if ref.quantisation else '')})",
               fmt(_bpw(ref), 2), _size(ref)]
    for t in _ROWS:
        s = _score(ref, t)
        ref_row.append("–" if s is None or s.variant is None else f"{s.variant:.1f} [{s.variant_ci[0]:.1f}, {s.variant_ci[1]:.1f}]")
    out.append("| " + " | ".join([*ref_row, fmt(ref.tokens_per_s, 1)]) + " |")
    for v in run.variants:
        if v.status != "ok":
            out.append(f"| {md_text(v.name)} | {fmt(_bpw(v), 2)} | {_size(v)} | failed: {md_text(v.reason)} |")
            continue
        cells = [md_text(v.name), fmt(_bpw(v), 2), _size(v)]
        for t in _ROWS:
            s = _score(v, t)
            cells.append("–" if s is None or s.variant is None else f"{s.variant:.1f} ({_change_text(s)})")
        out.append("| " + " | ".join([*cells, fmt(v.tokens_per_s, 1)]) + " |")
    out += ["", "## Flipped outcomes", "",
            "Per dimension, the primary binary outcome of each probe pooled: the share of items whose outcome "
            "differs from the reference's, and the share that moved towards harm (exact 95% intervals).", "",
            "| variant | " + " | ".join(DIMENSIONS) + " | probes whose outputs changed |", "|" + "---|" * (len(DIMENSIONS) + 2)]
    for v in run.variants:
        if v.status != "ok":
            continue
        by_dim = {d.dimension: d for d in v.dimension_flips}
        cells = []
        for dim in DIMENSIONS:
            d = by_dim.get(dim)
            cells.append("–" if d is None or d.flip_rate is None else
                         f"{_pct(d.flip_rate)} {_ci_pct(d.flip_rate_ci)}, harm {_pct(d.harmful_rate)}")
        changed = f"{len(v.flagged_probes)} of {sum(o.compared for o in v.outcomes)}"
        out.append(f"| {md_text(v.name)} | " + " | ".join(cells) + f" | {changed} |")
    out += ["", "## Per probe", ""]
    for v in run.variants:
        if v.status != "ok":
            continue
        out += [f"### {md_text(v.name)}", "", md_text(v.how, None), "",
                f"Quantisation: {md_text(v.quantisation.file_type if v.quantisation else '')}, "
                f"{fmt(_bpw(v), 3)} bits per weight, {_size(v)}; tensor types: {md_text(_types_text(v.quantisation), None)}.", "",
                "| probe | outcome | units | flips | towards harm | away | McNemar p | changed: units, samples |",
                "|---|---|---|---|---|---|---|---|"]
        for o in v.outcomes:
            if not o.compared:
                out.append(f"| {o.probe_id} | not compared: {md_text(o.reason)} | | | | | | |")
                continue
            if not o.columns:
                out.append(f"| {o.probe_id} | (no binary outcome) | {o.units} | | | | | {_changed(o)} |")
            for f in o.columns:
                out.append(f"| {o.probe_id} | {f.column}{' (primary)' if f.primary else ''} | {f.units} | {f.flips} "
                           f"({_pct(f.flip_rate)} {_ci_pct(f.flip_rate_ci)}) | {f.harmful} | {f.helpful} | "
                           f"{f.mcnemar_p:.3g} | {_changed(o)} |")
        changes = getattr(v, "metric_changes", [])
        if changes:
            out += ["", "Scored metrics, variant minus reference (paired bootstrap, 95%):", "",
                    "| metric | reference | variant | change | verdict |", "|---|---|---|---|---|"]
            out += [f"| {md_text(c.target)} | {fmt(c.reference)} | {fmt(c.variant)} | {c.difference:+.4f} "
                    f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {c.verdict} |" for c in changes
                    if c.difference is not None and c.ci_high is not None]
        harmful = [(o.probe_id, f.column, it) for o in v.outcomes for f in o.columns for it in f.harmful_items]
        if harmful:
            out += ["", "Items that flipped towards harm (the first of each column):", ""]
            for pid, col, it in harmful[:100]:
                label = ", ".join(f"{k}={md_text(val, 60)}" for k, val in it.items() if k != "index")
                out.append(f"- {pid} `{col}` unit {it['index']}: {label}")
        if v.gate is not None:
            out += ["", f"Gate: **{'passed' if v.gate.passed else 'FAILED'}**"]
            out += [f"- {md_text(r.rule)}: {'pass' if r.passed else 'FAIL'}: {md_text(r.reason)}" for r in v.gate.rules]
        out.append("")
    if run.gate_passed is not None:
        out += [f"Gate over all variants: **{'passed' if run.gate_passed else 'FAILED'}**", ""]
    return "\n".join(out) + "\n"


REF_LABEL = "reference"


def _changed(o: Any) -> str:
    return f"{o.changed_units} of {o.units}, {o.changed_samples} of {o.samples}"


def _size(v: Any) -> str:
    if not v.quantisation:
        return "–"
    return f"{v.quantisation.size_bytes / 1e6:.1f} MB"


def _x_scale(bpws: list[float], left: float, width: float):
    lo = math.log2(max(1.0, min(bpws) * 0.85))
    hi = math.log2(max(bpws) * 1.15)
    span = max(hi - lo, 1e-6)
    return (lambda b: left + width * (math.log2(b) - lo) / span), lo, hi


def _panel(run: Any, target: str) -> str:
    w, h, left, top, bottom = 340, 220, 40, 22, 34
    pw, ph = w - left - 50, h - top - bottom  # room on the right for the reference's label
    pts = [(v, _bpw(v), _score(v, target)) for v in [run.reference, *run.variants] if v.status == "ok"]
    pts = [(v, b, s) for v, b, s in pts if b is not None and s is not None and s.variant is not None]
    parts = [f'<svg role="img" aria-label="{escape(target)} score against bits per weight" width="{w}" height="{h}" '
             f'xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="sans-serif">',
             f'<text x="{left}" y="14" font-weight="600">{escape(target)}</text>']
    if not pts:
        parts.append(f'<text x="{left}" y="60" fill="#889">not measured</text></svg>')
        return "".join(parts)
    xs, lo2, hi2 = _x_scale([b for _, b, _ in pts], left, pw)

    def ys(score: float) -> float:
        return top + ph * (1 - score / 100)

    for tick in range(0, 101, 25):
        parts.append(f'<line x1="{left}" y1="{ys(tick):.1f}" x2="{left + pw}" y2="{ys(tick):.1f}" stroke="#eceef1"/>'
                     f'<text x="{left - 4}" y="{ys(tick) + 4:.1f}" text-anchor="end" fill="#667">{tick}</text>')
    for b in (2, 3, 4, 5, 6, 8, 12, 16, 32):
        if lo2 <= math.log2(b) <= hi2:
            parts.append(f'<text x="{xs(b):.1f}" y="{h - 18}" text-anchor="middle" fill="#667">{b}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{h - 4}" text-anchor="middle" fill="#667">bits per weight</text>')
    ref_s = _score(run.reference, target)
    if ref_s is not None and ref_s.variant is not None:
        lo, hi = ref_s.variant_ci
        if lo is not None and hi is not None:
            parts.append(f'<rect x="{left}" y="{ys(hi):.1f}" width="{pw}" height="{max(ys(lo) - ys(hi), 0.5):.1f}" '
                         f'fill="#2f6fdb" opacity="0.08"/>')
        parts.append(f'<line x1="{left}" y1="{ys(ref_s.variant):.1f}" x2="{left + pw}" y2="{ys(ref_s.variant):.1f}" '
                     f'stroke="#2f6fdb" stroke-dasharray="4 3"/>')
    for v, b, s in pts:
        x, y = xs(b), ys(s.variant)
        lo, hi = s.variant_ci
        is_ref = v is run.reference
        colour = "#2f6fdb" if is_ref else ("#b3261e" if s.verdict == "worse" else "#1d232a")
        if lo is not None and hi is not None:
            parts.append(f'<line x1="{x:.1f}" y1="{ys(hi):.1f}" x2="{x:.1f}" y2="{ys(lo):.1f}" stroke="{colour}"/>')
        shape = (f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">' if "pruned" in v.name
                 else f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">')
        close = "</rect>" if "pruned" in v.name else "</circle>"
        detail = "" if is_ref else f"; change {_change_text(s)}"
        parts.append(f'{shape}<title>{escape(v.name)}: {s.variant:.1f}, {b:.2f} bits per weight{escape(detail)}</title>{close}')
        parts.append(f'<text x="{x + 5:.1f}" y="{y - 5:.1f}" fill="#445" font-size="9">{escape(v.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _flip_chart(run: Any) -> str:
    rows = [(v, d) for v in run.variants if v.status == "ok" for d in v.dimension_flips if d.flip_rate is not None]
    if not rows:
        return "<p class=muted>No binary outcomes to compare.</p>"
    left, width, row_h = 230, 460, 20
    top = max((d.flip_rate_ci[1] for _, d in rows if d.flip_rate_ci), default=0.0)
    scale = max(0.05, min(1.0, math.ceil(top * 20) / 20))
    height = row_h * len(rows) + 30
    parts = [f'<svg role="img" aria-label="flip rates" width="{left + width + 150}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="sans-serif">']
    for i in range(6):
        t = scale * i / 5
        x = left + width * i / 5
        parts.append(f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 20}" stroke="#eceef1"/>'
                     f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="#667">{100 * t:.0f}%</text>')
    for i, (v, d) in enumerate(rows):
        y = 6 + i * row_h
        parts.append(f'<text x="{left - 6}" y="{y + 11}" text-anchor="end">{escape(v.name)} · {escape(d.dimension)}</text>')
        wf = width * d.flip_rate / scale
        wh = width * (d.harmful_rate or 0) / scale
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{wf:.1f}" height="12" fill="#9aa5b1"><title>flips {_pct(d.flip_rate)} '
                     f'{_ci_pct(d.flip_rate_ci)}</title></rect>'
                     f'<rect x="{left}" y="{y + 2}" width="{wh:.1f}" height="12" fill="#b3261e" opacity="0.85"><title>towards harm '
                     f'{_pct(d.harmful_rate)} {_ci_pct(d.harmful_rate_ci)}</title></rect>')
        if d.flip_rate_ci:
            x1, x2 = left + width * d.flip_rate_ci[0] / scale, left + width * min(d.flip_rate_ci[1], scale) / scale
            parts.append(f'<line x1="{x1:.1f}" y1="{y + 8}" x2="{x2:.1f}" y2="{y + 8}" stroke="#111"/>')
        parts.append(f'<text x="{left + width + 6}" y="{y + 11}">{_pct(d.flip_rate)} ({d.flips}/{d.units}), harm {_pct(d.harmful_rate)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_variants_html(run: Any) -> str:
    ref = run.reference
    title = f"Compressed variants of {run.source.get('spec')}"
    body = [f"<h1>{escape(title)}</h1>",
            f"<p class=muted>reference: {escape(ref.how)} · backend {escape(run.backend)} · seed {run.seed}"
            f"{f' · limit {run.limit}' if run.limit else ''}{' · quick profile' if run.quick else ''}</p>"]
    body += [f"<p class=muted>{escape(n)}</p>" for n in run.notes]
    body.append("<h2>Scores against bits per weight</h2><p class=muted>Each point is a variant's score with its 95% "
                "interval; the dashed line and band are the reference's score and interval; red: significantly worse "
                "than the reference (paired bootstrap); squares: pruned variants, at the bits per weight they are stored "
                "in.</p><div class=panels>")
    body += [_panel(run, t) for t in _ROWS]
    body.append("</div><h2>Flip rates</h2><p class=muted>Per variant and dimension: the share of items whose primary "
                "binary outcome differs from the reference's (grey, with its exact 95% interval) and the share that "
                "moved towards harm (red).</p>")
    body.append(_flip_chart(run))
    body.append("<h2>Variants</h2><table><tr><th>variant</th><th>how</th><th>bits/weight</th><th>size</th><th>tokens/s</th>"
                "<th>overall change</th><th>probes whose outputs changed</th><th>gate</th></tr>")
    for v in [ref, *run.variants]:
        s = _score(v, "overall")
        gate = "" if v.gate is None else ("passed" if v.gate.passed else '<span class=worse>FAILED</span>')
        status = "" if v.status == "ok" else f" <span class=worse>failed: {escape(str(v.reason))}</span>"
        changed = "" if v is ref else f"{len(v.flagged_probes)} of {sum(o.compared for o in v.outcomes)}"
        body.append(f"<tr><td>{escape(v.name)}{status}</td><td>{escape(v.how)}</td><td>{fmt(_bpw(v), 3)}</td>"
                    f"<td>{_size(v)}</td><td>{fmt(v.tokens_per_s, 1)}</td>"
                    f"<td>{'' if v is ref else escape(_change_text(s))}</td><td>{changed}</td><td>{gate}</td></tr>")
    body.append("</table>")
    for v in run.variants:
        if v.status != "ok":
            continue
        body.append(f"<h3>{escape(v.name)}</h3><p class=muted>tensor types: {escape(_types_text(v.quantisation))}</p>"
                    "<table><tr><th>probe</th><th>outcome</th><th>units</th><th>flips</th><th>towards harm</th>"
                    "<th>McNemar p</th><th>changed: units, samples</th></tr>")
        for o in v.outcomes:
            if not o.compared:
                body.append(f"<tr><td>{escape(o.probe_id)}</td><td colspan=6>not compared: {escape(str(o.reason))}</td></tr>")
                continue
            for f in o.columns or [None]:
                if f is None:
                    body.append(f"<tr><td>{escape(o.probe_id)}</td><td>(no binary outcome)</td><td>{o.units}</td><td></td>"
                                f"<td></td><td></td><td>{_changed(o)}</td></tr>")
                    continue
                body.append(f"<tr><td>{escape(o.probe_id)}</td><td>{escape(f.column)}{' (primary)' if f.primary else ''}</td>"
                            f"<td>{f.units}</td><td>{f.flips} ({_pct(f.flip_rate)} {_ci_pct(f.flip_rate_ci)})</td>"
                            f"<td>{f.harmful}</td><td>{f.mcnemar_p:.3g}</td><td>{_changed(o)}</td></tr>")
        body.append("</table>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def render_variants_junit(run: Any, reports_dir: Path) -> str:
    """One JUnit document with one test suite per variant (each variant's own gate file, renamed)."""
    root = ET.Element("testsuites", {"name": "trustslm variants"})
    totals = {"tests": 0, "failures": 0}
    for v in run.variants:
        path = reports_dir / v.name / "gate.junit.xml"
        if v.gate is None or not path.is_file():
            continue
        doc = ET.fromstring(path.read_text(encoding="utf-8"))  # written by this run (report.junit)
        for suite in doc.iter("testsuite"):
            suite.set("name", f"trustslm gate: {v.name}")
            totals["tests"] += int(suite.get("tests", "0"))
            totals["failures"] += int(suite.get("failures", "0"))
            root.append(suite)
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_variants_sarif(run: Any, reports_dir: Path) -> str:
    """One SARIF 2.1.0 log with one run per variant (each variant's own gate log)."""
    log: dict[str, Any] | None = None
    for v in run.variants:
        path = reports_dir / v.name / "gate.sarif"
        if v.gate is None or not path.is_file():
            continue
        one = json.loads(path.read_text(encoding="utf-8"))
        for r in one.get("runs", []):
            r.setdefault("properties", {})["variant"] = v.name
        if log is None:
            log = one
        else:
            log["runs"].extend(one.get("runs", []))
    return json.dumps(log or {}, indent=2, ensure_ascii=False) + "\n"
