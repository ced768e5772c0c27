"""Where a score stands: the reference models shipped with trustslm, and whether they are
comparable with a report, probe by probe.

A reference is a real model audited with the default profile by ``bench/references.py`` and
shipped in ``reference_audits/NAME/`` (its ``report.json`` without samples, its unit tables, and
``reference.json``: the model, size, backend, command, audit time, trustslm version and commit).

A reference's probe result is *comparable* with a report's when both ran the probe with the same
version and options on the same data (each dataset's sha256 and the number of items used): only
then is the reference's score a marker on the report's bar. Where the probe is in both but any of
these differ, the reference is *stale* for that probe and is named as such, not compared.
:func:`stale_probes` checks a reference against what the installed trustslm would run by default
(``bench/references.py --check``; ``tests/test_references.py`` fails on a stale reference that is
not marked).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from trustslm.core.errors import BadInputError
from trustslm.core.limits import MAX_REPORT_SIDE_FILE_BYTES
from trustslm.core.registry import Registry
from trustslm.core.types import ProbeResult, ScoringInfo, TrustReport

#: The shipped reference audits, one folder per model.
REFERENCE_DIR = Path(__file__).resolve().parent / "reference_audits"

@dataclass(frozen=True)
class Reference:
    """One shipped reference audit."""

    name: str
    meta: dict[str, Any]
    report: TrustReport
    path: Path
    #: Probes whose shipped result the maintainers marked stale (with why), from reference.json.
    marked_stale: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return str(self.meta.get("model") or self.name)

    @property
    def parameters(self) -> int | None:
        p = self.meta.get("parameters")
        return int(p) if isinstance(p, int) else None

    def result(self, probe_id: str) -> ProbeResult | None:
        for r in self.report.results:
            if r.probe_id == probe_id and r.status == "ok":
                return r
        return None


def load_references(folder: Path | None = None) -> list[Reference]:
    """Every reference in ``folder`` (default: the shipped ones), smallest model first. Read once
    per state of the files (every report rendered sets its scores beside them)."""
    folder = folder or REFERENCE_DIR
    if not folder.is_dir():
        return []
    subs = sorted(p for p in folder.iterdir() if p.is_dir())
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size)
                  for sub in subs for f in (sub / "reference.json", sub / "report.json") if f.is_file())
    return list(_load_references(str(folder), stamp))


@lru_cache(maxsize=8)
def _load_references(folder_name: str, stamp: tuple) -> tuple[Reference, ...]:
    del stamp  # part of the cache key only: a changed file is read again
    folder = Path(folder_name)
    refs = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        meta_file = sub / "reference.json"
        if not meta_file.is_file() or meta_file.stat().st_size > MAX_REPORT_SIDE_FILE_BYTES:
            raise BadInputError(f"{sub}: a reference needs a reference.json (at most {MAX_REPORT_SIDE_FILE_BYTES} bytes)")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadInputError(f"{meta_file}: not JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise BadInputError(f"{meta_file}: expected a JSON object")
        report = TrustReport.load(sub / "report.json")
        refs.append(Reference(name=sub.name, meta=meta, report=report, path=sub,
                              marked_stale=dict(meta.get("marked_stale") or {})))
    return tuple(sorted(refs, key=lambda r: (r.parameters or 0, r.name)))


def why_not_comparable(reference: ProbeResult, result: ProbeResult, registry: Registry | None = None) -> str | None:
    """Why a reference's result for a probe can't be set beside ``result`` (None when it can): the
    checks of the gate's pairing (:mod:`trustslm.gate.compare`), units aside."""
    from trustslm.gate.compare import data_key, options_differ

    if reference.version != result.version:
        return f"probe version {reference.version} in the reference, {result.version} here"
    if data_key(reference) != data_key(result):
        return "other data (the datasets' sha256 or the items used differ)"
    try:
        diff = options_differ(reference, result, registry or Registry())
    except (BadInputError, ImportError):
        return f"probe kind {result.kind} is not installed here"
    if diff:
        return f"other options ({', '.join(diff)})"
    return None


def other_scoring(a: ScoringInfo, b: ScoringInfo) -> str | None:
    """Why two reports' scores were not made alike (None when they were): the normaliser, the
    interval method or the confidence level differ (another trustslm scored one of them)."""
    if (a.normaliser, a.interval, a.confidence_level) != (b.normaliser, b.interval, b.confidence_level):
        return "scored by another normaliser or interval method (another trustslm version)"
    return None


@dataclass(frozen=True)
class Marker:
    """One reference's score for a probe or dimension, set beside a report's."""

    reference: str
    parameters: int | None
    score: float
    ci_low: float | None
    ci_high: float | None


@dataclass
class Standing:
    """The references comparable with a report: per probe and per dimension, and the stale ones."""

    probes: dict[str, list[Marker]] = field(default_factory=dict)
    dimensions: dict[str, list[Marker]] = field(default_factory=dict)
    #: probe id -> [(reference, why)] for references that ran the probe differently.
    stale: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)

    def sizes_text(self, markers: list[Marker]) -> str:
        """``3 references (135M-1.5B parameters)``."""
        sizes = sorted(m.parameters for m in markers if m.parameters)
        n = len(markers)
        what = f"{n} reference{'s' if n != 1 else ''}"
        if not sizes:
            return what
        lo, hi = human_size(sizes[0]), human_size(sizes[-1])
        return f"{what} ({lo} parameters)" if lo == hi else f"{what} ({lo}-{hi} parameters)"


def human_size(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def standing(report: TrustReport, references: list[Reference] | None = None) -> Standing:
    """Where ``report`` stands against ``references`` (default: the shipped ones).

    A probe's marker is the reference's probe score where the probe is comparable
    (:func:`why_not_comparable`). A dimension's marker is the reference's dimension score only
    where every probe of that dimension in the report is comparable with the reference and the
    reference's dimension is made of the same probes; otherwise the reference is left off that
    dimension (its probes' rows say why)."""
    refs = load_references() if references is None else references
    out = Standing(references=refs)
    registry = Registry()  # one for all the comparisons: it loads each probe kind once
    ours = {r.probe_id: r for r in report.results if r.status == "ok" and r.score is not None}
    for ref in refs:
        comparable: set[str] = set()
        method = other_scoring(ref.report.scoring, report.scoring)
        for pid, result in ours.items():
            theirs = ref.result(pid)
            if theirs is None or theirs.score is None:
                continue
            why = method or why_not_comparable(theirs, result, registry)
            if why is None and pid in ref.marked_stale:
                why = f"marked stale: {ref.marked_stale[pid]}"
            if why:
                out.stale.setdefault(pid, []).append((ref.label, why))
                continue
            comparable.add(pid)
            out.probes.setdefault(pid, []).append(
                Marker(ref.label, ref.parameters, theirs.score.score, theirs.score.ci_low, theirs.score.ci_high))
        for dim, ds in report.dimensions.items():
            theirs_dim = ref.report.dimensions.get(dim)
            if ds.status != "measured" or theirs_dim is None or theirs_dim.status != "measured":
                continue
            if sorted(ds.probes) != sorted(theirs_dim.probes) or not set(ds.probes) <= comparable:
                continue
            assert theirs_dim.score is not None
            out.dimensions.setdefault(dim, []).append(
                Marker(ref.label, ref.parameters, theirs_dim.score, theirs_dim.ci_low, theirs_dim.ci_high))
    return out


def standing_summary(st: Standing, report: TrustReport) -> str:
    """One paragraph: which references the scores are set against, and where they are stale."""
    scored = [r.probe_id for r in report.results if r.status == "ok" and r.score is not None]
    if not st.references:
        return "Reference models: none installed."
    markers = {m.reference: m for ms in st.probes.values() for m in ms}  # one per reference
    sizes = st.sizes_text(list(markers.values())) if markers else "no reference"
    on = sum(1 for p in scored if st.probes.get(p))
    text = (f"Reference models (real models audited by trustslm with the default profile, shipped with it): {sizes} "
            f"comparable on {on} of {len(scored)} scored probes (same probe version, options and data).")
    if st.stale:
        text += f" Not compared, as stale (the probe ran differently): {', '.join(sorted(st.stale))}."
    return text


def stale_probes(reference: Reference, registry: Registry | None = None) -> dict[str, str]:
    """The probes for which ``reference`` is not what the installed trustslm runs by default
    (version, options under the default suite, data, or the scoring method), with why; probes it
    lacks or that the default run skips are not listed."""
    from trustslm.core.hashing import sha256_file
    from trustslm.core.resources import datasets_dir
    from trustslm.engine.run import plan
    from trustslm.engine.suites import DEFAULT_SUITE, load_suite, suite_probe_ids
    from trustslm.gate.compare import options_differ
    from trustslm.scoring.aggregate import scoring_info

    registry = registry or Registry()
    suite = load_suite(DEFAULT_SUITE)
    in_suite = suite_probe_ids(registry, suite)
    method = other_scoring(reference.report.scoring, scoring_info(reference.report.scoring.bootstrap_resamples))
    out: dict[str, str] = {}
    for result in reference.report.results:
        if result.status != "ok":
            continue
        if method:
            out[result.probe_id] = method
            continue
        if result.probe_id not in registry.specs:
            out[result.probe_id] = "no longer installed"
            continue
        if result.probe_id not in in_suite:
            out[result.probe_id] = f"not in the default suite ({suite.label})"
            continue
        spec = registry.specs[result.probe_id]
        if spec.version != result.version:
            out[result.probe_id] = f"probe version {result.version} in the reference, {spec.version} installed"
            continue
        default = plan(registry, [result.probe_id], suite=suite)[0].probe.options.model_dump()
        diff = options_differ(result, result.model_copy(update={"options": default}), registry)
        if diff:
            out[result.probe_id] = f"default options changed ({', '.join(diff)})"
            continue
        for d in result.datasets:
            current = datasets_dir() / Path(d.path).name
            if current.is_file() and sha256_file(current) != d.sha256:
                out[result.probe_id] = f"data {current.name} changed (sha256)"
                break
    return out
