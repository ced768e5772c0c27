"""Typed, frozen, versioned report models (pydantic).

The JSON Schema of :class:`TrustReport` is kept in ``trustslm/report/schema.json``; a test checks
that it equals what these models generate, so a change here is a visible schema change.
Bump :data:`SCHEMA_VERSION` when a field is removed or changes meaning.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from trustslm.core.hashing import sha256_json

if TYPE_CHECKING:  # pandas is imported only when a frame is asked for
    import pandas as pd

SCHEMA_VERSION = "1.1"
#: Report versions :meth:`TrustReport.load` reads (1.0 lacks the model's identity and backend fields).
READABLE_SCHEMA_VERSIONS = ("1.0", "1.1")

from trustslm.core.dimensions import DIMENSIONS, Dimension  # noqa: E402,F401  (part of this module's API)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileRecord(_Frozen):
    """A file the result depends on, by content."""

    path: str = Field(description="Path relative to the model folder (or absolute for sources).")
    sha256: str
    size: int


class Quantisation(_Frozen):
    """How a GGUF file stores its weights (:func:`trustslm.compress.gguf_info.describe_gguf`)."""

    file_type: str | None = Field(description="The file's llama.cpp type (general.file_type), e.g. Q4_K_M.")
    tensor_types: dict[str, dict[str, int]] = Field(
        description="Per tensor class (the tensor name without its block number and suffix, e.g. attn_q, "
                    "ffn_down, token_embd): how many tensors of each storage type.")
    parameters: int = Field(description="Weights in all tensors.")
    tensor_bytes: int = Field(description="Bytes the tensors take in the file.")
    size_bytes: int = Field(description="The file's size on disk.")
    bits_per_weight: float = Field(description="8 x tensor_bytes / parameters.")


class ModelInfo(_Frozen):
    """Provenance of the audited model, and its identity: a digest over everything that can
    change its outputs, which the request cache keys on (:meth:`output_identity`)."""

    spec: str = Field(description="What the user named: a path, a GGUF file or the demo name.")
    kind: str = Field(description="The kind of model: 'hf', 'gguf' and 'mock' for the built-in backends, "
                                  "a plugin backend's own name otherwise.")
    name: str
    path: str | None = None
    files: list[FileRecord] = Field(default_factory=list)
    source: FileRecord | None = Field(
        default=None, description="The file this model was converted from (the demo's GGUF)."
    )
    hash: str = Field(description="sha256 over the model's files (or the mock's script).")
    parameters: int | None = None
    dtype: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    chat_template: bool = False
    mitigations: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Decoding-time mitigations wrapped around the weights, innermost first: name and options.",
    )
    backend: str | None = Field(default=None, description="The adapter that computes the outputs: 'transformers', "
                                                          "'mock', or a plugin backend's name.")
    backend_versions: dict[str, str] = Field(
        default_factory=dict, description="Versions of the libraries that compute the outputs (e.g. transformers, torch).")
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="The backend options that can change the outputs (beyond dtype and device).")
    device: str | None = Field(default=None, description="Device class the model runs on: 'cpu', 'cuda', 'mps'.")
    chat_template_sha256: str | None = Field(default=None, description="sha256 of the chat template, if any.")
    quantisation: Quantisation | None = Field(
        default=None, description="For a GGUF file run by llama.cpp: its storage type per tensor class, size and bits per weight.")
    identity: str | None = Field(
        default=None, description="sha256 over everything that can change the outputs: hash (weights, tokenizer and "
                                  "config files), chat template, dtype, device, backend and its versions and options, "
                                  "mitigations. The request cache keys on it. Null in schema 1.0 reports.")

    def output_identity(self) -> str:
        """The digest :attr:`identity` holds, computed from this info's :data:`IDENTITY_FIELDS`."""
        return sha256_json({"identity": 1, **{f: getattr(self, f) for f in IDENTITY_FIELDS}})

    def with_identity(self) -> ModelInfo:
        """This info with :attr:`identity` set from its other fields (the one way adapters set it)."""
        return self.model_copy(update={"identity": self.output_identity()})


#: The fields of :class:`ModelInfo` that can change a model's outputs; the identity covers exactly these.
IDENTITY_FIELDS = ("hash", "chat_template_sha256", "dtype", "device", "backend", "backend_versions",
                   "backend_options", "mitigations")


class DatasetRecord(_Frozen):
    name: str
    path: str
    sha256: str
    n_items: int = Field(description="Items read from the file (before --limit).")
    n_used: int = Field(description="Items the probe used.")
    format: str
    source: dict[str, str] | None = Field(
        default=None, description="A published benchmark's origin (trustslm.data.benchmarks.describe): its name, "
                                  "title, source repository, pinned revision, licence, url and where it was read from.")
    sampling: str | None = Field(default=None, description="How the items used were sampled from the file, if they were.")


class ProbeSpeed(_Frozen):
    """Where a probe's time went (``--resume`` hits and requests shared with an earlier probe
    cost no model time)."""

    model_time_s: float = Field(description="The probe's share of model time: each batch's time split over its "
                                            "requests by tokens.")
    overhead_s: float = Field(description="wall_time_s - model_time_s: data, request building, scoring, bootstrap.")
    tokens: int = Field(description="Tokens the model processed for this probe's computed requests (prompt and "
                                    "continuation, plus generated tokens).")
    tokens_per_s: float | None
    requests: int
    computed: int = Field(description="Requests the model computed for this probe.")
    cache_hits: int = Field(description="Requests read from the cache (--resume).")
    shared: int = Field(description="Requests another probe of this run asked for first (computed once).")
    repeated: int = Field(0, description="Requests this probe asked for more than once, counted after the first "
                                         "(computed once; e.g. an answer that is both an MC1 and an MC2 choice).")


class SequentialSampling(_Frozen):
    """How a probe drew its items in rounds and stopped (``target_width``): every interval of
    the probe is taken at the corrected level that keeps 95% over the planned looks."""

    metric: str = Field(description="The metric whose interval decided when to stop.")
    target_width: float = Field(description="Stop once that interval is at most this wide.")
    looks: int = Field(description="Rounds planned (the most looks at the interval).")
    stopped_at: int = Field(description="The look the probe stopped at (looks: it ran every round).")
    items_drawn: int
    items_available: int
    width: float | None = Field(description="The interval's width at the look it stopped at.")
    level: float = Field(description="The level every interval of the probe is taken at: 1 - 0.05 / looks.")
    method: str


class Metric(_Frozen):
    """One number a probe measured, with its direction and uncertainty."""

    name: str
    value: float | None
    higher_is_better: bool | None = Field(
        description="True/False for monotone metrics; null when a target value is best."
    )
    target: float | None = Field(default=None, description="The best value, for target metrics.")
    n: int = Field(description="Units (pairs, prompts...) the value is computed over.")
    ci_low: float | None = None
    ci_high: float | None = None
    group: str | None = Field(default=None, description="'column=value' for a breakdown row.")
    score: float | None = Field(
        default=None, description="Normalised 0-100 score, for the metrics that count in the score."
    )
    description: str = ""
    chart: bool | Literal["reliability"] = Field(
        default=False, description="The HTML report draws this metric's breakdown rows: as bars (true), or as a "
                                   "reliability diagram (rows grouped by confidence bin 'confidence_bin=LO-HI').")
    detector: str | None = Field(
        default=None, description="The detector whose verdicts the rate counts (e.g. 'refusal phrases'), and its "
                                  "measured error where hand labels exist; null for a metric no detector produced.")
    corrected: bool = Field(
        default=False, description="True for a rate corrected for its detector's measured sensitivity and "
                                   "specificity (Rogan-Gladen; the interval also resamples the hand labels).")


class ScoreValue(_Frozen):
    score: float
    ci_low: float
    ci_high: float


class ChanceLevel(_Frozen):
    """What a uniform-random answerer scores on a probe: the probe run on the same requests by an
    answerer that picks every option with equal probability (:mod:`trustslm.engine.chance`)."""

    runs: int = Field(description="Random answerers drawn (0: not computed, see reason).")
    score: float | None = Field(default=None, description="Mean probe score over the random answerers.")
    score_low: float | None = Field(default=None, description="2.5th percentile of their probe scores.")
    score_high: float | None = Field(default=None, description="97.5th percentile of their probe scores.")
    metrics: dict[str, float] = Field(default_factory=dict,
                                      description="Mean value of each overall metric over the answerers.")
    indistinguishable: bool | None = Field(
        default=None, description="True when the chance score lies inside the model's 95% score interval: the "
                                  "model's score can't be told apart from a random answerer's.")
    reason: str | None = Field(default=None, description="Why there is no chance level, when there is none.")


class CardRef(_Frozen):
    path: str
    summary: str


class ScorerInfo(_Frozen):
    name: str
    version: str
    weights_sha256: dict[str, str] = Field(default_factory=dict)
    detail: str = ""


class ProbeResult(_Frozen):
    probe_id: str
    kind: str
    dimension: Dimension
    version: str
    status: Literal["ok", "skipped", "error"]
    reason: str | None = None
    metrics: list[Metric] = Field(default_factory=list)
    score: ScoreValue | None = None
    datasets: list[DatasetRecord] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    scorer: ScorerInfo | None = None
    n_samples: int = 0
    n_requests: int = 0
    wall_time_s: float = 0.0
    speed: ProbeSpeed | None = None
    sequential: SequentialSampling | None = None
    card: CardRef | None = None
    chance: ChanceLevel | None = Field(
        default=None, description="The probe's chance level (likelihood probes): what uniform-random answerers score.")
    taxonomy: dict[str, list[str]] = Field(
        default_factory=dict, description="The probe's risk tags by taxonomy (owasp_llm_2025: LLM01..LLM10; "
                                          "nist_ai_600_1: the risks of NIST AI 600-1), from its spec.")

    def metric(self, name: str, group: str | None = None) -> Metric:
        for m in self.metrics:
            if m.name == name and m.group == group:
                return m
        raise KeyError(f"{self.probe_id} has no metric {name!r} (group {group!r})")


class DimensionScore(_Frozen):
    status: Literal["measured", "not measured"]
    score: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    probes: list[str] = Field(default_factory=list)


class OverallScore(_Frozen):
    score: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    dimensions_measured: list[str]
    dimensions_not_measured: list[str]


class ScoringInfo(_Frozen):
    normaliser: str
    probe_aggregation: str
    dimension_aggregation: str
    overall_aggregation: str
    interval: str
    bootstrap_resamples: int
    confidence_level: float


class GateRuleResult(_Frozen):
    rule: str
    target: str
    op: Literal["min", "max", "regression"] = Field(
        description="'min'/'max': a threshold on the value; 'regression': the change from the baseline report.")
    threshold: float = Field(description="The bound, or for a regression rule the tolerance (in the target's units; "
                                         "score points for dimensions and overall).")
    actual: float | None
    passed: bool
    reason: str
    baseline: float | None = Field(default=None, description="Regression rules: the baseline report's value.")
    regression: float | None = Field(
        default=None, description="Regression rules: how much worse the new value is (negative: better), in the "
                                  "metric's direction (distance from the target for target metrics).")
    ci_low: float | None = Field(default=None, description="Regression rules: 95% paired-bootstrap interval of "
                                                           "'regression'.")
    ci_high: float | None = None
    p_value: float | None = Field(default=None, description="Regression rules: one-sided paired-bootstrap p-value "
                                                            "of 'the regression is at most the tolerance'.")
    p_adjusted: float | None = Field(default=None, description="p_value after Holm's correction over the "
                                                               "compared regression rules.")


class GateResult(_Frozen):
    policy: str | None = None
    policy_sha256: str | None = None
    baseline: str | None = Field(default=None, description="The baseline report compared with, if any.")
    baseline_model_hash: str | None = None
    passed: bool
    rules: list[GateRuleResult] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list)


class Environment(_Frozen):
    trustslm: str
    python: str
    platform: str
    torch: str | None = None
    transformers: str | None = None


class RunInfo(_Frozen):
    seed: int
    limit: int | None
    profile: Literal["full", "quick"] = Field(default="full", description="'quick': the specs' quick options applied (--quick).")
    probes_requested: list[str]
    suite: str | None = Field(default=None, description="The suite run (--suite): its name and version.")
    suite_sha256: str | None = None
    config: dict[str, dict[str, Any]] = Field(description="Resolved options of every probe run.")
    config_hash: str
    started_at: str
    wall_time_s: float
    resumed: bool
    cache_hits: int
    cache_misses: int


class TrustReport(_Frozen):
    """The result of one audit. ``report.json`` is this model, dumped."""

    schema_version: str = SCHEMA_VERSION
    trustslm_version: str
    environment: Environment
    model: ModelInfo
    run: RunInfo
    results: list[ProbeResult]
    dimensions: dict[str, DimensionScore]
    overall: OverallScore
    scoring: ScoringInfo
    gate: GateResult
    _samples: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _units: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def samples(self) -> list[dict[str, Any]]:
        """Per-sample records of every probe (what ``samples.jsonl`` holds); empty for a
        report read back from JSON."""
        return self._samples

    @property
    def units(self) -> dict[str, pd.DataFrame]:
        """Each probe's unit table, the rows its metrics were computed from (what ``units.jsonl``
        holds); the release gate resamples them to compare two reports. Empty for a report read
        back from JSON alone (:func:`trustslm.report.files.load_report_dir` reads them too)."""
        return self._units

    # -- access -----------------------------------------------------------------------------
    def result(self, probe_id: str) -> ProbeResult:
        for r in self.results:
            if r.probe_id == probe_id:
                return r
        raise KeyError(f"the report has no result for probe {probe_id!r}")

    def to_frame(self) -> pd.DataFrame:
        """Every metric of every probe, one row each."""
        import pandas as pd

        rows = [
            {
                "probe_id": r.probe_id,
                "dimension": r.dimension,
                "status": r.status,
                "metric": m.name,
                "group": m.group,
                "value": m.value,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "n": m.n,
                "higher_is_better": m.higher_is_better,
                "target": m.target,
                "score": m.score,
            }
            for r in self.results
            for m in r.metrics
        ]
        columns = ["probe_id", "dimension", "status", "metric", "group", "value", "ci_low",
                   "ci_high", "n", "higher_is_better", "target", "score"]
        return pd.DataFrame(rows, columns=columns)

    def _repr_html_(self) -> str:
        """The scores as HTML in a notebook: the ``html-fragment`` renderer (entry point group
        ``trustslm.renderers``, found by name, so the core imports no renderer)."""
        from trustslm.core.registry import Registry

        return Registry().renderer("html-fragment")(self)

    # -- files ------------------------------------------------------------------------------
    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def load(cls, path: str | Path) -> TrustReport:
        """Read a ``report.json``; a file that isn't one is a one-line :class:`BadInputError`. The file is
        untrusted: bounded (:data:`~trustslm.core.limits.MAX_REPORT_FILE_BYTES`, nesting depth), and a
        report the renderers can't show (a dimension missing, a score without its interval) is refused
        here rather than failing in a renderer."""
        from pydantic import ValidationError

        from trustslm.core.errors import BadInputError
        from trustslm.core.limits import MAX_REPORT_FILE_BYTES
        from trustslm.core.textfiles import first_validation_error, parse_json, read_bounded_text

        path = Path(path)
        data = parse_json(read_bounded_text(path, "report", MAX_REPORT_FILE_BYTES), f"{path} is not a JSON report")
        if not isinstance(data, dict) or data.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
            found = data.get("schema_version") if isinstance(data, dict) else None
            raise BadInputError(f"{path}: expected a trustslm report with schema_version "
                                f"{' or '.join(READABLE_SCHEMA_VERSIONS)}, found {str(found)[:40]!r}")
        try:
            report = cls.model_validate(data)
        except ValidationError as exc:
            loc, msg, _ = first_validation_error(exc)
            raise BadInputError(f"{path}: not a valid report at {loc}: {msg}") from None
        problem = report._inconsistency()
        if problem:
            raise BadInputError(f"{path}: not a valid report: {problem}")
        return report

    def _inconsistency(self) -> str | None:
        """What makes this report impossible as the engine writes it (and unrenderable), or None: every
        dimension is listed, a measured one (and a scored overall) has a score and both interval ends."""
        from trustslm.core.textfiles import one_line

        missing = [d for d in DIMENSIONS if d not in self.dimensions]
        if missing:
            return f"dimension {missing[0]!r} is missing"
        unknown = [d for d in self.dimensions if d not in DIMENSIONS]
        if unknown:
            return f"unknown dimension {one_line(unknown[0])[:60]!r}"
        for name, d in self.dimensions.items():
            scored = (d.score, d.ci_low, d.ci_high)
            if d.status == "measured" and None in scored:
                return f"dimension {name!r} is measured but lacks its score or interval"
            if d.status == "not measured" and d.score is not None:
                return f"dimension {name!r} is not measured but has a score"
        o = self.overall
        if o.score is not None and None in (o.ci_low, o.ci_high):
            return "the overall score lacks its interval"
        return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``report.json``."""
    schema = TrustReport.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://trustslm.dev/schema/report-{SCHEMA_VERSION}.json"
    return schema
