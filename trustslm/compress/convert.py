"""A Hugging Face model folder to a full-precision GGUF file, with llama.cpp's own converter
(``convert_hf_to_gguf.py --outtype f32``), the script llama.cpp's README gives for this.

Where the converter comes from: ``$TRUSTSLM_LLAMACPP_CONVERTER`` (the path of a llama.cpp
checkout's ``convert_hf_to_gguf.py``), else the copy ``.ci/setup`` extracts from the same
llama-cpp-python source package it builds (``share/trustslm/llama.cpp/`` under the environment's
prefix), so the converter and the quantiser are one llama.cpp version.

Safety. The folder is checked like any model folder (:func:`~trustslm.models.validate.inspect_model_path`:
no custom code, no pickles unless allowed, bounded configs) and the converter runs in a separate
process on a staging folder holding exactly the checked files, with the hub switched off
(``HF_HUB_OFFLINE``): the converter asks transformers for the tokenizer with
``trust_remote_code=True``, and without code files or an ``auto_map`` beside it, and with no hub
to fetch one from, there is no code to trust. An architecture the converter does not register is
refused by name before it runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from trustslm.core.errors import BadInputError, ModelFormatError

CONVERTER_ENV = "TRUSTSLM_LLAMACPP_CONVERTER"
_REGISTER = re.compile(r"@ModelBase\.register\(([^)]*)\)")
_QUOTED = re.compile(r"[\"']([A-Za-z0-9_]+)[\"']")
#: How long the converter may run (a 3B model converts in a few minutes on two cores).
CONVERT_TIMEOUT_S = 3600


def installed_converter() -> Path:
    return Path(sys.prefix) / "share" / "trustslm" / "llama.cpp" / "convert_hf_to_gguf.py"


def find_converter() -> Path:
    """The converter script, or a one-line error saying how to supply it."""
    named = os.environ.get(CONVERTER_ENV)
    path = Path(named) if named else installed_converter()
    if not path.is_file():
        raise BadInputError(
            f"llama.cpp's converter (convert_hf_to_gguf.py) is not at {path}: converting a Hugging Face folder to "
            f"GGUF needs it; set {CONVERTER_ENV} to the script in a llama.cpp checkout, or run .ci/setup "
            "(which extracts it from the llama-cpp-python source package)")
    return path


def registered_architectures(converter: Path) -> set[str]:
    """The ``architectures`` names the converter registers, read from its source text (never run):
    the ``@ModelBase.register("LlamaForCausalLM", ...)`` decorators of the script and its
    ``conversion`` package."""
    sources = [converter, *sorted((converter.parent / "conversion").glob("*.py"))]
    names: set[str] = set()
    for src in sources:
        for args in _REGISTER.findall(src.read_text(encoding="utf-8", errors="replace")):
            names.update(_QUOTED.findall(args))
    return names


def hf_to_gguf(folder: str | Path, dest: str | Path, *, allow_pickle: bool = False) -> Path:
    """Convert the model folder to a float32 GGUF file at ``dest``."""
    from trustslm.models.staging import hide_staging, stage_layout
    from trustslm.models.validate import inspect_model_path

    folder, dest = Path(folder), Path(dest)
    layout = inspect_model_path(folder, allow_pickle=allow_pickle)
    if layout.kind != "hf":
        raise BadInputError(f"{folder} is already a GGUF file")
    converter = find_converter()
    arch = (layout.config or {}).get("architectures") or []
    name = arch[0] if arch and isinstance(arch[0], str) else None
    if name is None:
        raise ModelFormatError(f"{folder / 'config.json'} names no architecture (architectures), so llama.cpp's "
                               "converter can't read it")
    if name not in registered_architectures(converter):
        raise ModelFormatError(f"llama.cpp's converter can't read {name} models ({folder}): it registers no "
                               "converter for that architecture")
    partial = dest.with_name(dest.name + ".partial")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with stage_layout(layout) as where:
        cmd = [sys.executable, str(converter), str(where), "--outtype", "f32", "--outfile", str(partial)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S,
                                  cwd=converter.parent)
        except subprocess.TimeoutExpired:
            partial.unlink(missing_ok=True)
            raise ModelFormatError(f"llama.cpp's converter did not finish {folder} in {CONVERT_TIMEOUT_S} s") from None
        if proc.returncode != 0 or not partial.is_file():
            partial.unlink(missing_ok=True)
            lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
            last = hide_staging(lines[-1].strip() if lines else f"exit code {proc.returncode}", where, folder)
            raise ModelFormatError(f"llama.cpp's converter could not convert {folder} ({name}): {last[:300]}")
    os.replace(partial, dest)
    return dest
