"""Self-debiasing at decoding time (Schick, Udupa and Schütze 2021, "Self-Diagnosis and
Self-Debiasing: A Proposal for Reducing Corpus-Based Bias in NLP", TACL 9).

The model is asked what a biased continuation would look like: each debiasing prefix ``sdb_i``
describes a bias ("The following text discriminates against people because of their gender:\\n"),
and the text so far is read after it. Tokens the model finds *more* likely after such a
description than without it are scaled down::

    Δ(w, x)   = p(w | x) - max_i p(w | sdb_i(x))
    α(v)      = 1 if v >= 0 else exp(λ · v)
    p̃(w | x) ∝ α(Δ(w, x)) · p(w | x)                       (renormalised over the vocabulary)

with the decay constant λ = 50 as in the paper. The same p̃ is used to generate (a logits
processor, before sampling) and to score (the log-likelihoods and token scores the probes read),
so the bias probes audit the distribution that generates.

Prefixes: one per CrowS-Pairs bias type, with the paper's bias-type description template; all of
them are used at once by default (the max over i), or a subset (``bias_types``), or your own
(``prefixes``). A prefix is tokenised on its own and its tokens inserted before the text (after
the BOS token when the sequence starts with one), so every token of the text is the same token
at a fixed offset in each prefixed sequence, as the authors' ``compute_loss_self_debiasing``
does. Where a prefixed sequence would not fit the model's context window, its oldest text tokens
(after the BOS) are dropped, and positions left without a prefixed counterpart are unchanged.

Differences from the authors' code (github.com/timoschick/self-debiasing): their
``SelfDebiasingLogitsProcessor`` floors α at ``epsilon = 0.01``; the paper's α has no floor, and
neither has this one by default (``epsilon`` sets one). Their generation tokenises prefix and
text jointly; here the prefix is tokenised alone (as their scoring code does), so a text token
is the same token with and without the prefix. Requests in a chat template get the prefix
before the template's text. Cost: k prefixes add k forward passes over the texts per scored
batch and per generated token (the prefix itself is run once per batch and its key/value cache
shared by the rows; generation re-reads the prefixed texts at every step, with no cache across
steps). The perplexity cost can be large on a small model: measured on SmolLM2-135M under
Measured in docs/measured.md, where a smaller ``decay_constant`` (or the authors' ``epsilon`` floor)
debiases less and costs less.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator

from trustslm.core.errors import BadInputError
from trustslm.mitigations.base import DecodingMitigation, MitigationOptions, NotApplicableError
from trustslm.mitigations.wrapped import SteeredModel, hf_core
from trustslm.models.base import LOGLIKELIHOOD, GenerateRequest, ModelAdapter

#: The paper's self-debiasing input for bias, "The following text discriminates against people
#: because of their <bias type>:", with the nine CrowS-Pairs bias types' descriptions.
TEMPLATE = "The following text discriminates against people because of their {}:\n"
BIAS_TYPES: dict[str, str] = {
    "race-color": "race/color",
    "gender": "gender",
    "socioeconomic": "socioeconomic status/occupation",
    "nationality": "nationality",
    "religion": "religion",
    "age": "age",
    "sexual-orientation": "sexual orientation",
    "physical-appearance": "physical appearance",
    "disability": "disability",
}


class SelfDebiasOptions(MitigationOptions):
    #: Bias types whose prefixes are used (keys of ``BIAS_TYPES``); all nine by default.
    bias_types: tuple[str, ...] | None = None
    #: Your own debiasing prefixes instead of the bias-type ones (each read before the text).
    prefixes: tuple[str, ...] | None = None
    #: λ: how hard a token the prefixes make more likely is pushed down (the paper's 50).
    decay_constant: float = Field(default=50.0, gt=0)
    #: Smallest factor α may take (0: none, as in the paper; the authors' code uses 0.01).
    epsilon: float = Field(default=0.0, ge=0, lt=1)

    @field_validator("bias_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("give at least one bias type")
            unknown = [v for v in value if v not in BIAS_TYPES]
            if unknown:
                raise ValueError(f"unknown bias type {unknown[0]!r} (known: {', '.join(BIAS_TYPES)})")
        return value

    @field_validator("prefixes")
    @classmethod
    def _some_prefixes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("give at least one prefix")
        return value


class SelfDebiasSteering:
    """The :class:`~trustslm.mitigations.wrapped.Steering` of self-debiasing on one
    :class:`~trustslm.models.hf.HFModel` (``core``).

    A prefixed sequence is ``head + prefix + body``: ``head`` is the row's leading BOS token (or
    nothing), ``body`` the rest of the row. Where the model takes a key/value cache, ``head +
    prefix`` is run once per batch and its cache shared by the rows, so only the bodies are
    recomputed (the prefix is the same for every row)."""

    def __init__(self, core: Any, prefix_ids: list[list[int]], decay_constant: float, epsilon: float = 0.0):
        import inspect

        self.core = core
        self.prefix_ids = [list(p) for p in prefix_ids]
        self.decay_constant = float(decay_constant)
        self.log_epsilon = math.log(epsilon) if epsilon > 0 else None
        tok = core.tokenizer
        self.bos_ids = {i for i in (core.prefix_token_id, tok.bos_token_id) if i is not None}
        params = inspect.signature(core.model.forward).parameters
        # transformers 5 names the cache argument ``cache``, earlier versions ``past_key_values``
        self.cache_arg = next((a for a in ("cache", "past_key_values") if a in params), None)
        if "position_ids" not in params:
            self.cache_arg = None

    # -- the formula ------------------------------------------------------------------------------
    def debias(self, logits: Any, biased_max: Any) -> Any:
        """log p̃ from the plain next-token logits and max_i p(w | sdb_i(x)) (same shapes, last
        dim the vocabulary). p is computed exactly as the prefixed probabilities are, so equal
        forward passes give Δ = 0 bit for bit."""
        import torch

        logits = logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        delta = torch.softmax(logits, dim=-1) - biased_max
        log_alpha = (self.decay_constant * delta).clamp(max=0.0)
        if self.log_epsilon is not None:
            log_alpha = log_alpha.clamp(min=self.log_epsilon)
        return torch.log_softmax(logprobs + log_alpha, dim=-1)

    # -- prefixed sequences -----------------------------------------------------------------------
    def prefixed_probs(self, rows: list[list[int]], prefix: list[int], *, last_only: bool) -> list[tuple[int, int, Any]]:
        """p(. | sdb(x)) for the rows (token lists): ``(row, j0, probs)`` with ``probs[m]`` the
        distribution after ``prefix`` and ``row[:j0 + m + 1]``, for every position j0 + m of the row
        (``last_only``: its last one) that has a prefixed counterpart.

        The prefix goes after a leading BOS token; a prefixed sequence longer than the context
        window loses its oldest body tokens (``drop``), and the positions of the row before the
        first one kept have no counterpart."""
        import torch

        out: list[tuple[int, int, Any]] = []
        n_prefix, window = len(prefix), self.core.max_length
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, r in enumerate(rows):
            if r:
                groups.setdefault(tuple(r[:1]) if r[0] in self.bos_ids else (), []).append(i)
        for head, idx in groups.items():
            h, shared = len(head), [*head, *prefix]
            drops = [min(max(0, len(rows[i]) + n_prefix - window), len(rows[i]) - h) for i in idx]
            bodies = [rows[i][h + d:] for i, d in zip(idx, drops)]
            if n_prefix == 0 or self.cache_arg is None:
                shared_last, probs, base = None, self._forward([shared + b for b in bodies]), 0
            else:
                shared_last, probs = self._forward_shared(shared, bodies)
                base = len(shared)  # body index = prefixed position - base
            for k, (i, d) in enumerate(zip(idx, drops)):
                n, first = len(rows[i]), (h + d if d else 0)
                start = max(first, n - 1 if last_only else 0)
                if start >= n:
                    continue
                q0, q1 = start + n_prefix - d, n + n_prefix - d  # prefixed positions
                parts = []
                if q0 < base:  # the last prefix token (after a BOS): its distribution is shared
                    parts.append(shared_last[None])
                    q0 += 1
                if q1 > q0:
                    parts.append(probs[k, q0 - base: q1 - base])
                out.append((i, start, parts[0] if len(parts) == 1 else torch.cat(parts)))
        return out

    def _pad(self, seqs: list[list[int]]) -> tuple[Any, Any]:
        import torch

        width = max(1, max(len(s) for s in seqs))
        ids = torch.full((len(seqs), width), self.core.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
                mask[i, : len(s)] = 1
        return ids.to(self.core.device), mask.to(self.core.device)

    def _forward(self, seqs: list[list[int]]) -> Any:
        """Next-token probabilities of right-padded ``seqs`` (batch, width, vocabulary), float32."""
        import torch

        ids, mask = self._pad(seqs)
        with torch.no_grad():
            logits = self.core.model(input_ids=ids, attention_mask=mask).logits
        return torch.softmax(logits.float(), dim=-1)

    def _forward_shared(self, shared: list[int], bodies: list[list[int]]) -> tuple[Any, Any]:
        """``shared + body`` for every body, with ``shared`` run once: (the distribution after
        ``shared``, the body positions' distributions (batch, width, vocabulary))."""
        import torch

        model, device = self.core.model, self.core.device
        with torch.no_grad():
            first = model(input_ids=torch.tensor([shared], dtype=torch.long, device=device), use_cache=True)
            shared_last = torch.softmax(first.logits[0, -1].float(), dim=-1)
            cache = getattr(first, "cache", None)
            if cache is None:
                cache = getattr(first, "past_key_values", None)
            if not any(bodies):
                return shared_last, None
            if cache is None or not hasattr(cache, "batch_repeat_interleave"):  # pragma: no cover - old models
                return shared_last, self._forward([shared + b for b in bodies])[:, len(shared):]
            ids, mask = self._pad(bodies)
            cache.batch_repeat_interleave(len(bodies))
            n = len(shared)
            attention = torch.cat([torch.ones((len(bodies), n), dtype=mask.dtype, device=device), mask], dim=1)
            positions = (n + torch.arange(ids.shape[1], device=device)).expand(ids.shape[0], -1)
            logits = model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True,
                           **{self.cache_arg: cache}).logits
        return shared_last, torch.softmax(logits.float(), dim=-1)

    # -- scoring ----------------------------------------------------------------------------------
    def transform_logits(self, input_ids: Any, attention_mask: Any, logits: Any) -> Any:
        """log p̃ at every position of a right-padded batch (padding positions: log p)."""
        import torch

        lengths = attention_mask.sum(dim=1).tolist()
        rows = [input_ids[i, : int(n)].tolist() for i, n in enumerate(lengths)]
        # 0 where a position has no prefixed counterpart: Δ >= 0 there, so α = 1
        biased_max = torch.zeros(logits.shape, dtype=torch.float32, device=logits.device)
        for prefix in self.prefix_ids:
            for i, j0, probs in self.prefixed_probs(rows, prefix, last_only=False):
                span = slice(j0, j0 + probs.shape[0])
                biased_max[i, span] = torch.maximum(biased_max[i, span], probs)
        return self.debias(logits, biased_max)

    # -- generation -------------------------------------------------------------------------------
    def processors(self, batch: list[GenerateRequest]) -> list[Any]:
        prompts = [self.core.encode_prompt(r) for r in batch]
        return [SelfDebiasProcessor(self, prompts)]

    def next_token(self, rows: list[list[int]], scores: Any) -> Any:
        """log p̃ of the next token after each row (scores: the batch's next-token logits)."""
        import torch

        biased_max = torch.zeros(scores.shape, dtype=torch.float32, device=scores.device)
        for prefix in self.prefix_ids:
            for i, _, probs in self.prefixed_probs(rows, prefix, last_only=True):
                biased_max[i] = torch.maximum(biased_max[i], probs[0])
        return self.debias(scores, biased_max).to(scores.dtype)


class SelfDebiasProcessor:
    """A transformers logits processor for one left-padded generation batch: row i's tokens are
    the last ``len(prompts[i]) + steps`` of its input ids."""

    def __init__(self, steering: SelfDebiasSteering, prompts: list[list[int]]):
        self.steering = steering
        self.prompts = prompts
        self.width = max((len(p) for p in prompts), default=0)
        self._checked = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[0] != len(self.prompts):
            raise RuntimeError(f"self-debias: a batch of {input_ids.shape[0]} rows, prepared for {len(self.prompts)}")
        rows = [input_ids[i, self.width - len(p):].tolist() for i, p in enumerate(self.prompts)]
        if not self._checked:  # the layout must be the one HFModel._generate_batch builds
            if any(r[: len(p)] != p for r, p in zip(rows, self.prompts)):
                raise RuntimeError("self-debias: the generation batch is not the left-padded prompts it was made for")
            self._checked = True
        return self.steering.next_token(rows, scores)


class SelfDebias(DecodingMitigation):
    name = "self-debias"
    dimension = "fairness"
    targets = ("fairness.stereotype_pairs", "fairness.stereoset")
    summary = ("self-debiasing (Schick et al. 2021): push down tokens the model itself finds more likely "
               "after a description of bias")
    Options = SelfDebiasOptions

    def applicable(self, adapter: ModelAdapter) -> str | None:
        if hf_core(adapter) is None:
            return (f"{adapter.info().name} is not a Hugging Face causal language model: self-debiasing "
                    "needs its next-token distributions after the debiasing prefixes")
        if LOGLIKELIHOOD not in adapter.capabilities:
            return f"{adapter.info().name} gives no log-likelihoods to debias"
        return None

    def prefix_texts(self) -> list[str]:
        """The debiasing prefixes the options select."""
        opts = self.options
        if opts.prefixes is not None and opts.bias_types is not None:
            raise BadInputError("mitigation self-debias: give bias_types or prefixes, not both")
        if opts.prefixes is not None:
            return list(opts.prefixes)
        return [TEMPLATE.format(BIAS_TYPES[t]) for t in (opts.bias_types or tuple(BIAS_TYPES))]

    def prepare(self, adapter: ModelAdapter) -> tuple[dict[str, Any], str]:
        reason = self.applicable(adapter)
        if reason is not None:
            raise NotApplicableError(reason)
        core = hf_core(adapter)
        prefixes = self.prefix_texts()
        token_ids = [list(core.tokenizer.encode(p, add_special_tokens=False)) for p in prefixes]
        longest = max(len(t) for t in token_ids)
        if longest + 2 > core.max_length:
            raise BadInputError(f"mitigation self-debias: a prefix of {longest} tokens does not fit the model's "
                                f"{core.max_length}-token window with any text")
        resolved = {"prefixes": prefixes, "prefix_token_ids": token_ids,
                    "decay_constant": self.options.decay_constant, "epsilon": self.options.epsilon}
        did = (f"self-debias next-token probabilities with {len(prefixes)} debiasing prefixes "
               f"(λ={self.options.decay_constant:g}, up to {longest} tokens each; ~{len(prefixes)}x extra forward passes)")
        return resolved, did

    def wrap(self, adapter: ModelAdapter, resolved: dict[str, Any]) -> ModelAdapter:
        reason = self.applicable(adapter)
        if reason is not None:
            raise NotApplicableError(reason)
        if not resolved:
            resolved, _ = self.prepare(adapter)
        core = hf_core(adapter)
        ids = resolved.get("prefix_token_ids")
        vocab = len(core.tokenizer)
        if not (isinstance(ids, list) and ids and all(isinstance(p, list) for p in ids)
                and all(isinstance(t, int) and 0 <= t < vocab for p in ids for t in p)):
            raise BadInputError("mitigation self-debias: resolved prefix_token_ids must be lists of token ids")
        lam, eps = resolved.get("decay_constant"), resolved.get("epsilon", 0.0)
        if not (isinstance(lam, (int, float)) and lam > 0 and isinstance(eps, (int, float)) and 0 <= eps < 1):
            raise BadInputError("mitigation self-debias: resolved decay_constant must be > 0 and epsilon in [0, 1)")
        steering = SelfDebiasSteering(core, ids, float(lam), float(eps))
        return SteeredModel(adapter, steering, name=self.name, options=self.options.model_dump(mode="json"),
                            resolved=resolved)
