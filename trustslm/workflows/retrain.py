"""Retrain a model with training mitigations: one ``trustslm finetune`` run in which the texts go
through every mitigation's transform and the settings take every mitigation's overrides."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from trustslm.mitigations.base import StepRecord, TrainingMitigation
from trustslm.train.finetune import finetune


def train_mitigated(mitigations: list[TrainingMitigation], base: str, data: Path, train_config: dict[str, Any],
                    out: Path, *, progress: bool) -> list[StepRecord]:
    """One fine-tuning run with every mitigation's change: the texts go through each transform
    in order and the settings take each one's overrides. Returns one record per mitigation."""
    started = time.perf_counter()
    details: dict[str, dict[str, Any]] = {m.name: {} for m in mitigations}

    def transform(texts: list[str]) -> tuple[list[str], dict[str, Any]]:
        for m in mitigations:
            texts, info = m.transform(texts)
            details[m.name].update(info)
        return texts, details

    config = dict(train_config)
    for m in mitigations:
        config.update(m.train_overrides(config))
    for m in mitigations:
        m.train_seed = int(config.get("seed") or 0)
    record = finetune(base, data, out=out, progress=progress, transform=transform, **config)
    training = {"epsilon": record.epsilon, "delta": record.delta, "steps": record.steps,
                "training_sequences": record.data.get("training_sequences"),
                "final_train_loss": record.final_train_loss, "wall_time_s": record.wall_time_s}
    elapsed = time.perf_counter() - started
    return [m.record(m.did({**details[m.name], "training": training}),
                     details={**details[m.name], "training": training}, wall_time_s=elapsed) for m in mitigations]
