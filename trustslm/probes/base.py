"""The probe base class and the small types around it.

A probe kind declares, as class attributes, what it needs from a model (``needs``), its options
(``Options``, a pydantic model), and the metrics it computes (``metrics``). Its constructor only
stores the spec and options (scikit-learn's rule). The work is split so that scoring can be tested
without any model and the runner can batch and cache requests across probes:

``load(ctx)`` -> :class:`LoadedData`  (reads the dataset; bad data raises ``DataError``)
``check(ctx)``                         (raise :class:`ProbeSkipped` when it can't run here)
``requests(data, ctx)`` -> list of model requests
``adapt(data, call, ctx)``             (optional: an attack's own loop of further model calls)
``score(data, results, ctx)`` -> :class:`ProbeOutput` (one row per unit, and samples)

The engine turns ``ProbeOutput.units`` into metric values with bootstrap intervals, using the
``metrics`` declarations; probes never compute intervals themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from trustslm.core.errors import ProbeSkipped  # noqa: F401  (re-exported for probe authors)
from trustslm.core.types import DatasetRecord, ScorerInfo
from trustslm.models.base import Request, Result, split_words
from trustslm.scoring.metric_def import MetricDef  # noqa: F401  (re-exported for probe authors)

if TYPE_CHECKING:
    import pandas as pd

    from trustslm.core.registry import Registry
    from trustslm.core.specs import ProbeSpec


class ProbeOptions(BaseModel):
    """Base of every probe kind's options: unknown options are errors. ``limit`` caps this
    probe's items (``--limit`` caps every probe's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    limit: int | None = Field(default=None, ge=1)


@dataclass
class ProbeContext:
    seed: int
    limit: int | None
    capabilities: frozenset[str]
    registry: Registry
    progress: bool = True
    #: Cut a text after its first k tokens (the model's tokenizer once a model is loaded).
    split_tokens: Callable[[str, int], tuple[str, str]] = split_words


@dataclass
class LoadedData:
    items: list[dict[str, Any]]
    datasets: list[DatasetRecord]


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

    def __init__(self, spec: ProbeSpec, options: ProbeOptions, *, base_dir: Path | None = None):
        self.spec = spec
        self.options = options
        self.base_dir = base_dir  # where relative data paths are resolved from

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


def limit_items(items: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    return items if limit is None else items[:limit]


def sampled_request(options: Any, prompt: str, j: int, ctx: ProbeContext, *, chat: bool | None = None) -> Any:
    """The ``j``-th sampled continuation of ``prompt`` under a generation probe's options
    (``max_new_tokens``, ``temperature``, ``top_p``, ``chat``); ``chat`` overrides the option."""
    from trustslm.models.base import CHAT_TEMPLATE, GenerateRequest

    use_chat = options.chat if chat is None else chat
    return GenerateRequest(prompt=prompt, max_new_tokens=options.max_new_tokens, temperature=options.temperature,
                           top_p=options.top_p, chat=use_chat and CHAT_TEMPLATE in ctx.capabilities, seed=ctx.seed,
                           sample_index=j)


def load_scorer(spec: str, ctx: ProbeContext) -> Any:
    """The toxicity scorer a probe's option names, loaded. A named scorer that can't load is bad
    input (exit 2, saying how to supply it); ``auto`` with none available skips the probe."""
    from trustslm.core.errors import ScorerUnavailableError
    from trustslm.scorers.base import make_scorer

    try:
        return make_scorer(spec, ctx.registry)
    except ScorerUnavailableError as exc:
        raise ProbeSkipped(str(exc)) from None


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
    from trustslm.core.resources import resolve_data_path
    from trustslm.data.files import dataset_record

    path = resolve_data_path(probe.options.data, base_dir=probe.base_dir)  # type: ignore[attr-defined]
    items, fmt = loader(path, probe.options.format)  # type: ignore[attr-defined]
    if per is None or ctx.limit is None:
        used = limit_items(items, ctx.limit)
    else:
        used = limit_per(items, per, ctx.limit)
    return LoadedData(items=used, datasets=[dataset_record(path.stem, path, fmt, len(items), len(used))])
