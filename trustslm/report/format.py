"""Number formatting shared by the renderers."""

from __future__ import annotations

from trustslm.core.types import Metric


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
