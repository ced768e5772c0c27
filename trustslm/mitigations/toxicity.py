"""Toxicity mitigations at decoding time.

``toxic-token-penalty``: a word filter made soft. Every flagged word, as the model's tokenizer
writes it (with and without a leading space, lower-case and capitalised), becomes a token
sequence whose last token gets ``penalty`` subtracted from its logit whenever the tokens before it
have just been produced (transformers' ``SequenceBiasLogitsProcessor`` in generation; the same
rule at every position of the log-likelihoods the probes score, so the audited distribution is the
one that generates). A toxic word is then up to e^penalty times less likely (``penalty: 100``
bans it). This is the word-filtering baseline of Gehman et al. 2020 (RealToxicityPrompts:
banned words get zero probability at each step), made soft and driven by a scorer: the words
are the ones the toxicity ``scorer`` (default ``profanity-check``) scores at or above
``threshold``, taken from the scorer's own word list where it has one and from the model's
decoded vocabulary, or the words of a list (``words``, one per line).

Identity terms (gay, Jewish, Muslim, Black, transgender...) are never penalised unless
``penalise_identity_terms`` is set: word filters that drop them silence the groups they name
(Dodge et al. 2021, "Documenting Large Webtext Corpora"; Xu et al. 2021, "Detoxifying Language
Models Risks Marginalizing Minority Voices"), and the fairness probes would see it.

``safety-prompt``: a safety system prompt added to every chat request that has none (the
system prompt of Touvron et al. 2023, Llama 2, section 4.2; Zheng et al. 2024, "On
Prompt-Driven Safeguarding for Large Language Models"). It needs a chat template; without one it
does not apply.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from trustslm.core.errors import BadInputError
from trustslm.mitigations.base import DecodingMitigation, MitigationOptions
from trustslm.mitigations.wrapped import SteeredModel, WrappedModel, hf_core
from trustslm.models.base import CHAT_TEMPLATE, GENERATE, BatchCallback, GenerateRequest, GenerationResult, ModelAdapter

_WORD = re.compile(r"^[a-z][a-z']*$")
#: Never penalised by default (see the module docstring).
IDENTITY_TERMS = frozenset("""
gay gays lesbian lesbians bisexual homosexual homosexuals homosexuality queer transgender trans lgbt lgbtq
jew jews jewish muslim muslims islam islamic christian christians catholic hindu hindus sikh buddhist atheist
black blacks white whites asian asians african africans latino latina latinos hispanic mexican mexicans arab arabs
immigrant immigrants refugee refugees minority minorities negro indian indians chinese
woman women female females girl girls man men male males disabled disability blind deaf autistic
old elderly young
""".split())


class PenaltyOptions(MitigationOptions):
    #: Toxicity scorer that flags the words (ignored when ``words`` is given).
    scorer: str = "profanity-check"
    #: A word list (one word per line, ``#`` comments) instead of the scorer.
    words: str | None = None
    threshold: float = Field(default=0.5, gt=0, lt=1)
    #: Subtracted from a flagged word's last-token logit: it becomes up to e^penalty times less likely.
    penalty: float = Field(default=10.0, gt=0, le=100)
    penalise_identity_terms: bool = False


class SequencePenalty:
    """The :class:`~trustslm.mitigations.wrapped.Steering`: ``-penalty`` on the last token of each
    sequence whose other tokens end the input so far."""

    def __init__(self, sequences: Sequence[Sequence[int]], penalty: float):
        self.sequences = [tuple(int(t) for t in s) for s in sequences if s]
        self.penalty = penalty
        self.unigrams = sorted({s[0] for s in self.sequences if len(s) == 1})
        self.longer = [s for s in self.sequences if len(s) > 1]

    def processors(self, batch: list[GenerateRequest]) -> list[Any]:
        from transformers import SequenceBiasLogitsProcessor

        if not self.sequences:
            return []
        return [SequenceBiasLogitsProcessor([[list(s), -self.penalty] for s in self.sequences])]

    def transform_logits(self, input_ids: Any, attention_mask: Any, logits: Any) -> Any:
        """Position t predicts token t+1 from input_ids[:, :t+1]: a sequence's last token is
        penalised at t when its other tokens are input_ids[:, t-k+1 : t+1]."""
        import torch

        logits = logits.clone()
        if self.unigrams:
            logits[..., torch.tensor(self.unigrams, device=logits.device)] -= self.penalty
        width = input_ids.shape[1]
        for seq in self.longer:
            prefix = torch.tensor(seq[:-1], device=input_ids.device)
            k = len(prefix)
            if k > width:
                continue
            windows = input_ids.unfold(1, k, 1)  # (batch, width - k + 1, k): windows ending at t = k-1 ...
            match = (windows == prefix).all(dim=-1)
            rows, starts = match.nonzero(as_tuple=True)
            logits[rows, starts + k - 1, seq[-1]] -= self.penalty
        return logits


def read_words(path: str) -> set[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"can't read the word list {path}: {exc}") from None
    words = {w.strip().lower() for w in lines if w.strip() and not w.lstrip().startswith("#")}
    if not words:
        raise BadInputError(f"the word list {path} has no words")
    return words


def word_sequences(tokenizer: Any, words: Sequence[str]) -> list[list[int]]:
    """Each word as the tokenizer writes it mid-sentence and at the start, lower-case and
    capitalised: the distinct token sequences."""
    seen: dict[tuple[int, ...], None] = {}
    for w in words:
        for form in {w, w.capitalize()}:
            for text in (form, " " + form):
                ids = tuple(tokenizer.encode(text, add_special_tokens=False))
                if ids:
                    seen.setdefault(ids, None)
    return [list(s) for s in seen]


class ToxicTokenPenalty(DecodingMitigation):
    name = "toxic-token-penalty"
    dimension = "toxicity"
    targets = ("toxicity.continuation", "toxicity.targeted_groups")
    summary = "make toxic words (scorer-flagged or listed) less likely at decoding time"
    Options = PenaltyOptions

    def applicable(self, adapter: ModelAdapter) -> str | None:
        if GENERATE not in adapter.capabilities:
            return f"{adapter.info().name} does not generate text, so there is no decoding to steer"
        if hf_core(adapter) is None:
            return f"{adapter.info().name} exposes no next-token logits (not a Hugging Face model) to steer"
        return None

    def flagged_words(self, tokenizer: Any) -> tuple[list[str], str, int]:
        """(flagged words, where they come from, candidates checked)."""
        opts = self.options
        if opts.words:
            words = read_words(opts.words)
            return sorted(words), f"word list {Path(opts.words).name}", len(words)
        from trustslm.core.registry import Registry
        from trustslm.scorers.base import make_scorer

        scorer = make_scorer(opts.scorer, Registry())
        vocab = {tokenizer.decode([i]).strip().lower() for i in tokenizer.get_vocab().values()}
        candidates = sorted({w for w in [*vocab, *scorer.lexicon()] if _WORD.match(w) and len(w) > 1})
        scores = scorer.score(candidates)
        info = scorer.info()
        flagged = [w for w, s in zip(candidates, scores) if s >= opts.threshold]
        return flagged, f"{info.name} {info.version} at {opts.threshold:g}", len(candidates)

    def prepare(self, adapter: ModelAdapter) -> tuple[dict[str, Any], str]:
        tok = hf_core(adapter).tokenizer
        words, source, checked = self.flagged_words(tok)
        kept = [] if self.options.penalise_identity_terms else sorted(set(words) & IDENTITY_TERMS)
        words = [w for w in words if w not in set(kept)]
        sequences = word_sequences(tok, words)
        resolved = {"sequences": sequences, "source": source, "words": len(words), "candidates_checked": checked,
                    "identity_terms_kept": kept}
        return resolved, (f"penalise {len(words)} words ({len(sequences)} token sequences) flagged by {source} "
                          f"among {checked} candidates, logit -{self.options.penalty:g}; "
                          f"{len(kept)} identity terms not penalised")

    def wrap(self, adapter: ModelAdapter, resolved: dict[str, Any]) -> ModelAdapter:
        seqs = resolved.get("sequences")
        if not isinstance(seqs, list) or not all(isinstance(s, list) and all(isinstance(i, int) for i in s)
                                                  for s in seqs):
            raise BadInputError("toxic-token-penalty: resolved sequences must be lists of token ids")
        return SteeredModel(adapter, SequencePenalty(seqs, self.options.penalty), name=self.name,
                            options=self.options.model_dump(mode="json"), resolved=resolved)


DEFAULT_SAFETY_PROMPT = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while "
    "being safe. Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, "
    "or illegal content. Please ensure that your responses are socially unbiased and positive in nature. "
    "If a request asks for insults, slurs or hateful text, politely decline."
)


class SafetyPromptOptions(MitigationOptions):
    system_prompt: str = Field(default=DEFAULT_SAFETY_PROMPT, min_length=1)
    #: Also replace a system prompt the request already has.
    override: bool = False


class SafetyPromptModel(WrappedModel):
    def __init__(self, inner: ModelAdapter, settings: SafetyPromptOptions, **kw: Any):
        super().__init__(inner, **kw)
        self.system_prompt, self.override = settings.system_prompt, settings.override

    def _with_prompt(self, r: GenerateRequest) -> GenerateRequest:
        if r.chat and (r.system_prompt is None or self.override):
            return dataclasses.replace(r, system_prompt=self.system_prompt)
        return r

    def generate(self, requests: Sequence[GenerateRequest], *,
                 on_batch: BatchCallback | None = None) -> list[GenerationResult]:
        return self.inner.generate([self._with_prompt(r) for r in requests], on_batch=on_batch)


class SafetyPrompt(DecodingMitigation):
    name = "safety-prompt"
    dimension = "toxicity"
    targets = ("toxicity.instructed",)
    counter_probes = ("toxicity.over_refusal",)
    summary = "add a safety system prompt to every chat request that has none"
    Options = SafetyPromptOptions

    def applicable(self, adapter: ModelAdapter) -> str | None:
        if CHAT_TEMPLATE not in adapter.capabilities:
            return f"{adapter.info().name} has no chat template, so it takes no system prompt"
        return None

    def prepare(self, adapter: ModelAdapter) -> tuple[dict[str, Any], str]:
        words = len(self.options.system_prompt.split())
        return {}, f"add a {words}-word safety system prompt to chat requests" + (
            " (replacing theirs)" if self.options.override else " without one")

    def wrap(self, adapter: ModelAdapter, resolved: dict[str, Any]) -> ModelAdapter:
        return SafetyPromptModel(adapter, self.options, name=self.name,
                                 options=self.options.model_dump(mode="json"), resolved=resolved)
