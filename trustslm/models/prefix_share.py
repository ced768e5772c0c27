"""Prefix sharing for log-likelihood batches of the transformers backend: requests of one batch
whose inputs start with the same tokens (a multiple-choice question and its answer options, or
a few-shot prompt shared by every question) run those tokens through the model once.

What a request can share: the tokens before its first scored position, i.e. its context minus
the last context token (that token's logits predict the first continuation token, so it starts
the suffix), after the same left truncation as the plain path.

Groups (:func:`plan_prefix_groups`): the rows, sorted by their shareable tokens, are cut into
the runs that save the most tokens, ``(members - 1) x shared length`` summed over the runs (a
run's shared length being its rows' longest common prefix). A run is a group when it has 2 or
more members and a shared prefix of at least :data:`MIN_SHARED_PREFIX` (8) tokens.

When it pays (:func:`plan_shared_batch`): the shared passes run the groups' prefixes and every
grouped row's suffix, padded to the longest; a row in no group rides along (whole, with no
prefix) when it is no longer than that, and the longer ones take the plain path in a third pass.
The batch is shared when the tokens those passes run, padding included, are at most
:data:`MAX_SHARED_COST` (3/4) of the plain pass's; otherwise, or with no group, the whole batch
takes the plain path (the backend also keeps it under a recorder or steering, which see whole rows).

How (:func:`shared_prefix_logits`): one forward pass over the groups' prefixes (right-padded,
with the key/value cache kept), the cache gathered to one row per request (its group's prefix;
fully masked for a request in no group), and one forward pass over the requests' suffixes
(right-padded), with an attention mask covering its prefix and suffix and position ids going on
from its prefix length. Every scored position attends to exactly the tokens it attends to in the
plain path, so the log-probabilities are the same up to float rounding. Models whose cache is not
made of plain full-attention layers (sliding-window, recurrent, quantized) are not shared.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

#: A group shares at least this many tokens (shorter prefixes are not worth a second forward pass).
MIN_SHARED_PREFIX = 8
#: A batch is shared when its shared passes run at most this share of the plain pass's tokens.
MAX_SHARED_COST = 0.75


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens ``a`` and ``b`` start with alike."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def plan_prefix_groups(heads: Sequence[Sequence[int]], min_prefix: int = MIN_SHARED_PREFIX) -> list[tuple[int, list[int]]]:
    """The groups of rows sharing a prefix, as (shared length, row positions in order):
    ``heads[i]`` is the tokens row ``i`` can share. The rows, sorted by their heads, are cut into
    runs that save the most tokens, ``(members - 1) x shared length`` summed over the runs, where a
    run's shared length is its rows' longest common prefix; runs of one row, and runs sharing
    fewer than ``min_prefix`` tokens, are not groups. (Dynamic programming over the cuts: quadratic
    in the batch size at most, and a run stops growing once it shares too little.)"""
    n = len(heads)
    order = sorted(range(n), key=lambda i: tuple(heads[i]))
    common = [common_length(heads[order[j]], heads[order[j + 1]]) for j in range(n - 1)]
    best = [0] * (n + 1)  # the most tokens saved over the first j sorted rows
    cut = list(range(n + 1))  # where the last run of those j rows starts
    for j in range(1, n + 1):
        best[j], cut[j] = best[j - 1], j - 1
        shared = len(heads[order[j - 1]])
        for i in range(j - 2, -1, -1):  # the run order[i:j]
            shared = min(shared, common[i])
            if shared < min_prefix:
                break
            if best[i] + (j - i - 1) * shared > best[j]:
                best[j], cut[j] = best[i] + (j - i - 1) * shared, i
    groups = []
    j = n
    while j > 0:
        i = cut[j]
        if j - i > 1:
            groups.append((min(common[i : j - 1]), sorted(order[i:j])))
        j = i
    return groups[::-1]


def plan_shared_batch(
    rows: Sequence[tuple[list[int], list[int]]], min_prefix: int = MIN_SHARED_PREFIX, max_cost: float = MAX_SHARED_COST,
) -> tuple[list[int], list[tuple[int, list[int]]], list[int]] | None:
    """How to run ``rows`` ((input ids, continuation ids), every continuation non-empty): the
    rows of the shared passes, their groups (as (shared length, positions in those rows)), and
    the rows of the plain pass; None when sharing does not pay (see the module's docstring)."""
    groups = plan_prefix_groups([inp[: len(inp) - len(cont)] for inp, cont in rows], min_prefix)
    if not groups:
        return None
    prefix = [0] * len(rows)
    for length, members in groups:
        for i in members:
            prefix[i] = length
    suffix_width = max(len(inp) - p for (inp, _), p in zip(rows, prefix) if p)
    inside = [i for i, ((inp, _), p) in enumerate(zip(rows, prefix)) if p or len(inp) <= suffix_width]
    outside = [i for i, p in enumerate(prefix) if not p and len(rows[i][0]) > suffix_width]
    cost = (len(groups) * max(length for length, _ in groups) + len(inside) * suffix_width
            + len(outside) * max((len(rows[i][0]) for i in outside), default=0))
    if cost > max_cost * len(rows) * max(len(inp) for inp, _ in rows):
        return None
    position = {i: k for k, i in enumerate(inside)}
    return inside, [(length, [position[i] for i in members]) for length, members in groups], outside


def cache_is_shareable(cache: Any) -> bool:
    """Whether ``cache`` holds plain full-attention keys and values that can be gathered over the
    batch and attended to through an attention mask with gaps."""
    from transformers import DynamicCache

    if type(cache) is not DynamicCache or not hasattr(cache, "batch_select_indices"):
        return False
    layers = getattr(cache, "layers", None)
    if layers is None:  # transformers before the per-layer caches: lists of key/value tensors
        return True
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in layers)


def cache_of(out: Any) -> Any:
    """The key/value cache of a forward pass's output (``cache`` from transformers 5.x, else
    ``past_key_values``)."""
    cache = getattr(out, "cache", None)
    return out.past_key_values if cache is None else cache


def forward_names(model: Any) -> tuple[str, str | None]:
    """The forward keyword of the cache (``cache`` from transformers 5.x, else
    ``past_key_values``) and of the number of logits to keep (None when there is none)."""
    params = inspect.signature(model.forward).parameters
    cache = "cache" if "cache" in params else "past_key_values"
    keep = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
    return cache, keep


def group_prefixes(inputs: Sequence[list[int]], groups: list[tuple[int, list[int]]],
                   pad_id: int) -> tuple[list[int], list[int], Any, Any]:
    """For rows ``inputs`` (token ids) and their ``groups`` (:func:`plan_prefix_groups`): each
    row's shared length (0 in no group), each row's group (0 in no group: its prefix is then
    masked out), and the groups' prefixes as right-padded input ids and attention mask, one row
    per group, for the pass that runs them once."""
    import torch

    prefix, group_of = [0] * len(inputs), [0] * len(inputs)
    for g, (length, members) in enumerate(groups):
        for i in members:
            prefix[i], group_of[i] = length, g
    width = max(length for length, _ in groups)
    ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(groups), width), dtype=torch.long)
    for g, (length, members) in enumerate(groups):
        ids[g, :length] = torch.tensor(inputs[members[0]][:length], dtype=torch.long)
        mask[g, :length] = 1
    return prefix, group_of, ids, mask


def shared_prefix_logits(
    model: Any, rows: Sequence[tuple[list[int], list[int]]], groups: list[tuple[int, list[int]]], *,
    pad_id: int, max_length: int, device: Any, guard: Callable[[], Any],
) -> tuple[Any, list[int]] | None:
    """The suffix logits of ``rows`` ((input ids, continuation ids), every continuation
    non-empty) computed with the ``groups`` of :func:`plan_prefix_groups` shared, and each row's
    prefix length: row ``i``'s logits at input position ``t`` are ``logits[i, t - prefix[i]]``.
    None when the model's cache can't be shared (the caller then uses the plain path)."""
    import torch

    prefix, group_of, prefix_ids, prefix_mask = group_prefixes([inp for inp, _ in rows], groups, pad_id)
    wp = prefix_ids.shape[1]
    ws = max(len(inp) - p for (inp, _), p in zip(rows, prefix))
    ids = torch.full((len(rows), ws), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), wp + ws), dtype=torch.long)
    positions = torch.zeros((len(rows), ws), dtype=torch.long)
    for i, ((inp, _), p) in enumerate(zip(rows, prefix)):
        ids[i, : len(inp) - p] = torch.tensor(inp[p:], dtype=torch.long)
        mask[i, :p] = 1
        mask[i, wp : wp + len(inp) - p] = 1
        positions[i] = torch.arange(p, p + ws)
    positions.clamp_(max=max_length - 1)  # only padding goes past a row's end
    cache_arg, keep_arg = forward_names(model)
    with torch.inference_mode(), guard():
        out = model(input_ids=prefix_ids.to(device), attention_mask=prefix_mask.to(device), use_cache=True,
                    **({keep_arg: 1} if keep_arg else {}))
        cache = cache_of(out)
        if not cache_is_shareable(cache):
            return None
        cache.batch_select_indices(torch.tensor(group_of, dtype=torch.long, device=device))
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       use_cache=True, **{cache_arg: cache}).logits
    return logits, prefix
