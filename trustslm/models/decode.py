"""Batched decoding for the transformers backend, with rows that leave the batch when they finish.

``model.generate`` runs every row of a batch until the last one ends, and knows nothing of the
requests' stop strings, so a batch of short answers cut at a newline paid for its longest
``max_new_tokens`` on every row. :func:`decode_batch` runs the same decoding step by step:

- the prompts are left-padded and run once (keys and values kept, logits of the last position
  only, position ids counted from each row's first real token, as ``generate`` does); identical
  prompts (the k samples of one prompt) run once and their keys and values are copied to each row;
- at each step the next-token scores go through the logits processors on the whole batch's layout
  (a finished row gets zero scores and a padding token, as in ``generate``, so a processor built
  for the batch sees the rows it was built for), and the chosen token is their argmax;
- a row ends at an end-of-sequence token, at its own ``max_new_tokens``, or when its decoded text
  contains one of its stop strings (``stopped``); its keys and values then leave the cache, so the
  steps after cost only the rows still running.

A row's tokens do not depend on the rows beside it beyond float rounding (attention is masked to
its own tokens), so results equal the one-at-a-time ones, which the tests check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from trustslm.models.prefix_share import forward_names


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return out.past_key_values if cache is None else cache


def _prefill(model: Any, ids: Any, mask: Any, device: Any, keep: dict) -> tuple[Any, Any, Any]:
    """One forward pass over left-padded prompts: the cache, the last position's logits and the
    position ids (counted from each row's first real token, as ``generate`` counts them)."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                use_cache=True, **keep)
    return _cache_of(out), out.logits[:, -1, :], positions


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
) -> list[tuple[list[int], str]]:
    """Each prompt's new tokens (without the end-of-sequence token) and why it ended: ``"eos"``,
    ``"length"`` or ``"stop"`` (``stopped(row, tokens)`` returned True after a step).
    ``processors`` are transformers logits processors, called with the whole batch's input ids
    and next-token scores; with none, decoding is greedy argmax."""
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
    shared = len(distinct) < n
    run_ids, run_mask = _left_padded(distinct, width, pad_id) if shared else (ids, mask)
    cache, logits, positions = _prefill(model, run_ids, run_mask, device, keep)
    if shared and _can_select(cache):
        rows = torch.tensor(owner, dtype=torch.long)
        cache = _select_rows(cache, rows.to(device))
        logits, positions = logits[rows.to(logits.device)], positions[rows]
    elif shared:  # a cache whose rows can't be copied: run every prompt
        cache, logits, positions = _prefill(model, ids, mask, device, keep)
    selectable = _can_select(cache)  # else finished rows stay in the cache, fed padding, as in generate
    attention = mask.to(device)
    next_pos = positions[:, -1] + 1
    steps = 0
    while True:
        last = logits.float()
        if processors:
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
        cache, logits = _cache_of(out), out.logits[:, -1, :]
        next_pos = next_pos + 1
    if recorder is not None:
        recorder[-1]["steps"] = steps
    return [(tokens[i], reasons[i]) for i in range(n)]
