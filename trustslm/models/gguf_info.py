"""What a GGUF file holds: its storage type per tensor class, size on disk, bits per weight, and a
fingerprint of its tokenizer. Read with the ``gguf`` package's reader after
:func:`trustslm.models.validate.check_gguf` has bounded the header.

Bits per weight are ``8 x (bytes of all tensors) / (weights in all tensors)``, as llama.cpp's
quantiser prints them: norms and other one-dimensional tensors stay in float32 and count too, so
a file quantised "to Q4_K_M" can hold more than 4.5 bits per weight. K-quant types need rows whose
length is a multiple of 256; llama.cpp stores other rows in a fallback type, which the per-class
table shows (SmolLM2's 576-wide rows are an example: docs/variants.md).
"""

from __future__ import annotations

import re
from pathlib import Path

from trustslm.core.errors import ModelFormatError
from trustslm.core.hashing import sha256_json
from trustslm.core.types import Quantisation
from trustslm.models.validate import check_gguf

_BLOCK = re.compile(r"^blk\.\d+\.")
_SUFFIX = re.compile(r"\.(weight|bias)$")
#: The metadata that decides how text becomes tokens (and back).
TOKENIZER_KEY_PREFIX = "tokenizer.ggml."


def tensor_class(name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``attn_q``; ``token_embd.weight`` -> ``token_embd``. A layer's
    bias shares its weight's class (Qwen's ``attn_q.bias`` counts as an F32 tensor of ``attn_q``)."""
    return _SUFFIX.sub("", _BLOCK.sub("", name))


def _reader(path: Path):
    check_gguf(path)
    from gguf import GGUFReader

    return GGUFReader(str(path))


def _file_type_name(code: int | None) -> str | None:
    if code is None:
        return None
    from gguf import LlamaFileType

    try:
        return LlamaFileType(code).name.removeprefix("ALL_").removeprefix("MOSTLY_")
    except ValueError:
        return f"file_type {code}"


def _field_value(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        return None
    try:
        return field.contents()
    except Exception:  # an odd type the reader can't decode: treated as absent
        return None


def describe_gguf(path: str | Path) -> Quantisation:
    """The storage of ``path``'s tensors (see the module docstring)."""
    path = Path(path)
    reader = _reader(path)
    types: dict[str, dict[str, int]] = {}
    params = nbytes = 0
    for t in reader.tensors:
        cls = tensor_class(t.name)
        kind = t.tensor_type.name
        types.setdefault(cls, {})
        types[cls][kind] = types[cls].get(kind, 0) + 1
        params += int(t.n_elements)
        nbytes += int(t.n_bytes)
    if params == 0:
        raise ModelFormatError(f"{path.name} holds no tensors")
    code = _field_value(reader, "general.file_type")
    return Quantisation(
        file_type=_file_type_name(int(code) if isinstance(code, int) else None),
        tensor_types={k: dict(sorted(v.items())) for k, v in sorted(types.items())},
        parameters=params, tensor_bytes=nbytes, size_bytes=path.stat().st_size,
        bits_per_weight=round(8 * nbytes / params, 4))


def gguf_metadata(path: str | Path, prefix: str) -> dict[str, object]:
    """Every metadata value of ``path`` whose key starts with ``prefix``, decoded."""
    reader = _reader(Path(path))
    return {k: _field_value(reader, k) for k in sorted(reader.fields) if k.startswith(prefix)}


def architecture(path: str | Path) -> str | None:
    value = gguf_metadata(path, "general.architecture").get("general.architecture")
    return value if isinstance(value, str) else None


def tokenizer_fingerprint(path: str | Path) -> str:
    """sha256 over the tokenizer metadata (``tokenizer.ggml.*``: model, pre-tokenizer, tokens,
    scores, types, merges, special token ids): two files with equal fingerprints turn text into
    the same tokens. The chat template is not part of it (``tokenizer.chat_template``)."""
    return sha256_json({k: v for k, v in gguf_metadata(path, TOKENIZER_KEY_PREFIX).items()})

