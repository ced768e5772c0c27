"""Prefix sharing in the transformers backend (trustslm.models.prefix_share): requests of a batch
that start with the same tokens run them once, with the results of the plain path."""

from __future__ import annotations

import pytest
from conftest import CORPUS

import trustslm.models.prefix_share as prefix_share
from trustslm.models.base import LoglikelihoodRequest
from trustslm.models.prefix_share import MIN_SHARED_PREFIX, plan_prefix_groups, plan_shared_batch
from trustslm.models.resolve import load_model


def mixed_requests() -> list[LoglikelihoodRequest]:
    """Groups of 2 to 10 continuations (one to many tokens) after long shared contexts, contexts
    that differ only at the end, empty contexts, singletons, a chat group and requests longer
    than the tiny models' 128 positions (cut on the left)."""
    reqs = []
    for g in range(4):
        context = f"{CORPUS[g]} {CORPUS[g + 1]} Question {g}: who said it?"
        options = [" " + CORPUS[(g + k) % len(CORPUS)][: 3 + 7 * k] for k in range(2 + 8 * (g == 3) + g)]
        reqs += [LoglikelihoodRequest(context, o) for o in options[:10]]
    few_shot = CORPUS[0]  # a shared head, then different questions
    reqs += [LoglikelihoodRequest(f"{few_shot} Q: {q[:25]}\nA:", a) for q in CORPUS[4:7] for a in (" yes", " no, never")]
    reqs += [LoglikelihoodRequest("", CORPUS[k]) for k in range(3)]
    reqs += [LoglikelihoodRequest(CORPUS[5], " and then"), LoglikelihoodRequest("The cat", " sat")]
    reqs += [LoglikelihoodRequest(CORPUS[6] + "  ", "home"), LoglikelihoodRequest(CORPUS[6] + "  ", ""), LoglikelihoodRequest(CORPUS[7], "")]
    reqs += [LoglikelihoodRequest(CORPUS[2], " " + o, chat=True) for o in ("agreed", "did not agree at all")]
    long = " ".join(CORPUS * 2)  # over 128 tokens
    reqs += [LoglikelihoodRequest(long, o) for o in (" the end", " and the dog", " x")]
    return reqs


def sharing_calls(monkeypatch) -> list[int]:
    """Counts the shared forward passes (how many rows each had)."""
    calls = []
    real = prefix_share.shared_prefix_logits

    def spy(model, rows, groups, **kwargs):
        calls.append(len(rows))
        return real(model, rows, groups, **kwargs)

    monkeypatch.setattr(prefix_share, "shared_prefix_logits", spy)
    return calls


def assert_same(shared, plain):
    assert len(shared) == len(plain)
    for s, p in zip(shared, plain, strict=True):
        assert s.logprob == pytest.approx(p.logprob, abs=1e-4)
        assert (s.is_greedy, s.n_tokens) == (p.is_greedy, p.n_tokens)


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("batch_size", [64, 7, 3])
def test_shared_prefixes_give_the_plain_results(fixture, batch_size, request, monkeypatch):
    path = request.getfixturevalue(fixture)
    reqs = mixed_requests()
    plain = load_model(path, batch_size=batch_size, model_args={"prefix_sharing": False})
    shared = load_model(path, batch_size=batch_size)
    want = plain.loglikelihood(reqs)
    calls = sharing_calls(monkeypatch)
    plans = []
    real_plan = prefix_share.plan_shared_batch
    monkeypatch.setattr(prefix_share, "plan_shared_batch", lambda rows: plans.append(real_plan(rows)) or plans[-1])
    got = shared.loglikelihood(reqs)
    assert calls, "no batch shared a prefix"
    assert shared.prefix_sharing  # the tiny models' caches can be shared
    assert_same(got, want)
    assert any(r.n_tokens > 3 for r in got) and any(r.n_tokens == 0 for r in got)
    if batch_size == 64:  # one batch: rows in no group ride along, the longest take a plain pass
        [(inside, groups, outside)] = plans
        assert len(inside) > sum(len(members) for _, members in groups) and outside
    else:
        assert None in plans  # some batches don't pay


def test_a_group_split_over_batches_and_reordered_requests(tiny_gpt2, monkeypatch):
    context = " ".join(CORPUS[:2])
    reqs = [LoglikelihoodRequest(context, " " + " ".join(CORPUS[k].split()[: 1 + k])) for k in range(8)]
    want = load_model(tiny_gpt2, batch_size=1).loglikelihood(reqs)  # one request per pass: nothing shared
    shared = load_model(tiny_gpt2, batch_size=3)
    calls = sharing_calls(monkeypatch)
    assert_same(shared.loglikelihood(reqs), want)
    assert_same(shared.loglikelihood(reqs[::-1]), want[::-1])
    assert len(calls) == 2 * 3 and max(calls) == 3


def test_the_option_does_not_change_the_model_identity(tiny_gpt2):
    on = load_model(tiny_gpt2).info()
    off = load_model(tiny_gpt2, model_args={"prefix_sharing": "false"}).info()
    assert on.identity == off.identity


class Unchanged:
    """A steering that sees whole rows and changes nothing."""

    def __init__(self):
        self.widths = []

    def transform_logits(self, input_ids, attention_mask, logits):
        self.widths.append(input_ids.shape[1])
        return logits


def test_steering_and_recorder_take_the_plain_path(tiny_gpt2, monkeypatch):
    adapter = load_model(tiny_gpt2)
    reqs = [LoglikelihoodRequest(" ".join(CORPUS[:2]), o) for o in (" yes", " no")]
    calls = sharing_calls(monkeypatch)
    adapter.recorder = []
    want = adapter.loglikelihood(reqs)
    assert not calls and adapter.recorder[0]["kind"] == "loglikelihood"
    steering = Unchanged()
    steered = adapter.with_steering(steering)
    assert_same(steered.loglikelihood(reqs), want)
    assert not calls and steering.widths == [adapter.recorder[0]["input_ids"].shape[1]]
    adapter.recorder = None
    assert_same(adapter.loglikelihood(reqs), want)
    assert calls == [2]


def test_a_cache_that_cant_be_shared_turns_sharing_off(tiny_gpt2, monkeypatch):
    reqs = mixed_requests()
    want = load_model(tiny_gpt2, model_args={"prefix_sharing": False}).loglikelihood(reqs)
    adapter = load_model(tiny_gpt2)
    monkeypatch.setattr(prefix_share, "cache_is_shareable", lambda cache: False)
    assert_same(adapter.loglikelihood(reqs), want)
    assert adapter.prefix_sharing is False


def test_groups_need_two_members_and_a_long_enough_prefix():
    head = list(range(20))
    assert plan_prefix_groups([head, head[:-1] + [99], head[: MIN_SHARED_PREFIX - 1] + [50]]) == [(19, [0, 1])]
    assert plan_prefix_groups([head, list(range(50, 70))]) == []  # nothing in common
    assert plan_prefix_groups([head[:5], head[:5]]) == []  # too short to pay
    assert plan_prefix_groups([[], [], head]) == []  # empty contexts share nothing
    # the cuts that save the most: 2 x 19 tokens, not 3 x 8 with the fourth row in the group
    rows = [head, head, head[:19] + [0], head[:8] + [1] * 12]
    assert plan_prefix_groups(rows) == [(19, [0, 1, 2])]
    # two questions after one few-shot prompt: one group each (2 x 32 + 2 x 32 > 5 x 12)
    few_shot = list(range(100, 112))
    rows = [few_shot + [k] * 20 for k in (1, 1, 1, 2, 2, 2)]
    assert plan_prefix_groups(rows) == [(32, [0, 1, 2]), (32, [3, 4, 5])]
    assert plan_prefix_groups([few_shot + [k] * 20 for k in range(6)]) == [(12, list(range(6)))]


def row(context: list[int], continuation: list[int]) -> tuple[list[int], list[int]]:
    return (context + continuation)[:-1], continuation


def test_a_batch_is_shared_only_when_it_runs_fewer_tokens():
    question = list(range(40))
    rows = [row(question, [50]), row(question, [51, 52]), row(question, [53]),
            row([7], [8]),  # no longer than the shared suffixes: rides along with no prefix
            row(list(range(100, 160)), [9])]  # longer: the plain pass
    assert plan_shared_batch(rows) == ([0, 1, 2, 3], [(39, [0, 1, 2])], [4])
    # 9 shared tokens before 30-token continuations: 9 + 2 x 30 tokens run instead of 2 x 39, not enough
    assert plan_shared_batch([row(list(range(10)), [1] * 30), row(list(range(10)), [2] * 30)]) is None
    assert plan_shared_batch([row([1, 2], [3]), row([1, 2], [4])]) is None  # no group
