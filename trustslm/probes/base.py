"""The probe base class and the small types around it.

A probe kind declares, as class attributes, what it needs from a model (``needs``), its options
(``Options``, a pydantic model), the metrics it computes (``metrics``) and what it can take from a
fine-tuning folder (``training_inputs``). Options that name a file or a toxicity scorer say so by
their type (:data:`DataPath`, :data:`ToxicityScorer`...), which the engine reads. Its constructor
only stores the spec and options (scikit-learn's rule). The work is split so that scoring can be tested
without any model and the runner can batch and cache requests across probes:

``load(ctx)`` -> :class:`LoadedData`  (reads the dataset; bad data raises ``DataError``; the engine
                                       then loads the scorers its options name, :attr:`Probe.scorers`)
``check(ctx)``                         (raise :class:`ProbeSkipped` when it can't run here)
``requests(data, ctx)`` -> list of model requests
``adapt(data, call, ctx)``             (optional: an attack's own loop of further model calls)
``score(data, results, ctx)`` -> :class:`ProbeOutput` (one row per unit, and samples)

Any of them may raise :class:`ProbeSkipped`: the probe is recorded as skipped, with the reason.

The engine turns ``ProbeOutput.units`` into metric values with bootstrap intervals, using the
``metrics`` declarations; probes never compute intervals themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from trustslm.core.errors import ProbeSkipped  # noqa: F401  (re-exported for probe authors)
from trustslm.core.types import DatasetRecord, ScorerInfo, SequentialSampling
from trustslm.models.base import CHAT_TEMPLATE, GenerateRequest, Request, Result, split_words
from trustslm.scoring.metric_def import MetricDef  # noqa: F401  (re-exported for probe authors)

if TYPE_CHECKING:
    import pandas as pd

    from trustslm.core.registry import Registry
    from trustslm.core.specs import ProbeSpec
    from trustslm.scorers.base import Scorer


@dataclass(frozen=True)
class FileOption:
    """Marks a probe option that names a file (a path, or ``builtin:NAME``, ``hf:...``): a relative
    path in a config file is read from the config file's folder."""


@dataclass(frozen=True)
class ScorerOption:
    """Marks a probe option that names a toxicity scorer (``auto``, ``NAME`` or ``NAME:ARG``).

    ``--scorer`` sets every such option. The engine loads the scorer after the probe's ``load()``
    and puts it in :attr:`Probe.scorers`, with one rule: a named scorer that can't load is bad input
    (exit 2, saying how to supply it); ``auto`` takes the first available scorer, and when none is,
    a ``required`` option skips the probe with every reason, an optional one leaves the scorer
    None (the probe runs without what it would have scored)."""

    required: bool = True


#: An option naming a file.
DataPath = Annotated[str, FileOption()]
#: An option naming a file, or None when not given.
OptionalDataPath = Annotated[str | None, FileOption()]
#: An option naming the toxicity scorer the probe can't run without.
ToxicityScorer = Annotated[str, ScorerOption()]
#: An option naming a toxicity scorer the probe can run without (a part of its metrics left out).
OptionalToxicityScorer = Annotated[str, ScorerOption(required=False)]
#: A probability threshold, 0 to 1.
Threshold = Annotated[float, Field(ge=0, le=1)]

Marker = TypeVar("Marker")


def marked_options(options_cls: type[BaseModel], marker: type[Marker]) -> dict[str, Marker]:
    """The options of ``options_cls`` whose type carries a ``marker`` (:class:`FileOption`,
    :class:`ScorerOption`), by name."""
    return {name: m for name, f in options_cls.model_fields.items() for m in f.metadata if isinstance(m, marker)}


class ProbeOptions(BaseModel):
    """Base of every probe kind's options: unknown options are errors. ``limit`` caps this
    probe's items (``--limit`` caps every probe's). ``renamed`` maps former option names to current
    ones: still accepted for a release, with a deprecation notice."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    renamed: ClassVar[Mapping[str, str]] = {}
    limit: int | None = Field(default=None, ge=1)
    sample: int | None = Field(default=None, ge=1, description="Use a stratified random sample of this many items "
                                                                "of the data (before --limit).")
    sample_by: list[str] = Field(default_factory=list, description="The item fields the sample is stratified by.")
    sample_seed: int = Field(default=0, description="The sample's seed (fixed: the same items on every run).")


#: The types of the generation options, for a kind that changes a default (``k: SampleCount = 25``).
SampleCount = Annotated[int, Field(ge=1, le=1000)]
NewTokens = Annotated[int, Field(ge=1, le=1024)]
Temperature = Annotated[float, Field(ge=0)]
TopP = Annotated[float, Field(gt=0, le=1)]


class GenerationOptions(ProbeOptions):
    """How a probe samples from the model: at most ``max_new_tokens`` tokens, at ``temperature``
    with nucleus ``top_p``, through the model's chat template when ``chat`` is on and it has one."""

    max_new_tokens: NewTokens = 30
    temperature: Temperature = 1.0
    top_p: TopP = 0.9
    chat: bool = False


class SampledGenerationOptions(GenerationOptions):
    """:class:`GenerationOptions` and ``k``, the samples per prompt of a
    :class:`SampledGenerationProbe`, and its sequential sampling (``target_width``, ``looks``)."""

    k: SampleCount = 5
    target_width: float | None = Field(
        default=None, gt=0,
        description="Draw the prompts in rounds, in a fixed random order, and stop once the probe's first metric "
                    "has an interval at most this wide; every interval is then corrected for that stopping rule "
                    "(scoring/sequential.py). None (the default): every prompt.")
    looks: int = Field(default=4, ge=2, le=20, description="With target_width: the rounds, i.e. the most looks at "
                                                           "the interval (more looks, wider corrected intervals).")


class GreedyChatOptions(SampledGenerationOptions):
    """:class:`SampledGenerationOptions` for a probe that asks a chat model once per prompt and
    decodes greedily (the chat-app probes; XSTest and garak evaluate so): ``k`` 1, temperature 0,
    the chat template on. A probe sets its own ``max_new_tokens``."""

    k: SampleCount = 1
    temperature: Temperature = 0.0
    chat: bool = True


@dataclass
class ProbeContext:
    seed: int
    limit: int | None
    capabilities: frozenset[str]
    registry: Registry
    progress: bool = True
    #: Cut a text after its first k tokens (the model's tokenizer once a model is loaded).
    split_tokens: Callable[[str, int], tuple[str, str]] = split_words
    #: Where published benchmarks (``benchmark:NAME`` data) are read from: a folder of local
    #: copies (``--data-dir``), else the cache under ``cache_root``, filled by ``fetcher``.
    data_dir: Path | None = None
    cache_root: Path | None = None
    fetcher: Callable[[str, int], bytes] | None = None


@dataclass
class LoadedData:
    items: list[dict[str, Any]]
    datasets: list[DatasetRecord]
    #: Set by a probe that drew its items in rounds (only ``items`` were drawn): its intervals are
    #: corrected for the stopping rule (:mod:`trustslm.scoring.sequential`).
    sequential: SequentialSampling | None = None


@dataclass
class ProbeOutput:
    units: pd.DataFrame
    samples: list[dict[str, Any]] = field(default_factory=list)
    scorer: ScorerInfo | None = None


class Results:
    """Model results, looked up by the request that produced them."""

    def __init__(self, by_key: Mapping[str, Result]):
        self._by_key = by_key

    def __getitem__(self, request: Request) -> Result:
        return self._by_key[request.key()]

    def __contains__(self, request: Request) -> bool:
        return request.key() in self._by_key


class Probe:
    kind: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type[ProbeOptions]] = ProbeOptions
    metrics: ClassVar[tuple[MetricDef, ...]] = ()

    #: What the probe kind can take from a fine-tuning folder, by the option it sets: keys from
    #: :data:`TRAINING_INPUTS`, values option names (e.g. ``{"canaries": "data"}``). The folder's
    #: ``training_record.json`` says what it holds; ``--canaries``, ``--members``, ``--non-members``
    #: and ``--reference-model`` give the same by hand.
    training_inputs: ClassVar[Mapping[str, str]] = {}

    #: Whether :meth:`adapt` asks for its requests in a few large rounds, each worth a progress
    #: bar of its own (sampling in rounds); an attack asks in many small calls and shows its own bar.
    adapt_in_rounds: ClassVar[bool] = False

    def __init__(self, spec: ProbeSpec, options: ProbeOptions, *, base_dir: Path | None = None):
        self.spec = spec
        self.options = options
        self.base_dir = base_dir  # where relative data paths are resolved from
        #: The scorers its scorer options name, by option, loaded by the engine after ``load()``
        #: (None: ``auto`` found none for an optional one; see :class:`ScorerOption`).
        self.scorers: dict[str, Scorer | None] = {}

    @property
    def id(self) -> str:
        return self.spec.id

    def load(self, ctx: ProbeContext) -> LoadedData:
        raise NotImplementedError

    def check(self, ctx: ProbeContext) -> None:
        """Raise :class:`ProbeSkipped` when the probe can't run (beyond missing capabilities)."""

    def requests(self, data: LoadedData, ctx: ProbeContext) -> list[Request]:
        raise NotImplementedError

    def adapt(self, data: LoadedData, call: Callable[[list[Request]], Results], ctx: ProbeContext) -> None:
        """Adaptive probes (attacks) override this: after every probe's ``requests()`` have run,
        the engine calls it with ``call``, which runs more requests through the same batched,
        deduplicated and cached path and returns their results. Keep what ``score`` needs on
        ``data``. Queries must be a deterministic function of the seed and earlier answers, so
        that ``--resume`` replays them from the cache."""

    def score(self, data: LoadedData, results: Results, ctx: ProbeContext) -> ProbeOutput:
        raise NotImplementedError


def require_packages(packages: Mapping[str, str], extra: str) -> None:
    """Skip the probe (:class:`ProbeSkipped`, naming the pip line) unless every module of
    ``packages`` (module name: distribution name) can be imported; ``extra`` is the trustslm
    extra that installs them."""
    from importlib.util import find_spec

    for module, distribution in packages.items():
        if find_spec(module) is None:
            raise ProbeSkipped(f"needs {distribution}: pip install 'trustslm[{extra}]'")


def limit_items(items: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    return items if limit is None else items[:limit]


#: What a fine-tuning folder (``trustslm finetune``) can offer a probe kind (its ``training_inputs``):
#: the planted canaries, the training record itself, the member and non-member texts of membership
#: inference, texts the model was trained on, and the model it was fine-tuned from.
TRAINING_INPUTS = ("canaries", "training_record", "members", "non_members", "training_texts", "base_model")


def sampled_request(options: GenerationOptions, prompt: str, j: int, ctx: ProbeContext, *, chat: bool | None = None,
                    stop: tuple[str, ...] = ()) -> GenerateRequest:
    """The ``j``-th sampled continuation of ``prompt`` under a probe's :class:`GenerationOptions`
    (``chat`` overrides the option), cut at ``stop``."""
    use_chat = options.chat if chat is None else chat
    return GenerateRequest(prompt=prompt, max_new_tokens=options.max_new_tokens, temperature=options.temperature,
                           top_p=options.top_p, chat=use_chat and CHAT_TEMPLATE in ctx.capabilities, seed=ctx.seed,
                           sample_index=j, stop=stop)


class SampledGenerationProbe(Probe):
    """A probe that continues every item's ``prompt`` ``k`` times (:class:`SampledGenerationOptions`)
    and scores the continuations: ``requests()`` asks for them, :meth:`generations` reads them back.
    Override :meth:`sample_request` to build an item's request otherwise."""

    Options: ClassVar[type[SampledGenerationOptions]] = SampledGenerationOptions
    options: SampledGenerationOptions
    adapt_in_rounds = True

    def sample_request(self, item: dict[str, Any], j: int, ctx: ProbeContext) -> GenerateRequest:
        return sampled_request(self.options, item["prompt"], j, ctx)

    def requests(self, data: LoadedData, ctx: ProbeContext) -> list[Request]:
        items = data.items
        if self.options.target_width is not None:  # the first round, of a fixed random order
            import random

            items = list(items)
            random.Random(f"{ctx.seed}|{self.id}").shuffle(items)
            data.items = items
            items = items[: items_at_look(len(items), 1, self.options.looks)]
        return [self.sample_request(item, j, ctx) for item in items for j in range(self.options.k)]

    def adapt(self, data: LoadedData, call: Callable[[list[Request]], Results], ctx: ProbeContext) -> None:
        """With ``target_width``: after each round, the interval of the probe's first metric on the
        prompts drawn so far (at the corrected level); stop when it is at most ``target_width``
        wide, else draw the next round. ``data.items`` keeps the drawn prompts."""
        o = self.options
        if o.target_width is None:
            return
        from dataclasses import replace

        from trustslm.scoring.metrics import compute_metrics
        from trustslm.scoring.sequential import METHOD, corrected_level

        headline = replace(next(m for m in self.metrics if m.overall), by=(), at=())
        n, width, look, drawn = len(data.items), None, 0, 0
        while drawn < n:
            look += 1
            drawn = items_at_look(n, look, o.looks)
            part = LoadedData(items=data.items[:drawn], datasets=data.datasets)
            results = call([self.sample_request(item, j, ctx) for item in part.items for j in range(o.k)])
            units = self.score(part, results, ctx).units
            width = None
            if not headline.column or headline.column in units.columns:
                [m] = compute_metrics(units, (headline,), seed=ctx.seed, probe_id=self.id, looks=o.looks)
                if m.metric.ci_low is not None and m.metric.ci_high is not None:
                    width = m.metric.ci_high - m.metric.ci_low
            if width is not None and width <= o.target_width:
                break
        data.items = data.items[:drawn]
        data.datasets = [d.model_copy(update={"n_used": drawn}) for d in data.datasets[:1]] + data.datasets[1:]
        data.sequential = SequentialSampling(
            metric=headline.name, target_width=o.target_width, looks=o.looks, stopped_at=look, items_drawn=drawn,
            items_available=n, width=None if width is None else round(width, 6),
            level=round(corrected_level(o.looks), 6), method=METHOD)

    def generations(self, data: LoadedData, results: Results, ctx: ProbeContext) -> list[tuple[dict[str, Any], int, str]]:
        """``(item, j, text)`` of every continuation, in the order of ``requests()``."""
        return [(item, j, results[self.sample_request(item, j, ctx)].text)
                for item in data.items for j in range(self.options.k)]


def items_at_look(n_items: int, look: int, looks: int) -> int:
    """How many items the first ``look`` of ``looks`` equal rounds draw, of ``n_items``."""
    return min(n_items, -(-n_items * look // looks))


def limit_per(items: list[dict[str, Any]], key: str | tuple[str, ...], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` items of every value of ``key`` (a field, or a tuple of fields), in the
    original order."""
    fields = (key,) if isinstance(key, str) else key
    seen: dict[Any, int] = {}
    kept = []
    for item in items:
        value = tuple(item[f] for f in fields)
        seen[value] = seen.get(value, 0) + 1
        if seen[value] <= limit:
            kept.append(item)
    return kept


def read_dataset(
    probe: Probe,
    loader: Callable[[Path, str], tuple[list[dict[str, Any]], str]],
    ctx: ProbeContext,
    *,
    per: str | tuple[str, ...] | None = None,
) -> LoadedData:
    """Read the file a probe's ``data`` option names (``builtin:NAME`` or a path) with ``loader``
    (given the path and the ``format`` option), apply ``--limit`` (to the first N items, or with
    ``per`` to the first N of every value of that field or fields), and describe the file."""
    from trustslm.data.files import dataset_record
    from trustslm.data.sampling import stratified_sample

    path, source = data_path(probe.options.data, probe.base_dir, ctx)  # type: ignore[attr-defined]
    items, fmt = loader(path, probe.options.format)  # type: ignore[attr-defined]
    opts = probe.options
    n_read, sampling = len(items), None
    if opts.sample is not None:
        items, sampling = stratified_sample(items, opts.sample, by=opts.sample_by, seed=opts.sample_seed,
                                            where=f"{probe.id}.sample_by")
    if per is None or ctx.limit is None:
        used = limit_items(items, ctx.limit)
    else:
        used = limit_per(items, per, ctx.limit)
    name = source["benchmark"] if source else path.stem
    record = dataset_record(name, path, fmt, n_read, len(used), sha256=source["sha256"] if source else None)
    return LoadedData(items=used, datasets=[record.model_copy(update={"source": source, "sampling": sampling})])


def data_path(value: str, base_dir: Path | None, ctx: ProbeContext) -> tuple[Path, dict[str, str] | None]:
    """The path a ``data`` option names, and for a published benchmark (``benchmark:NAME``) its
    origin for the report (:mod:`trustslm.data.benchmarks`: pinned, verified, cached)."""
    from trustslm.core.resources import cache_dir, resolve_data_path
    from trustslm.data.benchmarks import describe, is_benchmark, resolve_benchmark

    if is_benchmark(value):
        resolved = resolve_benchmark(value, data_dir=ctx.data_dir, cache_root=ctx.cache_root or cache_dir(),
                                     fetcher=ctx.fetcher)
        return resolved.path, describe(resolved)
    return resolve_data_path(value, base_dir=base_dir), None
