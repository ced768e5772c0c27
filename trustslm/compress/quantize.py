"""GGUF quantisation with llama.cpp's own quantiser (``llama_model_quantize``, through
llama-cpp-python's bindings), as ``llama-quantize`` runs it: default parameters, no importance
matrix, the output tensor quantised by the type's own rule.

``F32`` from a quantised file dequantises it (``allow_requantize``): that is how a model that
ships only quantised gets a full-precision reference whose weights are its dequantised ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trustslm.core.errors import BadInputError, ModelFormatError

#: The types ``--quant`` takes: llama.cpp's ``LLAMA_FTYPE_*`` names without the prefix.
QUANT_TYPES: dict[str, str] = {
    "F32": "LLAMA_FTYPE_ALL_F32", "F16": "LLAMA_FTYPE_MOSTLY_F16", "BF16": "LLAMA_FTYPE_MOSTLY_BF16",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "Q5_K_S": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "Q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1", "Q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "Q4_K_S": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "Q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1", "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "Q3_K_L": "LLAMA_FTYPE_MOSTLY_Q3_K_L", "Q3_K_M": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "Q3_K_S": "LLAMA_FTYPE_MOSTLY_Q3_K_S", "Q2_K": "LLAMA_FTYPE_MOSTLY_Q2_K",
}
#: Full-precision storage types: a file of one of these is its own reference.
FULL_PRECISION = ("F32", "F16", "BF16")


def quant_type(name: str) -> str:
    """``name`` in llama.cpp's spelling (``q4_k_m`` -> ``Q4_K_M``), or a one-line error listing the types."""
    upper = name.strip().upper()
    if upper not in QUANT_TYPES:
        raise BadInputError(f"unknown quantisation type {name!r} (known: {', '.join(QUANT_TYPES)})")
    return upper


def _bindings():
    try:
        import llama_cpp
    except ImportError:
        raise BadInputError("quantising needs llama-cpp-python: pip install 'trustslm[llamacpp]' "
                            "(it builds from source; docs/backends.md gives the build flags)") from None
    return llama_cpp


def quantize_gguf(source: str | Path, dest: str | Path, qtype: str, *, threads: int | None = None) -> Path:
    """Write ``source`` quantised to ``qtype`` at ``dest`` (written beside it first, then renamed,
    so a failed run leaves no half-written file under the final name)."""
    qtype = quant_type(qtype)
    llama_cpp = _bindings()
    source, dest = Path(source), Path(dest)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[qtype])
    params.nthread = threads or os.cpu_count() or 1
    params.allow_requantize = True  # a quantised source is dequantised first (F32 from the demo's Q4_1)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    with _captured_output() as log:
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
    if rc != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        last = next((ln.strip() for ln in reversed(log[0].splitlines()) if ln.strip()), "")
        raise ModelFormatError(f"llama.cpp could not quantise {source.name} to {qtype} (llama_model_quantize returned "
                               f"{rc}{': ' + last[:200] if last else ''})")
    os.replace(partial, dest)
    return dest


@contextmanager
def _captured_output() -> Iterator[list[str]]:
    """llama.cpp's quantiser prints a line per tensor on the process's stdout and stderr: send
    them to a temporary file instead of the user's terminal; the list yielded holds their text
    once the block ends (for the error message)."""
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:
        saved = (os.dup(1), os.dup(2))
        text: list[str] = []
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield text
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            log.seek(0)
            text.append(log.read(1 << 20))
