"""An on-disk cache of model results, keyed by the model's identity (a digest over everything
that can change its outputs, :attr:`~trustslm.core.types.ModelInfo.identity`), the version of
trustslm (whose adapters compute the outputs) and the request.

SQLite, one transaction per finished batch: a run killed at any moment leaves every finished
batch stored and no half-written one, so ``--resume`` recomputes nothing already done.

A row is used only when it checks out: it stores its key material (identity, kind, request) and a
digest over them and its value, and :meth:`RequestCache.get_many` returns only rows whose stored
material is the request's and whose digest matches; the engine then validates the value against
the request's result type. Anything else (a row edited by hand, copied from another model,
damaged, or of the wrong type) is counted, reported in one line and recomputed. A file at the
cache path that is not a usable SQLite database is a one-line error naming it (exit code 2); it
is not moved aside, because the cache folder may be shared by concurrent runs and a damaged cache
is worth a look before it is deleted.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from trustslm._version import __version__
from trustslm.core.errors import BadInputError
from trustslm.core.hashing import sha256_json
from trustslm.core.limits import (  # noqa: F401  (every bound is in core/limits.py)
    MAX_RESULT_CHARS,
)

#: Bumped when the key derivation or the row layout changes; rows of other formats never match.
CACHE_FORMAT = 2
_COLUMNS = ("key", "model", "kind", "request", "result", "created", "digest")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL,
    digest TEXT
)
"""


def cache_key(identity: str, request_key: str) -> str:
    """The row key: the cache format, trustslm's version, the model identity and the request."""
    material = f"trustslm-cache/{CACHE_FORMAT}\0{__version__}\0{identity}\0{request_key}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def row_digest(key: str, identity: str, kind: str, request_key: str, result: str) -> str:
    """The digest a row stores over its key material and its value."""
    return sha256_json([CACHE_FORMAT, key, identity, kind, request_key, result])


def warn(message: str) -> None:
    """One line on stderr, as the CLI prints its warnings."""
    sys.stderr.write(f"trustslm: warning: {message}\n")


class RequestCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._writable = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"can't create the cache folder {self.path.parent}: {exc.strerror or exc}") from None
        try:
            self._db = sqlite3.connect(str(self.path), timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._migrate()
            self._db.commit()
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: Exception) -> BadInputError:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return BadInputError(f"the cache database {self.path} is not usable ({first}); move or delete it, "
                             "or use another cache folder (--cache-dir or TRUSTSLM_CACHE_DIR)")

    def _migrate(self) -> None:
        """Check the table's columns; add ``digest`` to a cache written before rows had one and
        drop those rows (their keys are of the old format and can never match)."""
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(results)")]
        if "digest" not in columns and set(columns) == set(_COLUMNS) - {"digest"}:
            try:
                self._db.execute("ALTER TABLE results ADD COLUMN digest TEXT")
                self._db.execute("DELETE FROM results WHERE digest IS NULL")
            except sqlite3.OperationalError:  # another process migrated it first
                pass
            columns = [row[1] for row in self._db.execute("PRAGMA table_info(results)")]
        if set(columns) != set(_COLUMNS):
            raise sqlite3.DatabaseError(f"its results table has columns {sorted(columns)}, not trustslm's")

    def get_many(self, identity: str, wanted: Mapping[str, str]) -> tuple[dict[str, dict], int]:
        """The stored results (as dicts) of those requests in ``wanted`` (request key -> kind)
        that are in the cache and check out, and how many rows were there but failed the checks."""
        by_cache_key = {cache_key(identity, k): k for k in wanted}
        found: dict[str, dict] = {}
        rejected = 0
        keys = list(by_cache_key)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = (f"SELECT key, model, kind, request, digest, "
                     f"CASE WHEN length(result) <= ? THEN result END FROM results WHERE key IN ({marks})")
            try:
                rows = self._db.execute(query, [MAX_RESULT_CHARS, *chunk]).fetchall()
            except sqlite3.Error as exc:
                raise self._unusable(exc) from None
            for key, model, kind, request, digest, result in rows:
                request_key = by_cache_key.get(key)
                ok = (request_key is not None and model == identity and request == request_key
                      and kind == wanted[request_key] and isinstance(result, str)
                      and digest == row_digest(key, identity, kind, request_key, result))
                data = _json_object(result) if ok else None
                if data is None:
                    rejected += 1
                else:
                    found[request_key] = data  # type: ignore[index]
        return found, rejected

    def put_many(self, identity: str, items: Iterable[tuple[str, str, dict]]) -> None:
        """Store (request key, kind, result dict) triples in one transaction. A cache that can't
        be written (locked too long, disk full) is reported once and no longer written: the
        run goes on and keeps its results."""
        if not self._writable:
            return
        now = time.time()
        rows = []
        for k, kind, res in items:
            key, text = cache_key(identity, k), json.dumps(res)
            rows.append((key, identity, kind, k, text, now, row_digest(key, identity, kind, k, text)))
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO results (key, model, kind, request, result, created, digest) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            self._writable = False
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            warn(f"can't write the cache {self.path} ({first}); this run goes on without storing its results there")

    def count(self, identity: str | None = None) -> int:
        if identity is None:
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM results WHERE model = ?", (identity,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()


def _json_object(text: str) -> dict | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
