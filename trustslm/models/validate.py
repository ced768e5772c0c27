"""Inspect a model folder or file before anything loads it. The folder is untrusted input.

What is refused (each with a one-line :class:`~trustslm.core.errors.BadInputError`, exit code 2):

* a path that does not exist, an empty folder, a folder with no weights;
* pickle weights (``pytorch_model.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.pkl``) when no
  safetensors are present, unless ``allow_pickle`` (unpickling runs arbitrary code);
* a safetensors file whose header is malformed, too large, or whose tensors run past the end of
  the file;
* a sharded checkpoint whose index names a shard that is missing;
* a ``config.json`` (or tokenizer/processor config) that names custom code (``auto_map``,
  ``custom_pipelines``, a ``trust_remote_code`` hint), that redirects loading to other files
  (``transformers_weights``, a ``*_file``/``*_files`` value naming a path rather than a file of the
  folder), or that is not a JSON object;
* a PEFT adapter (``adapter_config.json``): transformers would load the adapter's own weights
  (pickles included) and the base model it names, none of which trustslm checks;
* a file trustslm would load that is a link leaving the folder, or that is not a regular file;
* a ``.gguf`` file that does not start with the GGUF magic, whose metadata break the bounds
  below, or that does not parse with the ``gguf`` package.

Bounds (so a hostile folder can't make trustslm read or hold unbounded data): see the ``MAX_*``
constants. The files that pass are the only ones the model is loaded from
(:mod:`trustslm.models.staging` shows transformers nothing else), and each is hashed into the report.

Nothing here imports torch or transformers; the checks read bytes and JSON only.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from trustslm.core.errors import ModelFormatError, UnsafeModelError
from trustslm.core.limits import (  # noqa: F401  (every bound is in core/limits.py)
    MAX_CONFIG_BYTES,
    MAX_FOLDER_ENTRIES,
    MAX_GGUF_ARRAY,
    MAX_GGUF_DIMS,
    MAX_GGUF_ELEMENTS,
    MAX_GGUF_KV,
    MAX_GGUF_NESTING,
    MAX_GGUF_STRING,
    MAX_GGUF_TENSORS,
    MAX_SAFETENSORS_HEADER,
    MAX_SIDE_FILE_BYTES,
    MAX_TEMPLATE_BYTES,
    MAX_TENSORS,
)
from trustslm.core.limits import (
    MAX_NESTING_DEPTH as MAX_JSON_DEPTH,
)

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
#: Config keys that make transformers load weights from a file other than the checked ones.
REDIRECT_KEYS = ("transformers_weights",)
#: Non-weight files transformers may read from a model folder; all hashed into the report.
SIDE_FILE_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".tiktoken")
#: The folder transformers reads extra named chat templates from (``*.jinja``).
CHAT_TEMPLATE_DIR = "additional_chat_templates"
#: A PEFT adapter's config: transformers then loads adapter weights and a base model.
ADAPTER_CONFIG = "adapter_config.json"


#: Bits per element of each safetensors dtype (the safetensors specification's list).
_SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "I64": 64, "U64": 64, "F64": 64,
}
_MAX_TENSOR_BYTES = 1 << 50  # far above any real tensor; keeps the arithmetic honest


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
    #: The user named the GGUF file itself (a link they named may point anywhere).
    named_file: bool = False

    @property
    def all_files(self) -> list[Path]:
        return sorted(set(self.weight_files) | set(self.side_files))

    def load_names(self) -> dict[str, Path]:
        """Every file the model is loaded from, by the name transformers opens it under (relative
        to the folder, POSIX form): the staging folder holds exactly these."""
        return {relative_name(p, self.folder): p for p in self.all_files}


def relative_name(path: Path, folder: Path) -> str:
    """``path``'s name inside ``folder`` (``a/b.jinja``), or its full path when it is elsewhere."""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def inspect_model_path(path: str | Path, *, allow_pickle: bool = False) -> ModelLayout:
    """Check a model folder or GGUF file and describe what to load; raises on anything unsafe."""
    path = Path(path).expanduser()
    try:
        return _inspect(path, allow_pickle)
    except OSError as exc:  # unreadable files or folders are bad input too
        where = exc.filename or path
        raise ModelFormatError(f"can't read {where}: {exc.strerror or type(exc).__name__}") from None


def _inspect(path: Path, allow_pickle: bool) -> ModelLayout:
    if not path.exists():
        raise ModelFormatError(f"model path does not exist: {path}")
    if not path.is_file() and not path.is_dir():
        raise ModelFormatError(f"{path} is neither a folder nor a file")
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            require_regular(path)
            check_gguf(path)
            return ModelLayout(kind="gguf", folder=path.parent, weight_files=[path], gguf_file=path, named_file=True)
        raise ModelFormatError(
            f"{path} is a file; give the model's folder, or a .gguf file"
        )
    files = _candidate_files(path)
    if not files:
        raise ModelFormatError(f"model folder is empty: {path}")
    if (path / ADAPTER_CONFIG).exists():
        raise UnsafeModelError(
            f"{path} holds a PEFT adapter ({ADAPTER_CONFIG}): trustslm does not load adapters, whose weights "
            "and base model it can't check; merge the adapter into its base model (peft's merge_and_unload) "
            "and audit the merged folder"
        )

    safetensors = [p for p in files if p.suffix == ".safetensors"]
    pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES and _looks_like_weights(p)]
    ggufs = [p for p in files if p.suffix.lower() == ".gguf"]
    has_config = (path / "config.json").is_file()

    if ggufs and not has_config and not safetensors:
        if len(ggufs) > 1:
            names = ", ".join(p.name for p in ggufs)
            raise ModelFormatError(f"{path} holds several GGUF files ({names}); name the one to audit")
        check_contained(ggufs[0], path)
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
        for p in pickles:
            check_contained(p, path)
        weights, uses_pickle = pickles, True
    else:
        raise ModelFormatError(f"no model weights (*.safetensors or a .gguf file) in {path}")

    if not has_config:
        raise ModelFormatError(f"{path} has weights but no config.json")
    # mitigation.json (a decoding-time wrapper saved beside the weights) is not part of the
    # weights' identity: the wrapper adds its own steps to the hash (trustslm/mitigations/wrapped.py)
    side = [p for p in files if p.suffix.lower() in SIDE_FILE_SUFFIXES and p.name != "mitigation.json"]
    config = _check_side_files(path, side)
    if not isinstance(config.get("model_type"), str):
        raise ModelFormatError(f"{path / 'config.json'} does not name a model_type")
    side += chat_template_files(path)
    return ModelLayout(
        kind="hf", folder=path, weight_files=weights, side_files=side, uses_pickle=uses_pickle,
        config=config,
    )


def _candidate_files(folder: Path) -> list[Path]:
    """The folder's top-level non-hidden entries that are (or link to) files, at most
    :data:`MAX_FOLDER_ENTRIES` of them looked at."""
    out = []
    with os.scandir(folder) as entries:
        for n, entry in enumerate(entries):
            if n >= MAX_FOLDER_ENTRIES:
                raise ModelFormatError(f"{folder} has more than {MAX_FOLDER_ENTRIES} entries; is it a model folder?")
            p = folder / entry.name
            if not entry.name.startswith(".") and p.is_file():
                out.append(p)
    return sorted(out)


def _check_side_files(folder: Path, side: list[Path]) -> dict:
    """Check every non-weight file the model loads (inside the folder, a regular file, within
    its size bound; configs parsed and checked); returns ``config.json``'s content."""
    config: dict = {}
    for p in side:
        check_contained(p, folder)
        limit = MAX_TEMPLATE_BYTES if p.suffix.lower() == ".jinja" else MAX_SIDE_FILE_BYTES
        if p.name in CONFIG_FILES or p.name.endswith(".index.json"):
            limit = MAX_CONFIG_BYTES
        check_size(p, limit)
        if p.name in CONFIG_FILES:
            data = check_config(p)
            if p.name == "config.json":
                config = data
    return config


def chat_template_files(folder: Path) -> list[Path]:
    """The extra chat templates transformers reads (``additional_chat_templates/*.jinja``),
    checked: the folder and each file inside the model folder, regular, within the size bound."""
    tdir = folder / CHAT_TEMPLATE_DIR
    if not tdir.exists() and not tdir.is_symlink():
        return []
    check_contained(tdir, folder, want_dir=True)
    if not tdir.is_dir():
        return []
    out = []
    for n, p in enumerate(sorted(tdir.glob("*.jinja"))):
        if n >= MAX_FOLDER_ENTRIES:
            raise ModelFormatError(f"{tdir} holds more than {MAX_FOLDER_ENTRIES} templates")
        if p.is_dir():
            continue
        check_contained(p, folder)
        check_size(p, MAX_TEMPLATE_BYTES)
        out.append(p)
    return out


def _looks_like_weights(p: Path) -> bool:
    # training_args.bin and optimizer.pt are pickles too, but never loaded as weights
    return not p.name.startswith(("training_args", "optimizer", "scheduler", "rng_state"))


# -- containment --------------------------------------------------------------------------------
def link_roots(folder: Path) -> tuple[Path, ...]:
    """Where a file of ``folder`` may really live: the folder itself and, for a Hugging Face
    cache snapshot (``models--ORG--NAME/snapshots/REV``, whose files are links to the repository's
    ``blobs/``), that repository's ``blobs`` folder."""
    real = folder.resolve()
    roots = [real]
    repo = real.parent.parent
    if real.parent.name == "snapshots" and repo.name.startswith(("models--", "datasets--")) \
            and (repo / "blobs").is_dir():
        roots.append((repo / "blobs").resolve())
    return tuple(roots)


def check_contained(path: Path, folder: Path, *, want_dir: bool = False) -> Path:
    """``path``'s real location, which must lie inside ``folder`` (links inside it are fine) and
    be a regular file (a folder with ``want_dir``); a link that leaves the folder is refused, so
    a model folder can't make trustslm read, hash or report a file of the host."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link or a loop of links
        raise ModelFormatError(f"{relative_name(path, folder)} in {folder} is a broken link") from None
    if not any(real == root or real.is_relative_to(root) for root in link_roots(folder)):
        raise UnsafeModelError(
            f"{relative_name(path, folder)} in {folder} is a link to a file outside the model folder; "
            "trustslm loads only files inside it"
        )
    if want_dir:
        if not real.is_dir():
            raise ModelFormatError(f"{relative_name(path, folder)} in {folder} is not a folder")
    else:
        require_regular(real, shown=f"{relative_name(path, folder)} in {folder}")
    return real


def require_regular(path: Path, *, shown: str | None = None) -> None:
    """A regular file: a FIFO or device would block or never end when read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ModelFormatError(f"{shown or path} can't be read: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UnsafeModelError(f"{shown or path} is not a regular file")


def check_size(path: Path, limit: int) -> None:
    """At most ``limit`` bytes: a bound on what a model folder makes trustslm read."""
    size = path.stat().st_size
    if size > limit:
        raise ModelFormatError(f"{path.name} is {size} bytes, more than the {limit} bytes allowed for it")


# -- JSON ---------------------------------------------------------------------------------------
def read_json_file(path: Path, *, limit: int = MAX_CONFIG_BYTES, what: str | None = None) -> object:
    """A JSON file parsed within the bounds: at most ``limit`` bytes and :data:`MAX_JSON_DEPTH`
    levels of nesting; a bad file is a one-line ``ModelFormatError``."""
    what = what or str(path)
    check_size(path, limit)
    with open(path, "rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise ModelFormatError(f"{what} grew past {limit} bytes while being read")
    return parse_json_bytes(raw, what)


def parse_json_bytes(raw: bytes, what: str) -> object:
    """JSON text nested at most :data:`MAX_JSON_DEPTH` deep. (CPython's parser stops a deeper
    document with ``RecursionError`` near 1,000 levels; that is caught too.)"""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ModelFormatError(f"{what} is not valid JSON: {first}") from None
    if _too_deep(data, MAX_JSON_DEPTH):
        raise ModelFormatError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    return data


def _too_deep(data: object, limit: int) -> bool:
    """Whether parsed JSON nests deeper than ``limit`` (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, (dict, list)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (obj.values() if isinstance(obj, dict) else obj))
    return False


def check_config(path: Path) -> dict:
    """A config file must be a bounded JSON object naming no custom code, no other weights to
    load, and no file by a path (transformers joins file names to the folder)."""
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path} must hold a JSON object")
    found = _find_keys(data, CODE_KEYS)
    if found:
        raise UnsafeModelError(
            f"{path} names custom code ({found}); trustslm never runs code shipped with a model"
        )
    found = _find_keys(data, REDIRECT_KEYS)
    if found:
        raise UnsafeModelError(
            f"{path} redirects weight loading ({found}); trustslm loads only the weights it checked "
            "(model.safetensors or the shards of model.safetensors.index.json)"
        )
    bad = _file_reference(data)
    if bad:
        raise UnsafeModelError(f"{path} names a file outside the model folder ({bad}); refusing to load it")
    return data


def _find_keys(obj: object, keys: tuple[str, ...], prefix: str = "") -> str | None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            where = f"{prefix}{key}"
            if key in keys:
                return where
            hit = _find_keys(value, keys, where + ".")
            if hit:
                return hit
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            hit = _find_keys(value, keys, f"{prefix}{i}.")
            if hit:
                return hit
    return None


def _file_reference(data: dict) -> str | None:
    """The first top-level ``*_file``/``*_files`` value (e.g. ``fast_tokenizer_files``, a
    ``vocab_file``) that is not a plain file name, as ``key=value``: transformers joins such names
    to the folder, so a path in one (``../x``, ``/etc/x``) would make it read elsewhere."""
    for key, value in data.items():
        if not (isinstance(key, str) and key.endswith(("_file", "_files"))):
            continue
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            if not isinstance(item, str) or not _plain_name(item):
                return f"{key}={item!r}"
    return None


def _plain_name(name: str) -> bool:
    """A file name with no folder part: not absolute, no separators, not ``.``/``..``."""
    return bool(name) and name not in (".", "..") and "\0" not in name and \
        len(PurePosixPath(name).parts) == 1 and len(PureWindowsPath(name).parts) == 1 and \
        not PureWindowsPath(name).anchor


def check_relative_path(value: object, what: str) -> str:
    """A relative POSIX path with no ``..`` and no root (e.g. a sentence-transformers module path)."""
    if not isinstance(value, str) or "\0" in value or "\\" in value:
        raise UnsafeModelError(f"{what} must be a relative path inside the model folder, not {value!r}")
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts or PureWindowsPath(value).anchor:
        raise UnsafeModelError(f"{what} must be a relative path inside the model folder, not {value!r}")
    return value


# -- safetensors --------------------------------------------------------------------------------
def _check_safetensors_set(folder: Path, files: list[Path]) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        check_contained(index, folder)
        data = read_json_file(index, what=str(index))
        try:
            shards = sorted(set(data["weight_map"].values()))  # type: ignore[index,union-attr]
        except (KeyError, TypeError, AttributeError):
            raise ModelFormatError(f"{index} is not a valid safetensors index") from None
        for shard in shards:
            if not isinstance(shard, str) or not _plain_name(shard) or not (folder / shard).is_file():
                raise ModelFormatError(f"{index} names a missing shard: {shard}")
    for f in files:
        check_contained(f, folder)
        check_safetensors(f)
    return files


def check_safetensors(path: Path) -> None:
    """Validate a safetensors header: its length (at most :data:`MAX_SAFETENSORS_HEADER`), its
    JSON, its number of tensors (at most :data:`MAX_TENSORS`), and that every tensor's dtype,
    shape and byte range are well formed and lie inside the file. A truncated download fails here."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelFormatError(f"{path.name} is truncated: {size} bytes, too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_SAFETENSORS_HEADER:
            raise ModelFormatError(
                f"{path.name}: safetensors header of {n} bytes, more than the {MAX_SAFETENSORS_HEADER} allowed"
            )
        if n > size - 8:
            raise ModelFormatError(
                f"{path.name} is truncated or not safetensors: header of {n} bytes in a {size}-byte file"
            )
        raw = fh.read(n)
    try:
        header = parse_json_bytes(raw, f"{path.name} (safetensors header)")
    except ModelFormatError:
        raise ModelFormatError(f"{path.name} is not a valid safetensors file (bad header)") from None
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path.name} is not a valid safetensors file (bad header)")
    n_tensors = len(header) - ("__metadata__" in header)
    if n_tensors > MAX_TENSORS:
        raise ModelFormatError(f"{path.name} lists {n_tensors} tensors, more than the {MAX_TENSORS} allowed")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise ModelFormatError(f"{path.name}: the safetensors __metadata__ must map names to strings")
    end = 0
    for name, info in header.items():
        if name != "__metadata__":
            end = max(end, _tensor_end(path, name, info))
    if 8 + n + end > size:
        raise ModelFormatError(
            f"{path.name} is truncated: its header needs {8 + n + end} bytes, the file has {size}"
        )


def _tensor_end(path: Path, name: str, info: object) -> int:
    """Where a tensor's bytes end; its entry must have a known dtype, a shape of non-negative
    integers and two integer offsets spanning exactly the bytes that dtype and shape need."""
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise ModelFormatError(f"{path.name}: malformed entry for tensor {name!r}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    bits = _SAFETENSORS_DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
    if bits is None:
        raise ModelFormatError(f"{path.name}: tensor {name!r} has an unknown dtype {dtype!r}")
    if not _int_list(shape) or any(d < 0 for d in shape) or not _int_list(offsets) or len(offsets) != 2:
        raise ModelFormatError(f"{path.name}: malformed entry for tensor {name!r}")
    count = 1
    for dim in shape:
        count *= dim
        if count * bits > 8 * _MAX_TENSOR_BYTES:
            raise ModelFormatError(f"{path.name}: tensor {name!r} is impossibly large")
    begin, stop = offsets
    if not 0 <= begin <= stop:
        raise ModelFormatError(f"{path.name}: tensor {name!r} has invalid offsets")
    if (count * bits) % 8 or stop - begin != count * bits // 8:
        raise ModelFormatError(f"{path.name}: tensor {name!r} has the wrong byte length")
    return stop


def _int_list(value: object) -> bool:
    return isinstance(value, list) and all(type(v) is int for v in value)


# -- GGUF ---------------------------------------------------------------------------------------
GGUF_MAGIC = b"GGUF"
#: Sizes of GGUF's fixed-size metadata value types (by type id); 8 is a string, 9 an array.
_GGUF_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def check_gguf(path: Path) -> None:
    """A GGUF file starts with ``GGUF`` and a known version, its metadata and tensor table keep
    within the bounds (:data:`MAX_GGUF_KV`, :data:`MAX_GGUF_ARRAY`, :data:`MAX_GGUF_STRING`,
    :data:`MAX_GGUF_TENSORS`), and it parses with the ``gguf`` package."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise ModelFormatError(f"{path.name} is not a GGUF file (it does not start with the GGUF magic)")
    (version,) = struct.unpack("<I", head[4:8])
    order = "<"
    if version & 0xFFFF == 0:  # written on a machine of the other byte order
        (version,) = struct.unpack(">I", head[4:8])
        order = ">"
    if version not in (2, 3):
        raise ModelFormatError(f"{path.name}: unsupported GGUF version {version}")
    _GGUFBounds(path, order).check()
    try:
        from gguf import GGUFReader

        GGUFReader(str(path))
    except ImportError:
        raise ModelFormatError("reading GGUF files needs the 'gguf' package: pip install gguf") from None
    except Exception as exc:  # the reader raises many types on corrupt input
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFormatError(f"{path.name} is not a readable GGUF file: {first}") from None


class _GGUFBounds:
    """Walks a GGUF file's header, metadata and tensor table without keeping them, refusing
    counts and lengths beyond the bounds or the file's size, before the ``gguf`` package (which
    builds Python objects for every element) reads it."""

    def __init__(self, path: Path, order: str):
        self.path, self.order = path, order
        self.size = path.stat().st_size
        self.elements = 0

    def check(self) -> None:
        with open(self.path, "rb") as self.fh:
            self.fh.seek(8)
            n_tensors, n_kv = self._unpack("QQ")
            self._bound(n_kv, MAX_GGUF_KV, "metadata entries")
            self._bound(n_tensors, MAX_GGUF_TENSORS, "tensors")
            for _ in range(n_kv):
                self._string("a metadata key")
                (kind,) = self._unpack("I")
                self._value(kind, depth=0)
            for _ in range(n_tensors):
                self._string("a tensor name")
                (dims,) = self._unpack("I")
                self._bound(dims, MAX_GGUF_DIMS, "tensor dimensions")
                self._unpack("Q" * dims + "IQ")

    def _fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.path.name} is not a readable GGUF file: {what}")

    def _unpack(self, fmt: str) -> tuple:
        width = struct.calcsize(self.order + fmt)
        raw = self.fh.read(width)
        if len(raw) < width:
            raise self._fail("it ends inside its metadata")
        return struct.unpack(self.order + fmt, raw)

    def _bound(self, value: int, limit: int, what: str) -> None:
        if value > limit:
            raise self._fail(f"{value} {what}, more than the {limit} allowed")

    def _skip(self, n: int) -> None:
        if self.fh.tell() + n > self.size:
            raise self._fail("it ends inside its metadata")
        self.fh.seek(n, 1)

    def _string(self, what: str) -> None:
        (n,) = self._unpack("Q")
        self._bound(n, MAX_GGUF_STRING, f"bytes in {what}")
        self._skip(n)

    def _value(self, kind: int, *, depth: int) -> None:
        if kind in _GGUF_SCALAR_BYTES:
            self._skip(_GGUF_SCALAR_BYTES[kind])
        elif kind == _GGUF_STRING:
            self._string("a metadata string")
        elif kind == _GGUF_ARRAY and depth < MAX_GGUF_NESTING:
            item, count = self._unpack("IQ")
            self._bound(count, MAX_GGUF_ARRAY, "elements in a metadata array")
            self.elements += count
            self._bound(self.elements, MAX_GGUF_ELEMENTS, "metadata array elements in all")
            if item in _GGUF_SCALAR_BYTES:
                self._skip(count * _GGUF_SCALAR_BYTES[item])
            else:
                for _ in range(count):
                    self._value(item, depth=depth + 1)
        elif kind == _GGUF_ARRAY:
            raise self._fail(f"metadata arrays nested more than {MAX_GGUF_NESTING} deep")
        else:
            raise self._fail(f"unknown metadata type {kind}")
