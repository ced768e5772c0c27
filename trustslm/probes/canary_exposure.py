"""Probe kind ``canary_exposure``: how much has the model memorised secrets planted in its
training data? Exposure in bits (Carlini et al. 2019, see :mod:`trustslm.privacy.exposure`),
and, for canaries planted with probability 1/2, the one-run empirical lower bound on epsilon of
Steinke, Nasr and Jagielski (2023) next to the accountant's epsilon.

Each canary ``prefix + secret`` is scored by its log-perplexity as a whole sequence after the BOS
token (the form ``trustslm finetune`` trains on), ``-log P(prefix + secret)``, and so are
``n_candidates`` random secrets of the same format (the same alphabet and length) behind the same
prefix, drawn with the run's seed. The prefix's share is the same for every candidate, so the
ranking is that of ``-log P(secret | prefix)``. Secrets never appear in samples: only their sha256.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustslm.core.errors import DataError
from trustslm.data.canaries import load_canaries, random_secret
from trustslm.models.base import LOGLIKELIHOOD, LoglikelihoodRequest
from trustslm.probes.base import (
    LoadedData,
    MetricDef,
    OptionalDataPath,
    Probe,
    ProbeContext,
    ProbeOptions,
    ProbeOutput,
    ProbeSkipped,
    Results,
    read_dataset,
)


class CanaryExposureOptions(ProbeOptions):
    data: OptionalDataPath = None
    format: Literal["auto", "jsonl"] = "auto"
    n_candidates: int = Field(default=500, ge=10, le=100_000)
    audit_candidates: int = Field(default=20, ge=2, le=10_000)
    guess_fraction: float = Field(default=0.2, gt=0, le=1)
    training_record: OptionalDataPath = None


#: A training record is a few kilobytes.
MAX_RECORD_BYTES = 1024 * 1024


class _RecordNumbers(BaseModel):
    """The two numbers of a training record this probe uses, strictly typed."""

    model_config = ConfigDict(extra="ignore", strict=True)
    epsilon: float | None = Field(default=None, ge=0)
    delta: float | None = Field(default=None, ge=0, lt=1)


def _record_numbers(path: Path) -> dict[str, Any]:
    from trustslm.core.textfiles import decode_text, first_validation_error, parse_json, read_bounded_bytes

    where = f"training record {path}"
    value = parse_json(decode_text(read_bounded_bytes(path, "training record", MAX_RECORD_BYTES, DataError),
                                   where, DataError), where, DataError)
    if not isinstance(value, dict):
        raise DataError(f"{where} must be a JSON object")
    try:
        return _RecordNumbers.model_validate(value).model_dump()
    except ValidationError as exc:
        loc, msg, _ = first_validation_error(exc)
        raise DataError(f"{where}: field {loc!r}: {msg}") from None


def _inserted_mean(column: str):
    """Mean over the planted exposure canaries (over the never-planted ones in that breakdown row)."""
    def stat(frame) -> float:
        rows = frame[frame["purpose"] == "exposure"]
        planted = rows[rows["inserted"]]
        rows = planted if len(planted) else rows
        return float(rows[column].mean()) if len(rows) else float("nan")
    return stat


def _audit_stat(field: str):
    def stat(frame) -> float:
        return float(frame.attrs.get(field, float("nan")))
    return stat


def _request(prefix: str, secret: str) -> LoglikelihoodRequest:
    return LoglikelihoodRequest(context="", continuation=prefix + secret)


class CanaryExposureProbe(Probe):
    kind = "canary_exposure"
    needs = frozenset({LOGLIKELIHOOD})
    Options = CanaryExposureOptions
    training_inputs = {"canaries": "data", "training_record": "training_record"}
    metrics = (
        MetricDef(name="relative_exposure", bounds=(0.0, 1.0), column="relative_exposure", higher_is_better=False,
                  statistic=_inserted_mean("relative_exposure"), by=("inserted",),
                  description="Mean exposure of the planted canaries as a share of its maximum, log2 |R| (the breakdown shows planted vs never planted)."),
        MetricDef(name="exposure_bits", column="exposure_bits", higher_is_better=False,
                  statistic=_inserted_mean("exposure_bits"), by=("inserted",),
                  description="Mean exposure in bits of the planted canaries."),
        MetricDef(name="exposed_rate", column="exposed", higher_is_better=False,
                  statistic=_inserted_mean("exposed"),
                  description="Share of planted canaries more likely than every sampled candidate."),
        MetricDef(name="epsilon_lower_bound", column="", higher_is_better=False, bootstrap=False,
                  statistic=_audit_stat("epsilon_lower_bound"),
                  description="95% empirical lower bound on epsilon from the one-run audit canaries (Steinke et al. 2023)."),
        MetricDef(name="epsilon_accountant", column="", higher_is_better=False, bootstrap=False,
                  statistic=_audit_stat("epsilon_accountant"),
                  description="Epsilon the DP accountant reported for the training run (training_record.json)."),
    )

    def load(self, ctx: ProbeContext) -> LoadedData:
        if not self.options.data:
            raise ProbeSkipped("no canaries: give --canaries FILE, or audit a model trained by "
                               "`trustslm finetune --insert-canaries N` (its canaries are found beside it)")
        data = read_dataset(self, load_canaries, ctx)
        self._record = self._read_record()
        return data

    def _read_record(self) -> dict[str, Any]:
        """Epsilon and delta from the training record (given, or beside the canary file), read
        bounded and type-checked: a wrong type is a one-line error naming the file and field.
        (The whole record is validated by :mod:`trustslm.train.record` where a model folder is
        discovered; that schema lives in a layer above the probes.)"""
        path = self.options.training_record
        if path is None and self.options.data:
            from trustslm.core.resources import resolve_data_path

            beside = resolve_data_path(self.options.data, base_dir=self.base_dir).parent / "training_record.json"
            path = str(beside) if beside.is_file() else None
        if path is None:
            return {}
        return _record_numbers(Path(path))

    def _candidates(self, canary: dict[str, Any], n: int, ctx: ProbeContext) -> list[str]:
        rng = random.Random(f"{ctx.seed}|{canary['id']}|{canary['prefix']}")
        return [random_secret(rng, canary["alphabet"], len(canary["secret"])) for _ in range(n)]

    def _n(self, canary: dict[str, Any]) -> int:
        return self.options.n_candidates if canary["purpose"] != "audit" else self.options.audit_candidates

    def requests(self, data: LoadedData, ctx: ProbeContext) -> list[LoglikelihoodRequest]:
        out = []
        for c in data.items:
            for secret in [c["secret"], *self._candidates(c, self._n(c), ctx)]:
                out.append(_request(c["prefix"], secret))
        return out

    def score(self, data: LoadedData, results: Results, ctx: ProbeContext) -> ProbeOutput:
        import math

        import numpy as np
        import pandas as pd

        from trustslm.privacy.exposure import exposure
        from trustslm.privacy.one_run_audit import audit

        rows, samples, audit_scores, audit_in = [], [], [], []
        for c in data.items:
            logppl = -results[_request(c["prefix"], c["secret"])].logprob
            cands = [-results[_request(c["prefix"], s)].logprob for s in self._candidates(c, self._n(c), ctx)]
            space = float(len(c["alphabet"])) ** len(c["secret"])
            exp = exposure(logppl, cands, space)
            if c["purpose"] == "audit":
                # one-run audit score: how many standard deviations more likely than its candidates
                audit_scores.append((np.mean(cands) - logppl) / max(float(np.std(cands)), 1e-9))
                audit_in.append(c["inserted"])
            rows.append({"id": c["id"], "purpose": c["purpose"], "inserted": c["inserted"],
                         "exposure_bits": exp.bits, "relative_exposure": exp.bits / exp.max_bits,
                         "exposed": float(exp.bits >= math.log2(len(cands)))})
            samples.append({"id": c["id"], "prefix": c["prefix"],
                            "secret_sha256": hashlib.sha256(c["secret"].encode()).hexdigest()[:16],
                            "inserted": c["inserted"], "purpose": c["purpose"], "exposure_bits": exp.bits,
                            "max_bits": exp.max_bits, "method": exp.method})
        units = pd.DataFrame(rows)
        delta = float(self._record.get("delta") or 0.0)
        if len(audit_scores) >= 10:
            result = audit(audit_scores, audit_in, delta=delta, guess_fraction=self.options.guess_fraction)
            units.attrs["epsilon_lower_bound"] = result.epsilon_lower_bound
            samples.append({"id": "one-run-audit", "canaries": result.m, "guesses": result.guesses,
                            "correct": result.correct, "delta": delta,
                            "epsilon_lower_bound": result.epsilon_lower_bound})
        if self._record.get("epsilon") is not None:
            units.attrs["epsilon_accountant"] = float(self._record["epsilon"])
        return ProbeOutput(units=units, samples=samples)
