"""Load what a user names as the model to audit: a plain model (:mod:`trustslm.models.resolve`)
or a mitigation wrapper folder (``mitigation.json``, :mod:`trustslm.mitigations.wrapped`), whose
base model is loaded plainly and checked against its recorded sha256."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import ModelFormatError
from trustslm.core.registry import Registry
from trustslm.mitigations.wrapped import is_wrapper_folder, load_wrapped
from trustslm.models.base import ModelAdapter
from trustslm.models.resolve import load_hf
from trustslm.models.resolve import load_model as load_plain


def load_model(spec: str | Path | ModelAdapter, *, registry: Registry | None = None, **options: Any) -> ModelAdapter:
    """A model adapter for ``spec`` (see :func:`trustslm.models.resolve.load_model` for what
    ``spec`` and ``options`` may be); a wrapper folder gives its base model wrapped."""
    if isinstance(spec, ModelAdapter):
        return spec
    registry = registry or Registry()
    text = str(spec)
    if not is_wrapper_folder(Path(text)):
        return load_plain(text, registry=registry, **options)

    def load_base(base: str, *, plain: bool) -> ModelAdapter:
        if plain:
            return load_hf(base, **options)
        if is_wrapper_folder(Path(base)):
            raise ModelFormatError(f"{text}: its base model {base} is itself a mitigation wrapper")
        return load_plain(base, registry=registry, **options)

    return load_wrapped(Path(text), load_base, registry)
