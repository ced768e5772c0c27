"""Reading the files users and third parties give (data, configs, policies, specs, mock scripts,
reports) within the bounds of :mod:`trustslm.core.limits`, and turning every problem into one line.

YAML is always read with a ``yaml.SafeLoader`` (no tags that build objects), bounded in nesting
depth and in nodes after alias expansion; JSON is bounded in nesting depth. Parsed values hold no
lone UTF-16 surrogates (``"\\ud800"`` in a JSON or YAML escape), which are not text: they would
break every later encoding of the value (cache keys, report files, the terminal).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trustslm.core.errors import BadInputError
from trustslm.core.limits import MAX_NESTING_DEPTH, MAX_YAML_FILE_BYTES, MAX_YAML_NODES

#: What can't be printed as is on one line of a terminal: C0/C1 controls (ESC, CR, LF...), line and
#: paragraph separators, bidi controls, and lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` with line breaks, control and bidi characters escaped (``\\n``, ``\\x1b``, ``\\u202e``):
    a message built from untrusted names (a path, a key) stays one line and can't drive a terminal."""
    return _UNPRINTABLE.sub(lambda m: _escape(m[0]), text)


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) <= 0xFF else f"\\u{ord(char):04x}"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


# -- bounded reading -------------------------------------------------------------------------------
def _open_regular(path: Path, what: str, error: type[BadInputError], *,
                  follow_links: bool = True) -> tuple[Any, int]:
    """An open binary file and its size. Opened without blocking and checked on the open file, so a
    FIFO or device named as a file is refused instead of read (or waited on) forever; with
    ``follow_links=False`` a symlink at ``path`` is refused too."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise error(f"{what} {path} is not readable: {exc.strerror or type(exc).__name__}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a folder, not a file" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise error(f"{what} {path} is {kind}")
    return os.fdopen(fd, "rb"), st.st_size


def _too_large(path: Path, what: str, limit: int, error: type[BadInputError]) -> BadInputError:
    return error(f"{what} {path} is larger than the {_size(limit)} that trustslm reads from a {what} file")


def read_bounded_bytes(path: str | Path, what: str, limit: int, error: type[BadInputError] = BadInputError, *,
                       follow_links: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; never reads more than ``limit + 1``."""
    path = Path(path)
    fh, size = _open_regular(path, what, error, follow_links=follow_links)
    with fh:
        if size > limit:
            raise _too_large(path, what, limit, error)
        try:
            data = fh.read(limit + 1)  # the file may have grown since fstat
        except OSError as exc:
            raise error(f"{what} {path} is not readable: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit:
        raise _too_large(path, what, limit, error)
    return data


def decode_text(data: bytes, where: str, error: type[BadInputError] = BadInputError) -> str:
    """``data`` as UTF-8 text; anything else is a one-line ``error``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{where} is not UTF-8 text (byte {exc.start})") from None


def read_bounded_text(path: str | Path, what: str, limit: int, error: type[BadInputError] = BadInputError) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes."""
    return decode_text(read_bounded_bytes(path, what, limit, error), f"{what} {path}", error)


def iter_bounded_lines(path: str | Path, what: str, limit: int,
                       error: type[BadInputError] = BadInputError) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a UTF-8 file, read as a stream: a large ``samples.jsonl``
    is not held twice in memory, and reading stops past ``limit`` bytes."""
    path = Path(path)
    fh, size = _open_regular(path, what, error)
    with fh:
        if size > limit:
            raise _too_large(path, what, limit, error)
        total = 0
        try:
            for n, raw in enumerate(fh, start=1):
                total += len(raw)
                if total > limit:
                    raise _too_large(path, what, limit, error)
                yield n, decode_text(raw, f"{what} {path} line {n}", error)
        except OSError as exc:
            raise error(f"{what} {path} is not readable: {exc.strerror or type(exc).__name__}") from None


# -- parsed values ---------------------------------------------------------------------------------
_PLAIN = (str, int, float, bool, type(None), dict, list)


def check_tree(value: Any, where: str, error: type[BadInputError] = BadInputError, *,
               max_depth: int = MAX_NESTING_DEPTH, plain: bool = False) -> None:
    """Refuse a parsed value nested deeper than ``max_depth`` lists/mappings (a cycle too) or
    holding a lone surrogate in a string or key; with ``plain``, also any value JSON can't hold
    (a date, bytes or a set from YAML tags, a key that is not text), which hashing it for the cache
    key or writing it into a report would fail on. Iterative, so any depth is safe to check."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if plain and not isinstance(item, _PLAIN):
            raise error(f"{where}: holds a value of type {type(item).__name__}, which JSON can't hold")
        if isinstance(item, str):
            _check_text(item, where, error)
        elif isinstance(item, (dict, list, tuple)):
            if depth >= max_depth:
                raise error(f"{where}: nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if plain and not isinstance(key, str):
                        raise error(f"{where}: a mapping key ({one_line(str(key))[:40]}) is not text")
                    if isinstance(key, str):
                        _check_text(key, where, error)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str, where: str, error: type[BadInputError]) -> None:
    found = _SURROGATE.search(text)
    if found:
        raise error(f"{where}: text holds a lone surrogate (\\u{ord(found[0]):04x}), which is not Unicode text")


def parse_json(text: str, where: str, error: type[BadInputError] = BadInputError) -> Any:
    """The JSON value in ``text``, checked by :func:`check_tree`; anything else is a one-line ``error``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise error(f"{where}: nested deeper than {MAX_NESTING_DEPTH} levels") from None
    except ValueError as exc:
        raise error(f"{where}: not valid JSON ({one_line(str(exc))})") from None
    check_tree(value, where, error)
    return value


def parse_yaml(text: str, where: str, error: type[BadInputError] = BadInputError) -> Any:
    """The YAML value in ``text`` (safe tags only), bounded by :data:`MAX_NESTING_DEPTH` and
    :data:`MAX_YAML_NODES`, holding only what JSON can (a date like ``2024-01-31`` stays a string),
    checked by :func:`check_tree`."""
    import yaml

    try:
        value = yaml.load(text, Loader=_bounded_loader())  # noqa: S506 - a SafeLoader subclass
    except _YamlBound as exc:
        raise error(f"{where}: {exc}") from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:  # int("9"*5000) is a ValueError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise error(f"{where} is not readable YAML: {one_line(first)}") from None
    check_tree(value, where, error, plain=True)
    return value


class _YamlBound(Exception):
    """A YAML document over a bound (caught by :func:`parse_yaml`)."""


_LOADER: type | None = None


def _bounded_loader() -> type:
    """A ``yaml.SafeLoader`` that counts nodes as composed, an alias counting as the nodes it stands
    for, and refuses a document over the bounds before anything walks it."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class BoundedSafeLoader(yaml.SafeLoader):
            yaml_implicit_resolvers = {  # a plain 2024-01-31 is text, not a date (as in JSON)
                first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
                for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

            def __init__(self, stream):
                super().__init__(stream)
                self._depth = 0
                self._nodes = 0
                self._sizes: dict[int, int] = {}

            def _count(self, n: int) -> None:
                self._nodes += n
                if self._nodes > MAX_YAML_NODES:
                    raise _YamlBound(f"more than {MAX_YAML_NODES} nodes once its aliases are expanded")

            def compose_node(self, parent, index):
                if self.check_event(yaml.AliasEvent):
                    target = self.anchors.get(self.peek_event().anchor)
                    if target is not None:
                        if id(target) not in self._sizes:
                            raise _YamlBound("an alias refers to a node that contains it (a recursive structure)")
                        self._count(self._sizes[id(target)])
                    return super().compose_node(parent, index)
                self._depth += 1
                if self._depth > MAX_NESTING_DEPTH:
                    raise _YamlBound(f"nested deeper than {MAX_NESTING_DEPTH} levels")
                before = self._nodes
                self._count(1)
                node = super().compose_node(parent, index)
                self._sizes[id(node)] = self._nodes - before
                self._depth -= 1
                return node

        _LOADER = BoundedSafeLoader
    return _LOADER


# -- YAML files ------------------------------------------------------------------------------------
def read_yaml_file(path: str | Path, what: str, error: type[BadInputError] = BadInputError,
                   *, empty_ok: bool = False) -> tuple[dict[str, Any], str]:
    """The mapping in a YAML file and the sha256 of the bytes it was parsed from (so a report names
    exactly what was read); a missing, unreadable, oversized or non-mapping file raises ``error``
    with one line that starts with ``what`` (e.g. "policy")."""
    path = Path(path)
    data = read_bounded_bytes(path, what, MAX_YAML_FILE_BYTES, error)
    text = decode_text(data, f"{what} {path}", error)
    value = parse_yaml(text, f"{what} {path}", error)
    if value is None and empty_ok:
        value = {}
    if not isinstance(value, dict):
        raise error(f"{what} {path} must be a mapping")
    return value, hashlib.sha256(data).hexdigest()


def read_yaml_mapping(path: str | Path, what: str, error: type[BadInputError] = BadInputError,
                      *, empty_ok: bool = False) -> dict[str, Any]:
    """The mapping in a YAML file (see :func:`read_yaml_file`)."""
    return read_yaml_file(path, what, error, empty_ok=empty_ok)[0]


def first_validation_error(exc: Any) -> tuple[str, str, str]:
    """(location, message, type) of the first error of a pydantic ``ValidationError``, each one line
    (a location holds keys from the input, which may hold line breaks)."""
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return one_line(loc), one_line(str(err["msg"]).removeprefix("Value error, ")), str(err["type"])
