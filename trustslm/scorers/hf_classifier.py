"""Any local Hugging Face sequence-classification folder as a toxicity scorer:
``hf-classifier:PATH`` or ``hf-classifier:PATH#LABEL`` (e.g. a toxic-bert or roberta toxicity
model the user has downloaded).

The folder is untrusted input, checked like an audited model (:mod:`trustslm.models.validate`):
safetensors weights only, no ``auto_map`` or remote code, no links leaving the folder; it is
loaded from a staging folder holding only the checked files (:mod:`trustslm.models.staging`),
and every one of them is hashed into the report.

Which output is "toxic": the label named after ``#``; else the one label whose name contains
"toxic" (and not "non"/"not"); else, for a two-label model, label 1. The probability is the
softmax over labels, or the sigmoid of that logit for a multi-label or one-output model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from trustslm.core.errors import ScorerUnavailableError, TrustSLMError
from trustslm.core.types import ScorerInfo
from trustslm.scorers.base import Scorer

_HOW = "give a local Hugging Face sequence-classification folder: --scorer hf-classifier:/path/to/model"
BATCH = 32


def toxic_label(id2label: dict, wanted: str = "") -> int:
    """Index of the output that means toxic (see the module docstring)."""
    labels = {int(i): str(name) for i, name in id2label.items()}
    if wanted:
        hits = [i for i, name in labels.items() if name.lower() == wanted.lower()]
        if not hits:
            raise ScorerUnavailableError(f"the classifier has no label {wanted!r} (it has: {', '.join(labels.values())})")
        return hits[0]
    named = [i for i, name in labels.items()
             if "toxic" in name.lower() and not any(n in name.lower() for n in ("non", "not"))]
    if len(named) == 1:
        return named[0]
    if len(labels) <= 2:
        return max(labels)
    raise ScorerUnavailableError(f"can't tell which of its labels ({', '.join(labels.values())}) means toxic; "
                                 "name it: hf-classifier:PATH#LABEL")


class HFClassifierScorer(Scorer):
    name = "hf-classifier"

    def __init__(self, arg: str = ""):
        super().__init__(arg)
        path, _, self._label_name = arg.partition("#")
        self.path = Path(path).expanduser() if path else None
        self._model = self._tokenizer = self._layout = None
        self._index = 0
        self._sigmoid = False

    def unavailable(self) -> str | None:
        if self.path is None:
            return f"no folder named; {_HOW}"
        if not (self.path / "config.json").is_file():
            return f"{self.path} is not a Hugging Face model folder (no config.json); {_HOW}"
        return None

    def load(self) -> None:
        if self._model is not None:
            return
        why = self.unavailable()
        if why:
            raise ScorerUnavailableError(f"scorer hf-classifier: {why}")
        from trustslm.models.validate import inspect_model_path

        try:
            layout = inspect_model_path(self.path)
        except TrustSLMError as exc:
            raise ScorerUnavailableError(f"scorer hf-classifier: {exc}") from None
        if layout.kind != "hf":
            raise ScorerUnavailableError(f"scorer hf-classifier: {self.path} is not a safetensors model folder")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from trustslm.models.staging import hide_staging, stage_layout

        common = {"local_files_only": True, "trust_remote_code": False}
        with stage_layout(layout) as where:
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(where), **common)
                model = AutoModelForSequenceClassification.from_pretrained(str(where), use_safetensors=True, **common)
            except Exception as exc:  # the loaders raise many types on hostile or broken files
                first = hide_staging((str(exc).strip().splitlines() or [type(exc).__name__])[0], where, self.path)
                raise ScorerUnavailableError(f"scorer hf-classifier: could not load {self.path}: {first}") from None
        config = model.config
        self._index = toxic_label(config.id2label or {0: "LABEL_0"}, self._label_name) if config.num_labels > 1 else 0
        self._sigmoid = config.num_labels == 1 or config.problem_type == "multi_label_classification"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token or self._tokenizer.unk_token
            model.config.pad_token_id = self._tokenizer.pad_token_id
        self._model, self._layout = model.eval(), layout

    def score(self, texts: Sequence[str]) -> list[float]:
        import torch

        self.load()
        out: list[float] = []
        for start in range(0, len(texts), BATCH):
            batch = self._tokenizer(list(texts[start:start + BATCH]), padding=True, truncation=True,
                                    max_length=512, return_tensors="pt")
            with torch.no_grad():
                logits = self._model(**batch).logits.float()
            probs = torch.sigmoid(logits[:, self._index]) if self._sigmoid else logits.softmax(-1)[:, self._index]
            out += [float(p) for p in probs]
        return out

    def info(self) -> ScorerInfo:
        from importlib import metadata

        from trustslm.core.hashing import sha256_file

        self.load()
        weights = {name: sha256_file(p) for name, p in sorted(self._layout.load_names().items())}
        label = self._model.config.id2label.get(self._index, str(self._index))
        return ScorerInfo(name=self.name, version=f"transformers {metadata.version('transformers')}",
                          weights_sha256=weights,
                          detail=f"{self.path.name}: {type(self._model).__name__}, toxic output {label!r} "
                                 f"({'sigmoid' if self._sigmoid else 'softmax'})")
