"""A GGUF file rewritten with some tensors or metadata replaced, everything else kept: the copy
the gguf package's ``gguf_new_metadata.py`` script makes, with new tensor data allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.core.errors import ModelFormatError


def rewrite_gguf(reader: Any, dest: str | Path, tensors: dict[str, Any] | None = None,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write the file ``reader`` (a ``gguf.GGUFReader``) read to ``dest`` with some tensors'
    data replaced (``tensors``: name -> array of the same shape and storage) and some string
    metadata set (``metadata``), everything else as it was (the copy ``gguf_new_metadata.py``
    makes). Written beside ``dest`` first, then renamed."""
    import os

    import gguf

    tensors, metadata = dict(tensors or {}), dict(metadata or {})
    dest = Path(dest)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    if arch is None:
        raise ModelFormatError("the GGUF file names no architecture (general.architecture)")
    partial = dest.with_name(dest.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch=arch.contents(), endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    try:
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue
            if field.name in metadata:
                writer.add_string(field.name, metadata.pop(field.name))
                continue
            kind = field.types[0]
            sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
        for key, value in metadata.items():
            writer.add_string(key, value)
        for t in reader.tensors:
            writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in reader.tensors:
            writer.write_tensor_data(tensors.get(t.name, t.data), tensor_endianess=reader.endianess)
        writer.close()
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return dest
