"""``training_record.json``: what a fine-tuning run did, for the audit and for people.

The record sits in a model folder, so it is untrusted input like the rest of the folder: it is
read bounded (:data:`MAX_RECORD_FILE_BYTES`) and validated strictly against
:class:`TrainingRecord` (unknown keys and wrong types are one-line errors naming the file and the
field, exit code 2). The files it names beside the model (canaries, members, non-members) are
plain names that must stay inside the folder, symlinks resolved; the training data it names
outside the folder is used only when its sha256 is the one recorded (:func:`verified_data_path`),
so a record can never bring a file into the audit whose content its author did not already know.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from typing_extensions import NotRequired, TypedDict

from trustslm.core.errors import DataError
from trustslm.core.hashing import sha256_file
from trustslm.core.limits import (  # noqa: F401  (every bound is in core/limits.py)
    MAX_RECORD_FILE_BYTES,
    MAX_RECORDED_DATA_BYTES,
)
from trustslm.core.textfiles import decode_text, first_validation_error, one_line, parse_json, read_bounded_bytes

RECORD_FILE = "training_record.json"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BaseModelRef(TypedDict):
    """The model fine-tuned: ``spec`` is an absolute path or the demo model's name."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]
    spec: str
    name: str
    hash: str


class DataRef(TypedDict):
    """The training texts: an absolute path, their sha256 and counts (``transform``: a mitigation's record)."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]
    path: str
    sha256: str
    texts: int
    training_sequences: int
    transform: NotRequired[dict[str, Any]]


class TrainingRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    trustslm_version: str
    base_model: BaseModelRef = Field(description="spec, name and hash of the model fine-tuned")
    data: DataRef = Field(description="path, sha256 and counts of the training texts")
    config: dict[str, Any]
    dp: bool
    epsilon: float | None = Field(default=None, ge=0, description="spent, as the accountant computed it; None without DP")
    delta: float | None = Field(default=None, ge=0, lt=1)
    noise_multiplier: float | None = None
    sample_rate: float = Field(gt=0, le=1)
    steps: int = Field(ge=0)
    max_grad_norm: float | None = None
    accountant: str | None = None
    grad_sample_mode: str | None = None
    trainable_parameters: int = Field(ge=0)
    lora: dict[str, Any] | None = None
    canary_file: str | None = None
    members_file: str | None = None
    non_members_file: str | None = None
    final_train_loss: float | None = None
    wall_time_s: float
    step_time_s: float = Field(description="mean wall time of one optimiser step")

    @field_validator("base_model")
    @classmethod
    def _base(cls, value: BaseModelRef) -> BaseModelRef:
        """The base is a real model named so that it means the same from any working directory."""
        from trustslm.models.demo import is_demo_name

        if "\0" in value["spec"]:
            raise ValueError("spec holds a NUL byte")
        if not (Path(value["spec"]).is_absolute() or is_demo_name(value["spec"])):
            raise ValueError("spec must be an absolute path to the model folder or the demo model's name")
        if not _HEX64.match(value["hash"]):
            raise ValueError("hash must be a sha256 (64 lowercase hex digits)")
        return value

    @field_validator("data")
    @classmethod
    def _data(cls, value: DataRef) -> DataRef:
        if "\0" in value["path"] or not Path(value["path"]).is_absolute():
            raise ValueError("path must be absolute")
        if not _HEX64.match(value["sha256"]):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The fine-tuning settings, as ``trustslm finetune`` checks them (``trustslm mitigate`` retrains with them)."""
        from trustslm.train.config import TrainConfig

        try:
            TrainConfig.model_validate(value)
        except ValidationError as exc:
            loc, msg, _ = first_validation_error(exc)
            raise ValueError(f"{loc}: {msg}" if loc else msg) from None
        return value

    @field_validator("canary_file", "members_file", "non_members_file")
    @classmethod
    def _file_name(cls, value: str | None) -> str | None:
        """Files named in a record are beside it: a plain name, never a path."""
        if value is not None and (value in ("", ".", "..") or "/" in value or "\\" in value or "\0" in value):
            raise ValueError("must be the name of a file in the model folder, not a path")
        return value

    def save(self, folder: Path) -> Path:
        path = folder / RECORD_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


def read_record_file(path: str | Path) -> TrainingRecord:
    """The validated record in ``path``; anything wrong is a one-line :class:`DataError` naming the
    file (and the field)."""
    path = Path(path)
    where = f"training record {path}"
    data = read_bounded_bytes(path, "training record", MAX_RECORD_FILE_BYTES, DataError)
    value = parse_json(decode_text(data, where, DataError), where, DataError)
    if not isinstance(value, dict):
        raise DataError(f"{where} must be a JSON object")
    try:
        return TrainingRecord.model_validate(value)
    except ValidationError as exc:
        loc, msg, kind = first_validation_error(exc)
        if kind == "extra_forbidden":
            raise DataError(f"{where}: unknown field {loc!r}") from None
        raise DataError(f"{where}: field {loc!r}: {msg}") from None


def load_record(folder: str | Path) -> TrainingRecord | None:
    """The training record in a model folder, validated, or None where there is none. A record
    that is a symlink is refused: what the folder says about itself must be in the folder."""
    folder = Path(folder)
    path = folder / RECORD_FILE
    if path.is_symlink():
        raise DataError(f"{path} is a symbolic link; a training record must be a file in the model folder")
    if not path.exists():
        return None
    return read_record_file(path)


def read_record(folder: str | Path) -> dict[str, Any] | None:
    """The training record beside a model as a dict (see :func:`load_record`), or None."""
    record = load_record(folder)
    return None if record is None else record.model_dump(mode="json")


def file_beside(folder: str | Path, record_path: Path | str, name: str | None) -> Path | None:
    """The file ``name`` that a record names, in ``folder``, resolved; None when the record names
    none or it is absent. A name that leads out of the folder (a symlink) is a one-line error."""
    if name is None:
        return None
    root = Path(folder).resolve()
    path = Path(folder) / name
    if not path.exists() and not path.is_symlink():
        return None
    target = path.resolve()
    if target.parent != root:
        raise DataError(f"{record_path} names {one_line(name)}, which leads out of the model folder")
    if not target.is_file():
        raise DataError(f"{record_path} names {one_line(name)}, which is not a file")
    return target


def verified_data_path(record: TrainingRecord | dict[str, Any]) -> Path | None:
    """The training data file the record names, when it is still exactly what was trained on (a
    regular file of at most :data:`MAX_RECORDED_DATA_BYTES` whose sha256 is the recorded one);
    else None. The hash proves the record's author already had the file's content, so a record
    naming any other file on the machine (``/home/you/.ssh/id_rsa``) brings nothing into the audit."""
    data = record.data if isinstance(record, TrainingRecord) else record.get("data") or {}
    path = Path(str(data.get("path", "")))
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_RECORDED_DATA_BYTES:
        return None
    try:
        return path if sha256_file(path) == data.get("sha256") else None
    except OSError:
        return None
