"""The report as Markdown (``report.md``) and the short terminal summary.

Every string from the model, the data, a config or a report file is untrusted: in Markdown it is
escaped (:func:`~trustslm.report.format.md_text`: no HTML, no extra table cells, one line), on the
terminal every control character is shown as its escape (:func:`~trustslm.report.format.terminal_text`).
"""

from __future__ import annotations

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
    md_code,
    md_text,
    quantisation_text,
    score_text,
    sequential_text,
    speed_text,
    stale_text,
    terminal_text,
)
from trustslm.report.standing import Standing, standing, standing_summary

#: Characters of a failure reason or a gate rule's detail kept in ``report.md`` (the JSON has all).
MAX_REASON_CHARS = 2000


def summary_table(report: TrustReport) -> str:
    """A few lines for the terminal: dimension scores, probe statuses, gate."""
    t = terminal_text
    lines = [f"trustslm {t(report.trustslm_version)} · model {t(report.model.name)} · seed {report.run.seed}"]
    width = max(len(d) for d in DIMENSIONS)
    for dim in DIMENSIONS:
        d = report.dimensions[dim]
        lines.append(f"  {dim:<{width}}  {score_text(d.score, d.ci_low, d.ci_high)}")
    o = report.overall
    covered = f" (over {len(o.dimensions_measured)} of {len(DIMENSIONS)} dimensions)" if o.score is not None else ""
    lines.append(f"  {'overall':<{width}}  {score_text(o.score, o.ci_low, o.ci_high)}{covered}")
    for r in report.results:
        if r.status != "ok":
            lines.append(f"  {t(r.probe_id)}: {r.status}: {t(r.reason)}")
        elif r.chance is not None and r.chance.indistinguishable and r.score is not None:
            lines.append(f"  {t(r.probe_id)}: {r.score.score:.1f}, indistinguishable from chance ({r.chance.score:.1f})")
    if report.gate.policy is not None or report.gate.baseline is not None or report.gate.rules:
        lines += ["  " + line for line in gate_lines(report, passed_rules=False)]
    return "\n".join(lines)


def gate_lines(report: TrustReport, *, passed_rules: bool = True) -> list[str]:
    """The gate's verdict and its rules (or only the failed ones), for the terminal."""
    g, t = report.gate, terminal_text
    against = f" against baseline {t(g.baseline)}" if g.baseline else ""
    lines = [f"gate: {'PASSED' if g.passed else 'FAILED'} ({len(g.rules)} rules{against})"]
    for r in g.rules:
        if not r.passed:
            lines.append(f"  FAIL {t(r.rule)}: {t(r.reason)}")
        elif passed_rules:
            lines.append(f"  pass {t(r.rule)}: {t(r.reason)}")
    return lines


def _text(value: object) -> str:
    return md_text(value, MAX_REASON_CHARS)


def render_markdown(report: TrustReport) -> str:
    m, e = report.model, _text
    params = f", {m.parameters:,} parameters" if m.parameters else ""
    out = [f"# Trust report: {e(m.name)}", ""]
    out += [
        f"- model: {md_code(m.spec)} ({e(m.kind)}{params}), hash {md_code(m.hash[:16])}",
        *([f"- loaded from: {md_code(m.path)}"] if m.path and m.path != m.spec else []),
        *([f"- decoding-time mitigations: {', '.join(e(s.get('name', '?')) for s in m.mitigations)}"]
          if m.mitigations else []),
        *([f"- quantisation: {quantisation_text(m.quantisation)}"] if m.quantisation else []),
        f"- trustslm {e(report.trustslm_version)}, torch {e(report.environment.torch)}, "
        f"transformers {e(report.environment.transformers)}",
        f"- seed {report.run.seed}, limit {report.run.limit}, config hash {md_code(report.run.config_hash[:16])}, "
        f"wall time {report.run.wall_time_s:.1f} s" + (f", suite {e(report.run.suite)}" if report.run.suite else ""),
        "",
        "## Scores",
        "",
        "| dimension | score (0-100) | 95% interval | probes | reference models |",
        "|---|---|---|---|---|",
    ]
    st = standing(report)
    for dim in DIMENSIONS:
        d = report.dimensions[dim]
        if d.score is None:
            out.append(f"| {dim} | not measured | – | – | – |")
        else:
            refs = e(markers_text(st.dimensions.get(dim, []))) or "none comparable"
            out.append(f"| {dim} | {d.score:.1f} | [{d.ci_low:.1f}, {d.ci_high:.1f}] | "
                       f"{', '.join(e(p) for p in d.probes)} | {refs} |")
    o = report.overall
    if o.score is not None:
        out.append(f"| **overall** | **{o.score:.1f}** | [{o.ci_low:.1f}, {o.ci_high:.1f}] | "
                   f"over {', '.join(e(x) for x in o.dimensions_measured)} | |")
    else:
        out.append("| **overall** | not measured | – | – | |")
    out += ["", e(standing_summary(st, report)), ""]
    s = report.scoring
    out += ["", f"Aggregation: {e(s.probe_aggregation)}; {e(s.dimension_aggregation)}; {e(s.overall_aggregation)}. "
            f"Normaliser: {e(s.normaliser)}. Intervals: {e(s.interval)}, {s.bootstrap_resamples} resamples.", ""]
    out += _gate_section(report)
    out += ["## Probes", ""]
    for r in report.results:
        out += _probe_section(r, counter_metric_text(report, r), st)
    out += ["## Provenance", "", "| file | sha256 | bytes |", "|---|---|---|"]
    out += [f"| {e(f.path)} | {md_code(f.sha256)} | {f.size:,} |" for f in m.files]
    if m.source:
        out.append(f"| source: {e(m.source.path)} | {md_code(m.source.sha256)} | {m.source.size:,} |")
    out.append("")
    return "\n".join(out)


def _gate_section(report: TrustReport) -> list[str]:
    g, e = report.gate, _text
    if not (g.rules or g.policy or g.baseline):
        return []
    against = (f", baseline {md_code(g.baseline)} (model hash {md_code((g.baseline_model_hash or '')[:16])})"
               if g.baseline else "")
    out = ["## Gate", "", f"**{'PASSED' if g.passed else 'FAILED'}** (policy {md_code(g.policy)}{against})", "",
           "| rule | result | detail |", "|---|---|---|"]
    out += [f"| {e(r.rule)} | {'pass' if r.passed else '**FAIL**'} | {e(r.reason)} |" for r in g.rules]
    out.append("")
    return out


def _probe_section(r, counter: str | None = None, st: Standing | None = None) -> list[str]:
    """One probe's heading, status, metric table, data, scorer and sample count."""
    e = _text
    out = [f"### {e(r.probe_id)} (v{e(r.version)}, {e(r.dimension)})", ""]
    if r.card:
        out += [e(r.card.summary), "", f"Card: {md_code(r.card.path)}", ""]
    if r.status != "ok":
        return out + [f"**{e(r.status)}**: {e(r.reason)}", ""]
    if r.score:
        out += [f"Probe score: {r.score.score:.1f} [{r.score.ci_low:.1f}, {r.score.ci_high:.1f}]", ""]
    if (chance := chance_text(r)) is not None:
        out += [f"Chance level: {e(chance)}", ""]
    if st is not None and st.probes.get(r.probe_id):
        out += [f"Reference models: {e(markers_text(st.probes[r.probe_id]))} "
                f"({e(st.sizes_text(st.probes[r.probe_id]))})", ""]
    if st is not None and st.stale.get(r.probe_id):
        out += [f"Reference models stale for this probe, not compared: {e(stale_text(st.stale[r.probe_id]))}", ""]
    out += ["| metric | group | value | 95% interval | n | direction | score | chance |",
            "|---|---|---|---|---|---|---|---|"]
    for mt in r.metrics:
        out.append(
            f"| {e(mt.name)} | {e(mt.group or 'all')} | {fmt(mt.value)} | {interval(mt.ci_low, mt.ci_high)} | {mt.n} | "
            f"{direction(mt)} | {fmt(mt.score, 1) if mt.score is not None else ''} | {chance_value(r, mt)} |"
        )
    out.append("")
    for ds in r.datasets:
        out.append(f"- data: {md_code(ds.path)} ({e(ds.format)}, {ds.n_used} of {ds.n_items} items, "
                   f"sha256 {md_code(ds.sha256[:16])}): {e(dataset_origin(ds))}")
    if r.scorer:
        out.append(f"- scorer: {e(r.scorer.name)} {e(r.scorer.version)} ({e(r.scorer.detail)})")
    out.append(f"- {r.n_samples} samples in `samples.jsonl`, {r.n_requests} model requests, {r.wall_time_s:.1f} s")
    if r.speed:
        out.append(f"- time: {e(speed_text(r.speed))}")
    if r.sequential:
        out.append(f"- sampling: {e(sequential_text(r.sequential))}")
    for note in detector_notes(r):
        out.append(f"- detector: {e(note)}")
    if counter:
        out.append(f"- counter-metric: {e(counter)}")
    if r.taxonomy:
        out.append(f"- risks: {e('; '.join(tag_titles(r.taxonomy)))}")
    out.append("")
    return out
