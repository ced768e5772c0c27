"""Probe options from the command line (``--set PROBE_ID.OPTION=VALUE``) and from a YAML file
(``--config FILE``)::

    fairness.stereotype_pairs:
      data: ../shared/datasets/crows_pairs/crows_pairs_anonymized.csv   # relative to this file
    toxicity.continuation:
      k: 5

Precedence, lowest first: the kind's defaults, the spec's ``options``, the config file, ``--set``.
An option's former name (its kind's ``Options.renamed``) still works for a release, with a
one-line deprecation notice.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trustslm.core.errors import BadInputError, TrustSLMDeprecationWarning
from trustslm.core.specs import ProbeSpec
from trustslm.core.textfiles import check_tree, first_validation_error, parse_yaml, read_yaml_mapping
from trustslm.probes.base import ProbeOptions

Overrides = dict[str, dict[str, Any]]


def parse_set(items: list[str] | None) -> Overrides:
    """``["fairness.stereotype_pairs.data=x.csv", "toxicity.continuation.k=5"]`` -> nested dict.
    Values are read as YAML scalars, so ``5`` is a number and ``true`` a boolean."""
    out: Overrides = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        probe, dot, option = key.strip().rpartition(".")
        if not sep or not dot or not probe or not option:
            raise BadInputError(f"--set {item!r}: expected PROBE_ID.OPTION=VALUE")
        try:  # bounded like a YAML file: ``[[[[...`` is a string, not a RecursionError
            value = parse_yaml(raw, f"--set {key}") if raw.strip() else ""
        except BadInputError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw  # only scalars from the command line
        out.setdefault(probe, {})[option] = value
    return out


def load_config(path: str | Path) -> tuple[Overrides, Path]:
    """The options in a config file and the folder relative paths in it are read from. The file is
    bounded like every YAML file (:func:`trustslm.core.textfiles.read_yaml_file`)."""
    path = Path(path)
    data = read_yaml_mapping(path, "config", empty_ok=True)
    if not all(isinstance(v, dict) for v in data.values()):
        raise BadInputError(f"config {path} must map probe ids to mappings of options")
    return {str(k): dict(v) for k, v in data.items()}, path.resolve().parent


def build_options(spec: ProbeSpec, options_cls: type[ProbeOptions], *layers: dict[str, Any]) -> ProbeOptions:
    """``spec``'s options under ``layers`` (lowest first), validated by ``options_cls``."""
    merged: dict[str, Any] = {}
    for layer in (spec.options, *layers):
        check_tree(layer, f"options of {spec.id}")  # a lone surrogate would break the cache key and the report
        merged.update(_current_names(spec.id, options_cls, layer))
    try:
        return options_cls.model_validate(merged)
    except ValidationError as exc:
        loc, msg, kind = first_validation_error(exc)
        if kind == "extra_forbidden":
            known = ", ".join(sorted(options_cls.model_fields))
            raise BadInputError(f"{spec.id}: unknown option {loc!r} (options: {known})") from None
        raise BadInputError(f"{spec.id}.{loc}: {msg}") from None


def _current_names(probe_id: str, options_cls: type[ProbeOptions], layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` with former option names replaced by current ones (the current name winning
    where a layer gives both), each with a deprecation notice."""
    out = {}
    for key, value in layer.items():
        new = options_cls.renamed.get(key)
        if new is None:
            out[key] = value
            continue
        warnings.warn(f"option {probe_id}.{key} is deprecated; it is now {probe_id}.{new}",
                      TrustSLMDeprecationWarning, stacklevel=4)
        if new not in layer:
            out[new] = value
    return out
