"""A comparison of two reports (:class:`trustslm.gate.compare.ReportDiff`) as Markdown: one table
per dimension, old, new, difference, its 95% paired interval and the verdict."""

from __future__ import annotations

from trustslm.core.types import DIMENSIONS
from trustslm.gate.compare import Change, ReportDiff
from trustslm.report.format import fmt

_MARK = {"worse": "**worse**", "better": "better"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(c: Change) -> str:
    interval = "" if c.ci_low is None or c.ci_high is None else f"[{fmt(c.ci_low)}, {fmt(c.ci_high)}]"
    verdict = _MARK.get(c.verdict, c.verdict)
    if c.verdict == "not compared" and c.reason:
        verdict = f"not compared: {c.reason}"
    name = f"**{c.target}**" if c.level != "metric" else c.target
    return (f"| {_cell(name)} | {fmt(c.old)} | {fmt(c.new)} | {fmt(c.difference)} | {interval} | "
            f"{_cell(verdict)} |")


def render_diff_markdown(diff: ReportDiff) -> str:
    o, n = diff.old, diff.new
    out = ["# Trust report comparison", "",
           f"- old: {o.get('path') or 'report'}: model {o['model']} (hash `{o['model_hash'][:16]}`), seed {o['seed']}",
           f"- new: {n.get('path') or 'report'}: model {n['model']} (hash `{n['model_hash'][:16]}`), seed {n['seed']}",
           f"- intervals: {int(diff.confidence_level * 100)}% paired bootstrap over the units both reports share, "
           f"{diff.resamples} resamples; verdict `worse`/`better` when the interval of the change excludes 0, in "
           "the metric's direction",
           ""]
    counts = {v: sum(1 for c in diff.changes if c.verdict == v) for v in ("worse", "better", "no significant change",
                                                                          "not compared")}
    out += [", ".join(f"{k}: {v}" for k, v in counts.items()), ""]
    header = ["| target | old | new | difference | 95% interval | verdict |", "|---|---|---|---|---|---|"]
    overall = [c for c in diff.changes if c.level == "overall"]
    if overall:
        out += ["## Overall", "", *header, *(_row(c) for c in overall), ""]
    for dim in DIMENSIONS:
        rows = [c for c in diff.changes if c.dimension == dim and c.level != "overall"]
        if not rows:
            continue
        ordered = [c for c in rows if c.level == "dimension"]
        for pid in dict.fromkeys(c.probe_id for c in rows if c.probe_id):  # each probe's score, then its metrics
            ordered += [c for c in rows if c.probe_id == pid and c.level == "probe"]
            ordered += [c for c in rows if c.probe_id == pid and c.level == "metric"]
        out += [f"## {dim}", "", *header, *(_row(c) for c in ordered), ""]
    return "\n".join(out)
