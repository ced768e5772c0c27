"""Turn what a user names into a :class:`~trustslm.models.base.ModelAdapter`.

Accepted (a mitigation wrapper folder is :func:`trustslm.workflows.load.load_model`'s): an adapter object; ``KIND:ARG`` for a model kind registered in the ``trustslm.models``
entry-point group (built-ins: ``mock`` or ``mock:SCRIPT.yaml``, ``hf:PATH``); the demo name
(``smollm2``); a Hugging Face model folder (safetensors); a ``.gguf`` file or a folder holding
one; and, only with ``allow_download=True``, a Hugging Face hub id, fetched (safetensors and JSON
files only) and then checked like any local folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.registry import Registry
from trustslm.models.base import DEFAULT_BATCH_SIZE, ModelAdapter


def load_model(
    spec: str | Path | ModelAdapter,
    *,
    allow_pickle: bool = False,
    allow_download: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir: Path | None = None,
    registry: Registry | None = None,
) -> ModelAdapter:
    if isinstance(spec, ModelAdapter):
        return spec
    text = str(spec)
    options = {"allow_pickle": allow_pickle, "allow_download": allow_download,
               "batch_size": batch_size, "cache_dir": cache_dir}
    prefix, _, rest = text.partition(":")
    if not Path(text).exists() and len(prefix) > 1:
        registry = registry or Registry()
        if prefix in registry.model_kinds():
            return registry.model_kind(prefix).from_spec(rest, **options)
    return load_hf(text, **options)


def load_hf(text: str, **options: Any) -> ModelAdapter:
    """A Hugging Face folder, a GGUF file or folder, the demo model, or (if allowed) a hub id."""
    from trustslm.models.hf import HFModel

    return HFModel.from_spec(text, **options)
