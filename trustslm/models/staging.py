"""A private folder holding only the files trustslm checked, for transformers to load from.

transformers and sentence-transformers open files by name inside the folder they are given: the
weights a config names (``transformers_weights``), an adapter's config and weights, extra chat
templates in ``additional_chat_templates/``, a module folder a ``modules.json`` names, any file
the tokenizer class asks for. Rather than predict every such name for every version, trustslm
loads from a fresh temporary folder (``tempfile.mkdtemp``, removed as soon as loading is done)
that holds exactly the checked and hashed files (:meth:`~trustslm.models.validate.ModelLayout.load_names`),
under the names transformers expects: hard links where the file system allows, else symbolic
links to the checked real path. Whatever else the model folder holds is invisible to the loaders,
so what the report lists is what was loaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from trustslm.core.errors import ModelFormatError, UnsafeModelError
from trustslm.models.validate import ModelLayout, check_contained

_PREFIX = "trustslm-load-"


@contextmanager
def staged(files: Mapping[str, Path], folder: Path, *, contain: bool = True) -> Iterator[Path]:
    """A temporary folder holding ``files`` (name inside the folder -> file of ``folder``), each
    checked again to lie inside ``folder`` as it is linked (unless ``contain`` is False: a file
    the user named themselves); removed on exit."""
    where = Path(tempfile.mkdtemp(prefix=_PREFIX))
    try:
        for name, source in files.items():
            _link(name, source, folder, where, contain)
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _link(name: str, source: Path, folder: Path, where: Path, contain: bool) -> None:
    """Place ``source`` (re-checked: a link swapped since the folder was inspected is refused)
    at ``where/name``: a hard link pins the very file that was checked; a symbolic link to its
    real path is the fallback (another file system, or hard links not allowed)."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise UnsafeModelError(f"refusing to load {name!r} from {folder}: not a name inside the folder")
    real = check_contained(source, folder) if contain else source.resolve(strict=True)
    target = where.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(real, target)
    except OSError:
        try:
            os.symlink(real, target)
        except OSError as exc:
            raise ModelFormatError(f"could not prepare {name} of {folder} for loading: {exc.strerror}") from None


def stage_layout(layout: ModelLayout):  # -> a context manager yielding the staging folder
    """:func:`staged` for a checked :class:`~trustslm.models.validate.ModelLayout`."""
    return staged(layout.load_names(), layout.folder, contain=not layout.named_file)


def hide_staging(text: str, where: Path | str, folder: Path | str) -> str:
    """``text`` (e.g. a loader's error message) with the staging folder's path replaced by the
    model folder's, so messages name what the user gave."""
    return text.replace(str(where), str(folder))
