"""Turn what a user names into a :class:`~trustslm.models.base.ModelAdapter`.

Accepted (a mitigation wrapper folder is :func:`trustslm.workflows.load.load_model`'s): an adapter object; ``KIND:ARG`` for a model kind registered in the ``trustslm.models``
entry-point group (built-ins: ``mock`` or ``mock:SCRIPT.yaml``, ``hf:PATH``, ``llamacpp:FILE.gguf``,
``openai:URL``, ``vllm:MODEL``); an ``http(s)://`` URL (an OpenAI-compatible server); the demo name
(``smollm2``); a Hugging Face model folder (safetensors); a ``.gguf`` file or a folder holding
one; and, only with ``allow_download=True``, a Hugging Face hub id, fetched (safetensors and JSON
files only) and then checked like any local folder. ``backend=NAME`` (``--backend``) picks the
backend for a plain path or name: ``hf`` (the default), ``llama.cpp``, ``openai``, ``vllm``.

``model_args`` are the backend's own options (``--model-arg KEY=VALUE``), checked against its
``Options``; the loading flags (``allow_pickle``, ``allow_download``, ``batch_size``,
``cache_dir``) reach the backends whose ``Options`` declare them, and ``model_args`` win over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.models.base import DEFAULT_BATCH_SIZE, BackendOptions, ModelAdapter


def load_model(
    spec: str | Path | ModelAdapter,
    *,
    allow_pickle: bool = False,
    allow_download: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir: Path | None = None,
    model_args: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    backend: str | None = None,
) -> ModelAdapter:
    if isinstance(spec, ModelAdapter):
        if model_args or backend:
            raise BadInputError("model arguments and a backend are for a model named by a string, not for an adapter object")
        return spec
    common = {"allow_pickle": allow_pickle, "allow_download": allow_download, "batch_size": batch_size,
              "cache_dir": cache_dir}
    cls, arg = backend_for(str(spec), registry=registry, backend=backend)
    return cls.from_spec(arg, backend_options(cls, common, model_args))


def load_hf(text: str, *, model_args: Mapping[str, Any] | None = None, **common: Any) -> ModelAdapter:
    """A Hugging Face folder, a GGUF file or folder, the demo model, or (if allowed) a hub id."""
    from trustslm.models.hf import HFModel

    return HFModel.from_spec(text, backend_options(HFModel, common, model_args))


#: Other names users give a backend: ``--backend llama.cpp`` is the ``llamacpp`` kind.
BACKEND_ALIASES = {"llama.cpp": "llamacpp", "llama-cpp": "llamacpp", "transformers": "hf"}


def backend_for(text: str, *, registry: Registry | None = None,
                backend: str | None = None) -> tuple[type[ModelAdapter], str]:
    """The adapter class ``text`` names and the argument it is built from: the ``backend`` asked
    for (its kind's name or an alias) with the whole text; else a registered ``KIND:`` prefix and
    what follows it; else the OpenAI-compatible backend for an ``http(s)://`` URL; else the
    Hugging Face backend and the whole text."""
    registry = registry or Registry()
    prefix, _, rest = text.partition(":")
    is_url = prefix.lower() in ("http", "https") and rest.startswith("//")
    kind = None
    if backend is not None:
        kind = BACKEND_ALIASES.get(backend, backend)
        if kind not in registry.model_kinds():
            known = ", ".join(sorted({*registry.model_kinds(), *BACKEND_ALIASES}))
            raise BadInputError(f"unknown backend {backend!r} (backends: {known})")
        if not is_url and not Path(text).exists() and prefix in registry.model_kinds() and prefix != kind:
            raise BadInputError(f"--backend {backend} contradicts the model's own kind {prefix!r}")
        if not is_url and prefix == kind:
            text = rest
    elif is_url:
        kind = "openai"
    elif not Path(text).exists() and len(prefix) > 1 and prefix in registry.model_kinds():
        kind, text = prefix, rest
    if kind is None or kind == "hf":
        from trustslm.models.hf import HFModel

        return HFModel, text
    cls = registry.model_kind(kind)
    if not (isinstance(cls, type) and issubclass(cls, ModelAdapter)):
        raise BadInputError(f"model kind {kind!r} does not name a ModelAdapter subclass")
    return cls, text


def backend_options(cls: type[ModelAdapter], common: Mapping[str, Any],
                    model_args: Mapping[str, Any] | None) -> BackendOptions:
    """``cls``'s checked options: the ``common`` loading flags it declares, under ``model_args``."""
    fields = cls.Options.model_fields
    merged = {k: v for k, v in common.items() if k in fields}
    merged.update(model_args or {})
    return cls.check_options(merged)
