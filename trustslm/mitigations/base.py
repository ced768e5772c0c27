"""The mitigation plugin interface.

A mitigation is a class registered in the ``trustslm.mitigations`` entry-point group. It declares

* ``dimension``: the trust dimension it targets;
* ``targets``: the probes that measure its effect (audited before and after);
* ``counter_probes``: the probes that measure its cost in the other direction (audited too);
* ``kind``: ``"training"`` (it writes a new model folder, by fine-tuning on transformed data) or
  ``"decoding"`` (it wraps the model at decoding time; the weights do not change);
* ``needs_data``: whether it needs the user's fine-tuning data (``--data``);
* ``Options``: its options (a pydantic model; unknown options are one-line errors).

``applicable(adapter)`` returns why it cannot apply to a model (``None`` when it can); a
mitigation that cannot apply changes nothing.

Decoding mitigations implement ``prepare(adapter)``, which resolves everything the wrapper needs
once (e.g. the token ids a word list bans) into a JSON-able dict that is saved in the wrapper
folder, and ``wrap(adapter, resolved)``, which returns the wrapped
:class:`~trustslm.models.base.ModelAdapter`. Training mitigations implement ``transform(texts)``
(the texts to train on) and/or ``train_overrides(config)`` (fine-tuning settings to change);
:func:`trustslm.workflows.retrain.train_mitigated` runs one ``trustslm finetune`` with them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustslm.core.errors import BadInputError
from trustslm.models.base import ModelAdapter


class NotApplicableError(BadInputError):
    """A mitigation cannot apply to this model (exit 2); nothing was changed or written."""


class MitigationOptions(BaseModel):
    """Base of every mitigation's options: unknown options are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StepRecord(BaseModel):
    """What one mitigation did and what it cost."""

    model_config = ConfigDict(extra="forbid")

    name: str
    dimension: str
    kind: Literal["training", "decoding"]
    targets: list[str]
    options: dict[str, Any]
    did: str = Field(description="one line: what it changed")
    details: dict[str, Any] = Field(default_factory=dict)
    wall_time_s: float = 0.0


class Mitigation(ABC):
    name: ClassVar[str]
    dimension: ClassVar[str]
    kind: ClassVar[Literal["training", "decoding"]]
    targets: ClassVar[tuple[str, ...]]
    #: The probes that measure what it may cost in the other direction (e.g. safe prompts refused
    #: by a mitigation that makes a model refuse more): audited before and after, always.
    counter_probes: ClassVar[tuple[str, ...]] = ()
    needs_data: ClassVar[bool] = False
    #: One line for ``trustslm mitigations list``.
    summary: ClassVar[str] = ""
    Options: ClassVar[type[MitigationOptions]] = MitigationOptions

    def __init__(self, options: dict[str, Any] | None = None):
        try:
            self.options = self.Options(**(options or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ()))
            what = "unknown option" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")
            raise BadInputError(f"mitigation {self.name}: {loc}: {what}") from None

    def applicable(self, adapter: ModelAdapter) -> str | None:
        """Why this mitigation cannot apply to ``adapter`` (None when it can)."""
        return None

    def record(self, did: str, *, details: dict[str, Any] | None = None, wall_time_s: float = 0.0) -> StepRecord:
        return StepRecord(name=self.name, dimension=self.dimension, kind=self.kind, targets=list(self.targets),
                          options=self.options.model_dump(mode="json"), did=did, details=details or {},
                          wall_time_s=round(wall_time_s, 3))


class DecodingMitigation(Mitigation):
    kind: ClassVar[Literal["training", "decoding"]] = "decoding"

    def prepare(self, adapter: ModelAdapter) -> tuple[dict[str, Any], str]:
        """Resolve what the wrapper needs, once: (a JSON-able dict saved with the wrapper, one line
        saying what it will change)."""
        return {}, self.summary

    @abstractmethod
    def wrap(self, adapter: ModelAdapter, resolved: dict[str, Any]) -> ModelAdapter:
        """The wrapped model."""


class TrainingMitigation(Mitigation):
    """Retrains the model it mitigates: the same base model, fine-tuning settings and data as the
    model given (``trustslm mitigate`` finds them in its ``training_record.json``), with this
    mitigation's change (to the texts, through :meth:`transform`, or to the settings, through
    :meth:`train_overrides`). Texts are transformed after the member / non-member split and
    before the canaries are added, so both models hold out the same texts and carry the same
    canaries, and the privacy probes' ground truth is shared."""

    kind: ClassVar[Literal["training", "decoding"]] = "training"
    needs_data = True
    #: The fine-tuning run's seed, set by :func:`~trustslm.workflows.retrain.train_mitigated` before the texts are
    #: transformed (the default seed of a randomised transform).
    train_seed: int = 0

    def applicable(self, adapter: ModelAdapter) -> str | None:
        if not hasattr(adapter, "tokenizer"):
            return f"{adapter.info().name} is not a Hugging Face causal language model, so it can't be fine-tuned"
        return None

    def transform(self, texts: list[str]) -> tuple[list[str], dict[str, Any]]:
        """The member texts to train on, and a JSON-able record of what changed."""
        return texts, {}

    def train_overrides(self, train_config: dict[str, Any]) -> dict[str, Any]:
        """Fine-tuning settings to change (e.g. ``{"dp": True, "target_epsilon": 8}``)."""
        return {}

    def did(self, details: dict[str, Any]) -> str:
        """One line for the record, from the transform's details."""
        return self.summary
