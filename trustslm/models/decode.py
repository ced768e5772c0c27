"""Batched decoding for the transformers backend, with rows that leave the batch when they finish.

``model.generate`` runs every row of a batch until the last one ends, and knows nothing of the
requests' stop strings, so a batch of short answers cut at a newline paid for its longest
``max_new_tokens`` on every row. :func:`decode_batch` runs the same decoding step by step:

- the prompts are left-padded and run once (keys and values kept, logits of the last position
  only, position ids counted from each row's first real token, as ``generate`` does); identical
  prompts (the k samples of one prompt) run once and their keys and values are copied to each row;
  with ``share_prefixes``, prompts that start with the same tokens (a chat template's system
  turn, a few-shot prompt, an attack's instructions) run those tokens once (:func:`_shared_prefill`);
- at each step the next-token scores go through the logits processors on the whole batch's layout
  (a finished row gets zero scores and a padding token, as in ``generate``, so a processor built
  for the batch sees the rows it was built for), and the chosen token is their argmax; a sampler
  alone names the running rows' tokens itself (``choose``), with no scores for finished rows;
- a row ends at an end-of-sequence token, at its own ``max_new_tokens``, or when its decoded text
  contains one of its stop strings (``stopped``); its keys and values then leave the cache, so the
  steps after cost only the rows still running;
- the keys and values are written in place into a buffer sized once for the prompt and the
  longest ``max_new_tokens`` (:func:`preallocate`). transformers' ``DynamicCache``
  concatenates each step's keys onto a new tensor, copying the whole cache at every step: about
  half of a step's CPU time for 128 rows after 80 tokens on SmolLM2 and two CPU cores
  (``bench/generation_replay.py --profile-step 128,80``).

A row's tokens do not depend on the rows beside it beyond float rounding (attention is masked to
its own tokens), so results equal the one-at-a-time ones, which the tests check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from trustslm.models.prefix_share import (
    MAX_SHARED_COST,
    cache_is_shareable,
    cache_of,
    forward_names,
    group_prefixes,
    plan_prefix_groups,
)


def _prefill(model: Any, ids: Any, mask: Any, device: Any, keep: dict) -> tuple[Any, Any, Any, Any]:
    """One forward pass over left-padded prompts: the cache, the last position's logits, the
    last position ids (counted from each row's first real token, as ``generate`` counts them)
    and the attention mask."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                use_cache=True, **keep)
    return cache_of(out), out.logits[:, -1, :], positions[:, -1], mask


class _Preallocated:
    """One attention layer's keys and values in a buffer with room for ``extra`` more positions,
    in place of a transformers ``DynamicLayer`` (whose ``update`` concatenates: a copy of the
    whole cache per step). ``keys`` and ``values`` are views of the filled part, so the model
    reads the same values it would have read; the buffer grows (doubling) only if a step writes
    past it. :func:`preallocate` makes these, as a subclass of ``DynamicLayer`` (the cache checks
    its layers' type), and only in place of plain ``DynamicLayer``s."""

    def __init__(self, layer: Any, extra: int) -> None:
        super().__init__()
        keys, values = layer.keys, layer.values
        self.device, self.is_initialized = keys.device, True
        self._n = keys.shape[-2]
        self._k = self._room(keys, self._n + extra)
        self._v = self._room(values, self._n + extra)
        self._views()

    @staticmethod
    def _room(t: Any, size: int) -> Any:
        buf = t.new_empty((*t.shape[:-2], size, t.shape[-1]))
        buf[..., : t.shape[-2], :] = t
        return buf

    def _views(self) -> None:
        self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        m = key_states.shape[-2]
        if self._n + m > self._k.shape[-2]:
            size = max(2 * self._k.shape[-2], self._n + m)
            self._k, self._v = self._room(self.keys, size), self._room(self.values, size)
        self._k[..., self._n : self._n + m, :] = key_states
        self._v[..., self._n : self._n + m, :] = value_states
        self._n += m
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._n

    def batch_select_indices(self, indices: Any) -> None:
        self._k, self._v = self._k.index_select(0, indices), self._v.index_select(0, indices)
        self._views()


@functools.cache
def _preallocated_class() -> tuple[type, type] | None:
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # transformers before layered caches: nothing to replace
        return None
    return type("PreallocatedLayer", (_Preallocated, DynamicLayer), {"__module__": __name__}), DynamicLayer


def preallocate(cache: Any, extra: int) -> Any:
    """``cache`` with each of its plain ``DynamicLayer``s (full attention, unquantised, filled)
    replaced by a preallocated layer with room for ``extra`` more positions (:class:`_Preallocated`);
    any other layer (sliding-window, quantised) or cache (legacy tuples) is left as it is."""
    layers, classes = getattr(cache, "layers", None), _preallocated_class()
    if not isinstance(layers, list) or classes is None:
        return cache
    made, plain = classes
    for i, layer in enumerate(layers):
        if type(layer) is plain and layer.is_initialized and getattr(layer.keys, "ndim", 0) == 4:
            layers[i] = made(layer, extra)
    return cache


def plan_shared_prompts(prompts: Sequence[list[int]]) -> tuple[list[tuple[int, list[int]]], int] | None:
    """The groups of ``prompts`` that share a prefix (:func:`~trustslm.models.prefix_share.plan_prefix_groups`
    over each prompt but its last token, which must run in the second pass to give the first
    logits) and the second pass's width; None when sharing would not pay: the two passes' tokens,
    padding included, above :data:`~trustslm.models.prefix_share.MAX_SHARED_COST` of the plain
    pass's."""
    groups = plan_prefix_groups([p[:-1] for p in prompts])
    if not groups:
        return None
    prefix = [0] * len(prompts)
    for length, members in groups:
        for i in members:
            prefix[i] = length
    suffix_width = max(len(p) - k for p, k in zip(prompts, prefix))
    cost = len(groups) * max(length for length, _ in groups) + len(prompts) * suffix_width
    if cost > MAX_SHARED_COST * len(prompts) * max(len(p) for p in prompts):
        return None
    return groups, suffix_width


def _shared_prefill(model: Any, prompts: Sequence[list[int]], pad_id: int, device: Any, keep: dict,
                    cache_arg: str) -> tuple[Any, Any, Any, Any] | None:
    """:func:`_prefill` with the prefixes that prompts share run once: the groups' prefixes in
    one pass (right-padded, keys and values kept), the cache gathered to one row per prompt, then
    every prompt's rest in a second pass, left-padded so that each row's last token is the last
    position. A row's layout is ``[its group's prefix, padding | padding, the rest of its prompt]``,
    with the attention mask and position ids (counted over its real tokens) to match, so each
    token attends to the tokens it attends to in the plain pass: the results are the same up to
    float rounding. Returns the cache, the last logits, the position ids of the last column and
    the attention mask; None when nothing is worth sharing or the model's cache can't be
    shared (sliding-window, recurrent)."""
    import torch

    plan = plan_shared_prompts(prompts)
    if plan is None:
        return None
    groups, ws = plan
    prefix, group_of, head_ids, head_mask = group_prefixes(prompts, groups, pad_id)
    wp = head_ids.shape[1]
    out = model(input_ids=head_ids.to(device), attention_mask=head_mask.to(device), use_cache=True, **keep)
    cache = cache_of(out)
    if not cache_is_shareable(cache):
        return None
    cache.batch_select_indices(torch.tensor(group_of, dtype=torch.long, device=device))
    ids = torch.full((len(prompts), ws), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), wp + ws), dtype=torch.long)
    positions = torch.zeros((len(prompts), ws), dtype=torch.long)
    for i, (p, k) in enumerate(zip(prompts, prefix)):
        rest = len(p) - k
        ids[i, ws - rest :] = torch.tensor(p[k:], dtype=torch.long)
        mask[i, :k] = 1
        mask[i, wp + ws - rest :] = 1
        positions[i, ws - rest :] = torch.arange(k, len(p))
        positions[i, : ws - rest] = k  # padding: masked out, any position will do
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                use_cache=True, **{cache_arg: cache}, **keep)
    return cache_of(out), out.logits[:, -1, :], positions[:, -1], mask


def _can_select(cache: Any) -> bool:
    return hasattr(cache, "batch_select_indices") or isinstance(cache, tuple)


def _select_rows(cache: Any, rows: Any) -> Any:
    """``cache`` cut to the batch rows ``rows`` (a LongTensor), in place where it can be."""
    if hasattr(cache, "batch_select_indices"):
        cache.batch_select_indices(rows)
        return cache
    return tuple(tuple(t[rows] for t in layer) for layer in cache)  # legacy tuples of (key, value)


def _left_padded(prompts: Sequence[list[int]], width: int, pad_id: int) -> tuple[Any, Any]:
    """Input ids and attention mask of ``prompts`` left-padded to ``width``: every row ends where
    generation starts."""
    import torch

    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = 1
    return ids, mask


def decode_batch(
    model: Any,
    prompts: Sequence[list[int]],
    *,
    max_new_tokens: Sequence[int],
    pad_id: int,
    eos_ids: Sequence[int],
    processors: Sequence[Callable[[Any, Any], Any]] = (),
    stopped: Callable[[int, list[int]], bool] | None = None,
    device: Any = "cpu",
    recorder: list[dict] | None = None,
    share_prefixes: bool = False,
) -> list[tuple[list[int], str]]:
    """Each prompt's new tokens (without the end-of-sequence token) and why it ended: ``"eos"``,
    ``"length"`` or ``"stop"`` (``stopped(row, tokens)`` returned True after a step).
    ``processors`` are transformers logits processors, called with the whole batch's input ids
    and next-token scores, and the token is the argmax of what they return; a lone processor with a
    ``choose(input_ids, scores, rows)`` method (a sampler that names each row's token) is given
    only the rows still running. With none, decoding is greedy argmax. ``share_prefixes``: prompts that
    start with the same tokens run those once (:func:`_shared_prefill`), when that pays."""
    import torch

    n = len(prompts)
    width = max(len(p) for p in prompts)
    ids, mask = _left_padded(prompts, width, pad_id)
    if recorder is not None:
        recorder.append({"kind": "generate", "input_ids": ids, "attention_mask": mask, "steps": 0})
    cache_arg, keep_arg = forward_names(model)
    keep = {keep_arg: 1} if keep_arg else {}
    eos = set(int(t) for t in eos_ids)
    tokens: list[list[int]] = [[] for _ in range(n)]
    reasons = ["length"] * n
    live = list(range(n))  # the batch rows in the cache, in cache order
    done = [False] * n
    seqs = ids  # the whole batch's layout, for the processors
    # identical prompts (the k samples of one prompt) are run once, then their rows copied
    first: dict[tuple[int, ...], int] = {}
    owner = [first.setdefault(tuple(p), len(first)) for p in prompts]
    distinct = [list(p) for p in first]
    repeated = len(distinct) < n
    prefilled = _shared_prefill(model, distinct, pad_id, device, keep, cache_arg) if share_prefixes else None
    if prefilled is None:
        run_ids, run_mask = _left_padded(distinct, width, pad_id) if repeated else (ids, mask)
        prefilled = _prefill(model, run_ids, run_mask, device, keep)
    cache, logits, last_pos, attention = prefilled
    if repeated and _can_select(cache):
        rows = torch.tensor(owner, dtype=torch.long)
        cache = _select_rows(cache, rows.to(device))
        logits, last_pos, attention = logits[rows.to(logits.device)], last_pos[rows], attention[rows]
    elif repeated:  # a cache whose rows can't be copied: run every prompt
        cache, logits, last_pos, attention = _prefill(model, ids, mask, device, keep)
    selectable = _can_select(cache)  # else finished rows stay in the cache, fed padding, as in generate
    cache = preallocate(cache, max(max_new_tokens))
    attention = attention.to(device)
    next_pos = last_pos + 1
    # a sampler that names its tokens (PerRowSampler), alone: it is given the running rows only
    chooser = processors[0] if len(processors) == 1 and hasattr(processors[0], "choose") else None
    steps = 0
    while True:
        last = logits.float()
        if chooser is not None:
            chosen = torch.full((n,), pad_id, dtype=torch.long)
            chosen[torch.tensor(live)] = chooser.choose(seqs, last, rows=live).cpu()
        elif processors:
            if len(live) == n:  # every row still running: the scores are already in the batch's layout
                scores = last
            else:
                scores = torch.zeros((n, last.shape[-1]), dtype=torch.float32, device=last.device)
                scores[torch.tensor(live, device=last.device)] = last
            for p in processors:
                scores = p(seqs.to(scores.device), scores)
            chosen = scores.argmax(dim=-1).cpu()
        else:
            chosen = torch.full((n,), pad_id, dtype=torch.long)
            chosen[torch.tensor(live)] = last.argmax(dim=-1).cpu()
        steps += 1
        column = torch.full((n, 1), pad_id, dtype=torch.long)
        for i in live:
            if done[i]:
                continue
            t = int(chosen[i])
            column[i, 0] = t
            done[i] = True
            if t in eos:
                reasons[i] = "eos"
                continue
            tokens[i].append(t)
            if len(tokens[i]) >= max_new_tokens[i]:
                continue
            if stopped is not None and stopped(i, tokens[i]):
                reasons[i] = "stop"
                continue
            done[i] = False
        if processors:
            seqs = torch.cat([seqs, column], dim=1)
        if all(done):
            break
        keep_rows = [k for k, i in enumerate(live) if not done[i]] if selectable else list(range(len(live)))
        if len(keep_rows) < len(live):
            index = torch.tensor(keep_rows, dtype=torch.long)
            cache = _select_rows(cache, index.to(device))
            attention = attention[index.to(attention.device)]
            next_pos = next_pos[index]
            live = [live[k] for k in keep_rows]
        step_ids = column[torch.tensor(live), :]
        attention = torch.cat([attention, torch.ones((len(live), 1), dtype=attention.dtype, device=attention.device)], 1)
        out = model(input_ids=step_ids.to(device), attention_mask=attention, position_ids=next_pos[:, None].to(device),
                    use_cache=True, **{cache_arg: cache}, **keep)
        cache, logits = cache_of(out), out.logits[:, -1, :]
        next_pos = next_pos + 1
    if recorder is not None:
        recorder[-1]["steps"] = steps
    return [(tokens[i], reasons[i]) for i in range(n)]
