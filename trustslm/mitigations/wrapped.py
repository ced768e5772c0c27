"""Decoding-time wrappers and the folder that stores them.

A :class:`WrappedModel` is a :class:`~trustslm.models.base.ModelAdapter` around another one. It
answers every request through the inner model, changing only what its mitigation changes (the
requests, the results, or, through :class:`Steering` installed on a Hugging Face model, the
next-token logits of generation and scoring). Its identity is the inner model's with the
mitigation added: another hash (so cached results of the plain model are never reused) and the
mitigation listed in ``ModelInfo.mitigations``.

A wrapper is saved as a folder holding ``mitigation.json``: the base model (the folder itself
when it also holds weights, else the path or demo name with its sha256, checked on load) and the
steps (mitigation name, options, resolved values). Loading resolves the names among the installed
``trustslm.mitigations`` plugins and validates the options; nothing in the folder is executed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from trustslm.core.errors import BadInputError, ModelFormatError
from trustslm.core.hashing import sha256_json
from trustslm.core.types import ModelInfo
from trustslm.models.base import (
    BatchCallback,
    GenerateRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelAdapter,
    TokenScoresRequest,
    TokenScoresResult,
)

MITIGATION_FILE = "mitigation.json"
FORMAT = "trustslm-mitigation/1"


class Steering(Protocol):
    """Applied by a steered copy of an :class:`~trustslm.models.hf.HFModel` (``with_steering``)."""

    def processors(self, batch: list[GenerateRequest]) -> list[Any]:
        """transformers logits processors for one generation batch, applied before sampling."""

    def transform_logits(self, input_ids: Any, attention_mask: Any, logits: Any) -> Any:
        """The steered next-token logits of a right-padded scoring batch (same shape)."""


class WrappedModel(ModelAdapter):
    """Delegates to ``inner``; subclasses override what their mitigation changes."""

    def __init__(self, inner: ModelAdapter, *, name: str, options: dict[str, Any], resolved: dict[str, Any]):
        self.inner = inner
        self.step = {"name": name, "options": options}
        self._resolved_hash = sha256_json(resolved)
        self.capabilities = inner.capabilities
        self.batch_size = inner.batch_size

    def info(self) -> ModelInfo:
        """The inner model's info with this step added (to the hash, with its resolved values,
        and to ``mitigations``), and the identity recomputed over it."""
        base = self.inner.info()
        return base.model_copy(update={
            "hash": sha256_json([base.hash, self.step, self._resolved_hash]),
            "name": f"{base.name}+{self.step['name']}",
            "mitigations": [*base.mitigations, self.step],
        }).with_identity()

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], *,
                      on_batch: BatchCallback | None = None) -> list[LoglikelihoodResult]:
        return self.inner.loglikelihood(requests, on_batch=on_batch)

    def generate(self, requests: Sequence[GenerateRequest], *,
                 on_batch: BatchCallback | None = None) -> list[GenerationResult]:
        return self.inner.generate(requests, on_batch=on_batch)

    def token_scores(self, requests: Sequence[TokenScoresRequest], *,
                     on_batch: BatchCallback | None = None) -> list[TokenScoresResult]:
        return self.inner.token_scores(requests, on_batch=on_batch)

    def split_tokens(self, text: str, k: int) -> tuple[str, str]:
        return self.inner.split_tokens(text, k)

    def _loglikelihood_batch(self, batch):  # pragma: no cover - calls go through the inner model
        raise NotImplementedError

    def _generate_batch(self, batch):  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        self.inner.close()


def hf_core(adapter: ModelAdapter) -> Any:
    """The Hugging Face model under any wrappers, or None (a mock, a remote model...)."""
    while isinstance(adapter, WrappedModel):
        adapter = adapter.inner
    from trustslm.models.hf import HFModel

    return adapter if isinstance(adapter, HFModel) else None


class SteeredModel(WrappedModel):
    """A wrapper whose change is a :class:`Steering` on the Hugging Face model underneath.

    The model given is not changed: the wrapper holds a copy of the chain of wrappers above the
    Hugging Face model, ending in a steered copy of it (:meth:`HFModel.with_steering`, which
    shares the weights), so the plain adapter keeps answering as the plain model."""

    def __init__(self, inner: ModelAdapter, steering: Steering, **kw: Any):
        if hf_core(inner) is None:
            raise BadInputError(f"{kw['name']} steers logits and needs a Hugging Face model")
        super().__init__(_with_steered_core(inner, steering), **kw)


def _with_steered_core(adapter: ModelAdapter, steering: Steering) -> ModelAdapter:
    """A copy of the wrapper chain ``adapter`` whose Hugging Face model is steered; the chain
    given is not changed."""
    if isinstance(adapter, WrappedModel):
        outer = copy.copy(adapter)
        outer.inner = _with_steered_core(adapter.inner, steering)
        return outer
    return adapter.with_steering(steering)  # type: ignore[attr-defined]  (hf_core checked it is an HFModel)


# -- the wrapper folder -----------------------------------------------------------------------------
def write_wrapper(folder: Path, *, base: str | None, base_hash: str, steps: list[dict[str, Any]]) -> Path:
    """Write ``mitigation.json``. ``base`` None: the weights are in ``folder`` itself."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MITIGATION_FILE
    path.write_text(json.dumps({"format": FORMAT, "base": base, "base_hash": base_hash, "steps": steps},
                               indent=2) + "\n", encoding="utf-8")
    return path


def is_wrapper_folder(path: Path) -> bool:
    return path.is_dir() and (path / MITIGATION_FILE).is_file()


def read_wrapper(folder: Path) -> dict[str, Any]:
    path = folder / MITIGATION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path} is not readable JSON: {exc}") from None
    ok = (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("steps"), list)
          and isinstance(data.get("base_hash"), str) and (data.get("base") is None or isinstance(data["base"], str))
          and all(isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("options", {}), dict)
                  and isinstance(s.get("resolved", {}), dict) for s in data["steps"]))
    if not ok:
        raise ModelFormatError(f"{path} is not a trustslm mitigation file ({FORMAT})")
    return data


def load_wrapped(folder: Path, load_base: Any, registry: Any) -> ModelAdapter:
    """The model a wrapper folder describes. ``load_base(spec)`` loads the base model (with the
    caller's safety options); its hash must be the one recorded."""
    from trustslm.mitigations.base import DecodingMitigation

    data = read_wrapper(folder)
    base = data["base"]
    if base is None:
        adapter = load_base(str(folder), plain=True)
    else:
        base_path = Path(base) if Path(base).is_absolute() else folder / base
        adapter = load_base(str(base_path) if base_path.exists() else base, plain=False)
    if adapter.info().hash != data["base_hash"]:
        adapter.close()
        raise ModelFormatError(f"{folder / MITIGATION_FILE}: the base model {base or folder} has changed "
                               "since the mitigation was made (its sha256 differs)")
    for step in data["steps"]:
        cls = registry.mitigation(step["name"])
        mitigation = cls(step.get("options", {}))
        if not isinstance(mitigation, DecodingMitigation):
            raise ModelFormatError(f"{folder / MITIGATION_FILE}: {step['name']} is not a decoding-time mitigation")
        adapter = mitigation.wrap(adapter, step.get("resolved", {}))
    return adapter
