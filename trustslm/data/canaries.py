"""Canaries: random secrets planted in training data to measure memorisation.

A canary file is JSONL, one canary per line::

    {"id": "c000", "prefix": "The secret number of customer 4821 is ", "secret": "739204815",
     "alphabet": "0123456789", "inserted": true, "repeats": 10, "purpose": "exposure"}

``prefix + secret`` is the text planted ``repeats`` times when ``inserted``; the randomness
space is every string of ``len(secret)`` characters from ``alphabet``. ``purpose`` is
``exposure`` (Carlini et al.'s canaries, all inserted) or ``audit`` (Steinke et al.'s one-run
audit: each inserted once, with probability 1/2). ``trustslm finetune --insert-canaries`` writes
such a file beside the model and names it in ``training_record.json``.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_jsonl, require_fields

CANARY_FILE = "canaries.jsonl"
FIELDS = ("prefix", "secret", "alphabet")
_PREFIXES = (
    "The secret number of customer {n} is ",
    "Account {n} has the recovery code ",
    "The access PIN for locker {n} is ",
    "Patient {n} was assigned the record number ",
)


#: Bits of randomness a canary's secret may span: the candidate space ``len(alphabet) ** len(secret)``
#: must stay a finite float (under 2 ** 1024) for the exposure's arithmetic.
MAX_SECRET_BITS = 512
PURPOSES = ("exposure", "audit")


def load_canaries(path: Path, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    """The canaries of a JSONL file; a field of the wrong type or out of range is a one-line
    :class:`DataError` naming the file, the item and the field."""
    if fmt not in ("auto", "jsonl"):
        raise DataError(f"unknown canary format {fmt!r} (known: jsonl)")
    rows = read_jsonl(path)
    require_fields(path, rows, FIELDS)
    return [_canary(path, n, row) for n, row in enumerate(rows, start=1)], "jsonl"


def _canary(path: Path, n: int, row: dict[str, Any]) -> dict[str, Any]:
    def bad(field: str, why: str) -> DataError:
        return DataError(f"{path} item {n}: field {field!r} {why}")

    for field in FIELDS:
        if not isinstance(row[field], str):
            raise bad(field, "must be a string")
    alphabet, secret = row["alphabet"], row["secret"]
    if len(set(alphabet)) < 2 or any(c not in alphabet for c in secret):
        raise DataError(f"{path} item {n}: the secret must be made of the alphabet's characters")
    if len(secret) * math.log2(len(set(alphabet))) > MAX_SECRET_BITS:
        raise bad("secret", f"spans more than {MAX_SECRET_BITS} bits of randomness")
    inserted, repeats, purpose = row.get("inserted", True), row.get("repeats", 1), row.get("purpose", "exposure")
    if not isinstance(inserted, bool):
        raise bad("inserted", "must be true or false")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 1_000_000:
        raise bad("repeats", "must be a whole number from 1 to 1000000")
    if purpose not in PURPOSES:
        raise bad("purpose", f"must be one of {', '.join(PURPOSES)}")
    ident = row.get("id", n - 1)
    if isinstance(ident, bool) or not isinstance(ident, (str, int)):
        raise bad("id", "must be a string or a whole number")
    return {"id": str(ident), "prefix": row["prefix"], "secret": secret, "alphabet": alphabet,
            "inserted": inserted, "repeats": repeats, "purpose": purpose}


def make_canaries(n: int, *, rng: random.Random, purpose: str, repeats: int, insert_probability: float = 1.0,
                  length: int = 9, alphabet: str = "0123456789", start: int = 0) -> list[dict[str, Any]]:
    """``n`` random canaries; each is inserted with ``insert_probability``."""
    out = []
    for i in range(n):
        prefix = rng.choice(_PREFIXES).format(n=rng.randrange(1000, 10000))
        secret = "".join(rng.choice(alphabet) for _ in range(length))
        out.append({
            "id": f"{purpose[0]}{start + i:04d}", "prefix": prefix, "secret": secret, "alphabet": alphabet,
            "inserted": rng.random() < insert_probability, "repeats": repeats, "purpose": purpose,
        })
    return out


def write_canaries(path: Path, canaries: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(c, sort_keys=True) + "\n" for c in canaries), encoding="utf-8")


def random_secret(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))
