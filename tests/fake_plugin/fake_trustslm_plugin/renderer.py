"""A report format of a third-party plugin (entry-point group ``trustslm.renderers``): one line per
probe, as CSV."""


def render_probe_csv(report) -> str:
    lines = ["probe_id,status,score"]
    for r in report.results:
        lines.append(f"{r.probe_id},{r.status},{'' if r.score is None else r.score.score}")
    return "\n".join(lines) + "\n"
