"""Writing files so that nothing planted in the target folder can redirect the write, and nothing
half-written is ever seen under the final name.

The folders trustslm writes into can hold names somebody else chose: a model folder (``trustslm
card`` updates its ``README.md``), a report folder, the cache. A temporary file with a predictable
name (``.README.md.<pid>.tmp``) lets whoever can write there plant a symlink at that name and turn
our write into a write to any file the user can write. So every temporary file here is created by
:func:`tempfile.mkstemp` in the target's own folder: an unpredictable name opened with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (a name that exists, link or not, is never opened; mkstemp picks
another). The finished file is moved over the target with :func:`os.replace`, which replaces a
symlink at the target with the file itself and never writes through it.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path


@functools.cache
def umask() -> int:
    """The process umask, read without changing it where the OS says it (Linux), so that other
    threads never create files while it is briefly 0."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file (0o666 less the umask); mkstemp's own
    0o600 would make reports unreadable to the user's group where they expect otherwise."""
    return 0o666 & ~umask()


def stage(path: str | Path, data: bytes | str, *, mode: int | None = None, sync: bool = True) -> Path:
    """Write ``data`` to a new, exclusively created temporary file beside ``path`` and return its
    path (``.NAME.XXXXXXXX.tmp``); :func:`commit` moves it over ``path``. ``mode`` defaults to
    :func:`default_file_mode`; ``sync`` flushes it to disk, so a committed file is never empty
    after a power loss."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), default_file_mode() if mode is None else mode)
            f.write(payload)
            f.flush()
            if sync:
                os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit(tmp: Path, path: str | Path) -> None:
    """Move a staged file over ``path`` (a symlink there is replaced, not followed)."""
    os.replace(tmp, path)


def discard(tmp: Path | None) -> None:
    """Remove a staged file that will not be committed (no error when it is gone)."""
    if tmp is not None:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def write_atomic(path: str | Path, data: bytes | str, *, mode: int | None = None, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` in one step: readers see the old file or the new one, never
    a part, and a symlink planted at ``path`` or at any temporary name is never written through."""
    tmp = stage(path, data, mode=mode, sync=sync)
    try:
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def sync_folder(folder: str | Path) -> None:
    """Flush a folder's entries (the renames into it) to disk, where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
