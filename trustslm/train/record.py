"""``training_record.json``: what a fine-tuning run did, for the audit and for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RECORD_FILE = "training_record.json"


class TrainingRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trustslm_version: str
    base_model: dict[str, Any] = Field(description="spec, name and hash of the model fine-tuned")
    data: dict[str, Any] = Field(description="path, sha256 and counts of the training texts")
    config: dict[str, Any]
    dp: bool
    epsilon: float | None = Field(default=None, description="spent, as the accountant computed it; None without DP")
    delta: float | None = None
    noise_multiplier: float | None = None
    sample_rate: float
    steps: int
    max_grad_norm: float | None = None
    accountant: str | None = None
    grad_sample_mode: str | None = None
    trainable_parameters: int
    lora: dict[str, Any] | None = None
    canary_file: str | None = None
    members_file: str | None = None
    non_members_file: str | None = None
    final_train_loss: float | None = None
    wall_time_s: float
    step_time_s: float = Field(description="mean wall time of one optimiser step")

    def save(self, folder: Path) -> Path:
        path = folder / RECORD_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


def read_record(folder: Path) -> dict[str, Any] | None:
    """The training record beside a model, if there is one (read as plain JSON)."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
