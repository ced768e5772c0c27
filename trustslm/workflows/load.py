"""Load what a user names as the model to audit: a plain model (:mod:`trustslm.models.resolve`)
or a mitigation wrapper folder (``mitigation.json``, :mod:`trustslm.mitigations.wrapped`), whose
base model is loaded plainly and checked against its recorded sha256.

A wrapper folder can't swap in another model (:func:`~trustslm.mitigations.wrapped.load_wrapped`):
its base is its own weights, a model folder inside it, or, only for a ``mitigation.json`` that
trustslm wrote here, the model the user's ``trustslm mitigate`` named; never another wrapper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import ModelFormatError
from trustslm.core.registry import Registry
from trustslm.mitigations.wrapped import is_wrapper_folder, load_wrapped
from trustslm.models.base import ModelAdapter
from trustslm.models.resolve import backend_for, backend_options, load_hf
from trustslm.models.resolve import load_model as load_plain


def load_model(spec: str | Path | ModelAdapter, *, registry: Registry | None = None, **options: Any) -> ModelAdapter:
    """A model adapter for ``spec`` (see :func:`trustslm.models.resolve.load_model` for what
    ``spec`` and ``options`` may be, ``model_args`` included); a wrapper folder gives its base
    model, loaded with those options, wrapped."""
    if isinstance(spec, ModelAdapter):
        return load_plain(spec, **options)  # itself (model_args for it are an error)
    registry = registry or Registry()
    text = str(spec)
    if not is_wrapper_folder(Path(text)):
        return load_plain(text, registry=registry, **options)

    def load_base(base: str, *, plain: bool) -> ModelAdapter:
        """``plain``: a model path, loaded as one (never read as a backend or demo name)."""
        if plain and options.get("backend") in (None, "hf", "transformers"):
            return load_hf(base, **{k: v for k, v in options.items() if k != "backend"})
        if is_wrapper_folder(Path(base)):
            raise ModelFormatError(f"{text}: its base model {base} is itself a mitigation wrapper")
        return load_plain(base, registry=registry, **options)

    return load_wrapped(Path(text), load_base, registry)


def check_model_options(spec: str | Path | ModelAdapter, *, registry: Registry | None = None,
                        **options: Any) -> None:
    """Check, without loading anything, the backend options :func:`load_model` would build
    ``spec`` with (``model_args`` over the loading flags): a bad one is a one-line ``BadInputError``
    before any data or model is read. A wrapper folder's base model is checked when it loads."""
    model_args = options.pop("model_args", None)
    backend = options.pop("backend", None)
    if isinstance(spec, ModelAdapter):
        load_plain(spec, model_args=model_args, backend=backend)
    elif not is_wrapper_folder(Path(str(spec))):
        cls, _ = backend_for(str(spec), registry=registry, backend=backend)
        backend_options(cls, options, model_args)
