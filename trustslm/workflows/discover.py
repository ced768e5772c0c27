"""What a model folder written by ``trustslm finetune`` offers the probes (its canaries, training
record, members and non-members, training texts and base model, from its ``training_record.json``),
and the probe options that come of it: every selected probe kind says what it takes
(``Probe.training_inputs``), so no probe is named here."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.engine.options import Overrides
from trustslm.models.base import ModelAdapter
from trustslm.probes.base import TRAINING_INPUTS


def training_inputs(model: Any) -> dict[str, str]:
    """What a model folder that ``trustslm finetune`` wrote offers, by :data:`TRAINING_INPUTS`
    name: its canary file, its training record, its member / non-member split, the texts it was
    trained on (the members, or else the whole training file) and its base model (a folder that
    exists, or the demo model's name). Empty for anything else."""
    from trustslm.models.demo import is_demo_name
    from trustslm.train.record import read_record

    if isinstance(model, ModelAdapter) or not Path(str(model)).is_dir():
        return {}
    folder = Path(str(model))
    record = read_record(folder)
    if record is None:
        return {}

    def beside(name: str | None) -> str | None:
        return str((folder / name).resolve()) if name and (folder / name).is_file() else None

    found = {"training_record": str(folder / "training_record.json"),
             "canaries": beside(record.get("canary_file")),
             "members": beside(record.get("members_file")),
             "non_members": beside(record.get("non_members_file"))}
    training_texts = found["members"] or (record.get("data") or {}).get("path")
    if training_texts and Path(training_texts).is_file():
        found["training_texts"] = str(training_texts)
    base = (record.get("base_model") or {}).get("spec")
    if base and Path(base).exists():
        found["base_model"] = str(Path(base).resolve())
    elif base and is_demo_name(base):
        found["base_model"] = base
    return {k: v for k, v in found.items() if v}


def options_from_training(registry: Registry, probes: list[str] | None, inputs: Mapping[str, str]) -> Overrides:
    """The option every selected probe (``probes``: ids or globs, all when None) takes from
    ``inputs`` (:data:`TRAINING_INPUTS` name -> value), as its kind's ``training_inputs`` says."""
    unknown = set(inputs) - set(TRAINING_INPUTS)
    if unknown:
        raise BadInputError(f"unknown training input(s) {sorted(unknown)} (known: {', '.join(TRAINING_INPUTS)})")
    found: Overrides = {}
    if not inputs:
        return found
    for spec in registry.select(probes):
        kind = registry.probe_kind(spec.kind)
        for name, option in getattr(kind, "training_inputs", {}).items():
            if name not in TRAINING_INPUTS or option not in kind.Options.model_fields:
                raise BadInputError(f"probe kind {spec.kind!r} takes {name!r} from a fine-tuning folder into "
                                    f"{option!r}: it must be one of {', '.join(TRAINING_INPUTS)} into one of its options")
            if name in inputs:
                found.setdefault(spec.id, {})[option] = inputs[name]
    return found


def discover_options(model: Any, *, registry: Registry, probes: list[str] | None = None) -> Overrides:
    """Probe options implied by a model folder that ``trustslm finetune`` wrote, for the selected
    probes (lowest precedence: config files and ``--set`` win)."""
    return options_from_training(registry, probes, training_inputs(model))
