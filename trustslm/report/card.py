"""Writing a report's results into a model's ``README.md`` model card.

Two parts of the card change, nothing else:

- the YAML metadata: one Hugging Face ``model-index`` eval result per measured dimension and one
  for the overall score (``source: trustslm``), built with ``huggingface_hub``'s
  :class:`~huggingface_hub.ModelCard`; earlier trustslm results are replaced, every other result
  and every other metadata key is kept;
- a Markdown section between :data:`MARK_START` and :data:`MARK_END`, replaced in place when the
  markers are there and appended at the end of the card otherwise.

The model folder is untrusted input: the README is read as bounded UTF-8 text, its front matter
with ``yaml.safe_load`` (what ``huggingface_hub`` uses), and a README that is a symlink out of
the folder is refused. Text from the report goes into Markdown escaped, one line per item.
Running it twice with the same report leaves the file byte-identical.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from trustslm.core.errors import BadInputError
from trustslm.core.types import DIMENSIONS, TrustReport
from trustslm.report.format import md_text

MARK_START = "<!-- trustslm:trust-report:start -->"
MARK_END = "<!-- trustslm:trust-report:end -->"
#: A README larger than this is refused (model cards are a few KB; this bounds what we read).
MAX_README_BYTES = 5 * 1024 * 1024
SOURCE_NAME = "trustslm"
SOURCE_URL = "https://github.com/trustslm/trustslm"
CARD_NAME = "README.md"


def _text(value: Any, limit: int = 300) -> str:
    """``value`` as inline Markdown text: one line, at most ``limit`` characters, with HTML
    and Markdown specials escaped (:func:`~trustslm.report.format.md_text`)."""
    return md_text(value, limit)


def _interval(lo: float | None, hi: float | None) -> str:
    return f"[{lo:.1f}, {hi:.1f}]" if lo is not None and hi is not None else ""


def _level(report: TrustReport) -> str:
    return f"{report.scoring.confidence_level * 100:g}%"


# -- reading --------------------------------------------------------------------------------

def _read_card(model_dir: Path) -> tuple[Path, str | None]:
    """(the file to write, its text or None when there is no README)."""
    readme = model_dir / CARD_NAME
    try:
        st = os.lstat(readme)
    except FileNotFoundError:
        return readme, None
    except OSError as exc:
        raise BadInputError(f"can't read {readme}: {exc.strerror or exc}") from None
    target = readme
    if stat.S_ISLNK(st.st_mode):
        try:
            target = readme.resolve(strict=True)
        except (OSError, RuntimeError):
            raise BadInputError(f"{readme} is a broken or looping symlink") from None
        if not target.is_relative_to(model_dir.resolve()):
            raise BadInputError(f"{readme} is a symlink pointing outside the model folder; refusing to follow it")
        st = os.stat(target)
    if not stat.S_ISREG(st.st_mode):
        raise BadInputError(f"{readme} is not a regular file")
    if st.st_size > MAX_README_BYTES:
        raise BadInputError(f"{readme} is {st.st_size:,} bytes; a model card may have at most {MAX_README_BYTES:,}")
    try:
        with open(target, "rb") as f:
            data = f.read(MAX_README_BYTES + 1)
    except OSError as exc:
        raise BadInputError(f"can't read {readme}: {exc.strerror or exc}") from None
    if len(data) > MAX_README_BYTES:
        raise BadInputError(f"{readme} is larger than {MAX_README_BYTES:,} bytes")
    try:
        return target, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{readme} is not UTF-8 text (invalid byte at offset {exc.start})") from None


def _parse(readme: Path, text: str, line_break: str):
    """The card (``huggingface_hub.ModelCard``) and whether the text had a front matter block."""
    import yaml
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    has_front = REGEX_YAML_BLOCK.search(text) is not None
    # Without front matter ModelCard logs a warning; an empty block parses to the same card
    # and its text is exactly ``text``.
    content = text if has_front else f"---{line_break}{{}}{line_break}---{line_break}{text}"
    try:
        card = ModelCard(content)
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f"line {mark.line + 1} of the front matter: " if mark is not None else ""
        first = problem or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInputError(f"{readme}: malformed YAML front matter ({where}{first})") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        first = first.split(" Pass `ignore_metadata_errors")[0]  # huggingface_hub's advice; not ours to give
        raise BadInputError(f"{readme}: unusable front matter: {first}") from None
    return card, has_front


# -- building -------------------------------------------------------------------------------

def _eval_results(report: TrustReport) -> list:
    from huggingface_hub import EvalResult

    level = _level(report)
    common = dict(task_type="text-generation", task_name="Trust audit", dataset_type="trustslm",
                  dataset_name="trustslm probes", source_name=SOURCE_NAME, source_url=SOURCE_URL)
    out = []
    for dim in DIMENSIONS:
        d = report.dimensions.get(dim)
        if d is None or d.score is None:
            continue
        args: dict[str, Any] = {"confidence_level": report.scoring.confidence_level}
        if d.ci_low is not None and d.ci_high is not None:
            args.update(ci_low=round(d.ci_low, 1), ci_high=round(d.ci_high, 1))
        args["probes"] = list(d.probes)
        out.append(EvalResult(metric_type=f"trustslm_{dim}", metric_value=round(d.score, 1),
                              metric_name=f"{dim} score (0-100, {level} CI {_interval(d.ci_low, d.ci_high)})",
                              metric_args=args, **common))
    o = report.overall
    if o.score is not None:
        args = {"confidence_level": report.scoring.confidence_level}
        if o.ci_low is not None and o.ci_high is not None:
            args.update(ci_low=round(o.ci_low, 1), ci_high=round(o.ci_high, 1))
        args["dimensions"] = list(o.dimensions_measured)
        out.append(EvalResult(metric_type="trustslm_overall", metric_value=round(o.score, 1),
                              metric_name=f"overall trust score (0-100, {level} CI {_interval(o.ci_low, o.ci_high)}, "
                                          f"over {', '.join(o.dimensions_measured)})",
                              metric_args=args, **common))
    return out


def _risk_lines(report: TrustReport) -> list[str]:
    """Which risks of the OWASP Top 10 for LLM Applications 2025 and NIST AI 600-1 the probes
    that ran speak to, probe by probe."""
    from trustslm.core.taxonomy import tag_titles

    rows = [(r, tag_titles(r.taxonomy)) for r in report.results if r.status == "ok" and r.taxonomy]
    if not rows:
        return []
    out = ["", "Risks the probes speak to (OWASP Top 10 for LLM Applications 2025, NIST AI 600-1):", ""]
    for r, titles in rows:
        score = f"{r.score.score:.1f}" if r.score is not None else "unscored"
        out.append(f"- {_text(r.probe_id, 100)} ({score}): {_text('; '.join(titles), 400)}")
    return out


def _section(report: TrustReport, report_path: str | None) -> str:
    level = _level(report)
    lines = [MARK_START, "## Trust report (trustslm)", "",
             f"Audited by [trustslm]({SOURCE_URL}) {_text(report.trustslm_version)} on "
             f"{_text(report.run.started_at)}: model {_text(report.model.name)}, "
             f"hash {_text(report.model.hash[:16])}, {_text(report.run.profile)} profile, seed {report.run.seed}.",
             "", f"| dimension | score (0-100) | {level} interval | probes |", "|---|---|---|---|"]
    for dim in DIMENSIONS:
        d = report.dimensions.get(dim)
        if d is None or d.score is None:
            lines.append(f"| {dim} | not measured | | |")
        else:
            probes = ", ".join(_text(p, 100) for p in d.probes)
            lines.append(f"| {dim} | {d.score:.1f} | {_interval(d.ci_low, d.ci_high)} | {probes} |")
    o = report.overall
    covered = ", ".join(_text(x, 40) for x in o.dimensions_measured)
    if o.score is None:
        lines.append("| **overall** | not measured | | |")
    else:
        lines.append(f"| **overall** | {o.score:.1f} | {_interval(o.ci_low, o.ci_high)} | over {covered} |")
    lines.append("")
    missing = ", ".join(_text(x, 40) for x in o.dimensions_not_measured) or "none"
    if o.score is not None:
        lines.append(f"The overall score covers {covered}; not measured: {missing}.")
    else:
        lines.append("No dimension was measured, so there is no overall score.")
    lines += _risk_lines(report)
    g = report.gate
    if g.policy or g.baseline:
        against = []
        if g.policy:
            against.append(f"policy {_text(Path(g.policy).name, 120)}")
        if g.baseline:
            against.append(f"baseline {_text(g.baseline, 200)}")
        verdict = "**passed**" if g.passed else "**failed**"
        lines += ["", f"Release gate: {verdict} ({' and '.join(against)})."]
        for failure in g.failures[:20]:
            lines.append(f"- {_text(failure)}")
        if len(g.failures) > 20:
            lines.append(f"- ... and {len(g.failures) - 20} more failures (see the report)")
    if report_path:
        lines += ["", f"Full report: {_text(report_path, 500)}"]
    lines += ["", "*This section is generated by trustslm and replaced each time it is rerun; "
                  "edit the card outside the trustslm markers.*", MARK_END]
    return "\n".join(lines)


def _new_body(readme: Path, body: str, section: str, lb: str) -> str:
    start = body.find(MARK_START)
    end = body.find(MARK_END, start + len(MARK_START)) if start >= 0 else body.find(MARK_END)
    if start >= 0 and end >= 0:
        return body[:start] + section + body[end + len(MARK_END):]
    if start >= 0 or end >= 0:
        raise BadInputError(f"{readme} has a {'start' if start >= 0 else 'end'} marker of the trustslm section "
                            f"without its {'end' if start >= 0 else 'start'} marker after it; fix or remove it")
    if not body:
        return section + lb
    if body.endswith(lb + lb) or body == lb:
        sep = ""
    elif body.endswith(lb):
        sep = lb
    else:
        sep = lb + lb
    return body + sep + section + lb


def update_model_card(model_dir: str | Path, report: TrustReport, *, report_path: str | None = None) -> Path:
    """Write ``report``'s scores into ``model_dir/README.md`` (created when absent) and return
    its path: hub ``model-index`` eval results and a generated Markdown section. Bad input (not
    a folder, a README that is not UTF-8, too large, a symlink out of the folder, or has malformed
    front matter) is a one-line :class:`~trustslm.core.errors.BadInputError`."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        what = "does not exist" if not model_dir.exists() else "is not a folder"
        raise BadInputError(f"model folder {model_dir} {what}")
    target, old = _read_card(model_dir)
    readme = model_dir / CARD_NAME
    text = old or ""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    text = text[len(bom):]
    from huggingface_hub.repocard import _detect_line_ending

    lb = _detect_line_ending(text) or "\n"
    card, has_front = _parse(readme, text, lb)
    data = card.data
    original_keys = list(card._original_order)

    ours = _eval_results(report)
    kept = [r for r in (data.eval_results or []) if r.source_name != SOURCE_NAME]
    results = kept + ours
    if results:
        data.eval_results = results
        data.model_name = data.model_name or model_dir.resolve().name or "model"
    else:
        data.eval_results = None
        if "model_name" not in original_keys:
            data.model_name = None

    card.text = _new_body(readme, card.text, _section(report, report_path).replace("\n", lb), lb)
    if not has_front and not data.to_dict():
        new = bom + card.text
    else:
        new = bom + card.content
    if new == old:
        return readme
    _write_card(readme, target, new.encode("utf-8"), keep_mode=old is not None)
    return readme


def _write_card(readme: Path, target: Path, payload: bytes, *, keep_mode: bool) -> None:
    """Replace ``target`` through an exclusively created, unpredictably named temporary file in
    its folder (:func:`~trustslm.core.atomic.write_atomic`): the model folder is untrusted, and a
    symlink planted at a predictable temporary name would redirect the write anywhere."""
    from trustslm.core.atomic import write_atomic

    try:
        mode = stat.S_IMODE(os.stat(target).st_mode) if keep_mode else None
        write_atomic(target, payload, mode=mode)
    except OSError as exc:
        raise BadInputError(f"can't write {readme}: {exc.strerror or exc}") from None
