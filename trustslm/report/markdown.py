"""The report as Markdown (``report.md``) and the short terminal summary."""

from __future__ import annotations

from trustslm.core.types import DIMENSIONS, TrustReport
from trustslm.report.format import direction, fmt, interval, score_text


def summary_table(report: TrustReport) -> str:
    """A few lines for the terminal: dimension scores, probe statuses, gate."""
    lines = [f"trustslm {report.trustslm_version} · model {report.model.name} · seed {report.run.seed}"]
    width = max(len(d) for d in DIMENSIONS)
    for dim in DIMENSIONS:
        d = report.dimensions[dim]
        lines.append(f"  {dim:<{width}}  {score_text(d.score, d.ci_low, d.ci_high)}")
    o = report.overall
    covered = f" (over {len(o.dimensions_measured)} of {len(DIMENSIONS)} dimensions)" if o.score is not None else ""
    lines.append(f"  {'overall':<{width}}  {score_text(o.score, o.ci_low, o.ci_high)}{covered}")
    for r in report.results:
        if r.status != "ok":
            lines.append(f"  {r.probe_id}: {r.status}: {r.reason}")
    if report.gate.policy is not None or report.gate.baseline is not None or report.gate.rules:
        lines += ["  " + line for line in gate_lines(report, passed_rules=False)]
    return "\n".join(lines)


def gate_lines(report: TrustReport, *, passed_rules: bool = True) -> list[str]:
    """The gate's verdict and its rules (or only the failed ones), for the terminal."""
    g = report.gate
    against = f" against baseline {g.baseline}" if g.baseline else ""
    lines = [f"gate: {'PASSED' if g.passed else 'FAILED'} ({len(g.rules)} rules{against})"]
    for r in g.rules:
        if not r.passed:
            lines.append(f"  FAIL {r.rule}: {r.reason}")
        elif passed_rules:
            lines.append(f"  pass {r.rule}: {r.reason}")
    return lines


def render_markdown(report: TrustReport) -> str:
    m = report.model
    out = [f"# Trust report: {m.name}", ""]
    out += [
        f"- model: `{m.spec}` ({m.kind}{f', {m.parameters:,} parameters' if m.parameters else ''}), hash `{m.hash[:16]}`",
        f"- trustslm {report.trustslm_version}, torch {report.environment.torch}, transformers {report.environment.transformers}",
        f"- seed {report.run.seed}, limit {report.run.limit}, config hash `{report.run.config_hash[:16]}`, "
        f"wall time {report.run.wall_time_s:.1f} s",
        "",
        "## Scores",
        "",
        "| dimension | score (0-100) | 95% interval | probes |",
        "|---|---|---|---|",
    ]
    for dim in DIMENSIONS:
        d = report.dimensions[dim]
        if d.score is None:
            out.append(f"| {dim} | not measured | – | – |")
        else:
            out.append(f"| {dim} | {d.score:.1f} | [{d.ci_low:.1f}, {d.ci_high:.1f}] | {', '.join(d.probes)} |")
    o = report.overall
    if o.score is not None:
        out.append(f"| **overall** | **{o.score:.1f}** | [{o.ci_low:.1f}, {o.ci_high:.1f}] | "
                   f"over {', '.join(o.dimensions_measured)} |")
    else:
        out.append("| **overall** | not measured | – | – |")
    s = report.scoring
    out += ["", f"Aggregation: {s.probe_aggregation}; {s.dimension_aggregation}; {s.overall_aggregation}. "
            f"Normaliser: {s.normaliser}. Intervals: {s.interval}, {s.bootstrap_resamples} resamples.", ""]

    g = report.gate
    if g.rules or g.policy or g.baseline:
        against = f", baseline `{g.baseline}` (model hash `{(g.baseline_model_hash or '')[:16]}`)" if g.baseline else ""
        out += ["## Gate", "", f"**{'PASSED' if g.passed else 'FAILED'}** (policy `{g.policy}`{against})", "",
                "| rule | result | detail |", "|---|---|---|"]
        out += [f"| {r.rule} | {'pass' if r.passed else '**FAIL**'} | {r.reason} |" for r in g.rules]
        out.append("")

    out += ["## Probes", ""]
    for r in report.results:
        out.append(f"### {r.probe_id} (v{r.version}, {r.dimension})")
        out.append("")
        if r.card:
            out += [r.card.summary, "", f"Card: `{r.card.path}`", ""]
        if r.status != "ok":
            out += [f"**{r.status}**: {r.reason}", ""]
            continue
        if r.score:
            out += [f"Probe score: {r.score.score:.1f} [{r.score.ci_low:.1f}, {r.score.ci_high:.1f}]", ""]
        out += ["| metric | group | value | 95% interval | n | direction | score |", "|---|---|---|---|---|---|---|"]
        for mt in r.metrics:
            out.append(
                f"| {mt.name} | {mt.group or 'all'} | {fmt(mt.value)} | {interval(mt.ci_low, mt.ci_high)} | {mt.n} | "
                f"{direction(mt)} | {fmt(mt.score, 1) if mt.score is not None else ''} |"
            )
        out.append("")
        for ds in r.datasets:
            out.append(f"- data: `{ds.path}` ({ds.format}, {ds.n_used} of {ds.n_items} items, sha256 `{ds.sha256[:16]}`)")
        if r.scorer:
            out.append(f"- scorer: {r.scorer.name} {r.scorer.version} ({r.scorer.detail})")
        out.append(f"- {r.n_samples} samples in `samples.jsonl`, {r.n_requests} model requests, {r.wall_time_s:.1f} s")
        out.append("")

    out += ["## Provenance", "", "| file | sha256 | bytes |", "|---|---|---|"]
    out += [f"| {f.path} | `{f.sha256}` | {f.size:,} |" for f in m.files]
    if m.source:
        out.append(f"| source: {m.source.path} | `{m.source.sha256}` | {m.source.size:,} |")
    out.append("")
    return "\n".join(out)
