"""The settings of one fine-tuning run, validated before anything is loaded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainConfig(BaseModel):
    """Every option of ``trustslm finetune``; out-of-range values are one-line errors (exit 2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=3, ge=1, le=1000)
    batch_size: int = Field(default=16, ge=1, le=4096, description="expected batch size (Poisson with --dp)")
    lr: float = Field(default=5e-4, gt=0, le=1.0)
    max_length: int = Field(default=128, ge=8, le=8192)
    seed: int = 0
    lora: bool = False
    lora_rank: int = Field(default=8, ge=1, le=256)
    dp: bool = False
    target_epsilon: float | None = Field(default=None, gt=0, le=1000)
    delta: float | None = Field(default=None, gt=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0, le=1e4)
    accountant: str = Field(default="prv", pattern="^(prv|rdp|gdp)$")
    grad_sample_mode: str = Field(default="auto", pattern="^(auto|hooks|ghost)$",
                                  description="per-sample clipping: materialised gradients (hooks) or ghost clipping")
    insert_canaries: int = Field(default=0, ge=0, le=100_000)
    canary_repeats: int = Field(default=10, ge=1, le=1000)
    audit_canaries: int = Field(default=0, ge=0, le=100_000)
    holdout: float = Field(default=0.0, ge=0, lt=1, description="share of texts held out as non-members")

    @model_validator(mode="after")
    def _dp_settings(self) -> TrainConfig:
        if self.dp and self.target_epsilon is None:
            raise ValueError("--dp needs --target-epsilon")
        if not self.dp and (self.target_epsilon is not None or self.delta is not None):
            raise ValueError("--target-epsilon and --delta only apply with --dp")
        if self.audit_canaries and self.audit_canaries < 10:
            raise ValueError("--audit-canaries needs at least 10 canaries for a meaningful bound")
        return self
