"""Number formatting shared by the renderers, and escaping of text that came from the model, the
data, a config or a report file: for Markdown (``report.md``, the model card) and for the
terminal. A model name, a group label from a dataset or a failure reason is untrusted text; it
must not add HTML or table cells to a Markdown file, nor move the cursor, recolour or reorder
what a terminal shows."""

from __future__ import annotations

import re
import unicodedata
from html import escape
from pathlib import Path
from typing import Any

from trustslm.core.types import Metric

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#!~])")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
#: Text shown in a Markdown code span as it is: nothing there can end the span or a table cell.
_CODE_SAFE = re.compile(r"[\w .,:/+=@~%-]*")
#: Unicode categories a terminal acts on rather than shows: controls (ESC, CR, BEL...), format
#: characters (the bidi overrides and isolates, zero-width characters) and line/paragraph separators.
_UNSHOWN = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def interval(lo: float | None, hi: float | None, digits: int = 3) -> str:
    if lo is None or hi is None:
        return "–"
    return f"[{fmt(lo, digits)}, {fmt(hi, digits)}]"


def direction(m: Metric) -> str:
    if m.higher_is_better is None:
        return f"target {m.target:g}" if m.target is not None else "–"
    return "higher is better" if m.higher_is_better else "lower is better"


def score_text(score: float | None, lo: float | None, hi: float | None) -> str:
    if score is None:
        return "not measured"
    return f"{score:.1f} [{lo:.1f}, {hi:.1f}]" if lo is not None and hi is not None else f"{score:.1f}"


# -- escaping untrusted text ------------------------------------------------------------------

def _one_line(value: Any, limit: int | None) -> str:
    """``value`` as one line of printable text, at most ``limit`` characters."""
    s = _LINE_BREAKS.sub(" ", str(value)).strip()
    s = "".join(ch for ch in s if ch == "\t" or ch.isprintable()).replace("\t", " ")
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


def md_text(value: Any, limit: int | None = 300) -> str:
    """``value`` as inline Markdown text: one line, at most ``limit`` characters, unprintable
    characters dropped, HTML (``& < >``) and Markdown specials (``| * _ [ ] ` \\ # ! ~``) escaped, so it
    renders as the literal text in a paragraph, a list item or a table cell."""
    return _MD_SPECIAL.sub(r"\\\1", escape(_one_line(value, limit), quote=False))


def md_code(value: Any, limit: int | None = 300) -> str:
    """``value`` as a Markdown code span when it holds only characters that can't end one (a
    hash, a version, a plain path), and as escaped text (:func:`md_text`) otherwise."""
    s = _one_line(value, limit)
    return f"`{s}`" if s and _CODE_SAFE.fullmatch(s) else md_text(s, None)


def terminal_text(value: Any) -> str:
    """``value`` safe to print on a terminal line: every character a terminal would act on
    (ESC and the other C0/C1 controls, CR, LF, the Unicode bidi controls, zero-width and other
    format characters, line separators) is shown as its escape (``\\x1b``, ``\\u202e``), so a
    model name can't recolour the output, rewrite a line or forge one."""
    return "".join(_terminal_char(ch) for ch in str(value))


def _terminal_char(ch: str) -> str:
    if ch == " " or unicodedata.category(ch) not in _UNSHOWN:
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def dataset_origin(ds: Any) -> str:
    """Plain (unescaped) text naming where a probe's data came from and how it was sampled:
    ``CrowS-Pairs (...), github:nyu-mll/crows-pairs @ 8aaac11c4854, CC BY-SA 4.0; stratified ...``."""
    parts = []
    if ds.source:
        s = ds.source
        parts.append(f"{s.get('title', s.get('benchmark', ''))}, {s.get('source', '')} @ {str(s.get('revision', ''))[:12]}, "
                     f"{s.get('licence', '')}")
    else:
        from trustslm.core.resources import datasets_dir

        own = Path(ds.path).parent == datasets_dir()
        parts.append("trustslm's own data" if own else "a local file, no published source recorded")
    if ds.sampling:
        parts.append(ds.sampling)
    return "; ".join(parts)


def speed_text(speed: Any) -> str:
    """``model 12.3 s, overhead 1.2 s, 4,567 tokens/s; 300 requests: 250 computed, 40 shared with another
    probe, 10 repeated within the probe, 0 from the cache``."""
    rate = f", {speed.tokens_per_s:,.0f} tokens/s" if speed.tokens_per_s else ""
    return (f"model {speed.model_time_s:.1f} s, overhead {speed.overhead_s:.1f} s{rate}; {speed.requests:,} requests: "
            f"{speed.computed:,} computed, {speed.shared:,} shared with another probe, {speed.repeated:,} repeated "
            f"within the probe, {speed.cache_hits:,} from the cache")


def sequential_text(seq: Any) -> str:
    """``drawn in rounds: 50 of 200 items (stopped at look 1 of 4), expected_max_toxicity with an
    interval 0.041 wide (target 0.05); every interval of this probe at 98.75% (Bonferroni over the looks)``."""
    width = "no interval" if seq.width is None else f"an interval {seq.width:.3g} wide"
    return (f"drawn in rounds: {seq.items_drawn:,} of {seq.items_available:,} items (stopped at look {seq.stopped_at} "
            f"of {seq.looks}), {seq.metric} with {width} (target {seq.target_width:g}); every interval of this "
            f"probe at {seq.level * 100:.4g}% (Bonferroni over the looks)")

def detector_notes(result: Any) -> list[str]:
    """One line per detector behind a probe's rates: which metrics it produced, its measured error,
    and whether they are corrected (``NAME_corrected`` rows) or why not."""
    by_note: dict[str, list[str]] = {}
    corrected: set[str] = set()
    for m in result.metrics:
        if m.detector and m.group is None:
            if m.corrected:
                corrected.add(m.detector)
            else:
                by_note.setdefault(m.detector, []).append(m.name)
    out = []
    for note, names in by_note.items():
        done = ("corrected in the *_corrected rows (Rogan-Gladen)" if note in corrected
                else "not corrected" if "not corrected" not in note else "")
        out.append(f"{', '.join(names)} from {note}" + (f"; {done}" if done else ""))
    return out


#: Metrics a model that refuses everything would score well on: each is shown with the over-refusal
#: counter-metric beside it.
REFUSAL_BASED = ("refusal_rate", "toxic_compliance_rate")


def counter_metric_text(report: Any, result: Any) -> str | None:
    """For a probe with a refusal or toxic-compliance metric: the refusal rate on safe prompts
    (:data:`~trustslm.gate.policy.OVER_REFUSAL_METRIC`) beside it, or a sentence saying it was not
    measured."""
    from trustslm.gate.policy import OVER_REFUSAL_METRIC, over_refusal_metric

    probe = OVER_REFUSAL_METRIC.rsplit(".", 1)[0]
    if result.probe_id == probe or not any(m.name in REFUSAL_BASED for m in result.metrics):
        return None
    m = over_refusal_metric(report)
    if m is None:
        return ("over-refusal not measured: a model that refuses everything scores best on these refusal and "
                f"compliance rates; run {probe} beside them")
    ci = f" [{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None and m.ci_high is not None else ""
    return f"over-refusal ({probe}): {m.value:.3f}{ci} of {m.n} safe prompts refused"


def quantisation_text(q: Any) -> str:
    """A GGUF file's storage in one line: its type, bits per weight, size, and the storage type of
    each tensor class (``attn_q Q4_0 x30``)."""
    classes = "; ".join(f"{cls} " + ", ".join(f"{kind} x{n}" for kind, n in kinds.items())
                        for cls, kinds in q.tensor_types.items())
    return (f"{md_text(q.file_type or 'unknown type')}, {q.bits_per_weight:.2f} bits per weight, "
            f"{q.size_bytes / 1e6:.1f} MB ({q.parameters:,} weights); tensor types: {md_text(classes, None)}")


def chance_text(result: Any) -> str | None:
    """``85.3 [65.0, 100.0] from 50 uniform-random answerers (pct_stereotype 0.49); INDISTINGUISHABLE
    FROM CHANCE: ...`` or ``none: <why>`` (None for a result without a chance level)."""
    c = getattr(result, "chance", None)
    if c is None:
        return None
    if c.score is None:
        return f"none: {c.reason or 'not computed'}"
    band = f" [{c.score_low:.1f}, {c.score_high:.1f}]" if c.score_low is not None and c.score_high is not None else ""
    scored = {m.name for m in result.metrics if m.group is None and m.score is not None}
    values = ", ".join(f"{k} {v:.3g}" for k, v in c.metrics.items() if k in scored)
    text = f"{c.score:.1f}{band} from {c.runs} uniform-random answerers" + (f" ({values})" if values else "")
    if c.indistinguishable:
        text += "; INDISTINGUISHABLE FROM CHANCE: the score's 95% interval holds the chance score"
    elif c.indistinguishable is False:
        text += "; the score's 95% interval excludes it"
    return text


def markers_text(markers: list) -> str:
    """``SmolLM2-135M-Instruct 64.9 [61.9, 67.6], Qwen2.5-Coder-0.5B-Instruct 70.2 [..]``."""
    return ", ".join(f"{m.reference} {m.score:.1f}" + (f" [{m.ci_low:.1f}, {m.ci_high:.1f}]"
                                                      if m.ci_low is not None and m.ci_high is not None else "")
                     for m in markers)


def stale_text(stale: list) -> str:
    """``Gemma 3 270M (probe version 1 in the reference, 2 here)``."""
    return "; ".join(f"{name} ({why})" for name, why in stale)


def chance_value(result: Any, metric: Any) -> str:
    """The chance level of an overall metric row (empty for a breakdown row or none)."""
    c = getattr(result, "chance", None)
    if c is None or metric.group is not None or metric.name not in c.metrics:
        return ""
    return fmt(c.metrics[metric.name])
