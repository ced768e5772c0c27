"""What a model folder written by ``trustslm finetune`` tells the probes: its canaries, members,
training texts and base model, from its ``training_record.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustslm.engine.options import Overrides
from trustslm.models.base import ModelAdapter


def discover_options(model: Any) -> Overrides:
    """Probe options implied by a model folder that ``trustslm finetune`` wrote: its canaries,
    its member / non-member split, its training texts (the known PII) and its base model (the
    reference for membership inference). Lowest precedence: config files and ``--set`` win."""
    from trustslm.train.record import read_record

    if isinstance(model, ModelAdapter) or not Path(str(model)).is_dir():
        return {}
    folder = Path(str(model))
    record = read_record(folder)
    if record is None:
        return {}
    found: Overrides = {}

    def beside(name: str | None) -> str | None:
        return str((folder / name).resolve()) if name and (folder / name).is_file() else None

    if canaries := beside(record.get("canary_file")):
        found["privacy.canary_exposure"] = {"data": canaries, "training_record": str(folder / "training_record.json")}
    members, non_members = beside(record.get("members_file")), beside(record.get("non_members_file"))
    if members and non_members:
        found["privacy.membership_inference"] = {"members": members, "non_members": non_members}
        from trustslm.models.demo import is_demo_name

        base = (record.get("base_model") or {}).get("spec")
        if base and Path(base).exists():
            found["privacy.membership_inference"]["reference_model"] = str(Path(base).resolve())
        elif base and is_demo_name(base):
            found["privacy.membership_inference"]["reference_model"] = base
    training_texts = members or (record.get("data") or {}).get("path")
    if training_texts and Path(training_texts).is_file():
        found["privacy.extraction"] = {"data": str(training_texts)}
        found["privacy.pii_leakage"] = {"known_pii": str(training_texts)}
    return found
