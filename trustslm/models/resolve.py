"""Turn what a user names into a :class:`~trustslm.models.base.ModelAdapter`.

Accepted: an adapter object; ``KIND:ARG`` for a model kind registered in the ``trustslm.models``
entry-point group (built-ins: ``mock`` or ``mock:SCRIPT.yaml``, ``hf:PATH``); the demo name
(``smollm2``); a Hugging Face model folder (safetensors); a ``.gguf`` file or a folder holding
one; and, only with ``allow_download=True``, a Hugging Face hub id, fetched (safetensors and JSON
files only) and then checked like any local folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from trustslm.errors import BadInputError, ModelFormatError
from trustslm.models.base import DEFAULT_BATCH_SIZE, ModelAdapter
from trustslm.registry import Registry
from trustslm.resources import cache_dir as default_cache_dir

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: Files fetched from the hub: never pickles, never code.
HUB_ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


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
    from trustslm.mitigations.wrapped import is_wrapper_folder, load_wrapped

    if is_wrapper_folder(Path(text)):
        registry = registry or Registry()

        def load_base(base: str, *, plain: bool) -> ModelAdapter:
            if plain:
                return load_hf(base, **options)
            if is_wrapper_folder(Path(base)):
                raise ModelFormatError(f"{text}: its base model {base} is itself a mitigation wrapper")
            return load_model(base, registry=registry, **options)

        return load_wrapped(Path(text), load_base, registry)
    prefix, _, rest = text.partition(":")
    if not Path(text).exists() and len(prefix) > 1:
        registry = registry or Registry()
        if prefix in registry.model_kinds():
            return registry.model_kind(prefix).from_spec(rest, **options)
    return load_hf(text, **options)


def load_hf(
    text: str,
    *,
    allow_pickle: bool = False,
    allow_download: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir: Path | None = None,
) -> ModelAdapter:
    """A Hugging Face folder, a GGUF file or folder, the demo model, or (if allowed) a hub id."""
    from trustslm.models import demo
    from trustslm.models.validate import inspect_model_path

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    source = None
    name = None
    if demo.is_demo_name(text) and not Path(text).exists():
        folder, source = demo.ensure_demo_model(cache)
        path, name = folder, demo.DEMO_NAME
    else:
        path = Path(text).expanduser()
        if not path.exists() and _HUB_ID.match(text):
            if not allow_download:
                raise ModelFormatError(
                    f"model path does not exist: {text} (to fetch it from the Hugging Face hub, "
                    "pass --allow-download)"
                )
            path, name = _download(text), text
    layout = inspect_model_path(path, allow_pickle=allow_pickle)
    from trustslm.models.hf import HFModel, describe_files

    files, model_hash = describe_files(layout, memo_dir=cache)
    return HFModel(
        layout, spec=text, files=files, model_hash=model_hash, source=source, name=name,
        batch_size=batch_size,
    )


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW_PATTERNS))
    except Exception as exc:  # network, auth, missing repo: all one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInputError(f"could not download {repo_id} from the Hugging Face hub: {first}") from None
