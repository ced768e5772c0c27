"""Token trees in the transformers backend (trustslm.models.prefix_tree): whole texts of a batch
that start alike run their shared tokens once, scored ones included, with the plain results."""

from __future__ import annotations

import pytest
from conftest import CORPUS

import trustslm.models.prefix_tree as prefix_tree
from trustslm.models.base import LoglikelihoodRequest, ModelAdapter
from trustslm.models.prefix_tree import (
    attention_tokens,
    build_tree,
    model_takes_trees,
    plan_trees,
    tree_cost,
    tree_mask,
)
from trustslm.models.resolve import load_model


def pair_requests() -> list[LoglikelihoodRequest]:
    """CrowS-Pairs-like whole texts: pairs that differ in one word at the end, in the middle or
    at the start, texts of other lengths, a repeated text, one longer than the tiny models' 128
    positions (cut on the left), and an empty one."""
    reqs = []
    for k in range(6):
        words = CORPUS[k].split()
        for w in ("cats", "dogs"):
            changed = list(words)
            changed[[len(words) - 1, len(words) // 2, 0][k % 3]] = w
            reqs.append(LoglikelihoodRequest("", " ".join(changed)))
    reqs += [LoglikelihoodRequest("", CORPUS[7][:n]) for n in (5, 12, 30)]
    reqs += [LoglikelihoodRequest("", CORPUS[0]), LoglikelihoodRequest("", " ".join(CORPUS * 2)), LoglikelihoodRequest("", "")]
    reqs += [LoglikelihoodRequest(CORPUS[1], " and then")]  # a context request: not a whole text
    return reqs


def tree_calls(monkeypatch) -> list[int]:
    """Counts the tree passes (how many nodes each had)."""
    calls = []
    real = prefix_tree.tree_loglikelihoods

    def spy(model, rows, trees, **kwargs):
        calls.append(sum(len(tree.tokens) for _, tree in trees))
        return real(model, rows, trees, **kwargs)

    monkeypatch.setattr(prefix_tree, "tree_loglikelihoods", spy)
    return calls


def test_a_tree_shares_every_common_prefix():
    tree = build_tree([[1, 2, 3], [1, 2, 4], [5], [1, 2, 3, 6]])
    assert tree.tokens == [1, 2, 3, 4, 5, 6]
    assert tree.parents == [-1, 0, 1, 1, -1, 2]
    assert tree.depths == [0, 1, 2, 2, 0, 3]
    assert tree.paths == [[0, 1, 2], [0, 1, 3], [4], [0, 1, 2, 5]]


def test_a_node_attends_to_its_ancestors_and_itself():
    import torch

    mask = tree_mask(build_tree([[1, 2, 3], [1, 2, 4], [5]]), 6, torch.float32)  # one padding node
    allowed = (mask == 0).int().tolist()
    assert allowed == [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 0, 0],
                       [0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]]
    assert mask.min().item() == torch.finfo(torch.float32).min


def test_sliding_windows_and_capped_logits_keep_the_plain_path():
    from types import SimpleNamespace

    trees = [([0, 1], build_tree([[1, 2, 3, 4], [1, 2, 3, 5]]))]  # rows of 4 tokens

    def model(**config):
        return SimpleNamespace(config=SimpleNamespace(**config))

    assert model_takes_trees(model(), trees) and model_takes_trees(model(sliding_window=4, logit_scale=1.0), trees)
    assert not model_takes_trees(model(sliding_window=3), trees)  # the window would cut the 4th token's view
    assert not model_takes_trees(model(final_logit_softcapping=30.0), trees)
    assert not model_takes_trees(model(logit_scale=0.0625), trees)


def test_the_cost_counts_attention_over_all_nodes(tiny_llama):
    assert tree_cost(100, 100.0) == 200.0 and tree_cost(100, 1e9) == pytest.approx(100.0)
    pairs = [[1, 2, 3, 4, k] for k in range(8)]  # eight rows that share four tokens
    trees, cost = plan_trees(pairs, 1e9)  # attention free: one tree shares the most
    assert [run for run, _ in trees] == [list(range(8))] and cost == pytest.approx(12)
    # attention dear: 1 tree of 12 nodes costs 12 x 13 = 156, 2 of 8 cost 2 x 8 x 9 = 144, 3 (the
    # largest of 7) 3 x 7 x 8 = 168, 4 of 6 4 x 6 x 7 = 168
    trees, cost = plan_trees(pairs, 1.0)
    assert [run for run, _ in trees] == [[0, 1, 2, 3], [4, 5, 6, 7]] and cost == 144
    model = load_model(tiny_llama).model
    c = model.config
    layer = sum(p.numel() for p in model.get_decoder().layers[0].parameters())
    norm = c.hidden_size  # the final norm's weight, counted with the layers
    assert attention_tokens(model) == pytest.approx((layer + norm / c.num_hidden_layers) / (2 * c.hidden_size))


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("batch_size", [64, 6])
def test_trees_give_the_plain_results(fixture, batch_size, request, monkeypatch):
    path = request.getfixturevalue(fixture)
    reqs = pair_requests()
    want = load_model(path, batch_size=batch_size, model_args={"prefix_sharing": False}).loglikelihood(reqs)
    adapter = load_model(path, batch_size=batch_size)
    adapter._attention_tokens = float("inf")  # attention counted free: every batch with a shared token is a tree
    calls = tree_calls(monkeypatch)
    got = adapter.loglikelihood(reqs)
    assert calls and adapter._tree_checked is True
    for g, w in zip(got, want, strict=True):
        assert g.logprob == pytest.approx(w.logprob, abs=1e-4)
        assert (g.is_greedy, g.n_tokens) == (w.is_greedy, w.n_tokens)
    assert got[-2].n_tokens == 0 and got[-2].logprob == 0.0
    assert any(not r.is_greedy for r in got) and max(r.n_tokens for r in got) > 100


def test_a_tree_is_taken_only_when_it_runs_fewer_tokens(tiny_llama, monkeypatch):
    reqs = pair_requests()[:12]  # six pairs
    adapter = load_model(tiny_llama, batch_size=64)
    calls = tree_calls(monkeypatch)
    adapter.loglikelihood(reqs)  # the tiny model's attention is dear: 12 texts in one tree don't pay
    assert adapter._attention_tokens < 200 and not calls
    adapter = load_model(tiny_llama, batch_size=2)  # a pair per batch: the two that differ in their last word pay
    adapter.loglikelihood(reqs)
    assert len(calls) == 2 and max(calls) < 2 * min(len(sum(adapter.encode_loglikelihood(r), [])) for r in reqs)


def test_whole_texts_go_last_by_length_band_then_tokens(tiny_gpt2):
    adapter = load_model(tiny_gpt2, batch_size=4)
    reqs = pair_requests()
    order = adapter.batch_order(reqs)
    assert reqs[order[0]].context  # the context request first
    whole = [reqs[i] for i in order[1:]]
    keys = [(-adapter.request_length(r).bit_length(), sum(adapter.encode_loglikelihood(r), [])) for r in whole]
    assert keys == sorted(keys)
    tail = order[len(order) // 2:]  # a resumed call: the rest keep their order
    assert [tail[i] for i in adapter.batch_order([reqs[i] for i in tail])] == tail
    plain = load_model(tiny_gpt2, model_args={"prefix_sharing": False})
    assert plain.batch_order(reqs) == ModelAdapter.batch_order(plain, reqs)  # sharing off: the base order


def test_a_tree_that_disagrees_with_the_plain_path_is_not_used(tiny_gpt2, monkeypatch):
    reqs = pair_requests()
    want = load_model(tiny_gpt2, model_args={"prefix_sharing": False}).loglikelihood(reqs)
    adapter = load_model(tiny_gpt2, batch_size=6)
    real = prefix_tree.tree_loglikelihoods
    calls = []

    def off_by_a_little(model, rows, trees, **kwargs):
        calls.append(1)
        return [(lp + 0.01, greedy) for lp, greedy in real(model, rows, trees, **kwargs)]

    monkeypatch.setattr(prefix_tree, "tree_loglikelihoods", off_by_a_little)
    got = adapter.loglikelihood(reqs)
    assert calls == [1] and adapter._tree_checked is False
    assert [r.logprob for r in got] == pytest.approx([r.logprob for r in want], abs=1e-4)


def test_a_model_that_cant_take_a_tree_keeps_the_plain_path(tiny_gpt2, monkeypatch):
    reqs = pair_requests()
    want = load_model(tiny_gpt2, model_args={"prefix_sharing": False}).loglikelihood(reqs)
    adapter = load_model(tiny_gpt2, batch_size=6)

    def refuses(model, rows, trees, **kwargs):
        raise ValueError("4-D masks are not supported")

    monkeypatch.setattr(prefix_tree, "tree_loglikelihoods", refuses)
    got = adapter.loglikelihood(reqs)
    assert adapter._tree_checked is False
    assert [r.logprob for r in got] == pytest.approx([r.logprob for r in want], abs=1e-4)
