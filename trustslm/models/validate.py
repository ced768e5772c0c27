"""Inspect a model folder or file before anything loads it. The folder is untrusted input.

What is refused (each with a one-line :class:`~trustslm.core.errors.BadInputError`, exit code 2):

* a path that does not exist, an empty folder, a folder with no weights;
* pickle weights (``pytorch_model.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.pkl``) when no
  safetensors are present, unless ``allow_pickle`` (unpickling runs arbitrary code);
* a safetensors file whose header is malformed or whose tensors run past the end of the file;
* a sharded checkpoint whose index names a shard that is missing;
* a ``config.json`` (or tokenizer/processor config) that names custom code (``auto_map``,
  ``custom_pipelines``, a ``trust_remote_code`` hint) or that is not a JSON object;
* a ``.gguf`` file that does not start with the GGUF magic or does not parse.

Nothing here imports torch or transformers; the checks read bytes and JSON only.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from trustslm.core.errors import ModelFormatError, UnsafeModelError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
CONFIG_FILES = (
    "config.json",
    "tokenizer_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "generation_config.json",
)
#: Keys that make transformers import code shipped with the model.
CODE_KEYS = ("auto_map", "custom_pipelines", "trust_remote_code")
#: Non-weight files transformers may read from a model folder; all hashed into the report.
SIDE_FILE_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".tiktoken")

_SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
_MAX_HEADER = 100 * 1024 * 1024


@dataclass
class ModelLayout:
    """What :func:`inspect_model_path` found."""

    kind: str  # "hf" or "gguf"
    folder: Path
    weight_files: list[Path]
    gguf_file: Path | None = None
    side_files: list[Path] = field(default_factory=list)
    uses_pickle: bool = False
    config: dict | None = None

    @property
    def all_files(self) -> list[Path]:
        return sorted(set(self.weight_files) | set(self.side_files))


def inspect_model_path(path: str | Path, *, allow_pickle: bool = False) -> ModelLayout:
    """Check a model folder or GGUF file and describe what to load; raises on anything unsafe."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFormatError(f"model path does not exist: {path}")
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            check_gguf(path)
            return ModelLayout(kind="gguf", folder=path.parent, weight_files=[path], gguf_file=path)
        raise ModelFormatError(
            f"{path} is a file; give the model's folder, or a .gguf file"
        )
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ModelFormatError(f"model folder is empty: {path}")

    safetensors = [p for p in files if p.suffix == ".safetensors"]
    pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES and _looks_like_weights(p)]
    ggufs = [p for p in files if p.suffix.lower() == ".gguf"]
    has_config = (path / "config.json").is_file()

    if ggufs and not has_config and not safetensors:
        if len(ggufs) > 1:
            names = ", ".join(p.name for p in ggufs)
            raise ModelFormatError(f"{path} holds several GGUF files ({names}); name the one to audit")
        check_gguf(ggufs[0])
        return ModelLayout(kind="gguf", folder=path, weight_files=[ggufs[0]], gguf_file=ggufs[0])

    uses_pickle = False
    if safetensors:
        weights = _check_safetensors_set(path, safetensors)
    elif pickles:
        if not allow_pickle:
            names = ", ".join(p.name for p in pickles)
            raise UnsafeModelError(
                f"refusing to load pickle weights ({names}) from {path}: unpickling can run "
                "arbitrary code; convert them to safetensors, or pass --allow-pickle if you trust "
                "their source"
            )
        weights, uses_pickle = pickles, True
    else:
        raise ModelFormatError(f"no model weights (*.safetensors or a .gguf file) in {path}")

    if not has_config:
        raise ModelFormatError(f"{path} has weights but no config.json")
    config = None
    for name in CONFIG_FILES:
        if (path / name).is_file():
            data = check_config(path / name)
            if name == "config.json":
                config = data
    assert config is not None
    if not isinstance(config.get("model_type"), str):
        raise ModelFormatError(f"{path / 'config.json'} does not name a model_type")

    # mitigation.json (a decoding-time wrapper saved beside the weights) is not part of the
    # weights' identity: the wrapper adds its own steps to the hash (trustslm/mitigations/wrapped.py)
    side = [p for p in files if p.suffix.lower() in SIDE_FILE_SUFFIXES and p.name != "mitigation.json"]
    return ModelLayout(
        kind="hf", folder=path, weight_files=weights, side_files=side, uses_pickle=uses_pickle,
        config=config,
    )


def _looks_like_weights(p: Path) -> bool:
    # training_args.bin and optimizer.pt are pickles too, but never loaded as weights
    return not p.name.startswith(("training_args", "optimizer", "scheduler", "rng_state"))


def check_config(path: Path) -> dict:
    """A config file must be a JSON object naming no custom code."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFormatError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path} must hold a JSON object")
    found = _find_code_keys(data)
    if found:
        raise UnsafeModelError(
            f"{path} names custom code ({found}); trustslm never runs code shipped with a model"
        )
    return data


def _find_code_keys(obj: object, prefix: str = "") -> str | None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            where = f"{prefix}{key}"
            if key in CODE_KEYS:
                return where
            hit = _find_code_keys(value, where + ".")
            if hit:
                return hit
    return None


def _check_safetensors_set(folder: Path, files: list[Path]) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            shards = sorted(set(data["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ModelFormatError(f"{index} is not a valid safetensors index") from None
        for shard in shards:
            if "/" in shard or "\\" in shard or not (folder / shard).is_file():
                raise ModelFormatError(f"{index} names a missing shard: {shard}")
    for f in files:
        check_safetensors(f)
    return files


def check_safetensors(path: Path) -> None:
    """Validate a safetensors header: its length, its JSON, and that every tensor's bytes lie
    inside the file and match its dtype and shape. A truncated download fails here."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelFormatError(f"{path.name} is truncated: {size} bytes, too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, _MAX_HEADER):
            raise ModelFormatError(
                f"{path.name} is truncated or not safetensors: header of {n} bytes in a {size}-byte file"
            )
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ModelFormatError(f"{path.name} is not a valid safetensors file (bad header)") from None
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path.name} is not a valid safetensors file (bad header)")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
            width = _SAFETENSORS_DTYPE_BYTES.get(info["dtype"])
            count = 1
            for dim in info["shape"]:
                count *= int(dim)
        except (KeyError, TypeError, ValueError):
            raise ModelFormatError(f"{path.name}: malformed entry for tensor {name!r}") from None
        if width is not None and stop - begin != count * width:
            raise ModelFormatError(f"{path.name}: tensor {name!r} has the wrong byte length")
        if not 0 <= begin <= stop:
            raise ModelFormatError(f"{path.name}: tensor {name!r} has invalid offsets")
        end = max(end, stop)
    if 8 + n + end > size:
        raise ModelFormatError(
            f"{path.name} is truncated: its header needs {8 + n + end} bytes, the file has {size}"
        )


GGUF_MAGIC = b"GGUF"


def check_gguf(path: Path) -> None:
    """A GGUF file starts with ``GGUF``, a known version, and parses with the ``gguf`` package."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise ModelFormatError(f"{path.name} is not a GGUF file (it does not start with the GGUF magic)")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (1, 2, 3):
        raise ModelFormatError(f"{path.name}: unsupported GGUF version {version}")
    try:
        from gguf import GGUFReader

        GGUFReader(str(path))
    except ImportError:
        raise ModelFormatError("reading GGUF files needs the 'gguf' package: pip install gguf") from None
    except Exception as exc:  # the reader raises many types on corrupt input
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFormatError(f"{path.name} is not a readable GGUF file: {first}") from None
