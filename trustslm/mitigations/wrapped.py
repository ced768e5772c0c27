"""Decoding-time wrappers and the folder that stores them.

A :class:`WrappedModel` is a :class:`~trustslm.models.base.ModelAdapter` around another one. It
answers every request through the inner model, changing only what its mitigation changes (the
requests, the results, or, through :class:`Steering` installed on a Hugging Face model, the
next-token logits of generation and scoring). Its identity is the inner model's with the
mitigation added: another hash (so cached results of the plain model are never reused) and the
mitigation listed in ``ModelInfo.mitigations``.

A wrapper is saved as a folder holding ``mitigation.json``: the base model (null when the folder
itself holds the weights, else a path or the demo name) with its sha256, checked on load, and the
steps (mitigation name, options, resolved values). Loading resolves the names among the installed
``trustslm.mitigations`` plugins and validates the options; nothing in the folder is executed.

``mitigation.json`` is untrusted like any file of a model folder: it is read bounded and validated
strictly (:class:`WrapperFile`), and it can never swap in another model (:func:`load_wrapped`): a
base outside the wrapper folder is followed only for a file trustslm itself wrote here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustslm.core.atomic import write_atomic
from trustslm.core.errors import BadInputError, ModelFormatError
from trustslm.core.hashing import sha256_json
from trustslm.core.limits import (  # noqa: F401  (every bound is in core/limits.py)
    MAX_WRAPPER_FILE_BYTES,
    MAX_WRAPPER_STEPS,
)
from trustslm.core.types import FileRecord, ModelInfo
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

    #: (the wrapper folder, its ``mitigation.json``) when loaded from one (:func:`load_wrapped`).
    source: tuple[str, FileRecord] | None = None

    def info(self) -> ModelInfo:
        """The inner model's info with this step added (to the hash, with its resolved values,
        and to ``mitigations``), and the identity recomputed over it. Loaded from a wrapper
        folder, the spec is that folder (what the user named) and ``mitigation.json`` is among the
        files, so the report names the wrapper as well as the base (its path, files and name)."""
        base = self.inner.info()
        update: dict[str, Any] = {
            "hash": sha256_json([base.hash, self.step, self._resolved_hash]),
            "name": f"{base.name}+{self.step['name']}",
            "mitigations": [*base.mitigations, self.step],
        }
        if self.source is not None:
            update["spec"] = self.source[0]
            update["files"] = [*base.files, self.source[1]]
        return base.model_copy(update=update).with_identity()

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
#: Under :func:`~trustslm.core.resources.cache_dir`: one empty file per ``mitigation.json`` trustslm wrote
#: here, named by the sha256 of its bytes (:func:`written_here`).
WRITTEN_DIR = "wrappers-written"
_HEX64 = r"^[0-9a-f]{64}$"


class WrapperStep(BaseModel):
    """One decoding-time step: an installed mitigation's name, its options and resolved values."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="an installed mitigation's name")
    options: dict[str, Any] = Field(default_factory=dict)
    resolved: dict[str, Any] = Field(default_factory=dict)


class WrapperFile(BaseModel):
    """``mitigation.json``. ``base`` None: the weights beside it are the base."""

    model_config = ConfigDict(extra="forbid", strict=True)
    format: Literal["trustslm-mitigation/1"]
    base: str | None = Field(max_length=4096)
    base_hash: str = Field(pattern=_HEX64)
    steps: list[WrapperStep] = Field(max_length=MAX_WRAPPER_STEPS)


def write_wrapper(folder: Path, *, base: str | None, base_hash: str, steps: list[dict[str, Any]]) -> Path:
    """Write ``mitigation.json``. ``base`` None: the weights are in ``folder`` itself. The file is
    remembered as written here (:func:`written_here`), so its base may be outside the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MITIGATION_FILE
    raw = (json.dumps({"format": FORMAT, "base": base, "base_hash": base_hash, "steps": steps}, indent=2)
           + "\n").encode("utf-8")
    write_atomic(path, raw)
    _remember_written(raw)
    return path


def _written_marker(raw: bytes) -> Path:
    from trustslm.core.resources import cache_dir

    return cache_dir() / WRITTEN_DIR / hashlib.sha256(raw).hexdigest()


def _remember_written(raw: bytes) -> None:
    marker = _written_marker(raw)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(marker, b"", sync=False)
    except OSError as exc:
        raise BadInputError(f"could not record the wrapper in trustslm's cache ({marker.parent}): "
                            f"{exc.strerror or type(exc).__name__}") from None


def written_here(raw: bytes) -> bool:
    """Whether trustslm wrote exactly these ``mitigation.json`` bytes for this user (``trustslm
    mitigate``, :func:`write_wrapper`): the user's own command chose its base, so the base may be
    any model they could name. A wrapper from anywhere else may only name a model inside its folder."""
    try:
        return stat.S_ISREG(os.lstat(_written_marker(raw)).st_mode)  # a link planted there does not count
    except OSError:
        return False


def is_wrapper_folder(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / MITIGATION_FILE).is_file() or (path / MITIGATION_FILE).is_symlink())


def _read_raw(folder: Path) -> bytes:
    from trustslm.core.textfiles import read_bounded_bytes

    path = folder / MITIGATION_FILE
    if path.is_symlink():
        raise ModelFormatError(f"{path} is a symbolic link; a wrapper's mitigation.json must be a file in its folder")
    return read_bounded_bytes(path, "mitigation", MAX_WRAPPER_FILE_BYTES, ModelFormatError)


def _parse_wrapper(path: Path, raw: bytes) -> dict[str, Any]:
    from trustslm.core.textfiles import decode_text, first_validation_error, parse_json

    where = str(path)
    value = parse_json(decode_text(raw, where, ModelFormatError), where, ModelFormatError)
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise ModelFormatError(f"{path} is not a trustslm mitigation file ({FORMAT})")
    try:
        return WrapperFile.model_validate(value).model_dump()
    except ValidationError as exc:
        loc, msg, kind = first_validation_error(exc)
        what = "unknown field" if kind == "extra_forbidden" else "field"
        raise ModelFormatError(f"{path} is not a trustslm mitigation file ({FORMAT}): {what} {loc!r}"
                               + ("" if kind == "extra_forbidden" else f": {msg}")) from None


def read_wrapper(folder: Path) -> dict[str, Any]:
    """The validated content of a wrapper folder's ``mitigation.json`` (bounded, strict schema)."""
    folder = Path(folder)
    return _parse_wrapper(folder / MITIGATION_FILE, _read_raw(folder))


def holds_weights(folder: Path) -> bool:
    """Whether ``folder`` itself holds model weights (safetensors, GGUF or pickle files)."""
    from trustslm.models.validate import PICKLE_SUFFIXES

    suffixes = {".safetensors", ".gguf", *PICKLE_SUFFIXES}
    return any(p.suffix.lower() in suffixes for p in folder.iterdir() if p.is_file())


def _inside(folder: Path, base: str) -> Path | None:
    """``base`` as a path inside ``folder`` (symlinks resolved), or None when it leads elsewhere
    (absolute, ``..``, a link out, or a name such as ``mock`` that is no file there)."""
    try:
        if Path(base).is_absolute():
            return None
        root = folder.resolve()
        target = (folder / base).resolve()
        return target if root in target.parents and target.exists() else None
    except (OSError, ValueError):  # a NUL byte, a loop of links
        return None


def load_wrapped(folder: Path, load_base: Any, registry: Any) -> ModelAdapter:
    """The model a wrapper folder describes. ``load_base(spec, plain=...)`` loads the base model
    (with the caller's safety options; ``plain``: as a model path, never a backend or demo name);
    its hash must be the one recorded.

    The base is never swapped in silently: a folder that holds weights wraps those weights (``base``
    null) and nothing else; a base elsewhere is a model folder inside the wrapper folder (a relative
    path) unless trustslm itself wrote this ``mitigation.json`` here (:func:`written_here`). The
    loaded model's info names the wrapper folder as its spec and lists ``mitigation.json`` among its
    files, beside the base's files and path."""
    from trustslm.core.textfiles import one_line
    from trustslm.mitigations.base import DecodingMitigation

    folder = Path(folder)
    path = folder / MITIGATION_FILE
    raw = _read_raw(folder)
    data = _parse_wrapper(path, raw)
    adapter = _load_base(folder, data["base"], written_here(raw), load_base)
    try:
        if adapter.info().hash != data["base_hash"]:
            raise ModelFormatError(f"{path}: the base model {one_line(data['base'] or str(folder))} has changed "
                                   "since the mitigation was made (its sha256 differs)")
        if not data["steps"]:
            raise ModelFormatError(f"{path} names no mitigation step")
        for step in data["steps"]:
            cls = registry.mitigation(step["name"])
            if not issubclass(cls, DecodingMitigation):
                raise ModelFormatError(f"{path}: {step['name']} is not a decoding-time mitigation")
            adapter = cls(step["options"]).wrap(adapter, step["resolved"])
    except BaseException:
        adapter.close()
        raise
    adapter.source = (str(folder), _file_record(folder, adapter.info().path, raw))  # type: ignore[attr-defined]
    return adapter


def _load_base(folder: Path, base: str | None, written: bool, load_base: Any) -> ModelAdapter:
    """The base model a wrapper names, under the rules of :func:`load_wrapped`."""
    from trustslm.core.textfiles import one_line

    path = folder / MITIGATION_FILE
    if base is None:
        return load_base(str(folder), plain=True)
    shown = one_line(base)[:300]
    if holds_weights(folder):
        raise ModelFormatError(f"{folder} holds model weights and its mitigation.json names another base model "
                               f"({shown}); a folder is a model or a wrapper of one, not both")
    inside = _inside(folder, base)
    if inside is not None:
        if is_wrapper_folder(inside):
            raise ModelFormatError(f"{path}: its base model {shown} is itself a mitigation wrapper")
        return load_base(str(inside), plain=True)
    if not written:
        raise ModelFormatError(
            f"{path} names a base model outside its folder ({shown}); trustslm loads such a wrapper only "
            "where it wrote it (trustslm mitigate); put the base model in the wrapper folder and name it "
            "by a relative path")
    base_path = Path(base) if Path(base).is_absolute() else folder / base
    return load_base(str(base_path) if base_path.exists() else base, plain=False)


def _file_record(folder: Path, base_path: str | None, raw: bytes) -> FileRecord:
    """``mitigation.json`` as a file the model is loaded from: by name when the base's files are in
    the same folder, else by absolute path."""
    same = base_path is not None and Path(base_path).resolve() == folder.resolve()
    name = MITIGATION_FILE if same else str((folder / MITIGATION_FILE).resolve())
    return FileRecord(path=name, sha256=hashlib.sha256(raw).hexdigest(), size=len(raw))
