"""``trustslm variants``: build compressed variants of a model, audit the reference and every
variant with the same probes, data, options and seed, and measure what each variant lost.

Steps, all sequenced here:

1. check every input that can be wrong (quantisation types, the pruning share, the variant files
   given with ``--variant``, the output folder, the policy) before anything is built;
2. the *reference*: a full-precision GGUF file. A Hugging Face folder is converted with llama.cpp's
   converter at float32 (:mod:`trustslm.compress.convert`); a GGUF file stored at F32, F16 or BF16 is
   its own reference; a quantised GGUF file (the demo's Q4_1) is dequantised to F32 by llama.cpp's
   quantiser, so the reference's weights are its dequantised weights, and the file itself is
   audited as the variant ``source-TYPE``;
3. the variants: each ``--quant`` type quantised from the reference by llama.cpp's quantiser
   (:mod:`trustslm.compress.quantize`), ``--prune`` magnitude-pruned from it
   (:mod:`trustslm.compress.prune`), and the files given, whose tokenizer must be the reference's;
4. the audits (:func:`trustslm.workflows.audit.audit`), one after the other, all on one backend
   (llama.cpp by default: the kernels the files ship with). Every request is cached under the
   file's hash, and llama.cpp's quantiser writes the same bytes again, so ``resume`` (``--resume``)
   after an interruption rebuilds the files and takes the finished requests from the cache;
5. per variant against the reference: every score with its paired-bootstrap interval
   (:func:`trustslm.gate.compare.compare`), the flipped outcomes (:mod:`trustslm.gate.flips`), and the
   gate's regression rules when a policy is given (:func:`trustslm.gate.release.apply_gate`).

What it writes into ``out``: ``models/`` (the files built), ``reports/NAME/`` (each audit's report
files, the reference's included), ``variants.json`` (:class:`VariantsRun`), ``variants.md``,
``variants.html`` (scores against bits per weight, flip rates), and with a policy
``gate.junit.xml`` and ``gate.sarif``. A variant whose audit fails is kept with the reason, and the
others go on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trustslm.core.errors import BadInputError, TrustSLMError
from trustslm.core.registry import Registry
from trustslm.core.types import DIMENSIONS, GateResult, Quantisation, TrustReport
from trustslm.gate.flips import DimensionFlips, ProbeOutcomes

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_QUANTS = ("Q8_0", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K")
REFERENCE = "reference"


class ScoreChange(BaseModel):
    """A dimension's (or the overall) score of a variant against the reference's."""

    model_config = ConfigDict(frozen=True)
    target: str
    reference: float | None
    variant: float | None
    variant_ci: tuple[float | None, float | None] = (None, None)
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    verdict: str
    reason: str | None = None


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    how: str = Field(description="How the file was made: quantised, pruned, given, converted.")
    path: str
    sha256: str | None = Field(default=None, description="The file's sha256, as its audit hashed it.")
    quantisation: Quantisation | None = None
    report: str | None = None
    status: str = Field(default="ok", description="ok, or failed (with the reason)")
    reason: str | None = None
    wall_time_s: float | None = None
    tokens_per_s: float | None = Field(default=None, description="Tokens read and written per second of model time.")
    scores: list[ScoreChange] = Field(default_factory=list)
    metric_changes: list[ScoreChange] = Field(
        default_factory=list, description="Each scored metric of each probe (overall rows): reference, variant, the "
                                          "paired-bootstrap interval of the change and its verdict.")
    outcomes: list[ProbeOutcomes] = Field(default_factory=list)
    dimension_flips: list[DimensionFlips] = Field(default_factory=list)
    flagged_probes: list[str] = Field(default_factory=list, description="Probes where a unit value, a sample or an "
                                                                          "outcome differs from the reference's.")
    gate: GateResult | None = None


class VariantsRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: dict[str, Any]
    reference: Variant
    variants: list[Variant]
    backend: str
    probes: list[str] | None
    seed: int
    limit: int | None
    quick: bool
    suite: str | None
    notes: list[str] = Field(default_factory=list)
    gate_passed: bool | None = None


def parse_variant_args(items: list[str] | None) -> dict[str, Path]:
    """``NAME=PATH`` pairs (``--variant``), names checked."""
    out: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise BadInputError(f"--variant {item!r}: give NAME=PATH (a GGUF file)")
        _check_name(name)
        if name in out:
            raise BadInputError(f"--variant {name} is given twice")
        out[name] = Path(path)
    return out


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name == REFERENCE or name.startswith("source-"):
        raise BadInputError(f"variant name {name!r}: use letters, digits, '.', '_' and '-' (not 'reference', and "
                            "not starting with 'source-', which names a quantised source file)")


def _prune_name(amount: float) -> str:
    return f"pruned-{round(amount * 100):d}"


def variants(
    model: str | Path,
    *,
    out: str | Path,
    quant: list[str] | tuple[str, ...] | None = DEFAULT_QUANTS,
    prune: float | None = None,
    given: dict[str, str | Path] | None = None,
    probes: list[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    limit: int | None = None,
    quick: bool = False,
    suite: str | Path | None = None,
    data_dir: str | Path | None = None,
    policy: str | Path | Any | None = None,
    backend: str = "llama.cpp",
    batch_size: int | None = None,
    cache_dir: str | Path | None = None,
    allow_pickle: bool = False,
    resume: bool = False,
    progress: bool = True,
    registry: Registry | None = None,
) -> VariantsRun:
    """Build, audit and compare the variants of ``model``; see the module docstring."""
    from trustslm.compress.quantize import quant_type
    from trustslm.gate.policy import policy_arg
    from trustslm.models.validate import check_gguf
    from trustslm.report.files import check_out_dir

    registry = registry or Registry()
    quants = list(dict.fromkeys(quant_type(q) for q in (quant or [])))
    if prune is not None and not 0 < prune < 1:
        raise BadInputError(f"--prune {prune:g}: give the share of weights to remove, between 0 and 1 (e.g. 0.5)")
    files = {name: Path(p) for name, p in (given or {}).items()}
    for name, path in files.items():
        _check_name(name)
        if not path.is_file() or path.suffix.lower() != ".gguf":
            raise BadInputError(f"--variant {name}={path}: not a .gguf file")
        check_gguf(path)
    names = [*quants, *([_prune_name(prune)] if prune is not None else []), *files]
    if len(set(names)) != len(names):
        raise BadInputError("two variants have the same name")
    if not names:
        raise BadInputError("no variant to build: give --quant, --prune or --variant")
    if limit is not None and limit < 1:
        raise BadInputError("limit must be at least 1")
    out = Path(out)
    check_out_dir(out)
    if out.exists() and any(out.iterdir()):
        raise BadInputError(f"output folder is not empty: {out}")
    gate_policy = policy_arg(policy)
    if probes:
        registry.select(probes)  # an unknown probe is an error before anything is built
    made_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    try:  # nothing is measured until the audits: a failure here leaves no half-made folder
        (out / "models").mkdir(exist_ok=True)
        reference, source_variant = _reference(str(model), out / "models", allow_pickle, progress, notes)
        built: list[Variant] = [source_variant] if source_variant is not None else []
        _check_tokenizers(reference, files)
        for q in quants:
            _say(progress, f"quantising the reference to {q}")
            built.append(_quantised(reference, q, out / "models"))
        if prune is not None:
            _say(progress, f"pruning {prune:.0%} of the reference's block weights by magnitude")
            built.append(_pruned(reference, prune, out / "models"))
        for name, path in files.items():
            built.append(_described(name, f"given ({path})", path))
    except BaseException:
        from trustslm.workflows.mitigate import remove_half_made

        remove_half_made(out, remove_folder=made_out)
        raise

    audit_args = {"probes": probes, "options": options, "seed": seed, "limit": limit, "quick": quick, "suite": suite,
                  "data_dir": data_dir, "backend": backend, "cache_dir": cache_dir, "progress": progress, "resume": resume,
                  "registry": registry, **({"batch_size": batch_size} if batch_size else {})}
    run = VariantsRun(
        source={"spec": str(model)}, reference=reference, variants=built, backend=backend, probes=probes, seed=seed,
        limit=limit, quick=quick, suite=str(suite) if suite is not None else None, notes=notes)
    _say(progress, f"auditing the reference ({reference.path})")
    ref_report = _audit(reference, out / "reports" / REFERENCE, audit_args, keep_going=False)
    assert ref_report is not None
    try:
        for i, v in enumerate(built, 1):
            _say(progress, f"auditing variant {i}/{len(built)}: {v.name}")
            report = _audit(v, out / "reports" / v.name, audit_args)
            if report is not None:
                _compare(v, ref_report, report, registry, gate_policy, out / "reports" / v.name)
    finally:  # an interruption keeps what was measured: the variants not audited say so
        for v in built:
            if v.report is None and v.status == "ok":
                v.status, v.reason = "failed", "not audited (the run was interrupted)"
        if gate_policy is not None:
            run.gate_passed = all(v.gate is not None and v.gate.passed for v in built)
        _write(run, out)
    return run


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"trustslm variants: {text}", file=sys.stderr, flush=True)


def _described(name: str, how: str, path: Path) -> Variant:
    from trustslm.models.gguf_info import describe_gguf

    return Variant(name=name, how=how, path=str(path), quantisation=describe_gguf(path))


def _reference(model: str, models: Path, allow_pickle: bool, progress: bool,
               notes: list[str]) -> tuple[Variant, Variant | None]:
    """The full-precision reference, and the source file as a variant when it is quantised."""
    from trustslm.compress.quantize import FULL_PRECISION, quantize_gguf
    from trustslm.models import demo
    from trustslm.models.gguf_info import describe_gguf
    from trustslm.models.validate import inspect_model_path

    path = demo.locate_demo_gguf() if demo.is_demo_name(model) and not Path(model).exists() else Path(model)
    layout = inspect_model_path(path, allow_pickle=allow_pickle)
    if layout.kind == "hf":
        from trustslm.compress.convert import hf_to_gguf

        _say(progress, f"converting {path} to a float32 GGUF file with llama.cpp's converter")
        dest = hf_to_gguf(path, models / "reference-F32.gguf", allow_pickle=allow_pickle)
        return _described(REFERENCE, f"{path} converted to GGUF at F32 by llama.cpp's convert_hf_to_gguf.py", dest), None
    assert layout.gguf_file is not None
    gguf = layout.gguf_file
    info = describe_gguf(gguf)
    if info.file_type in FULL_PRECISION:
        return _described(REFERENCE, f"{gguf} as given ({info.file_type})", gguf), None
    _say(progress, f"dequantising {gguf.name} ({info.file_type}) to F32 as the reference")
    dest = quantize_gguf(gguf, models / "reference-F32.gguf", "F32")
    notes.append(f"{gguf.name} ships quantised ({info.file_type}): the reference is its weights dequantised to F32, "
                 f"and the file itself is the variant source-{info.file_type}")
    ref = _described(REFERENCE, f"{gguf} ({info.file_type}) dequantised to F32 by llama.cpp's quantiser", dest)
    return ref, _described(f"source-{info.file_type}", f"the file given ({gguf})", gguf)


def _check_tokenizers(reference: Variant, files: dict[str, Path]) -> None:
    from trustslm.models.gguf_info import tokenizer_fingerprint

    want = tokenizer_fingerprint(reference.path)
    for name, path in files.items():
        if tokenizer_fingerprint(path) != want:
            raise BadInputError(f"--variant {name}={path}: its tokenizer differs from the reference's "
                                "(tokenizer.ggml.* metadata), so the two can't be compared item by item")


def _quantised(reference: Variant, qtype: str, models: Path) -> Variant:
    from trustslm.compress.quantize import quantize_gguf

    dest = quantize_gguf(reference.path, models / f"{qtype}.gguf", qtype)
    return _described(qtype, f"the reference quantised to {qtype} by llama.cpp's quantiser (no importance matrix)", dest)


def _pruned(reference: Variant, amount: float, models: Path) -> Variant:
    from trustslm.compress.prune import prune_gguf

    name = _prune_name(amount)
    dest = models / f"{name}.gguf"
    stats = prune_gguf(reference.path, dest, amount)
    return _described(name, f"the reference with {amount:.0%} of each block linear layer's weights zeroed by magnitude "
                            f"(torch L1Unstructured, layer-wise; {stats['zero_share']:.1%} zeros in those layers)", dest)


def _audit(v: Variant, out: Path, args: dict[str, Any], *, keep_going: bool = True) -> TrustReport | None:
    """The file's audit; with ``keep_going``, a failure gives None with ``v`` marked failed (the
    other variants go on)."""
    import time

    from trustslm.workflows.audit import audit

    started = time.perf_counter()
    try:
        report = audit(v.path, out=out, **args)
    except TrustSLMError as exc:
        if not keep_going:
            raise
        v.status, v.reason = "failed", str(exc)
        return None
    v.wall_time_s = round(time.perf_counter() - started, 1)
    v.report = str(out / "report.json")
    v.sha256 = report.model.files[0].sha256 if report.model.files else None  # hashed once, by the audit
    tokens = sum((r.speed.tokens if r.speed else 0) for r in report.results)
    seconds = sum((r.speed.model_time_s if r.speed else 0.0) for r in report.results)
    v.tokens_per_s = round(tokens / seconds, 1) if seconds > 0 else None
    v.scores = [_own_score(report, d) for d in (*DIMENSIONS, "overall")]
    return report


def _own_score(report: TrustReport, target: str) -> ScoreChange:
    s = report.overall if target == "overall" else report.dimensions[target]
    return ScoreChange(target=target, reference=None, variant=s.score, variant_ci=(s.ci_low, s.ci_high),
                       verdict="reference")


def _compare(v: Variant, ref: TrustReport, report: TrustReport, registry: Registry, gate_policy, out: Path) -> None:
    from trustslm.gate.compare import compare
    from trustslm.gate.flips import dimension_flips, paired_outcomes

    diff = compare(ref, report, registry=registry, targets={"overall", *DIMENSIONS})
    rows = []
    for s in v.scores:
        try:
            c = diff.find(s.target)
        except KeyError:
            rows.append(s.model_copy(update={"verdict": "not measured"}))
            continue
        rows.append(s.model_copy(update={"reference": c.old, "difference": c.difference, "ci_low": c.ci_low,
                                          "ci_high": c.ci_high, "verdict": c.verdict, "reason": c.reason}))
    v.scores = rows
    v.metric_changes = [
        ScoreChange(target=c.target, reference=c.old, variant=c.new, difference=c.difference, ci_low=c.ci_low,
                    ci_high=c.ci_high, verdict=c.verdict, reason=c.reason)
        for c in diff.changes if c.level == "metric" and "[" not in c.target and c.ci_low is not None]
    v.outcomes = paired_outcomes(ref, report, registry=registry)
    v.dimension_flips = dimension_flips(v.outcomes)
    v.flagged_probes = [o.probe_id for o in v.outcomes if o.flagged]
    if gate_policy is not None:
        from trustslm.gate.release import apply_gate
        from trustslm.report.files import write_outputs

        pol, path, digest = gate_policy
        gated = apply_gate(report, pol, baseline=ref, policy_path=path, policy_sha256=digest,
                           baseline_path=str(out.parent / REFERENCE / "report.json"), registry=registry)
        v.gate = gated.gate
        write_outputs(gated, out)  # the variant's report files carry its gate
        from trustslm.report.junit import render_junit
        from trustslm.report.sarif import render_sarif

        (out / "gate.junit.xml").write_text(render_junit(gated), encoding="utf-8")
        (out / "gate.sarif").write_text(render_sarif(gated), encoding="utf-8")


def _write(run: VariantsRun, out: Path) -> None:
    from trustslm.report.variants import (
        render_variants_html,
        render_variants_junit,
        render_variants_markdown,
        render_variants_sarif,
    )

    (out / "variants.json").write_text(run.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / "variants.md").write_text(render_variants_markdown(run), encoding="utf-8")
    (out / "variants.html").write_text(render_variants_html(run), encoding="utf-8")
    if run.gate_passed is not None:
        (out / "gate.junit.xml").write_text(render_variants_junit(run, out / "reports"), encoding="utf-8")
        (out / "gate.sarif").write_text(render_variants_sarif(run, out / "reports"), encoding="utf-8")
