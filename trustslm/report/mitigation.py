"""A mitigation run (:class:`trustslm.workflows.mitigate.MitigationRun`) as Markdown: what each step
did, each targeted metric before and after with the paired interval of the change, and the
utility cost beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustslm.report.format import fmt, interval, md_code, md_text

if TYPE_CHECKING:
    from trustslm.workflows.mitigate import MitigationRun

_MARK = {"better": "**better**", "worse": "**worse**"}


def _cell(text: str) -> str:
    return md_text(text, None)


def render_mitigation_markdown(run: MitigationRun) -> str:
    out = ["# Mitigation: before and after", "",
           f"- model: {md_text(run.model['spec'])} ({md_text(run.model['name'])}, hash {md_code(run.model['hash'][:16])})",
           f"- before: {md_text(run.before_model)}; after: {md_text(run.mitigated_model)}",
           f"- probes: {', '.join(run.probes)}; seed {run.seed}; the same probe options on both sides",
           f"- reports: {md_text(run.before_report)}, {md_text(run.after_report)}; every metric: diff.json", "",
           "## Steps", "", "| mitigation | dimension | kind | what it did | time (s) |", "|---|---|---|---|---|"]
    for s in run.steps:
        out.append(f"| {_cell(s.name)} | {s.dimension} | {s.kind} | {_cell(s.did)} | {s.wall_time_s:.1f} |")
    out += ["", "## Targeted metrics", "",
            "Change = after - before, with its 95% paired-bootstrap interval; **better** or **worse** when the "
            "interval excludes no change in that direction.", "",
            "| metric | mitigation | before | after | change | 95% interval | verdict |", "|---|---|---|---|---|---|---|"]
    for t in run.targets:
        verdict = _MARK.get(t["verdict"], _cell(t["verdict"]))
        if t["verdict"] == "not compared" and t.get("reason"):
            verdict = f"not compared: {_cell(t['reason'])}"
        out.append(f"| {t['metric']} | {', '.join(t['mitigations']) or '–'} | {fmt(t['before'])} | {fmt(t['after'])} | "
                   f"{fmt(t['difference'])} | {interval(t['ci_low'], t['ci_high'])} | {verdict} |")
    out += ["", "## Utility cost", "", "| measure | data | items | before | after | change | 95% interval | cost |",
            "|---|---|---|---|---|---|---|---|"]
    for u in run.utility:
        cost = {"worse": "**worse**", "better": "better"}.get(u.cost, u.cost)
        out.append(f"| {_cell(u.description)} | {_cell(u.data)} | {u.n} | {fmt(u.before)} | {fmt(u.after)} | {fmt(u.difference)} | "
                   f"{interval(u.ci_low, u.ci_high)} | {cost} |")
    if run.notes:
        out += ["", "## Notes", ""] + [f"- {_cell(n)}" for n in run.notes]
    return "\n".join(out) + "\n"
