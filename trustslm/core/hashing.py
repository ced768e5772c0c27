"""sha256 of files and of canonical JSON, with a small on-disk memo for large files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: Path, *, memo_dir: Path | None = None) -> str:
    """The hex sha256 of a file's bytes.

    With ``memo_dir``, the digest of a file is remembered under its absolute path, size and
    modification time, so a 500 MB model is hashed once, not on every audit.
    """
    path = Path(path)
    st = path.stat()
    memo_file = None
    memo_key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if memo_dir is not None and st.st_size > 8 * _CHUNK:
        memo_file = Path(memo_dir) / "file-hashes.json"
        memo = _read_memo(memo_file)
        if memo_key in memo:
            return memo[memo_key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if memo_file is not None:
        memo = _read_memo(memo_file)
        memo[memo_key] = digest
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo, indent=0, sort_keys=True))
        os.replace(tmp, memo_file)
    return digest


def _read_memo(memo_file: Path) -> dict[str, str]:
    try:
        data = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal objects give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
