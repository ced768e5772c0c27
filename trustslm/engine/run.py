"""One audit, start to finish: plan the probes, load their data, load the model, run every
request once, score, aggregate; :func:`trustslm.api.audit`, the public entry point, applies the gate.

Bad input (unknown probes, bad options, unreadable data, a named scorer that can't load, a bad
policy) is detected before the model is loaded, so it fails fast with exit code 2. A probe whose
needs the model can't meet, or that raises ``ProbeSkipped`` in any phase, is recorded as skipped
with the reason; a probe that fails while scoring is recorded as an error and the others still
produce their results.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from trustslm._version import __version__
from trustslm.core.errors import BadInputError
from trustslm.core.hashing import sha256_json
from trustslm.core.registry import Registry, unknown_name_error
from trustslm.core.types import (
    CardRef,
    Environment,
    GateResult,
    ProbeResult,
    ProbeSpeed,
    RunInfo,
    TrustReport,
)
from trustslm.engine.cache import RequestCache
from trustslm.engine.chance import RUNS as CHANCE_RUNS
from trustslm.engine.chance import with_chance
from trustslm.engine.detectors import detector_checks
from trustslm.engine.execute import ExecutionStats, execute, memo_call
from trustslm.engine.executors import Executor
from trustslm.engine.options import Overrides, build_options
from trustslm.engine.suites import Suite, suite_probe_ids, suites_running
from trustslm.models.base import ModelAdapter, model_info
from trustslm.probes.base import (
    FileOption,
    LoadedData,
    Probe,
    ProbeContext,
    ProbeSkipped,
    Results,
    ScorerOption,
    marked_options,
)
from trustslm.scoring.aggregate import (
    Scored,
    aggregate,
    check_anchors,
    normalise,
    scoring_info,
    weighted_mean,
)
from trustslm.scoring.metrics import compute_metrics


@dataclass
class PlannedProbe:
    probe: Probe
    data: LoadedData | None = None
    status: str = "ok"
    reason: str | None = None
    requests: list = field(default_factory=list)
    seconds: float = 0.0  # wall time: its own steps plus its share of model time
    model_seconds: float = 0.0
    tokens: int = 0
    computed: int = 0
    cache_hits: int = 0
    shared: int = 0
    repeated: int = 0


#: A suite's options that describe its data rather than the probe: where the user gives a probe
#: other data, the suite's values of these don't apply to it (docs/suites.md).
DATA_BOUND_OPTIONS = frozenset({"format", "limit", "sample", "sample_by", "sample_seed"})


def plan(
    registry: Registry,
    patterns: list[str] | None,
    *,
    config: Overrides | None = None,
    config_dir: Path | None = None,
    overrides: Overrides | None = None,
    discovered: Overrides | None = None,
    quick: bool = False,
    scorer: str | None = None,
    suite: Suite | None = None,
) -> list[PlannedProbe]:
    """Select probes and build their options; every mistake here is a BadInputError.

    ``patterns`` choose among the suite's probes (all of them when it names none). Option layers,
    lowest first: the spec, its ``quick`` options (in the quick profile), the suite's options (and
    its ``quick`` ones; without :data:`DATA_BOUND_OPTIONS` for a probe given other data by a later
    layer), ``discovered`` (found beside the model), the config file, ``scorer`` (the toxicity
    scorer of every probe that has one), the command line's per-probe options."""
    specs = _select(registry, patterns, suite)
    suite_options, suite_quick = (registry.canonical_keys(x) for x in ((suite.options, suite.quick) if suite else ({}, {})))
    config, overrides, discovered = (registry.canonical_keys(x or {}) for x in (config, overrides, discovered))
    for source in (config, overrides):
        for pid in source:
            if pid not in registry.specs:
                raise unknown_name_error("probe (in options)", pid, list(registry.specs))
    planned = []
    for spec in specs:
        kind = registry.probe_kind(spec.kind)
        from_cli = overrides.get(spec.id, {})
        scorable = {m.name for m in kind.metrics if m.bootstrap}
        unknown_scoring = set(spec.scoring) - scorable
        if unknown_scoring:
            raise BadInputError(f"probe spec {spec.id} scores unknown or unscorable metric(s) {sorted(unknown_scoring)}")
        defs = {m.name: m for m in kind.metrics}
        for name, rule in spec.scoring.items():
            why = check_anchors(rule, defs[name].bounds, defs[name].higher_is_better)
            if why:
                raise BadInputError(f"probe spec {spec.id}: the scoring rule of {name}: {why}")
        from_config = _config_paths(config.get(spec.id, {}), kind.Options, config_dir)
        scorer_layer = dict.fromkeys(marked_options(kind.Options, ScorerOption), scorer) if scorer else {}
        beside_model = discovered.get(spec.id, {})
        suite_layers = (suite_options.get(spec.id, {}), suite_quick.get(spec.id, {}) if quick else {})
        # given other data, the probe leaves out the suite's sampling, which went with the suite's data
        if any("data" in layer for layer in (beside_model, from_config, from_cli)):
            suite_layers = tuple({k: v for k, v in layer.items() if k not in DATA_BOUND_OPTIONS}
                                 for layer in suite_layers)
        options = build_options(spec, kind.Options, spec.quick if quick else {}, *suite_layers, beside_model,
                                from_config, scorer_layer, from_cli)
        if options.sample is not None and "data" not in kind.Options.model_fields:
            raise BadInputError(f"{spec.id}: 'sample' needs a probe that reads a data file")
        planned.append(PlannedProbe(probe=kind(spec, options)))
    return planned


def _select(registry: Registry, patterns: list[str] | None, suite: Suite | None) -> list:
    """The specs ``patterns`` select among the suite's probes."""
    if suite is None:
        return registry.select(patterns)
    in_suite = suite_probe_ids(registry, suite)
    if not patterns and suite.probes is not None:
        return [registry.specs[k] for k in sorted(in_suite)]
    chosen = [s for s in registry.select(patterns) if s.id in in_suite]  # "*": the registry's order
    if not chosen and patterns:
        elsewhere = suites_running(registry, [s.id for s in registry.select(patterns)])
        hint = f"; --suite {' or '.join(elsewhere)} runs them" if elsewhere else ""
        raise BadInputError(f"--probes {','.join(patterns)} selects none of suite {suite.name}'s probes "
                            f"({', '.join(sorted(in_suite))}){hint}")
    return chosen


def _config_paths(options: dict, options_cls: type, config_dir: Path | None) -> dict:
    """``options`` with relative paths in its file options (:class:`FileOption`) made relative to
    ``config_dir``."""
    if config_dir is None:
        return options
    fixed = dict(options)
    for key in marked_options(options_cls, FileOption):
        value = fixed.get(key)
        if isinstance(value, str) and value and not value.startswith(("builtin:", "hf:", "~")) \
                and not Path(value).is_absolute():
            fixed[key] = str(config_dir / value)
    return fixed


def load_data(planned: list[PlannedProbe], ctx: ProbeContext) -> None:
    """Read every probe's data and load the scorers its options name (what it needs besides the
    model); a probe that can't run here is marked skipped, bad data raises."""
    scorers: dict[str, Any] = {}  # one load per scorer spec, shared by the probes naming it
    for p in planned:
        start = time.perf_counter()
        own = p.probe.options.limit  # type: ignore[attr-defined]
        if own is not None:  # the smaller of the probe's own limit and --limit
            probe_ctx = dataclasses.replace(ctx, limit=own if ctx.limit is None else min(own, ctx.limit))
        else:
            probe_ctx = ctx
        try:
            p.data = p.probe.load(probe_ctx)
            _load_scorers(p.probe, ctx, scorers)
        except ProbeSkipped as exc:
            p.status, p.reason = "skipped", str(exc)
        p.seconds += time.perf_counter() - start


def _load_scorers(probe: Probe, ctx: ProbeContext, loaded: dict[str, Any]) -> None:
    """Load every scorer ``probe``'s options name into ``probe.scorers``, by the one rule of
    :class:`~trustslm.probes.base.ScorerOption`: a named scorer that can't load raises
    ``BadInputError``; ``auto`` finding none skips the probe (a required option) or leaves None."""
    from trustslm.core.errors import ScorerUnavailableError
    from trustslm.scorers.base import make_scorer

    for name, marker in marked_options(type(probe.options), ScorerOption).items():
        spec = getattr(probe.options, name)
        if spec not in loaded:
            try:
                loaded[spec] = make_scorer(spec, ctx.registry)
            except ScorerUnavailableError as exc:
                loaded[spec] = exc
        scorer = loaded[spec]
        if isinstance(scorer, ScorerUnavailableError):
            if marker.required:
                raise ProbeSkipped(str(scorer))
            scorer = None
        probe.scorers[name] = scorer


def environment() -> Environment:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return Environment(
        trustslm=__version__, python=platform.python_version(), platform=platform.platform(),
        torch=version("torch"), transformers=version("transformers"),
    )


def run(
    model: ModelAdapter,
    planned: list[PlannedProbe],
    ctx: ProbeContext,
    *,
    patterns: list[str] | None,
    cache: RequestCache | None,
    resume: bool,
    resamples: int,
    profile: str = "full",
    executor: Executor | None = None,
    suite: Suite | None = None,
    chance_runs: int = CHANCE_RUNS,
) -> TrustReport:
    """Run ``planned`` (data loaded by :func:`load_data`) on ``model``; ``ctx`` is the run's
    context, with the model's capabilities and tokenizer. Each likelihood probe's chance level is
    computed from ``chance_runs`` uniform-random answerers (:mod:`trustslm.engine.chance`; 0: none)."""
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    info = model_info(model)  # with its identity, which the cache keys on
    seed, limit, progress = ctx.seed, ctx.limit, ctx.progress

    for p in planned:
        if p.status != "ok":
            continue
        missing = sorted(p.probe.needs - model.capabilities)
        if missing:
            why = [f"{c} ({model.missing_reasons[c]})" if c in model.missing_reasons else c for c in missing]
            p.status, p.reason = "skipped", f"the model can't do what this probe needs: {', '.join(why)}"
            continue
        start = time.perf_counter()
        try:
            p.probe.check(ctx)
            assert p.data is not None
            p.requests = p.probe.requests(p.data, ctx)
            for r in p.requests:  # renders each prompt now (encodings are kept for batching): a chat
                model.request_length(r)  # template failing on this probe's messages skips this probe only
        except ProbeSkipped as exc:
            p.status, p.reason = "skipped", str(exc)
        p.seconds += time.perf_counter() - start

    active = [p for p in planned if p.status == "ok"]
    all_requests = [r for p in active for r in p.requests]
    results, stats = execute(model, all_requests, identity=info.identity, cache=cache, resume=resume,
                             progress=progress, executor=executor)
    _attribute_model_time(active, stats, results, model)
    for p in active:
        if type(p.probe).adapt is not Probe.adapt:
            _adapt(p, model, info.identity, cache, resume, stats, ctx, known=results, executor=executor)

    probe_results: list[ProbeResult] = []
    probe_scores: dict[str, tuple[str, Scored]] = {}
    samples: list[dict[str, Any]] = []
    units: dict[str, Any] = {}
    for p in planned:
        result, scored, probe_samples, probe_units = _score_one(p, Results(results), ctx, resamples)
        if p.status == "ok" and result.status == "ok":
            result = with_chance(result, p.probe, p.data, p.requests, ctx, runs=chance_runs)
        probe_results.append(result)
        samples.extend(probe_samples)
        if probe_units is not None:
            units[p.probe.id] = probe_units
        if scored is not None:
            probe_scores[p.probe.id] = (p.probe.spec.dimension, scored)

    dimensions, overall = aggregate(probe_scores)
    gate = GateResult(passed=True)  # the caller applies a policy (trustslm.gate.release.apply_gate)
    config = {p.probe.id: {"version": p.probe.spec.version, **p.probe.options.model_dump()} for p in planned}
    run_info = RunInfo(
        seed=seed, limit=limit, profile=profile, probes_requested=list(patterns or ["*"]),
        suite=suite.label if suite else None, suite_sha256=suite.sha256 if suite else None, config=config,
        config_hash=sha256_json({"config": config, "seed": seed, "limit": limit}),
        started_at=started_at, wall_time_s=round(time.perf_counter() - t0, 3), resumed=resume,
        cache_hits=stats.cache_hits, cache_misses=stats.computed,
    )
    report = TrustReport(
        trustslm_version=__version__, environment=environment(), model=info, run=run_info,
        results=probe_results, dimensions=dimensions, overall=overall,
        scoring=scoring_info(resamples), gate=gate,
    )
    report._samples = samples
    report._units = units
    return report


def _adapt(p: PlannedProbe, model: ModelAdapter, identity: str, cache: RequestCache | None, resume: bool,
           stats, ctx: ProbeContext, *, known: dict, executor: Executor | None = None) -> None:
    """Run an adaptive probe's own loop (an attack), its model calls going through the same
    batched, deduplicated and cached path as every other request; results already had in this
    run (``known``, which grows) are not asked for again."""
    start = time.perf_counter()
    own = ExecutionStats()
    before = set(known)
    engine_call = memo_call(model, identity=identity, known=known, cache=cache, resume=resume, stats=own,
                            executor=executor, progress=ctx.progress and p.probe.adapt_in_rounds, label=p.probe.id)

    asked = {r.key() for r in p.requests}

    def call(requests: list) -> Results:
        for r in requests:  # a request asked again (e.g. to read its result) is counted once
            if r.key() not in asked:
                asked.add(r.key())
                p.requests.append(r)
        return engine_call(requests)

    try:
        assert p.data is not None
        p.probe.adapt(p.data, call, ctx)
    except ProbeSkipped as exc:
        p.status, p.reason = "skipped", str(exc)
    except Exception as exc:  # an attack's failure must not lose the other probes' results
        first = (str(exc).strip().splitlines() or [""])[0]
        p.status, p.reason = "error", f"{type(exc).__name__}: {first}"
        if ctx.progress:
            traceback.print_exc(file=sys.stderr)
    p.seconds += time.perf_counter() - start
    stats.merge(own)
    p.model_seconds += sum(own.seconds.values())
    p.computed += own.computed
    p.cache_hits += own.cache_hits
    p.tokens += sum(_tokens(r, known, model) for r in p.requests
                    if r.key() not in before and r.key() in known and r.key() not in own.cached_keys)


def _tokens(request, results: dict, model: ModelAdapter) -> int:
    """Tokens the model processed for ``request``: its prompt (and continuation), and what it generated."""
    n = model.request_length(request)
    if request.kind == "generate":
        n += getattr(results.get(request.key()), "n_tokens", 0)
    return n


def _attribute_model_time(active: list[PlannedProbe], stats: ExecutionStats, results: dict,
                          model: ModelAdapter) -> None:
    """Count each probe's requests (computed, read from the cache, shared with a probe that asked
    first, or repeated: asked earlier by the same probe) and share each request kind's model time
    among the probes by the tokens computed for them."""
    owner: dict[str, PlannedProbe] = {}
    tokens_by_kind: dict[str, dict[int, int]] = {}
    for i, p in enumerate(active):
        for r in p.requests:
            key = r.key()
            if key in owner:
                if owner[key] is p:
                    p.repeated += 1
                else:
                    p.shared += 1
                continue
            owner[key] = p
            if key in stats.cached_keys:
                p.cache_hits += 1
            elif key in results:
                p.computed += 1
                n = _tokens(r, results, model)
                p.tokens += n
                by_probe = tokens_by_kind.setdefault(r.kind, {})
                by_probe[i] = by_probe.get(i, 0) + n
    for kind, total in stats.seconds.items():
        by_probe = tokens_by_kind.get(kind, {})
        n = sum(by_probe.values())
        for i, t in by_probe.items():
            share = total * t / n
            active[i].seconds += share
            active[i].model_seconds += share


def _speed(p: PlannedProbe) -> ProbeSpeed:
    wall = round(p.seconds, 3)
    model_s = round(min(p.model_seconds, p.seconds), 3)
    return ProbeSpeed(model_time_s=model_s, overhead_s=round(wall - model_s, 3), tokens=p.tokens,
                      tokens_per_s=round(p.tokens / p.model_seconds, 1) if p.model_seconds > 0 else None,
                      requests=len(p.requests), computed=p.computed, cache_hits=p.cache_hits, shared=p.shared,
                      repeated=p.repeated)


def _score_one(p: PlannedProbe, results: Results, ctx: ProbeContext, resamples: int):
    spec = p.probe.spec
    base: dict[str, Any] = {
        "probe_id": spec.id, "kind": spec.kind, "dimension": spec.dimension, "version": spec.version,
        "options": p.probe.options.model_dump(), "datasets": p.data.datasets if p.data else [],
        "card": CardRef(path=_card_path(spec.card_path), summary=spec.card_summary()),
        "n_requests": len(p.requests), "taxonomy": {k: list(v) for k, v in spec.taxonomy.items() if v},
    }
    if p.status != "ok":
        return ProbeResult(status=p.status, reason=p.reason, wall_time_s=round(p.seconds, 3), **base), None, [], None
    start = time.perf_counter()
    try:
        assert p.data is not None
        output = p.probe.score(p.data, results, ctx)
        # a metric whose column the units leave out (e.g. toxicity without a scorer) is not measurable here
        measurable = tuple(m for m in p.probe.metrics if not m.column or m.column in output.units.columns)
        sequential = p.data.sequential
        computed = compute_metrics(output.units, measurable, seed=ctx.seed, probe_id=spec.id,
                                   resamples=resamples, looks=sequential.looks if sequential else 1,
                                   detectors=detector_checks(p.probe, measurable))
        metrics, parts = [], []
        for c in computed:
            if c.metric.value is None:  # not measurable with these data or options: left out
                continue
            rule = spec.scoring.get(c.metric.name) if c.metric.group is None else None
            if rule is not None and c.metric.value is not None and c.replicates is not None:
                s = normalise(c.metric.value, rule, c.metric.higher_is_better)
                parts.append((Scored(s, normalise(c.replicates, rule, c.metric.higher_is_better)), rule.weight))
                metrics.append(c.metric.model_copy(update={"score": round(s, 4)}))
            else:
                metrics.append(c.metric)
        scored = weighted_mean(parts) if parts else None
    except ProbeSkipped as exc:  # e.g. none of its data could be scored on this model
        p.seconds += time.perf_counter() - start
        return ProbeResult(status="skipped", reason=str(exc), wall_time_s=round(p.seconds, 3), speed=_speed(p),
                           **base), None, [], None
    except Exception as exc:  # a probe's failure must not lose the other probes' results
        p.seconds += time.perf_counter() - start
        first = (str(exc).strip().splitlines() or [""])[0]
        reason = f"{type(exc).__name__}: {first}"
        if ctx.progress:
            traceback.print_exc(file=sys.stderr)
        return ProbeResult(status="error", reason=reason, wall_time_s=round(p.seconds, 3), speed=_speed(p),
                           **base), None, [], None
    p.seconds += time.perf_counter() - start
    result = ProbeResult(
        status="ok", metrics=metrics, score=scored.to_value() if scored else None,
        scorer=output.scorer, n_samples=len(output.samples), wall_time_s=round(p.seconds, 3), speed=_speed(p),
        sequential=sequential, **base,
    )
    samples = [{"probe_id": spec.id, **s} for s in output.samples]
    return result, scored, samples, output.units


def _card_path(path: str) -> str:
    """The card's path relative to its provider folder's parent, e.g. ``probes/fairness/...``."""
    parts = Path(path).parts
    if "probes" in parts:
        i = len(parts) - 1 - parts[::-1].index("probes")
        return "/".join(parts[i:])
    return path
