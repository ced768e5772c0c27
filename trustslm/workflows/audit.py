"""The audit workflow, the only place that sequences an audit's steps:

1. read every input that can be wrong (probes and their options, config, policy, baseline, data)
   before the model loads, so bad input fails fast (exit 2);
2. load the model (a wrapper folder too, :mod:`trustslm.workflows.load`);
3. run the engine (:func:`trustslm.engine.run.run`: requests batched, cached, scored, aggregated);
4. apply the gate when a policy or baseline is given; write the report files when ``out`` is given.

:func:`trustslm.api.audit` documents the arguments.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Literal

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.core.resources import cache_dir as default_cache_dir
from trustslm.core.types import TrustReport
from trustslm.data.benchmarks import Fetcher
from trustslm.engine import run as engine
from trustslm.engine.cache import RequestCache
from trustslm.engine.executors import EXECUTORS, Replicas, make_executor
from trustslm.engine.options import Overrides, load_config
from trustslm.engine.suites import Suite, suite_arg
from trustslm.gate.policy import Policy, policy_arg
from trustslm.gate.release import apply_gate
from trustslm.models.base import DEFAULT_BATCH_SIZE, ModelAdapter, model_info
from trustslm.probes.base import ProbeContext
from trustslm.report.files import check_out_dir, report_arg, write_outputs
from trustslm.scoring import DEFAULT_RESAMPLES
from trustslm.workflows.discover import discover_options
from trustslm.workflows.load import check_model_options, load_model


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
    replicas: Replicas = "auto",
    suite: str | Path | Suite | None = None,
    data_dir: str | Path | None = None,
    fetcher: Fetcher | None = None,
) -> TrustReport:
    if limit is not None and limit < 1:
        raise BadInputError("limit must be at least 1")
    if out is not None:
        check_out_dir(out)  # before anything runs: an audit's results are not lost to a bad --out
    registry = registry or Registry()
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    load_options = {"allow_pickle": allow_pickle, "allow_download": allow_download, "batch_size": batch_size,
                    "cache_dir": cache_root, "model_args": model_args, "backend": backend}
    check_model_options(model, registry=registry, **load_options)
    config_options, config_dir = load_config(config) if config is not None else ({}, None)
    chosen_suite = suite_arg(suite)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise BadInputError(f"--data-dir {data_dir}: not a folder")
    discovered = discover_options(model, registry=registry, probes=probes)
    planned = engine.plan(registry, probes, config=config_options, config_dir=config_dir,
                          overrides=options, discovered=discovered, quick=quick, scorer=scorer, suite=chosen_suite)
    gate_policy = policy_arg(policy)
    baseline_report, baseline_path = report_arg(baseline)
    ctx = ProbeContext(seed=seed, limit=limit, capabilities=frozenset(), registry=registry, progress=progress,
                       data_dir=Path(data_dir) if data_dir is not None else None, cache_root=cache_root,
                       fetcher=fetcher)
    engine.load_data(planned, ctx)

    if executor not in EXECUTORS:
        raise BadInputError(f"unknown executor {executor!r} (executors: {', '.join(EXECUTORS)})")
    adapter = load_model(model, registry=registry, **load_options)
    cache = RequestCache(cache_root / "requests.sqlite") if use_cache else None
    runner = None
    try:
        factory = None if isinstance(model, ModelAdapter) else functools.partial(load_model, str(model), **load_options)
        runner = make_executor(executor, replicas=replicas, factory=factory, identity=model_info(adapter).identity)
        model_ctx = dataclasses.replace(ctx, capabilities=adapter.capabilities, split_tokens=adapter.split_tokens)
        report = engine.run(adapter, planned, model_ctx, patterns=probes, cache=cache, resume=resume,
                            resamples=bootstrap_resamples, profile="quick" if quick else "full", executor=runner,
                            suite=chosen_suite)
    finally:
        if runner is not None:
            runner.close()
        if cache is not None:
            cache.close()
    if gate_policy is not None or baseline_report is not None:
        pol, path, digest = gate_policy or (None, None, None)
        report = apply_gate(report, pol, baseline=baseline_report, policy_path=path, policy_sha256=digest,
                            baseline_path=baseline_path, registry=registry, progress=progress)
    if out is not None:
        write_outputs(report, Path(out))
    return report



