"""Prefix trees for log-likelihood batches of the transformers backend: a batch whose rows start
with the same tokens, scored ones included (the two sentences of a CrowS-Pairs pair, which
differ in a word or two; canary candidates after one prefix), runs every distinct prefix once.

How (:func:`tree_loglikelihoods`): the rows' input ids are merged into token trees (tries,
:func:`build_tree`): each node is one token after its parent's, and a row is a path from a root.
The nodes go through the model as one sequence per tree, each attending to its ancestors and
itself (a 4-D attention mask) at its depth as position id, so a node sees exactly the tokens its
rows' tokens see in the plain path and the log-probabilities are the same up to float rounding.
The vocabulary projection runs only on the nodes some row scores, in slices of the vocabulary
(:data:`VOCAB_SLICE` words: a running log-sum-exp and arg-max) rather than as one logits tensor
of every scored position times the whole vocabulary.

A tree costs attention over all its nodes at once; :func:`tree_cost` counts it as tokens
(``nodes x (1 + nodes / attention_tokens)``, :func:`attention_tokens` being how many key
positions cost as much attention as one token's pass through a layer's weights), and
:func:`plan_trees` cuts a batch into as many trees (up to :data:`MOST_TREES`, stacked in one
pass) as costs least. The backend takes the trees when their cost is at most
:data:`~trustslm.models.prefix_share.MAX_SHARED_COST` of the plain pass's padded tokens, with at
most :data:`MAX_TREE_NODES` nodes in a tree (its mask is nodes squared)
(:meth:`~trustslm.models.hf.HFModel._tree_results`). This is the multiple-choice sharing of
:mod:`trustslm.models.prefix_share` taken to the scored tokens; that one keeps a long shared
context's key/value cache instead of attending over one long sequence, and goes first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: The most nodes a tree may have (its attention mask holds nodes x nodes entries).
MAX_TREE_NODES = 4096
#: Words of the vocabulary projected at once (a slice of logits that stays in cache).
VOCAB_SLICE = 2048
#: A batch's rows go into at most this many trees (stacked in one pass).
MOST_TREES = 4


@dataclass(frozen=True)
class PrefixTree:
    """A token tree: node ``j`` is token ``tokens[j]`` at position ``depths[j]`` after node
    ``parents[j]`` (-1 for a root); parents come before their children. Row ``i`` is the path
    ``paths[i]`` (one node per input token)."""

    tokens: list[int]
    parents: list[int]
    depths: list[int]
    paths: list[list[int]]


def build_tree(inputs: Sequence[Sequence[int]]) -> PrefixTree:
    """The token tree of ``inputs`` (token ids of each row): rows starting with the same tokens
    share those nodes."""
    tokens: list[int] = []
    parents: list[int] = []
    depths: list[int] = []
    child: dict[tuple[int, int], int] = {}
    paths = []
    for row in inputs:
        node, path = -1, []
        for depth, token in enumerate(row):
            key = (node, int(token))
            if key not in child:
                child[key] = len(tokens)
                tokens.append(int(token))
                parents.append(node)
                depths.append(depth)
            node = child[key]
            path.append(node)
        paths.append(path)
    return PrefixTree(tokens, parents, depths, paths)


def tree_cost(nodes: int, attention: float) -> float:
    """One tree's forward pass counted in plain tokens: its nodes, plus attention over ``nodes``
    keys for each of them at ``attention`` keys per token (:func:`attention_tokens`)."""
    return nodes * (1 + nodes / attention)


def plan_trees(inputs: Sequence[Sequence[int]], attention: float,
               most: int = MOST_TREES) -> tuple[list[tuple[list[int], PrefixTree]], float]:
    """The rows ``inputs`` cut into 1 to ``most`` runs of about equal numbers of rows, each a
    tree (as (row positions, tree)), stacked in one pass padded to the largest; the cut whose
    cost (trees x :func:`tree_cost` of the largest) is least, and that cost. More trees attend
    over fewer nodes each but share less and pad more."""
    best: tuple[list[tuple[list[int], PrefixTree]], float] | None = None
    for k in range(1, min(most, len(inputs)) + 1):
        runs = [list(range(len(inputs) * j // k, len(inputs) * (j + 1) // k)) for j in range(k)]
        trees = [(run, build_tree([inputs[i] for i in run])) for run in runs]
        cost = k * tree_cost(max(len(t.tokens) for _, t in trees), attention)
        if best is None or cost < best[1]:
            best = (trees, cost)
    assert best is not None
    return best


def attention_tokens(model: Any) -> float:
    """How many key positions cost as much attention as one token costs in a layer's weights:
    a query attends to a key with about ``2 x hidden size`` multiply-adds (scores and values
    over all heads), and a token goes through the layer's weights with one per parameter."""
    config = model.config
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    embeddings = model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in model.get_decoder().parameters()) - embeddings
    if not layers or not hidden or body <= 0:
        return 1.0  # unknown shape: attention counted as dear as it can be
    return max(1.0, body / layers / (2 * hidden))


def model_takes_trees(model: Any, trees: Sequence[tuple[list[int], PrefixTree]]) -> bool:
    """Whether ``model`` scores ``trees`` as it scores their rows: no sliding window shorter
    than the deepest row (a 4-D mask replaces the window's own), and no soft-capping or scaling
    of the logits (the vocabulary slices project the hidden states plainly)."""
    config = model.config
    window = getattr(config, "sliding_window", None)
    deepest = max(max(tree.depths) for _, tree in trees) + 1
    if isinstance(window, int) and deepest > window:
        return False
    return not getattr(config, "final_logit_softcapping", None) and getattr(config, "logit_scale", None) in (None, 1, 1.0)


def tree_mask(tree: PrefixTree, width: int, dtype: Any) -> Any:
    """The additive attention mask (width, width) of ``tree`` padded to ``width`` nodes: 0 where
    a node attends (its ancestors and itself; a padding node itself), the dtype's lowest value
    elsewhere."""
    import torch

    allowed = torch.eye(width, dtype=torch.bool)
    for j, parent in enumerate(tree.parents):
        if parent >= 0:
            allowed[j] |= allowed[parent]
    mask = torch.full((width, width), torch.finfo(dtype).min, dtype=dtype)
    return mask.masked_fill_(allowed, 0.0)


def tree_loglikelihoods(
    model: Any, rows: Sequence[tuple[list[int], list[int]]], trees: Sequence[tuple[list[int], PrefixTree]], *,
    device: Any, guard: Callable[[], Any], vocab_slice: int = VOCAB_SLICE,
) -> list[tuple[float, bool]]:
    """Each row's (log-probability of its continuation, whether greedy decoding gives it), for
    ``rows`` ((input ids, continuation ids), every continuation non-empty) and their ``trees``
    (:func:`plan_trees` of the input ids), from one forward pass over the trees' nodes."""
    import torch

    head = model.get_output_embeddings()
    weight, bias = head.weight, getattr(head, "bias", None)
    width = max(len(tree.tokens) for _, tree in trees)
    ids = torch.zeros((len(trees), width), dtype=torch.long)
    positions = torch.zeros((len(trees), width), dtype=torch.long)
    scored: dict[int, int] = {}  # flat node (tree x width + node) -> its place among the scored nodes
    node_of: list[list[int]] = [[] for _ in rows]
    for t, (members, tree) in enumerate(trees):
        ids[t, : len(tree.tokens)] = torch.tensor(tree.tokens, dtype=torch.long)
        positions[t, : len(tree.depths)] = torch.tensor(tree.depths, dtype=torch.long)
        for i, path in zip(members, tree.paths):
            inp, cont = rows[i]
            node_of[i] = [scored.setdefault(t * width + q, len(scored)) for q in path[len(inp) - len(cont):]]
    with torch.inference_mode(), guard():
        mask = torch.stack([tree_mask(tree, width, weight.dtype) for _, tree in trees])[:, None].to(device)
        hidden = model.get_decoder()(input_ids=ids.to(device), attention_mask=mask,
                                     position_ids=positions.to(device)).last_hidden_state
        hidden = hidden.reshape(-1, hidden.shape[-1])[torch.tensor(list(scored), dtype=torch.long, device=device)]
        sums, peaks, picks = [], [], []
        for start in range(0, weight.shape[0], vocab_slice):
            logits = hidden @ weight[start : start + vocab_slice].T
            if bias is not None:
                logits = logits + bias[start : start + vocab_slice]
            logits = logits.float()
            sums.append(torch.logsumexp(logits, dim=-1))
            peak, pick = logits.max(dim=-1)
            peaks.append(peak)
            picks.append(pick + start)
        lse = torch.logsumexp(torch.stack(sums, dim=1), dim=1)
        best = torch.stack(picks, dim=1).gather(1, torch.stack(peaks, dim=1).argmax(dim=1, keepdim=True))[:, 0]
        at = torch.tensor([k for nodes in node_of for k in nodes], dtype=torch.long, device=device)
        target = torch.tensor([t for _, cont in rows for t in cont], dtype=torch.long, device=device)
        chosen = (hidden[at].float() * weight[target].float()).sum(dim=-1)
        if bias is not None:
            chosen = chosen + bias[target].float()
        logprobs = (chosen - lse[at]).tolist()
        greedy = (best[at] == target).tolist()
    out, k = [], 0
    for _, cont in rows:
        c = len(cont)
        out.append((float(sum(logprobs[k : k + c])), all(greedy[k : k + c])))
        k += c
    return out
