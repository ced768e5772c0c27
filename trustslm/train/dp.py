"""Opacus glue: checks that a model can be trained with DP-SGD, and the model surgery Opacus
needs for Hugging Face causal LMs (ENVIRONMENT.md): GPT-2's ``Conv1D`` layers as ``nn.Linear``
(Opacus has fast per-sample gradients for Linear only), untied input/output embeddings for ghost
clipping, explicit per-row position ids."""

from __future__ import annotations

from typing import Any

from trustslm.core.errors import BadInputError


def check_dp_compatible(module: Any) -> None:
    """Raise a one-line BadInputError naming the layers Opacus can't train."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        names = "; ".join(str(e).strip().splitlines()[0] for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise BadInputError(f"Opacus can't train this model with DP-SGD: {names}{more}")


def conv1d_to_linear(model: Any) -> list[str]:
    """Replace every transformers ``Conv1D`` by an equivalent ``nn.Linear``; returns their names."""
    import torch
    from transformers.pytorch_utils import Conv1D

    converted = []
    for name, module in list(model.named_modules()):
        if isinstance(module, Conv1D):
            nx, nf = module.weight.shape
            linear = torch.nn.Linear(nx, nf, bias=module.bias is not None)
            with torch.no_grad():
                linear.weight.copy_(module.weight.t())
                if module.bias is not None:
                    linear.bias.copy_(module.bias)
            _set_submodule(model, name, linear)
            converted.append(name)
    return converted


def linear_to_conv1d(model: Any, names: list[str]) -> None:
    """Undo :func:`conv1d_to_linear`, so the saved checkpoint has the architecture's own layout."""
    import torch
    from transformers.pytorch_utils import Conv1D

    for name in names:
        linear = model.get_submodule(name)
        conv = Conv1D(linear.out_features, linear.in_features)
        with torch.no_grad():
            conv.weight.copy_(linear.weight.t())
            if linear.bias is not None:
                conv.bias.copy_(linear.bias)
        _set_submodule(model, name, conv)


def _set_submodule(model: Any, name: str, new: Any) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def untie_embeddings(model: Any) -> bool:
    """Give the output layer its own copy of tied input embeddings (ghost clipping refuses
    parameters shared by two layers). Returns whether anything was untied."""
    import torch

    out = model.get_output_embeddings()
    inp = model.get_input_embeddings()
    if out is None or inp is None or out.weight is not inp.weight:
        return False
    out.weight = torch.nn.Parameter(inp.weight.detach().clone())
    model.config.tie_word_embeddings = False
    if hasattr(model, "_tied_weights_keys"):
        model._tied_weights_keys = []
    return True
