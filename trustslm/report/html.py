"""The report as one self-contained HTML file: inline CSS and SVG, no scripts, no network.
Every string from the model, the data or the user is escaped."""

from __future__ import annotations

import json
from collections import defaultdict
from html import escape
from typing import Any

from trustslm.core.taxonomy import tag_titles
from trustslm.core.types import DIMENSIONS, TrustReport
from trustslm.report.format import (
    chance_text,
    chance_value,
    counter_metric_text,
    dataset_origin,
    detector_notes,
    direction,
    fmt,
    interval,
    markers_text,
    sequential_text,
    speed_text,
    stale_text,
)
from trustslm.report.standing import Marker, Standing, standing, standing_summary

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d232a;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #dde;padding:.25rem .6rem;text-align:left;font-size:.9rem}
th{background:#f3f5f8}.muted{color:#667}.pass{color:#11702f;font-weight:600}.fail{color:#b3261e;font-weight:600}
.skipped{color:#8a5a00}.error{color:#b3261e}code{background:#f3f5f8;padding:0 .2rem}
details.samples{margin:.5rem 0 1rem}details.samples summary{cursor:pointer;color:#2457b3}
details.samples td{font-size:.8rem;vertical-align:top;max-width:28rem;overflow-wrap:anywhere}
"""

#: Per-sample records shown for each probe; the rest are in ``samples.jsonl``.
MAX_SAMPLES_SHOWN = 50
#: Characters of a sample value shown in the table.
MAX_VALUE_CHARS = 200


def _marker_svg(markers: list[Marker], left: float, width: float, y: float) -> str:
    """A reference model's score as a downward triangle over the bar, its name in the tooltip."""
    out = []
    for m in markers:
        x = left + width * m.score / 100
        out.append(f'<path class="ref-marker" d="M{x:.1f} {y + 4:.1f} l-5 -7 h10 z" fill="#e07b00" stroke="#7a4300">'
                   f"<title>{escape(m.reference)}: {m.score:.1f}</title></path>")
    return "".join(out)


def _chance_svg(chance: float, left: float, width: float, y: float) -> str:
    x = left + width * chance / 100
    return (f'<line class="chance-marker" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + 22:.1f}" stroke="#b3261e" '
            f'stroke-width="2" stroke-dasharray="3,2"><title>chance: {chance:.1f}</title></line>')


def _probe_chart(score, markers: list[Marker], chance: float | None) -> str:
    """One probe's score bar with its interval, the reference models' markers and the chance level."""
    left, width = 10, 520
    parts = [f'<svg role="img" aria-label="probe score against references and chance" width="{left + width + 60}" '
             'height="34" xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="sans-serif">',
             f'<rect x="{left}" y="9" width="{width}" height="16" fill="#eef1f5"/>',
             f'<rect class="probe-score-bar" x="{left}" y="9" width="{width * score.score / 100:.1f}" height="16" '
             f'fill="#2f6fdb" opacity="0.8"><title>score: {score.score:.1f}</title></rect>']
    x1, x2 = left + width * score.ci_low / 100, left + width * score.ci_high / 100
    parts.append(f'<line x1="{x1:.1f}" y1="17" x2="{x2:.1f}" y2="17" stroke="#111" stroke-width="2"/>')
    if chance is not None:
        parts.append(_chance_svg(chance, left, width, 6))
    parts.append(_marker_svg(markers, left, width, 6))
    parts.append(f'<text x="{left + width + 6}" y="22">{score.score:.1f}</text></svg>')
    return "".join(parts)


def _bar_chart(report: TrustReport, st: Standing | None = None) -> str:
    rows = list(DIMENSIONS) + ["overall"]
    left, width, row_h = 120, 520, 28
    height = row_h * len(rows) + 30
    parts = [f'<svg role="img" aria-label="dimension scores" width="{left + width + 120}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg" font-size="13" font-family="sans-serif">']
    for tick in range(0, 101, 20):
        x = left + width * tick / 100
        parts.append(f'<line x1="{x}" y1="5" x2="{x}" y2="{height - 22}" stroke="#e3e6ea"/>')
        parts.append(f'<text x="{x}" y="{height - 6}" text-anchor="middle" fill="#667">{tick}</text>')
    for i, name in enumerate(rows):
        y = 8 + i * row_h
        if name == "overall":
            o = report.overall
            score, lo, hi = o.score, o.ci_low, o.ci_high
        else:
            d = report.dimensions[name]
            score, lo, hi = d.score, d.ci_low, d.ci_high
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(name)}</text>')
        if score is None:
            parts.append(f'<text x="{left + 6}" y="{y + 15}" fill="#889">not measured</text>')
            continue
        colour = "#2f6fdb" if name != "overall" else "#1d232a"
        parts.append(f'<rect class="score-bar" x="{left}" y="{y + 3}" width="{width * score / 100:.1f}" '
                     f'height="16" fill="{colour}" opacity="0.8"><title>{escape(name)}: {score:.1f}</title></rect>')
        if lo is not None and hi is not None:
            x1, x2 = left + width * lo / 100, left + width * hi / 100
            parts.append(f'<line x1="{x1:.1f}" y1="{y + 11}" x2="{x2:.1f}" y2="{y + 11}" stroke="#111" stroke-width="2"/>')
            for x in (x1, x2):
                parts.append(f'<line x1="{x:.1f}" y1="{y + 5}" x2="{x:.1f}" y2="{y + 17}" stroke="#111" stroke-width="2"/>')
        if st is not None and name in st.dimensions:
            parts.append(_marker_svg(st.dimensions[name], left, width, y))
        parts.append(f'<text x="{left + width + 8}" y="{y + 15}">{score:.1f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _breakdown_chart(name: str, rows: list) -> str:
    """Horizontal bars, one per breakdown row, with their 95% intervals."""
    top = max([1.0] + [m.ci_high if m.ci_high is not None else (m.value or 0.0) for m in rows])
    left, width, row_h = 230, 360, 20
    height = row_h * len(rows) + 24
    out = [f'<svg class="breakdown" role="img" aria-label="{escape(name)} by group" width="{left + width + 70}" '
           f'height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="sans-serif">']
    for i, m in enumerate(rows):
        y = 4 + i * row_h
        label = (m.group or "").split("=", 1)[-1]
        out.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{escape(label)}</text>')
        v = m.value or 0.0
        out.append(f'<rect class="score-bar" x="{left}" y="{y + 2}" width="{width * v / top:.1f}" height="13" '
                   f'fill="#7a5cc2" opacity="0.8"><title>{escape(label)}: {v:.3f}</title></rect>')
        if m.ci_low is not None and m.ci_high is not None:
            x1, x2 = left + width * m.ci_low / top, left + width * m.ci_high / top
            out.append(f'<line x1="{x1:.1f}" y1="{y + 8}" x2="{x2:.1f}" y2="{y + 8}" stroke="#111" stroke-width="1.5"/>')
        out.append(f'<text x="{left + width + 6}" y="{y + 12}">{v:.3f}</text>')
    out.append(f'<text x="{left}" y="{height - 4}" fill="#667">0</text>'
               f'<text x="{left + width}" y="{height - 4}" text-anchor="end" fill="#667">{top:g}</text></svg>')
    return "".join(out)


def _reliability_chart(rows: list) -> str:
    """A reliability diagram (DeGroot and Fienberg 1983; Guo et al. 2017, figure 1): one bar per
    confidence bin, as high as the accuracy of its questions, against the diagonal of perfect
    calibration; the bin's count is in its tooltip."""
    size, pad = 260, 36
    out = [f'<svg class="reliability" role="img" aria-label="reliability diagram" width="{size + pad + 20}" '
           f'height="{size + pad + 10}" xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="sans-serif">',
           f'<rect x="{pad}" y="10" width="{size}" height="{size}" fill="none" stroke="#99a"/>',
           f'<line x1="{pad}" y1="{10 + size}" x2="{pad + size}" y2="10" stroke="#b3261e" stroke-dasharray="4 3"/>']
    for tick in (0.0, 0.5, 1.0):
        out.append(f'<text x="{pad + size * tick:.0f}" y="{size + 24}" text-anchor="middle" fill="#667">{tick:g}</text>'
                   f'<text x="{pad - 4}" y="{10 + size * (1 - tick) + 4:.0f}" text-anchor="end" fill="#667">{tick:g}</text>')
    out.append(f'<text x="{pad + size / 2}" y="{size + 40}" text-anchor="middle">confidence</text>'
               f'<text x="10" y="{10 + size / 2}" transform="rotate(-90 10 {10 + size / 2})" text-anchor="middle">accuracy</text>')
    for m in rows:
        try:
            lo, hi = (float(x) for x in (m.group or "").split("=", 1)[-1].split("-"))
        except ValueError:
            continue
        v = m.value or 0.0
        x, w, h = pad + size * lo, size * (hi - lo), size * v
        out.append(f'<rect x="{x:.1f}" y="{10 + size - h:.1f}" width="{w:.1f}" height="{h:.1f}" fill="#2f6fdb" '
                   f'opacity="0.75" stroke="#fff"><title>confidence {lo:g}-{hi:g}: accuracy {v:.3f}, '
                   f'n={m.n}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def _cell(value: Any) -> str:
    """A sample value as escaped table text, at most :data:`MAX_VALUE_CHARS` characters."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    return escape(text)


def _samples_section(probe_id: str, samples: list[dict[str, Any]], have_samples: bool) -> str:
    """``<details id="samples-PROBE">``: the probe's first per-sample records as a table."""
    anchor = escape(f"samples-{probe_id}")
    if not have_samples:
        return (f'<details class="samples" id="{anchor}"><summary>samples</summary><p class=muted>This report was '
                f"read back without its samples: <code>samples.jsonl</code> beside <code>report.json</code> holds "
                f"them (records with probe_id {escape(probe_id)}).</p></details>")
    if not samples:
        return (f'<details class="samples" id="{anchor}"><summary>samples (none)</summary>'
                f"<p class=muted>This probe recorded no per-sample records.</p></details>")
    shown = samples[:MAX_SAMPLES_SHOWN]
    # "id" first, then sorted: the same columns whether the records come from the audit or back
    # from samples.jsonl (written with sorted keys), so a re-rendered page is byte-identical
    keys = sorted({str(k) for s in shown for k in s if k != "probe_id"}, key=lambda k: (k != "id", k))
    summary = (f"{len(samples)} samples" if len(samples) <= MAX_SAMPLES_SHOWN
               else f"first {len(shown)} of {len(samples)} samples")
    out = [f'<details class="samples" id="{anchor}"><summary>{summary}</summary><table><tr>',
           "".join(f"<th>{escape(str(k))}</th>" for k in keys), "</tr>"]
    for rec in shown:
        cells = {str(k): v for k, v in rec.items()}
        out.append("<tr>" + "".join(f"<td>{_cell(cells[k]) if k in cells else ''}</td>" for k in keys) + "</tr>")
    out.append("</table>")
    more = len(samples) - len(shown)
    if more:
        out.append(f"<p class=muted>{more} more in <code>samples.jsonl</code> (records with probe_id "
                   f"{escape(probe_id)}).</p>")
    out.append("</details>")
    return "".join(out)


def render_fragment(report: TrustReport, st: Standing | None = None) -> str:
    """Scores and metrics as HTML without a page around them (Jupyter's ``_repr_html_``); ``st``:
    where the report stands, when the caller has it already."""
    st = standing(report) if st is None else st
    out = [_bar_chart(report, st), "<table><tr><th>dimension</th><th>score</th><th>95% interval</th><th>probes</th>"
           "<th>reference models</th></tr>"]
    for dim in DIMENSIONS:
        d = report.dimensions[dim]
        if d.score is None:
            out.append(f"<tr><td>{dim}</td><td class=muted>not measured</td><td></td><td></td><td></td></tr>")
        else:
            links = ", ".join(f'<a href="#{escape(p)}">{escape(p)}</a>' for p in d.probes)
            refs = escape(markers_text(st.dimensions.get(dim, []))) or "<span class=muted>none comparable</span>"
            out.append(f"<tr><td>{dim}</td><td>{d.score:.1f}</td><td>[{d.ci_low:.1f}, {d.ci_high:.1f}]</td><td>{links}</td>"
                       f"<td>{refs}</td></tr>")
    out.append("</table>")
    out.append(f"<p class=muted>&#9660; reference models. {escape(standing_summary(st, report))}</p>")
    return "".join(out)


def render_html(report: TrustReport) -> str:
    m = report.model
    title = f"Trust report: {m.name}"
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class=muted>model <code>{escape(m.spec)}</code> · {escape(m.kind)}'
            f'{f" · {m.parameters:,} parameters" if m.parameters else ""} · hash <code>{escape(m.hash[:16])}</code>'
            f" · trustslm {escape(report.trustslm_version)} · seed {report.run.seed} · "
            f"{report.run.wall_time_s:.1f} s"
            f"{f' · suite {escape(report.run.suite)}' if report.run.suite else ''}</p>",
            "<h2>Scores</h2>", render_fragment(report, st := standing(report))]
    o = report.overall
    if o.score is not None:
        body.append(f"<p>Overall {o.score:.1f} [{o.ci_low:.1f}, {o.ci_high:.1f}] over "
                    f"{escape(', '.join(o.dimensions_measured))}; not measured: "
                    f"{escape(', '.join(o.dimensions_not_measured)) or 'none'}.</p>")
    s = report.scoring
    body.append(f"<p class=muted>{escape(s.probe_aggregation)}; {escape(s.dimension_aggregation)}; "
                f"{escape(s.overall_aggregation)}. Normaliser: {escape(s.normaliser)}. "
                f"Intervals: {escape(s.interval)}, {s.bootstrap_resamples} resamples.</p>")
    g = report.gate
    if g.rules or g.policy or g.baseline:
        verdict = '<span class=pass>PASSED</span>' if g.passed else '<span class=fail>FAILED</span>'
        against = f" · baseline <code>{escape(g.baseline)}</code>" if g.baseline else ""
        body.append(f"<h2>Gate</h2><p>{verdict} · policy <code>{escape(str(g.policy))}</code>{against}</p>")
        body.append("<table><tr><th>rule</th><th>result</th><th>detail</th></tr>")
        for r in g.rules:
            res = '<span class=pass>pass</span>' if r.passed else '<span class=fail>FAIL</span>'
            body.append(f"<tr><td>{escape(r.rule)}</td><td>{res}</td><td>{escape(r.reason)}</td></tr>")
        body.append("</table>")
    body.append("<h2>Probes</h2>")
    by_probe: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in report.samples:
        by_probe[str(rec.get("probe_id"))].append(rec)
    have_samples = bool(report.samples)
    for r in report.results:
        link = escape(f"#samples-{r.probe_id}")
        body.append(f'<h3 id="{escape(r.probe_id)}">{escape(r.probe_id)} <span class=muted>v{escape(r.version)} · {r.dimension}</span></h3>')
        if r.card:
            body.append(f"<p>{escape(r.card.summary)}</p><p class=muted>card: <code>{escape(r.card.path)}</code></p>")
        if r.status != "ok":
            body.append(f'<p class="{r.status}">{r.status}: {escape(str(r.reason))}</p>')
            if by_probe.get(r.probe_id):
                body.append(_samples_section(r.probe_id, by_probe[r.probe_id], have_samples))
            continue
        if r.score:
            body.append(f'<p>Probe score <a href="{link}">{r.score.score:.1f} [{r.score.ci_low:.1f}, '
                        f'{r.score.ci_high:.1f}]</a> <span class=muted>(<a href="{link}">samples</a>)</span></p>')
            chance = r.chance.score if r.chance is not None else None
            markers = st.probes.get(r.probe_id, [])
            if markers or chance is not None:
                body.append(_probe_chart(r.score, markers, chance))
        if (text := chance_text(r)) is not None:
            flag = " class=fail" if r.chance is not None and r.chance.indistinguishable else ""
            body.append(f"<p{flag}>chance level: {escape(text)}</p>")
        if st.probes.get(r.probe_id):
            body.append(f"<p>&#9660; reference models: {escape(markers_text(st.probes[r.probe_id]))} "
                        f"({escape(st.sizes_text(st.probes[r.probe_id]))})</p>")
        if st.stale.get(r.probe_id):
            body.append(f"<p class=muted>reference models stale for this probe, not compared: "
                        f"{escape(stale_text(st.stale[r.probe_id]))}</p>")
        body.append("<table><tr><th>metric</th><th>group</th><th>value</th><th>95% interval</th><th>n</th><th>direction</th>"
                    "<th>score</th><th>chance</th><th>samples</th></tr>")
        for mt in r.metrics:
            body.append(
                f"<tr><td title=\"{escape(mt.description)}\">{escape(mt.name)}</td><td>{escape(mt.group or 'all')}</td>"
                f"<td>{fmt(mt.value)}</td><td>{interval(mt.ci_low, mt.ci_high)}</td><td>{mt.n}</td>"
                f"<td>{escape(direction(mt))}</td><td>{fmt(mt.score, 1) if mt.score is not None else ''}</td>"
                f"<td>{chance_value(r, mt)}</td>"
                f'<td><a href="{link}">samples</a></td></tr>'
            )
        body.append("</table>")
        for name in dict.fromkeys(m.name for m in r.metrics if m.chart and m.group):
            rows = [m for m in r.metrics if m.name == name and m.group]
            if rows[0].chart == "reliability":
                body.append(f"<p><b>reliability diagram</b> ({escape(name)} per confidence bin; dashed: "
                            f"perfect calibration)</p>{_reliability_chart(rows)}")
            else:
                body.append(f"<p><b>{escape(name)}</b> by group</p>{_breakdown_chart(name, rows)}")
        body.append("<ul>")
        for ds in r.datasets:
            body.append(f"<li>data <code>{escape(ds.path)}</code> ({escape(ds.format)}, {ds.n_used} of {ds.n_items} items, "
                        f"sha256 <code>{escape(ds.sha256[:16])}</code>): {escape(dataset_origin(ds))}</li>")
        if r.scorer:
            body.append(f"<li>scorer {escape(r.scorer.name)} {escape(r.scorer.version)}: {escape(r.scorer.detail)}</li>")
        body.append(f'<li><a href="{link}">{r.n_samples} samples</a> in <code>samples.jsonl</code> (probe_id '
                    f"{escape(r.probe_id)}); {r.n_requests} model requests; {r.wall_time_s:.1f} s</li>"
                    + (f"<li>time: {escape(speed_text(r.speed))}</li>" if r.speed else "")
                    + (f"<li>sampling: {escape(sequential_text(r.sequential))}</li>" if r.sequential else "")
                    + "".join(f"<li>detector: {escape(note)}</li>" for note in detector_notes(r))
                    + (f"<li>counter-metric: {escape(counter)}</li>" if (counter := counter_metric_text(report, r)) else "")
                    + (f"<li>risks: {escape('; '.join(tag_titles(r.taxonomy)))}</li>" if r.taxonomy else "")
                    + "</ul>")
        body.append(_samples_section(r.probe_id, by_probe.get(r.probe_id, []), have_samples))
    body.append("<h2>Provenance</h2><table><tr><th>file</th><th>sha256</th><th>bytes</th></tr>")
    for f in m.files:
        body.append(f"<tr><td>{escape(f.path)}</td><td><code>{escape(f.sha256)}</code></td><td>{f.size:,}</td></tr>")
    if m.source:
        body.append(f"<tr><td>source: {escape(m.source.path)}</td><td><code>{escape(m.source.sha256)}</code></td><td>{m.source.size:,}</td></tr>")
    body.append("</table>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
