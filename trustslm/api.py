"""The Python API. The CLI, the notebooks and the CI gate are thin clients of these functions.

>>> import trustslm
>>> report = trustslm.audit(model="mock", probes=["fairness.*"], progress=False)
>>> report.dimensions["fairness"].status
'measured'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from trustslm.core.registry import Registry
from trustslm.core.types import TrustReport
from trustslm.engine.options import Overrides
from trustslm.gate.policy import Policy, policy_arg
from trustslm.models.base import DEFAULT_BATCH_SIZE, ModelAdapter
from trustslm.report.files import report_arg
from trustslm.scoring import DEFAULT_RESAMPLES


def audit(
    model: str | Path | ModelAdapter,
    *,
    probes: list[str] | None = None,
    options: Overrides | None = None,
    config: str | Path | None = None,
    seed: int = 0,
    limit: int | None = None,
    policy: str | Path | Policy | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    allow_pickle: bool = False,
    allow_download: bool = False,
    batch_size: int | Literal["auto"] = DEFAULT_BATCH_SIZE,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
    registry: Registry | None = None,
    bootstrap_resamples: int = DEFAULT_RESAMPLES,
    quick: bool = False,
    scorer: str | None = None,
    baseline: str | Path | TrustReport | None = None,
    model_args: dict[str, Any] | None = None,
    backend: str | None = None,
    executor: str = "local",
    replicas: int | Literal["auto"] = "auto",
    suite: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> TrustReport:
    """Audit ``model`` with the selected probes and return the report.

    Args:
        model: a model folder, a ``.gguf`` file, ``"smollm2"`` (the demo model), ``"mock"``,
            ``"KIND:ARG"`` for a backend registered in the ``trustslm.models`` entry-point group,
            or a :class:`~trustslm.models.base.ModelAdapter`.
        model_args: the backend's own options (``{"dtype": "bfloat16", "device": "cuda"}`` for a
            Hugging Face model), checked against its ``Options``; they win over ``batch_size`` and
            the ``allow_*`` flags. An unknown or bad one is a one-line ``BadInputError``.
        backend: the backend of a model named by a path or name: ``"hf"`` (default),
            ``"llama.cpp"``, ``"openai"`` (the default for an ``http(s)://`` URL), ``"vllm"``.
        batch_size: requests per forward pass, or ``"auto"``: the largest that fits, found by
            halving on out-of-memory (CUDA); 32 on a CPU.
        executor: ``"local"`` (this process) or ``"ray"``: batches go to ``replicas`` model
            replicas on a Ray cluster (``RAY_ADDRESS`` joins an existing one; ``"auto"``: one per
            GPU, else one per CPU). The cache stays in this process; the report is the same.
        suite: a suite's name or YAML file (``trustslm.engine.suites``): the probes it runs, their
            data and sample counts. ``"smoke"`` (the default): every probe on the project's own
            small sets, offline. ``"standard"``: the published benchmarks (CrowS-Pairs, StereoSet,
            BBQ, TruthfulQA...) with their published protocols, fetched at pinned revisions,
            verified by sha256 and cached (docs/suites.md).
        data_dir: a folder of local copies of the published benchmarks, for a machine without
            internet (layout: docs/datasets.md); checked by sha256 like a download.
        probes: probe ids or globs (``"fairness.*"``), chosen among the suite's probes; all of
            them when omitted.
        options: ``{probe_id: {option: value}}``, over the specs' defaults and ``config``.
        config: a YAML file of probe options; relative data paths in it are read from its folder.
        seed: seeds sampling and the bootstrap; the same seed reproduces the report.
        limit: use at most this many items of each probe's data.
        policy: a gate policy (a YAML path or a :class:`~trustslm.gate.policy.Policy`).
        baseline: the predecessor's report (a ``report.json``, its folder, or a report): the
            gate also fails on significant regressions from it (see :func:`evaluate_gate`).
        out: if given, write ``report.json``, ``samples.jsonl``, ``units.jsonl``, ``report.md`` and
            ``report.html`` there.
        resume: take results already in the cache (from an interrupted or earlier run).
        allow_pickle: load pickle weights when a folder has no safetensors (runs their code!).
        allow_download: fetch a Hugging Face hub id (safetensors and JSON files only).
        use_cache: write every finished batch to the on-disk cache (needed for ``resume``).
        quick: the quick profile: each probe's ``quick`` spec options (fewer samples) under
            ``config`` and ``options``; the report says ``run.profile == "quick"``.
        scorer: the toxicity scorer of every probe that has one (``detoxify``,
            ``hf-classifier:PATH``...), over the specs and ``config``, under ``options``. A named
            scorer that can't load stops the audit (exit 2); only ``auto``, the specs' default,
            falls back to another scorer, and the report says so.
    """
    from trustslm.workflows.audit import audit as _audit

    return _audit(model, probes=probes, options=options, config=config, seed=seed, limit=limit, policy=policy,
                  out=out, resume=resume, allow_pickle=allow_pickle, allow_download=allow_download,
                  batch_size=batch_size, cache_dir=cache_dir, use_cache=use_cache, progress=progress,
                  registry=registry, bootstrap_resamples=bootstrap_resamples, quick=quick, scorer=scorer,
                  baseline=baseline, model_args=model_args, backend=backend, executor=executor,
                  replicas=replicas, suite=suite, data_dir=data_dir)


def evaluate_gate(
    report: str | Path | TrustReport,
    *,
    policy: str | Path | Policy | None = None,
    baseline: str | Path | TrustReport | None = None,
    registry: Registry | None = None,
    progress: bool = False,
) -> TrustReport:
    """Evaluate the release gate on an existing report: the policy's thresholds and, against
    ``baseline`` (the predecessor's report), its regression rules. Returns the report with its
    ``gate`` replaced; ``report.gate.passed`` is the verdict and ``report.gate.failures`` say why.

    A regression fails only when it is larger than its tolerance and significant under a paired
    bootstrap over the units both reports share, Holm-corrected over the rules
    (:mod:`trustslm.gate.release`); targets the two reports can't be compared on (other probe
    versions or data, no ``units.jsonl``) say why and follow the policy's ``on_missing``."""
    from trustslm.gate.release import apply_gate

    report, _ = report_arg(report)
    assert report is not None
    base, base_path = report_arg(baseline)
    pol, path, digest = policy_arg(policy) or (None, None, None)
    return apply_gate(report, pol, baseline=base, policy_path=path, policy_sha256=digest, baseline_path=base_path,
                      registry=registry, progress=progress)


def compare(old: str | Path | TrustReport, new: str | Path | TrustReport, *, resamples: int | None = None,
            targets: set[str] | None = None, registry: Registry | None = None, progress: bool = False):
    """Every metric and score of two reports side by side: old, new, difference, its 95%
    paired-bootstrap interval and a verdict (better, worse, no significant change, or not compared
    and why). Returns a :class:`~trustslm.gate.compare.ReportDiff`; see :mod:`trustslm.gate.compare`."""
    from trustslm.gate.compare import DEFAULT_COMPARE_RESAMPLES
    from trustslm.gate.compare import compare as _compare

    (o, o_path), (n, n_path) = report_arg(old), report_arg(new)
    assert o is not None and n is not None
    return _compare(o, n, registry=registry, resamples=resamples or DEFAULT_COMPARE_RESAMPLES, targets=targets,
                    old_path=o_path, new_path=n_path, progress=progress)


def leaderboard(reports: list[str | Path | TrustReport], *, out: str | Path | None = None,
                with_references: bool = False) -> list[Path]:
    """Several reports (folders, ``report.json`` files or reports) side by side: write
    ``leaderboard.md`` and ``leaderboard.html`` into ``out`` (default ``trustslm-leaderboard``) and
    return their paths. Rows: overall, each dimension, each probe; columns: one per report (and per
    shipped reference audit with ``with_references``). A row's best score is marked only where it
    is significantly better than the runner-up's: paired bootstrap where the two reports share
    their units, else a normal approximation from the two intervals; each row says which. The
    HTML page sorts by any column without a script. See :mod:`trustslm.report.leaderboard`."""
    from trustslm.workflows.leaderboard import leaderboard as _leaderboard

    return _leaderboard(reports, out=out, with_references=with_references)


def update_card(model_dir: str | Path, report: str | Path | TrustReport) -> Path:
    """Write ``report``'s trust results into ``model_dir``'s README model card: Hugging Face
    ``model-index`` eval results and a readable section, replacing trustslm's own on a rerun and
    leaving the rest of the card as it was. Returns the README's path."""
    from trustslm.report.card import update_model_card

    loaded, path = report_arg(report)
    assert loaded is not None
    return update_model_card(model_dir, loaded, report_path=path)


def finetune(model: str | Path | ModelAdapter, data: str | Path, *, out: str | Path, **options: Any):
    """Fine-tune ``model`` on ``data`` into ``out`` (DP-SGD with ``dp=True, target_epsilon=...``);
    returns the :class:`~trustslm.train.record.TrainingRecord`. See ``trustslm finetune --help``."""
    from trustslm.train.finetune import finetune as _finetune

    return _finetune(model, data, out=out, **options)


def mitigate(model: str | Path, names: list[str] | str, *, out: str | Path, **options: Any):
    """Apply the mitigations ``names`` (``"abstention"`` or a list) to ``model``, then audit
    before and after with the same probes, options and seed; writes ``out`` and returns the
    :class:`~trustslm.workflows.mitigate.MitigationRun` (targets with paired intervals, utility costs,
    steps). Options: see :func:`trustslm.workflows.mitigate.mitigate`."""
    from trustslm.workflows.mitigate import mitigate as _mitigate

    return _mitigate(model, [names] if isinstance(names, str) else list(names), out=out, **options)


def variants(model: str | Path, *, out: str | Path, **options: Any):
    """Build compressed variants of ``model`` (``quant=["Q8_0", "Q4_K_M", ...]``, ``prune=0.5``,
    ``given={"name": "file.gguf"}``), audit its full-precision reference and every variant with the
    same probes, data, options and seed, and compare each variant against the reference item by
    item: scores with paired intervals, flipped outcomes, and the gate's regression rules when a
    ``policy`` is given. Writes ``out`` and returns the
    :class:`~trustslm.workflows.variants.VariantsRun`; see :func:`trustslm.workflows.variants.variants`."""
    from trustslm.workflows.variants import variants as _variants

    return _variants(model, out=out, **options)


def list_mitigations(registry: Registry | None = None) -> list[dict[str, Any]]:
    """Every registered mitigation: name, dimension, kind, targets, summary, options."""
    registry = registry or Registry()
    rows = []
    for name in registry.mitigation_names():
        cls = registry.mitigation(name)
        rows.append({"name": name, "dimension": cls.dimension, "kind": cls.kind, "targets": list(cls.targets),
                     "needs_data": cls.needs_data, "summary": cls.summary,
                     "options": {k: f.default for k, f in cls.Options.model_fields.items()}})
    return rows


def list_probes(registry: Registry | None = None) -> list[dict[str, Any]]:
    """id, dimension, version, kind, needs and summary of every registered probe."""
    registry = registry or Registry()
    rows = []
    for spec in registry.select(None):
        kind = registry.probe_kind(spec.kind)
        rows.append({"id": spec.id, "dimension": spec.dimension, "version": spec.version,
                     "kind": spec.kind, "needs": sorted(kind.needs), "summary": spec.summary})
    return rows


def list_suites(registry: Registry | None = None) -> list[dict[str, Any]]:
    """name, version, summary and probes of every built-in suite."""
    from trustslm.engine.suites import load_suite, suite_names, suite_probe_ids

    registry = registry or Registry()
    rows = []
    for name in suite_names():
        suite = load_suite(name)
        probes = sorted(suite_probe_ids(registry, suite))
        rows.append({"name": suite.name, "version": suite.version, "summary": suite.summary, "probes": probes})
    return rows


def check_scorer(scorer: str, labels: list[str | Path], **options: Any):
    """Agreement of a toxicity scorer (``"profanity-check"``, ``"detoxify:PATH"``,
    ``"hf-classifier:PATH"``...) with labelled texts: AUROC, Pearson's r and agreement, each with a
    95% interval. See :mod:`trustslm.scorers.check` for the file formats and ``options``."""
    from trustslm.scorers.check import check_scorer as _check

    return _check(scorer, labels, **options)


def list_scorers(registry: Registry | None = None) -> list[str]:
    """Names of the registered toxicity scorer plugins."""
    return (registry or Registry()).scorer_names()


def render_report(report: TrustReport | str | Path, fmt: str = "md", *, registry: Registry | None = None) -> str:
    """A report (or a ``report.json`` path) in a registered format: ``md``, ``html``,
    ``html-fragment``, ``junit``, ``sarif``, or any other renderer plugin
    (entry-point group ``trustslm.renderers``)."""
    if not isinstance(report, TrustReport):
        from trustslm.report.files import load_report_dir

        report = load_report_dir(report)
    return (registry or Registry()).renderer(fmt)(report)


def load_report(path: str | Path) -> TrustReport:
    """A ``report.json`` (or its folder), with ``samples.jsonl`` and ``units.jsonl`` when beside it."""
    from trustslm.report.files import load_report_dir

    return load_report_dir(path)
