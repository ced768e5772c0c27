"""sha256 of files and of canonical JSON, with a small on-disk memo for large files."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from trustslm.core.atomic import write_atomic
from trustslm.core.errors import BadInputError
from trustslm.core.textfiles import read_bounded_bytes

_CHUNK = 1 << 20
#: Files larger than this have their digest remembered in the memo (smaller ones are hashed each time).
MEMO_MIN_BYTES = 8 * _CHUNK
MEMO_FILE = "file-hashes.json"
#: The memo keeps at most this many digests (the newest) and is read only up to this size.
MEMO_MAX_ENTRIES = 4096
MEMO_MAX_BYTES = 4 * _CHUNK
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _identity(path: Path, st: os.stat_result) -> str:
    """What the memo remembers a digest under: the path and everything about the file that a
    rewrite changes. ``st_ctime_ns`` changes on every write and cannot be set back (``os.utime``
    sets only mtime and atime), so weights rewritten in place with the same size and a restored
    mtime get a new key; device and inode tell a file replaced by another apart."""
    return f"{path}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


def sha256_file(path: Path, *, memo_dir: Path | None = None) -> str:
    """The hex sha256 of a file's bytes.

    With ``memo_dir``, the digest of a large file is remembered under its identity
    (:func:`_identity`), so a 500 MB model is hashed once, not on every audit. The identity is
    taken from the open file itself, before and after reading: a file that changes while it is
    read is hashed but not remembered.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        before = os.fstat(fh.fileno())
        use_memo = memo_dir is not None and before.st_size > MEMO_MIN_BYTES
        key = _identity(path.resolve(), before)
        if use_memo:
            known = _read_memo(Path(memo_dir) / MEMO_FILE).get(key)  # type: ignore[arg-type]
            if known is not None:
                return known
        h = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
        after = os.fstat(fh.fileno())
    digest = h.hexdigest()
    if use_memo and _identity(path.resolve(), after) == key:
        _remember(Path(memo_dir) / MEMO_FILE, key, digest)  # type: ignore[arg-type]
    return digest


def _remember(memo_file: Path, key: str, digest: str) -> None:
    """Add one digest to the memo, dropping older entries for the same path and the oldest
    beyond :data:`MEMO_MAX_ENTRIES`. A memo that can't be written is only a lost shortcut."""
    path_prefix = key.rsplit("|", 5)[0] + "|"
    memo = {k: v for k, v in _read_memo(memo_file).items() if not k.startswith(path_prefix)}
    memo[key] = digest
    if len(memo) > MEMO_MAX_ENTRIES:
        memo = dict(list(memo.items())[-MEMO_MAX_ENTRIES:])
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(memo_file, json.dumps(memo, indent=0), mode=0o600)
    except OSError:
        pass


def _read_memo(memo_file: Path) -> dict[str, str]:
    """The memo's valid entries (path-and-stat keys to 64-hex digests). The cache folder is
    outside the user's view: a memo that is a symlink, too large, not JSON or not a mapping
    counts as empty, and entries that are not digests are dropped, so a damaged memo costs a
    rehash and nothing else."""
    try:
        data = read_bounded_bytes(memo_file, "hash memo", MEMO_MAX_BYTES, follow_links=False)
    except BadInputError:
        return {}
    try:
        memo = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(memo, dict):
        return {}
    return {k: v for k, v in memo.items() if isinstance(v, str) and _HEX64.fullmatch(v) and len(k) <= 8192}


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal objects give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
