"""What a model folder written by ``trustslm finetune`` offers the probes (its canaries, training
record, members and non-members, training texts and base model, from its ``training_record.json``),
and the probe options that come of it: every selected probe kind says what it takes
(``Probe.training_inputs``), so no probe is named here."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry
from trustslm.engine.options import Overrides
from trustslm.models.base import ModelAdapter
from trustslm.probes.base import TRAINING_INPUTS


def training_inputs(model: Any, wanted: Collection[str] | None = None) -> dict[str, str]:
    """What a model folder that ``trustslm finetune`` wrote offers, by :data:`TRAINING_INPUTS`
    name (only those in ``wanted``, all when None): its canary file, its training record, its
    member / non-member split, the texts it was trained on (the members, or else the training
    file when it is still what was trained on) and its base model (a model folder whose files
    still have the recorded hash, or the demo model's name). Empty for anything else.

    The record is untrusted (:mod:`trustslm.train.record`): its files must be in the folder, and
    what it names outside the folder is offered only when it hashes to what it recorded."""
    from trustslm.train.record import RECORD_FILE, file_beside, load_record, verified_data_path

    wanted = set(TRAINING_INPUTS if wanted is None else wanted)
    if isinstance(model, ModelAdapter) or not wanted or not Path(str(model)).is_dir():
        return {}
    folder = Path(str(model))
    record = load_record(folder)
    if record is None:
        return {}
    path = folder / RECORD_FILE

    def beside(name: str | None) -> str | None:
        found = file_beside(folder, path, name)
        return None if found is None else str(found)

    found = {"training_record": str(path), "canaries": beside(record.canary_file),
             "members": beside(record.members_file), "non_members": beside(record.non_members_file)}
    if "training_texts" in wanted:
        data = found["members"] or verified_data_path(record)
        found["training_texts"] = str(data) if data else None
    if "base_model" in wanted:
        found["base_model"] = _verified_base(folder, path, record.base_model)
    return {k: v for k, v in found.items() if v and k in wanted}


def _verified_base(folder: Path, record_path: Path, base: Mapping[str, str]) -> str | None:
    """The record's base model when it is the model that was fine-tuned: the demo model by name,
    or a model folder (or GGUF file) whose files hash to the recorded hash; None when it is gone
    or has changed. A base that is the folder itself is a one-line error."""
    from trustslm.core.resources import cache_dir
    from trustslm.models.demo import is_demo_name
    from trustslm.models.hf import describe_files
    from trustslm.models.validate import inspect_model_path

    spec = base["spec"]
    path = Path(spec)
    if is_demo_name(spec) and not path.exists():
        return spec
    if not path.exists():
        return None
    resolved = path.resolve()
    if resolved == folder.resolve():
        raise BadInputError(f"{record_path} names the model itself as its base model")
    try:  # the files a plain load reads (a wrapper folder's own weights, never its mitigation.json)
        _, digest = describe_files(inspect_model_path(resolved), memo_dir=cache_dir())
    except (BadInputError, OSError):
        return None
    return str(resolved) if digest == base["hash"] else None


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
    probes (lowest precedence: config files and ``--set`` win). Only what a selected probe takes is
    looked for (the base model is hashed only when a probe compares against it)."""
    wanted = {name for spec in registry.select(probes)
              for name in getattr(registry.probe_kind(spec.kind), "training_inputs", {})}
    return options_from_training(registry, probes, training_inputs(model, wanted))
