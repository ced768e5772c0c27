"""An on-disk cache of model results, keyed by the model's identity (a digest over everything
that can change its outputs, :attr:`~trustslm.core.types.ModelInfo.identity`) and the request.

SQLite, one transaction per finished batch: a run killed at any moment leaves every finished
batch stored and no half-written one, so ``--resume`` recomputes nothing already done.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(identity: str, request_key: str) -> str:
    return hashlib.sha256(f"{identity}\0{request_key}".encode("utf-8")).hexdigest()


class RequestCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def get_many(self, identity: str, request_keys: Sequence[str]) -> dict[str, dict]:
        """Stored results (as dicts) for those of ``request_keys`` that are in the cache."""
        by_cache_key = {cache_key(identity, k): k for k in request_keys}
        found: dict[str, dict] = {}
        keys = list(by_cache_key)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, result in self._db.execute(
                f"SELECT key, result FROM results WHERE key IN ({marks})", chunk
            ):
                found[by_cache_key[key]] = json.loads(result)
        return found

    def put_many(self, identity: str, items: Iterable[tuple[str, str, dict]]) -> None:
        """Store (request key, kind, result dict) triples in one transaction."""
        now = time.time()
        rows = [(cache_key(identity, k), identity, kind, k, json.dumps(res), now) for k, kind, res in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)", rows)

    def count(self, identity: str | None = None) -> int:
        if identity is None:
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM results WHERE model = ?", (identity,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()
