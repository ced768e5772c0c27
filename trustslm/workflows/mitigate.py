"""``trustslm mitigate``: apply mitigations, then audit the model before and after with the same
probes, options and seed, and measure what the change bought and what it cost.

Training mitigations retrain the model from the same base, data and settings its
``training_record.json`` names (a model ``trustslm finetune`` wrote). For a model without a
record, the *before* model is the given one fine-tuned plainly on ``--data`` with the same
settings, so that both sides saw the same training and differ only by the mitigation. All
training mitigations share one fine-tuning run. Decoding mitigations then wrap the result, in
the order given.

What it writes into ``out``: ``model/`` (the mitigated model: weights, and ``mitigation.json``
for decoding-time wrappers; ``trustslm audit out/model`` audits it), ``before/`` and
``after/`` (the two audit reports), ``diff.json`` (the paired comparison of every metric),
``utility/before/`` and ``utility/after/`` (the utility probes' reports, :mod:`trustslm.workflows.utility`),
``mitigation.md`` (targets, utility costs and steps at a glance) and ``mitigation_run.json``.
The probe options of both audits are those found beside the *before* model (its canaries, members
and training texts), so the privacy probes measure both models against the same ground truth.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.gate.compare import DEFAULT_COMPARE_RESAMPLES, compare
from trustslm.mitigations.base import (
    DecodingMitigation,
    Mitigation,
    NotApplicableError,
    StepRecord,
    TrainingMitigation,
)
from trustslm.workflows.audit import audit
from trustslm.workflows.discover import discover_options, options_from_training, training_inputs
from trustslm.workflows.retrain import train_mitigated
from trustslm.workflows.utility import HELDOUT_TEXT, QA_SET, UtilityChange


class MitigationRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: dict[str, Any] = Field(description="the model given: spec, name, hash")
    before_model: str = Field(description="the model audited as 'before' (the given one, or its plain fine-tune)")
    mitigated_model: str
    steps: list[StepRecord]
    probes: list[str]
    seed: int
    before_report: str
    after_report: str
    targets: list[dict[str, Any]] = Field(description="each targeted metric: before, after, change, interval, verdict")
    utility: list[UtilityChange]
    notes: list[str] = Field(default_factory=list)


def build(registry: Registry, names: list[str], options: dict[str, dict[str, Any]] | None) -> list[Mitigation]:
    options = dict(options or {})
    chosen = []
    for name in names:
        cls = registry.mitigation(name)
        chosen.append(cls(options.pop(name, {})))
    if options:
        raise BadInputError(f"options given for a mitigation not chosen: {', '.join(sorted(options))}")
    if len({m.name for m in chosen}) != len(chosen):
        raise BadInputError("a mitigation is named twice")
    return chosen


def _check_applicable(mitigations: list[Mitigation], adapter: Any, model: str) -> None:
    for m in mitigations:
        why = m.applicable(adapter)
        if why:
            raise NotApplicableError(f"{m.name} does not apply to {model}: {why}; nothing was changed")


def _training_plan(model: str, data: str | None, train_options: dict[str, Any] | None, notes: list[str]):
    """(base, data path, settings, whether a plain 'before' model must be trained, the base's recorded hash)."""
    from trustslm.core.hashing import sha256_file
    from trustslm.train.record import read_record

    record = read_record(Path(model)) if Path(model).is_dir() else None
    if record is None:
        if data is None:
            raise BadInputError(f"{model} has no training_record.json, so training mitigations need --data "
                                "(the before model is then MODEL fine-tuned plainly on it)")
        notes.append(f"{model} has no training record: the before model is it fine-tuned plainly on {data} "
                     "with the same settings")
        return model, Path(data), dict(train_options or {}), True, None
    base = (record.get("base_model") or {}).get("spec")
    recorded = (record.get("data") or {})
    from trustslm.models.demo import is_demo_name

    if not base or not (Path(base).exists() or is_demo_name(base)):
        raise BadInputError(f"the base model {base!r} named in {model}/training_record.json is not found")
    base_hash = (record.get("base_model") or {}).get("hash")
    config = dict(record.get("config") or {})
    config.update(train_options or {})
    if data is None:
        path = Path(str(recorded.get("path", "")))
        if not path.is_file():
            raise BadInputError(f"the training data {path} named in {model}/training_record.json is not found; "
                                "give it with --data")
        if recorded.get("sha256") and sha256_file(path) != recorded["sha256"]:
            raise BadInputError(f"the training data {path} has changed since {model} was trained (sha256 differs)")
        return base, path, config, False, base_hash
    notes.append(f"retrained on {data}, not on the data {model} was trained on ({recorded.get('path')})")
    return base, Path(data), config, False, base_hash


def mitigate(
    model: str | Path,
    names: list[str],
    *,
    out: str | Path,
    data: str | Path | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    probes: list[str] | None = None,
    probe_options: dict[str, dict[str, Any]] | None = None,
    train_options: dict[str, Any] | None = None,
    seed: int = 0,
    limit: int | None = None,
    quick: bool = False,
    utility_text: str = HELDOUT_TEXT,
    utility_qa: str = QA_SET,
    utility_qa_limit: int | None = None,
    allow_pickle: bool = False,
    batch_size: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    registry: Registry | None = None,
) -> MitigationRun:
    """Apply the mitigations ``names`` to ``model`` and audit before and after; see the module."""
    from trustslm.models.base import DEFAULT_BATCH_SIZE
    from trustslm.workflows.load import load_model

    registry = registry or Registry()
    if not names:
        raise BadInputError("name at least one mitigation (trustslm mitigations list)")
    mitigations = build(registry, names, options)
    if utility_qa_limit is not None and utility_qa_limit < 0:
        raise BadInputError("the QA limit must be at least 0")
    training = [m for m in mitigations if isinstance(m, TrainingMitigation)]
    decoding = [m for m in mitigations if isinstance(m, DecodingMitigation)]
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInputError(f"output folder is not empty: {out}")
    model = str(model)
    load = {"allow_pickle": allow_pickle, "batch_size": batch_size or DEFAULT_BATCH_SIZE,
            "cache_dir": Path(cache_dir) if cache_dir else None, "registry": registry}
    notes: list[str] = []
    if training and decoding and mitigations.index(decoding[0]) < mitigations.index(training[-1]):
        notes.append("training mitigations were applied before decoding ones, whatever the order given")

    given = load_model(model, **load)
    try:
        _check_applicable(mitigations, given, model)
        given_info = given.info()
    finally:
        given.close()
    plan = _training_plan(model, None if data is None else str(data), train_options, notes) if training else None
    if data is not None and not training:
        notes.append("--data is only used by training mitigations; none was chosen")
    if utility_qa_limit == 0:
        notes.append("QA accuracy was not measured (QA limit 0): the utility cost is perplexity only")

    made_out = not out.exists()  # an empty folder the user made is emptied on failure, never removed
    out.mkdir(parents=True, exist_ok=True)
    try:
        before_model, mitigated, steps = _apply(model, given_info, training, decoding, plan, out, load, progress)
        probe_ids = _probe_ids(registry, probes, mitigations, notes)
        shared = discover_options(before_model, registry=registry, probes=probe_ids)
        for pid, opts in (probe_options or {}).items():
            shared[pid] = {**shared.get(pid, {}), **opts}
        reports, utility_reports = {}, {}
        for side, spec in (("before", before_model), ("after", str(mitigated))):
            side_options = {k: dict(v) for k, v in shared.items()}
            if side == "after":
                # its own training record (epsilon and delta: the accountant's figure belongs to the model audited)
                own = {k: v for k, v in training_inputs(spec).items() if k == "training_record"}
                for pid, opts in options_from_training(registry, probe_ids, own).items():
                    if pid in side_options:
                        side_options[pid].update(opts)
            reports[side], utility_reports[side] = _audit_side(
                spec, probe_ids, side_options, out / side, seed=seed, limit=limit, quick=quick, load=load,
                progress=progress, utility=(utility_text, utility_qa, utility_qa_limit, out / "utility" / side))
        from trustslm.workflows.utility import compare_utility

        utility = compare_utility(utility_reports["before"], utility_reports["after"], seed=seed)
        diff = compare(reports["before"], reports["after"], resamples=DEFAULT_COMPARE_RESAMPLES, registry=registry)
        (out / "diff.json").write_text(diff.model_dump_json(indent=2) + "\n", encoding="utf-8")
        notes += _counter_rule_notes(diff)
        run = MitigationRun(
            model={"spec": model, "name": given_info.name, "hash": given_info.hash}, before_model=before_model,
            mitigated_model=str(mitigated), steps=steps, probes=probe_ids, seed=seed,
            before_report=str(out / "before" / "report.json"), after_report=str(out / "after" / "report.json"),
            targets=_target_rows(diff, mitigations, probe_ids), utility=utility, notes=notes)
        (out / "mitigation_run.json").write_text(run.model_dump_json(indent=2) + "\n", encoding="utf-8")
        from trustslm.report.mitigation import render_mitigation_markdown

        (out / "mitigation.md").write_text(render_mitigation_markdown(run), encoding="utf-8")
        return run
    except BaseException:
        if not any((out / name).exists() for name in ("before", "after")):  # nothing measured yet:
            remove_half_made(out, remove_folder=made_out)  # leave nothing half-made
        raise


def remove_half_made(out: Path, *, remove_folder: bool) -> None:
    """Remove what this run wrote into ``out`` (it was empty or absent when the run began), and
    ``out`` itself only when this run created it."""
    if remove_folder:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _apply(model: str, given_info: Any, training: list[TrainingMitigation], decoding: list[DecodingMitigation],
           plan: Any, out: Path, load: dict[str, Any], progress: bool) -> tuple[str, Path, list[StepRecord]]:
    """Make the mitigated model in ``out/model``; returns (before model, mitigated model, steps)."""
    import time

    from trustslm.mitigations.wrapped import write_wrapper
    from trustslm.train.finetune import finetune
    from trustslm.workflows.load import load_model

    steps: list[StepRecord] = []
    before_model, current = model, model
    if training:
        base, data_path, config, train_before, expected_hash = plan
        base_adapter = load_model(base, **load)
        base_hash = base_adapter.info().hash
        base_adapter.close()
        if expected_hash and base_hash != expected_hash:
            raise BadInputError(f"the base model {base} has changed since {model} was fine-tuned from it "
                                "(its sha256 differs from training_record.json)")
        if train_before:
            finetune(base, data_path, out=out / "before-model", progress=progress, **config)
            before_model = str(out / "before-model")
        steps += train_mitigated(training, base, data_path, config, out / "model", progress=progress)
        current = str(out / "model")
    if not decoding:
        return before_model, out / "model", steps
    adapter = load_model(current, **load)
    try:
        base_hash = adapter.info().hash
        saved = []
        for m in decoding:
            started = time.perf_counter()
            resolved, did = m.prepare(adapter)
            adapter = m.wrap(adapter, resolved)
            saved.append({"name": m.name, "options": m.options.model_dump(mode="json"), "resolved": resolved})
            steps.append(m.record(did, wall_time_s=time.perf_counter() - started))
    finally:
        adapter.close()
    base_ref = None if training else (str(Path(model).resolve()) if Path(model).exists() else model)
    write_wrapper(out / "model", base=base_ref, base_hash=base_hash, steps=saved)
    return before_model, out / "model", steps


def _probe_ids(registry: Registry, probes: list[str] | None, mitigations: list[Mitigation], notes: list[str]) -> list[str]:
    """The probes given (else the mitigations' targets), and always their counter-probes."""
    wanted = []
    if probes:
        wanted = [s.id for s in registry.select(probes)]
    else:
        for m in mitigations:
            for t in m.targets:
                if t in registry.specs and t not in wanted:
                    wanted.append(t)
                elif t not in registry.specs:
                    notes.append(f"{m.name} targets {t}, which is not an installed probe")
        if not wanted:
            raise BadInputError("none of the mitigations' target probes is installed; choose probes with --probes")
    for m in mitigations:
        for t in m.counter_probes:
            if t in wanted:
                continue
            if t in registry.specs:
                wanted.append(t)
                notes.append(f"{t} audited too: the counter-metric of {m.name}")
            else:
                notes.append(f"{m.name}'s counter-metric {t} is not an installed probe: its cost was not measured")
    return sorted(wanted)


def _audit_side(spec: str, probe_ids: list[str], options: dict, out: Path, *, seed: int, limit: int | None,
                quick: bool, load: dict[str, Any], progress: bool, utility: tuple) -> tuple[Any, Any]:
    from trustslm.workflows.load import load_model
    from trustslm.workflows.utility import measure

    adapter = load_model(spec, **load)
    try:
        report = audit(adapter, probes=probe_ids, options=options, seed=seed, limit=limit, quick=quick, out=out,
                           cache_dir=load["cache_dir"], progress=progress, registry=load["registry"])
        text, qa, qa_limit, utility_out = utility
        utility_report = measure(adapter, text=text, qa=qa, qa_limit=qa_limit, seed=seed, out=utility_out,
                                 cache_dir=load["cache_dir"], progress=progress)
    finally:
        adapter.close()
    return report, utility_report


def _counter_rule_notes(diff: Any) -> list[str]:
    """What the release gate's over-refusal counter-rule says of after against before."""
    from trustslm.gate.policy import OVER_REFUSAL_METRIC

    try:
        c = diff.find(OVER_REFUSAL_METRIC)
    except KeyError:
        return []
    moved = f"{c.old:.3g} before, {c.new:.3g} after" if c.old is not None and c.new is not None else "not compared"
    if c.verdict == "worse":
        return [f"counter-rule: the refusal of safe prompts rose significantly ({moved}, difference "
                f"{c.difference:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}]); the release gate fails the mitigated model "
                "against the before report unless the policy allows it (regressions: over_refusal)"]
    return [f"counter-rule: the refusal of safe prompts did not rise significantly ({moved}; {c.verdict})"]


def _target_rows(diff: Any, mitigations: list[Mitigation], probe_ids: list[str]) -> list[dict[str, Any]]:
    """The metric rows of the targeted probes (no breakdowns), with the mitigations aiming at them."""
    rows = []
    for c in diff.changes:
        if c.level != "metric" or c.probe_id not in probe_ids or "[" in c.target:
            continue
        by = ([m.name for m in mitigations if c.probe_id in m.targets]
              + [f"{m.name} (counter-metric)" for m in mitigations if c.probe_id in m.counter_probes])
        rows.append({"metric": c.target, "dimension": c.dimension, "mitigations": by, "before": c.old, "after": c.new,
                     "difference": c.difference, "ci_low": c.ci_low, "ci_high": c.ci_high,
                     "higher_is_better": c.higher_is_better, "verdict": c.verdict, "reason": c.reason})
    return rows
