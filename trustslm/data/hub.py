"""Benchmarks by name from the Hugging Face hub, for machines with internet.

A probe's ``data`` option may be ``hf:REPO_ID[:CONFIG[:SPLIT]]``; the rows are fetched with the
``datasets`` library (``pip install datasets``) and handed to the same mapping as a local file of
that benchmark's format. Offline, or without ``datasets``, it is a one-line DataError saying so.
"""

from __future__ import annotations

from typing import Any

from trustslm.core.errors import DataError

HUB_PREFIX = "hf:"


def is_hub(value: str | None) -> bool:
    return bool(value) and str(value).startswith(HUB_PREFIX)


def load_hub_rows(value: str, *, default_split: str = "test") -> list[dict[str, Any]]:
    spec = value[len(HUB_PREFIX):]
    repo, _, rest = spec.partition(":")
    config, _, split = rest.partition(":")
    try:  # not ``import datasets``: run from a checkout, that finds the project's datasets/ folder
        from datasets import load_dataset
    except ImportError:
        raise DataError(f"{value}: loading a benchmark from the hub needs the 'datasets' package "
                        "(pip install datasets) and internet; or give a local file") from None
    if not repo:
        raise DataError(f"{value}: name a dataset, as hf:REPO_ID[:CONFIG[:SPLIT]]")
    try:
        ds = load_dataset(repo, config or None, split=split or default_split)
    except Exception as exc:  # network, missing repo, offline mode
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{value}: could not load from the Hugging Face hub: {first}") from None
    return [dict(row) for row in ds]
