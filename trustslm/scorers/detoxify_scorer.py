"""Detoxify (Unitary) toxicity classifiers: ``detoxify`` (the ``original`` model),
``detoxify:original|unbiased|multilingual|original-small|unbiased-small``, or
``detoxify:/path/to/checkpoint.ckpt``.

Detoxify checkpoints are pickles (``torch.load(weights_only=False)``), so trustslm loads one only
(a) when the user names its path, or (b) from torch hub's cache when the file's sha256 starts with
the hash prefix in its official file name, i.e. it is the file Detoxify itself downloaded.
Detoxify also needs its tokenizer (e.g. ``bert-base-uncased``); offline, that must be in the
Hugging Face cache, or set ``TRUSTSLM_DETOXIFY_HF_CONFIG`` to a folder holding its config and
tokenizer files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from trustslm.core.errors import ScorerUnavailableError
from trustslm.core.hashing import sha256_file
from trustslm.core.types import ScorerInfo
from trustslm.scorers.base import Scorer

_OFFICIAL = {
    "original": "toxic_original-c1212f89.ckpt",
    "unbiased": "toxic_debiased-c7548aa0.ckpt",
    "multilingual": "multilingual_debiased-0b549669.ckpt",
    "original-small": "original-albert-0e1d6498.ckpt",
    "unbiased-small": "unbiased-albert-c8519128.ckpt",
}
_HOW = (
    "give a checkpoint with --scorer detoxify:/path/to/file.ckpt, or run "
    "`python -c \"from detoxify import Detoxify; Detoxify('original')\"` once on a machine with "
    "internet to fill torch hub's cache"
)


def _hub_checkpoint_dir() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


class DetoxifyScorer(Scorer):
    name = "detoxify"

    def __init__(self, arg: str = ""):
        super().__init__(arg or "original")
        self._model = None
        self._checkpoint: Path | None = None

    def _resolve(self) -> tuple[Path | None, str | None]:
        if find_spec("detoxify") is None:
            return None, "the detoxify package is not installed (pip install 'trustslm[toxicity]')"
        if self.arg in _OFFICIAL:
            path = _hub_checkpoint_dir() / _OFFICIAL[self.arg]
            if not path.is_file():
                return None, f"its {self.arg!r} checkpoint is not in {path.parent}; {_HOW}"
            prefix = _OFFICIAL[self.arg].rsplit("-", 1)[1].split(".")[0]
            if not sha256_file(path).startswith(prefix):
                return None, f"{path} does not match Detoxify's published hash; delete it and download again"
            return path, None
        path = Path(self.arg).expanduser()
        if not path.is_file():
            return None, f"checkpoint not found: {path}"
        return path, None

    def unavailable(self) -> str | None:
        return self._resolve()[1]

    def load(self) -> None:
        if self._model is not None:
            return
        path, why = self._resolve()
        if why:
            raise ScorerUnavailableError(f"scorer detoxify: {why}")
        try:
            from detoxify import Detoxify

            hf_config = os.environ.get("TRUSTSLM_DETOXIFY_HF_CONFIG")
            self._model = Detoxify(checkpoint=str(path), huggingface_config_path=hf_config)
        except Exception as exc:  # offline tokenizer fetch, bad checkpoint...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ScorerUnavailableError(f"scorer detoxify could not load {path}: {first}; {_HOW}") from None
        self._checkpoint = path

    def score(self, texts: Sequence[str], batch_size: int = 32) -> list[float]:
        self.load()
        out: list[float] = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            out.extend(float(x) for x in self._model.predict(chunk)["toxicity"])  # type: ignore[union-attr]
        return out

    def info(self) -> ScorerInfo:
        weights = {self._checkpoint.name: sha256_file(self._checkpoint)} if self._checkpoint else {}
        try:
            version = metadata.version("detoxify")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return ScorerInfo(name=f"detoxify:{self.arg}", version=version, weights_sha256=weights,
                          detail="Detoxify 'toxicity' head (sigmoid)")
