"""Magnitude pruning of a full-precision GGUF file: the share ``amount`` of smallest-magnitude
weights of every linear layer inside the transformer blocks (attention q, k, v and output
projections; the feed-forward gate, up and down projections) set to zero, each tensor on its own
(unstructured, layer-wise), with torch's ``L1Unstructured`` pruning method computing the mask.
Embeddings, the output head and norms are kept, as in the pruning baselines of Hong et al. 2024
("Decoding Compressed Trust", their magnitude-pruning row) and Sun et al. 2024 (Wanda, whose
magnitude baseline prunes each layer's weights by absolute value). The file keeps its metadata,
tensor order and storage types (the gguf package's writer, as ``gguf_new_metadata.py`` copies a
file), so the pruned file differs from its source only in the zeroed weights.
"""

from __future__ import annotations

from pathlib import Path

from trustslm.compress.gguf_rewrite import rewrite_gguf
from trustslm.core.errors import BadInputError, ModelFormatError
from trustslm.models.gguf_info import tensor_class
from trustslm.models.validate import check_gguf

#: The tensor classes pruned: the linear layers inside the transformer blocks.
PRUNED_CLASSES = frozenset({"attn_q", "attn_k", "attn_v", "attn_output", "attn_qkv",
                            "ffn_gate", "ffn_up", "ffn_down"})
_FLOAT_TYPES = ("F32", "F16")


def prune_gguf(source: str | Path, dest: str | Path, amount: float) -> dict[str, float]:
    """Write ``source`` with ``amount`` (0 < amount < 1) of each block linear layer's weights
    zeroed by magnitude to ``dest``; returns the share of zeros in the pruned tensors and overall."""
    if not 0 < amount < 1:
        raise BadInputError(f"--prune {amount:g}: give the share of weights to remove, between 0 and 1 (e.g. 0.5)")
    import gguf
    import numpy as np
    import torch
    from torch.nn.utils import prune

    source, dest = Path(source), Path(dest)
    check_gguf(source)
    reader = gguf.GGUFReader(str(source), "r")
    targets = [t for t in reader.tensors if tensor_class(t.name) in PRUNED_CLASSES and len(t.shape) == 2]
    if not targets:
        raise ModelFormatError(f"{source.name} has no block linear layers to prune ({', '.join(sorted(PRUNED_CLASSES))})")
    quantised = sorted({t.tensor_type.name for t in targets if t.tensor_type.name not in _FLOAT_TYPES})
    if quantised:
        raise BadInputError(f"{source.name}: pruning needs full-precision weights, and its linear layers are "
                            f"{', '.join(quantised)}; prune the F32 reference instead")
    method = prune.L1Unstructured(amount=amount)
    pruned: dict[str, object] = {}
    zeros = total = 0
    for t in targets:
        w = torch.from_numpy(np.array(t.data, dtype=np.float32))
        mask = method.compute_mask(w, default_mask=torch.ones_like(w))
        kept = (w * mask).numpy().astype(t.data.dtype)
        pruned[t.name] = kept
        zeros += int((kept == 0).sum())
        total += kept.size
    rewrite_gguf(reader, dest, pruned)
    return {"pruned_tensors": float(len(targets)), "zero_share": zeros / total}
