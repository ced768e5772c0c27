"""Model adapters: one batch-in, batch-out interface over Hugging Face models, GGUF files and a
scripted mock. :func:`trustslm.models.resolve.load_model` turns what a user names into one."""

from trustslm.models.base import (
    GenerateRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelAdapter,
)

__all__ = [
    "GenerateRequest",
    "GenerationResult",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "ModelAdapter",
]
