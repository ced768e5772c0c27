"""Where the project's own probe specs and datasets live.

In a wheel they are packed under ``trustslm/_resources`` (hatchling ``force-include``); in a source
checkout or an editable install they are the top-level ``probes/`` and ``datasets/`` folders.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # trustslm/


def _resource_dir(name: str) -> Path:
    packed = _PACKAGE_DIR / "_resources" / name
    if packed.is_dir():
        return packed
    return _PACKAGE_DIR.parent / name


def probes_dir() -> Path:
    """The folder of built-in probe specs (one sub-folder per probe, grouped by dimension)."""
    return _resource_dir("probes")


def datasets_dir() -> Path:
    """The folder of the project's own datasets."""
    return _resource_dir("datasets")


BUILTIN_PREFIX = "builtin:"


def resolve_data_path(value: str, *, base_dir: Path | None = None) -> Path:
    """Turn a probe's ``data`` option into a path.

    ``builtin:NAME`` names a file of the project's own ``datasets/``; anything else is a path,
    relative to ``base_dir`` (the folder of the config file that set it) or the working directory.
    """
    if value.startswith(BUILTIN_PREFIX):
        return datasets_dir() / value[len(BUILTIN_PREFIX):]
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def cache_dir() -> Path:
    """trustslm's cache folder: ``$TRUSTSLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/trustslm``,
    else ``~/.cache/trustslm``. Created by the code that writes into it, never at import."""
    env = os.environ.get("TRUSTSLM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "trustslm"
