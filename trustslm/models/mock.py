"""A scripted model for tests and notebooks (after inspect_ai's ``mockllm``). No torch needed.

The script is a dict (or a YAML file holding one) with any of these keys::

    name: my-mock
    capabilities: [loglikelihood, generate]     # default: all but chat_template (a "token" is a word)
    loglikelihood:                              # continuation (or context + continuation) -> logprob
      "The nurse said she was tired.": -20.5
    generate:                                   # first rule whose `match` is in the prompt wins
      - match: "capital of France"
        response: "Paris."
      - match: "rude"
        responses: ["You idiot.", "Have a nice day."]   # picked by sample_index
      - regex: "secret is (\\w+)"                # searched in the system prompt, a line break, the prompt
        response: "It is \\1."                    # \\1, \\g<name>: the match's groups
    default_response: "I am a mock model."

Log-likelihoods not in the script are a deterministic function of the text (about -2.5 nats a
word, plus a hash-based jitter), so probes get stable, text-dependent numbers.
"""

from __future__ import annotations

import hashlib
import numbers
import re
from pathlib import Path
from typing import Any

from trustslm.core.errors import BadInputError
from trustslm.core.hashing import sha256_json
from trustslm.core.textfiles import check_tree, read_yaml_mapping
from trustslm.core.types import ModelInfo
from trustslm.models.base import (
    DEFAULT_BATCH_SIZE,
    GENERATE,
    KNOWN_CAPABILITIES,
    LOGLIKELIHOOD,
    TOKEN_LOGPROBS,
    TOKENIZER,
    VOCAB_STATS,
    BackendOptions,
    GenerateRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelAdapter,
    TokenScoresRequest,
    TokenScoresResult,
    apply_stop,
    split_words,
)

_ALLOWED_KEYS = {"name", "capabilities", "loglikelihood", "generate", "default_response"}
DEFAULT_CAPABILITIES = (LOGLIKELIHOOD, GENERATE, TOKEN_LOGPROBS, VOCAB_STATS, TOKENIZER)


class ScriptedModel(ModelAdapter):
    """Answers from a script; counts the requests it served in :attr:`calls`."""

    backend = "mock"
    Options = BackendOptions

    def __init__(self, script: dict[str, Any] | str | Path | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE):
        self.spec = "mock"
        if isinstance(script, (str, Path)):
            self.spec = f"mock:{script}"
            script = read_yaml_mapping(script, "mock script")
        if not isinstance(script, (dict, type(None))):
            raise BadInputError(f"mock script must be a mapping, not {type(script).__name__}")
        self.script: dict[str, Any] = dict(script or {})
        check_script(self.script)
        self.capabilities = frozenset(self.script.get("capabilities", DEFAULT_CAPABILITIES))
        self.batch_size = batch_size
        self.calls = {"loglikelihood": 0, "generate": 0, "token_scores": 0}
        self.batches: list[tuple[str, int]] = []

    @classmethod
    def create(cls, spec: str, options: BackendOptions) -> ScriptedModel:
        """``mock`` (the default script) or ``mock:SCRIPT.yaml``."""
        return cls(spec or None, batch_size=options.fixed_batch_size())

    def info(self) -> ModelInfo:
        return ModelInfo(
            spec=self.spec,
            kind="mock",
            name=str(self.script.get("name", "mock")),
            hash=sha256_json(self.script),
            capabilities=sorted(self.capabilities),
            backend=self.backend,
        ).with_identity()

    def split_tokens(self, text: str, k: int) -> tuple[str, str]:
        """A mock's token is a word (as in generation's ``max_new_tokens``)."""
        return split_words(text, k)

    def _loglikelihood_batch(self, batch: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        self.calls["loglikelihood"] += len(batch)
        self.batches.append(("loglikelihood", len(batch)))
        table = self.script.get("loglikelihood", {})
        out = []
        for r in batch:
            text = r.context + r.continuation
            if r.continuation in table:
                lp = float(table[r.continuation])
            elif text in table:
                lp = float(table[text])
            else:
                lp = _default_logprob(r.continuation)
            out.append(LoglikelihoodResult(logprob=lp, is_greedy=False, n_tokens=_n_words(r.continuation)))
        return out

    def _token_scores_batch(self, batch: list[TokenScoresRequest]) -> list[TokenScoresResult]:
        """One score per word: the word's share of the text's scripted or default log-likelihood."""
        self.calls["token_scores"] += len(batch)
        self.batches.append(("token_scores", len(batch)))
        out = []
        for r in batch:
            words = r.text.split()
            table = self.script.get("loglikelihood", {})
            total = float(table[r.text]) if r.text in table else _default_logprob(r.text)
            weights = [1.0 + (_stable_int(f"{i}|{w}") % 100) / 100 for i, w in enumerate(words)] or [1.0]
            lps = [total * w / sum(weights) for w in weights]
            if VOCAB_STATS in self.capabilities:
                out.append(TokenScoresResult(logprobs=lps, mu=[-3.0] * len(lps), sigma=[1.0] * len(lps)))
            else:
                out.append(TokenScoresResult(logprobs=lps))
        return out

    def _generate_batch(self, batch: list[GenerateRequest]) -> list[GenerationResult]:
        self.calls["generate"] += len(batch)
        self.batches.append(("generate", len(batch)))
        out = []
        for r in batch:
            text, rest = split_words(self._respond(r), r.max_new_tokens)  # a "token" is a word here
            truncated = bool(rest.strip())
            text, stopped = apply_stop(text, r.stop)
            reason = "length" if truncated and not stopped else "stop"
            out.append(GenerationResult(text=text, n_tokens=_n_words(text), finish_reason=reason))
        return out

    def _respond(self, r: GenerateRequest) -> str:
        for rule in self.script.get("generate", []):
            if "regex" in rule:
                found = re.search(str(rule["regex"]), f"{r.system_prompt or ''}\n{r.prompt}")
                if found:
                    try:
                        return found.expand(str(rule.get("response", "")))
                    except (re.error, IndexError) as exc:
                        raise BadInputError(f"mock script: the response of regex {rule['regex']!r}: {exc}") from None
                continue
            if str(rule.get("match", "")) in r.prompt:
                if "responses" in rule:
                    options = list(rule["responses"])
                    return str(options[r.sample_index % len(options)])
                return str(rule.get("response", ""))
        return str(self.script.get("default_response", " and then the story went on."))


def check_script(script: dict[str, Any]) -> None:
    """Refuse a script this model can't follow, when it is given: every key's type, so a bad script is
    a one-line :class:`BadInputError` before the audit starts, never a crash in the middle of it."""
    unknown = set(script) - _ALLOWED_KEYS
    if unknown:
        raise BadInputError(f"mock script: unknown key(s) {sorted(map(str, unknown))} (allowed: {sorted(_ALLOWED_KEYS)})")
    check_tree(script, "mock script")  # nesting depth (a cycle too), lone surrogates
    for key in ("name", "default_response"):
        if key in script and not _is_scalar(script[key]):
            raise BadInputError(f"mock script: {key} must be a string")
    _check_capabilities(script.get("capabilities", DEFAULT_CAPABILITIES))
    _check_loglikelihood(script.get("loglikelihood", {}))
    _check_rules(script.get("generate", []))


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _check_capabilities(capabilities: Any) -> None:
    if not isinstance(capabilities, (list, tuple)) or not all(isinstance(c, str) for c in capabilities):
        raise BadInputError("mock script: capabilities must be a list of names")
    unknown = set(capabilities) - KNOWN_CAPABILITIES
    if unknown:
        raise BadInputError(f"mock script: unknown capabilities {sorted(unknown)} (known: {sorted(KNOWN_CAPABILITIES)})")


def _check_loglikelihood(table: Any) -> None:
    if not isinstance(table, dict):
        raise BadInputError("mock script: loglikelihood must map texts to log-probabilities")
    for text, logprob in table.items():
        if not isinstance(text, str) or not isinstance(logprob, numbers.Real) or isinstance(logprob, bool):
            raise BadInputError(f"mock script: loglikelihood of {str(text)[:40]!r} must be a number, keyed by a text")


def _check_rules(rules: Any) -> None:
    if not isinstance(rules, list):
        raise BadInputError("mock script: generate must be a list of rules")
    for n, rule in enumerate(rules, start=1):
        if not isinstance(rule, dict) or set(rule) - {"match", "regex", "response", "responses"}:
            raise BadInputError(f"mock script: generate rule {n} must be a mapping of match or regex, response or "
                                "responses")
        if not all(_is_scalar(rule[k]) for k in ("match", "regex", "response") if k in rule):
            raise BadInputError(f"mock script: generate rule {n}: match, regex and response must be strings")
        if "regex" in rule:
            if "match" in rule or "responses" in rule:
                raise BadInputError(f"mock script: generate rule {n}: a regex rule has one response, and no match")
            try:
                re.compile(str(rule["regex"]))
            except re.error as exc:
                raise BadInputError(f"mock script: generate rule {n}: bad regex: {exc}") from None
        responses = rule.get("responses", ["-"])
        if not isinstance(responses, list) or not responses or not all(_is_scalar(r) for r in responses):
            raise BadInputError(f"mock script: generate rule {n}: responses must be a non-empty list of strings")


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _n_words(text: str) -> int:
    return max(1, len(text.split()))


def _default_logprob(text: str) -> float:
    jitter = (_stable_int(text) % 10_000) / 10_000  # in [0, 1)
    return -2.5 * _n_words(text) - jitter
