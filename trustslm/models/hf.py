"""Hugging Face causal language models (a safetensors folder or a GGUF file) behind the
:class:`~trustslm.models.base.ModelAdapter` interface.

Loading never runs code from the model folder: :mod:`trustslm.models.validate` checks the folder
first, and transformers is called with ``trust_remote_code=False`` and ``local_files_only=True``
on a staging folder holding only the checked files (:mod:`trustslm.models.staging`), each of which
is hashed into the report. The chat template is rendered within a step budget
(:mod:`trustslm.models.chat_guard`); one that fails on a plain conversation is not used.

Log-likelihoods follow lm-evaluation-harness (``HFLM._loglikelihood_tokens``): the pair is
encoded whole and split, an empty context conditions on the BOS token (EOS when there is none),
inputs are right-padded, and the continuation's token log-probs are summed. Requests of a batch
that start with the same tokens (a question and its answer options) run those tokens once
(:mod:`trustslm.models.prefix_share`; option ``prefix_sharing``), with the same results; so do
whole texts that start alike (CrowS-Pairs' two sentences of a pair), merged into a token tree
(:mod:`trustslm.models.prefix_tree`), for which whole texts are ordered by length band, then
by their tokens.
Generation pads on the left, runs the prefixes its prompts share once, samples each row with
its own seeded generator and lets a row go as soon as it ends (:mod:`trustslm.models.decode`).
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from trustslm.core.errors import BackendError, BadInputError, ModelFormatError
from trustslm.core.hashing import sha256_json, sha256_text
from trustslm.core.types import FileRecord, ModelInfo
from trustslm.models.base import (
    CHAT_TEMPLATE,
    DEFAULT_BATCH_SIZE,
    GENERATE,
    LOGLIKELIHOOD,
    TOKEN_LOGPROBS,
    TOKENIZER,
    VOCAB_STATS,
    BackendOptions,
    BatchTooLarge,
    GenerateRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelAdapter,
    Request,
    TokenScoresRequest,
    TokenScoresResult,
    apply_stop,
    request_seed,
)
from trustslm.models.validate import ModelLayout


class HFOptions(BackendOptions):
    """Options of a Hugging Face model (``--model-arg KEY=VALUE``; the first three have their own
    ``audit`` flags too)."""

    allow_pickle: bool = Field(default=False, description="Load pickle weights when there are no safetensors.")
    allow_download: bool = Field(default=False, description="Fetch a Hugging Face hub id.")
    cache_dir: Path | None = Field(default=None, description="Where the demo model and file hashes are kept.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="auto: bfloat16 on a CUDA GPU that has it (else float16), float16 on mps, "
                                    "float32 on a CPU.")
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda|mps)(:\d+)?$",
                        description="auto (a CUDA GPU, else mps, else the CPU), cpu, cuda[:N] or mps.")
    prefix_sharing: bool = Field(
        default=True, description="Requests of a batch that start with the same tokens (a question and its answer "
                                  "options, prompts under one chat template or system prompt, whole texts that "
                                  "start alike) run those tokens through the model once; the results equal the "
                                  "unshared ones up to float rounding. false: every request runs whole.")


#: How far (nats per continuation token) a token tree's log-likelihood may be from the plain
#: path's on the batch that checks it: float32 rounding, not a different computation. The
#: plain path's own rounding reaches 9.1e-4 nats on CrowS-Pairs sentences of up to 48 tokens on
#: SmolLM2-135M (against float64; the tree's 9.1e-5: ``bench/tree_vs_float64.py``), so a flat
#: 1e-4 would refuse sound trees.
TREE_CHECK_TOLERANCE = 1e-4
#: How many rows of the first tree batch are also run plain to check the tree on this model.
TREE_CHECK_ROWS = 8


class HFTokenRules:
    """How requests become token ids with a Hugging Face tokenizer (lm-evaluation-harness 0.4
    rules), shared by the backends that hold one (:class:`HFModel`, the vLLM backend). Needs
    ``tokenizer``, ``prefix_token_id``, ``has_chat_template``, ``max_length`` and ``_encodings``."""

    tokenizer: Any
    prefix_token_id: int
    has_chat_template: bool
    max_length: int
    _encodings: dict[str, Any]

    def _tok_encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        if add_special_tokens is None and self.tokenizer.bos_token and text.startswith(self.tokenizer.bos_token):
            kwargs["add_special_tokens"] = False
        return list(self.tokenizer.encode(text, **kwargs))

    def _chat_text(self, user: str, system: str | None = None) -> str | None:
        if not self.has_chat_template:
            return None
        from trustslm.models.chat_guard import bounded_render

        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}
        ]
        return bounded_render(lambda: self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False))

    def encode_loglikelihood(self, r: LoglikelihoodRequest) -> tuple[list[int], list[int]]:
        key = r.key()
        if key in self._encodings:
            return self._encodings[key]
        context, continuation = r.context, r.continuation
        chat_text = self._chat_text(context) if r.chat else None
        if chat_text is not None:
            context_enc = self._tok_encode(chat_text, add_special_tokens=False)
            whole = self._tok_encode(chat_text + continuation, add_special_tokens=False)
            enc = (context_enc, whole[len(context_enc):])
        elif context == "":
            cont = self._tok_encode(continuation, add_special_tokens=False)
            if cont and cont[0] == self.prefix_token_id:
                enc = (cont[:1], cont[1:])
            else:
                enc = ([self.prefix_token_id], cont)
        else:
            n_spaces = len(context) - len(context.rstrip())
            if n_spaces:
                continuation = context[-n_spaces:] + continuation
                context = context[:-n_spaces]
            whole = self._tok_encode(context + continuation)
            context_enc = self._tok_encode(context)
            enc = (context_enc, whole[len(context_enc):])
        self._encodings[key] = enc
        return enc

    def encode_prompt(self, r: GenerateRequest) -> list[int]:
        key = r.key()
        if key in self._encodings:
            return self._encodings[key]
        chat_text = self._chat_text(r.prompt, r.system_prompt) if r.chat else None
        if chat_text is not None:
            enc = self._tok_encode(chat_text, add_special_tokens=False)
        else:
            prompt = f"{r.system_prompt}\n\n{r.prompt}" if r.system_prompt else r.prompt
            enc = self._tok_encode(prompt)
        if not enc or (r.add_bos and enc[0] != self.prefix_token_id):
            enc = [self.prefix_token_id] + enc  # an empty prompt conditions on BOS, like an empty context
        enc = enc[-(self.max_length - r.max_new_tokens):] if self.max_length > r.max_new_tokens else enc
        self._encodings[key] = enc
        return enc

    def request_length(self, request: Request) -> int:
        if isinstance(request, TokenScoresRequest):
            request = LoglikelihoodRequest("", request.text)
        if isinstance(request, LoglikelihoodRequest):
            ctx, cont = self.encode_loglikelihood(request)
            return len(ctx) + len(cont)
        return len(self.encode_prompt(request))

    def split_tokens(self, text: str, k: int) -> tuple[str, str]:
        """Cut ``text`` after its first ``k`` tokens, at the character offset the tokenizer
        reports, so head + rest == text exactly."""
        if k <= 0:
            return "", text
        try:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets = enc["offset_mapping"]
        except (NotImplementedError, TypeError, ValueError):  # slow tokenizers have no offsets
            ids = self._tok_encode(text, add_special_tokens=False)
            head = self.tokenizer.decode(ids[:k])
            return head, text[len(head):] if text.startswith(head) else self.tokenizer.decode(ids[k:])
        if len(offsets) <= k:
            return text, ""
        cut = offsets[k][0]
        return text[:cut], text[cut:]


class HFModel(HFTokenRules, ModelAdapter):
    """A causal LM loaded with transformers from a checked :class:`ModelLayout`."""

    backend = "transformers"
    Options = HFOptions

    def __init__(
        self,
        layout: ModelLayout,
        *,
        spec: str,
        files: list[FileRecord],
        model_hash: str,
        source: FileRecord | None = None,
        name: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        dtype: str = "float32",
        device: str = "cpu",
        auto_batch: bool = False,
        prefix_sharing: bool = True,
    ):
        import torch
        import transformers

        self.layout = layout
        self._versions = {"transformers": transformers.__version__, "torch": torch.__version__}
        self._spec, self._files, self._hash, self._source = spec, files, model_hash, source
        self._name = name or (layout.gguf_file.stem if layout.gguf_file else layout.folder.name)
        self.batch_size = batch_size
        #: ``batch_size=auto``: a batch that runs out of GPU memory is halved (:class:`BatchTooLarge`).
        self.auto_batch = auto_batch
        #: Run the prefix that requests of a batch share once (log-likelihoods: :mod:`~trustslm.models.prefix_share`;
        #: generation: :mod:`~trustslm.models.decode`); not part of the identity (the results are the same).
        #: Turned off when the model's cache can't be shared.
        self.prefix_sharing = prefix_sharing
        self._generation_cache_shareable: bool | None = None
        #: Whether token trees (:mod:`~trustslm.models.prefix_tree`) give the plain path's results on
        #: this model: None until the first tree batch, whose first rows are also run plain and compared.
        self._tree_checked: bool | None = None
        self._attention_tokens: float | None = None
        self.device = torch.device(device)
        self.tokenizer, self.model = _load_checked(layout, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self._dtype = dtype

        tok = self.tokenizer
        eos = set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (gen_eos, tok.eos_token_id):
            if isinstance(value, int):
                eos.add(value)
            elif isinstance(value, (list, tuple)):
                eos.update(int(v) for v in value)
        self.eos_ids = sorted(eos)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (self.eos_ids or [0])[0]
        self.prefix_token_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.max_length = _max_length(self.model.config, tok)
        #: Why the model's chat template is not used (it failed on a plain conversation), or None.
        self.chat_template_problem: str | None = None
        self.has_chat_template = bool(getattr(tok, "chat_template", None)) and self._template_works()
        caps = {LOGLIKELIHOOD, GENERATE, TOKEN_LOGPROBS, VOCAB_STATS, TOKENIZER}
        if self.has_chat_template:
            caps.add(CHAT_TEMPLATE)
        self.capabilities = frozenset(caps)
        self._encodings: dict[str, Any] = {}
        #: When set to a list, every batch's model inputs are appended to it (for ``bench/``).
        self.recorder: list[dict] | None = None
        #: Decoding-time mitigations (:class:`~trustslm.mitigations.wrapped.Steering`), applied in order
        #: to the next-token logits of generation (before sampling) and of scoring. A tuple: an
        #: adapter is never steered after it is made; :meth:`with_steering` makes a steered copy.
        self.steering: tuple[Any, ...] = ()

    def _template_works(self) -> bool:
        """Render the chat template once, within its bounds, on a fixed conversation: a template
        that fails there (raises, includes, never ends) is not used, with a warning, so the probes
        that need it are skipped and the audit goes on."""
        import warnings

        from trustslm.models.chat_guard import PROBE_CONVERSATION, ChatTemplateError, bounded_render

        try:
            bounded_render(lambda: self.tokenizer.apply_chat_template(
                list(PROBE_CONVERSATION), add_generation_prompt=True, tokenize=False))
        except ChatTemplateError as exc:
            self.chat_template_problem = str(exc)
            warnings.warn(f"{self._name}: {exc}; the model is audited without its chat template", stacklevel=2)
            return False
        return True

    def with_steering(self, steering: Any) -> HFModel:
        """A new adapter sharing this one's weights and tokenizer, with ``steering`` applied after
        this one's; this adapter is not changed. Only a wrapper that records the steering in its
        identity (:class:`~trustslm.mitigations.wrapped.SteeredModel`) should hold the copy."""
        new = copy.copy(self)
        new.steering = (*self.steering, steering)
        new.recorder = None
        return new

    @classmethod
    def create(cls, text: str, options: HFOptions) -> HFModel:
        """A Hugging Face folder, a GGUF file or folder, the demo model, or (if allowed) a hub id."""
        from trustslm.core.resources import cache_dir as default_cache_dir
        from trustslm.models import demo
        from trustslm.models.validate import inspect_model_path

        device, dtype = resolve_device(options.device, options.dtype)
        cache = Path(options.cache_dir) if options.cache_dir is not None else default_cache_dir()
        source = None
        name = None
        if demo.is_demo_name(text) and not Path(text).exists():
            folder, source = demo.ensure_demo_model(cache)
            path, name = folder, demo.DEMO_NAME
        else:
            path = Path(text).expanduser()
            if not path.exists() and _HUB_ID.match(text):
                if not options.allow_download:
                    raise ModelFormatError(
                        f"model path does not exist: {text} (to fetch it from the Hugging Face hub, "
                        "pass --allow-download)"
                    )
                path, name = _download(text), text
        layout = inspect_model_path(path, allow_pickle=options.allow_pickle)
        files, model_hash = describe_files(layout, memo_dir=cache)
        return cls(
            layout, spec=text, files=files, model_hash=model_hash, source=source, name=name,
            batch_size=options.fixed_batch_size(AUTO_BATCH_START if device.startswith("cuda") else DEFAULT_BATCH_SIZE),
            dtype=dtype, device=device, auto_batch=options.batch_size == "auto",
            prefix_sharing=options.prefix_sharing,
        )

    # -- identity ---------------------------------------------------------------------------
    def info(self) -> ModelInfo:
        n_params = sum(p.numel() for p in self.model.parameters())
        return ModelInfo(
            spec=self._spec,
            kind=self.layout.kind,  # type: ignore[arg-type]
            name=self._name,
            path=str(self.layout.folder),
            files=self._files,
            source=self._source,
            hash=self._hash,
            parameters=int(n_params),
            dtype=self._dtype,
            capabilities=sorted(self.capabilities),
            chat_template=self.has_chat_template,
            backend=self.backend,
            backend_versions=self._versions,
            device=self.device.type,
            chat_template_sha256=_template_sha256(self.tokenizer.chat_template) if self.has_chat_template else None,
        ).with_identity()

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        self._encodings.clear()

    # -- batches ----------------------------------------------------------------------------
    def _scoring_rows(self, batch: list[LoglikelihoodRequest]) -> list[tuple[list[int], list[int]]]:
        """Each request's (input ids, continuation ids): (context + continuation)[:-1], cut on
        the left to the model's length, and the continuation tokens it predicts."""
        rows = []
        for r in batch:
            ctx, cont = self.encode_loglikelihood(r)
            whole = (ctx + cont)[-(self.max_length + 1):]
            rows.append((whole[:-1], cont[-(len(whole) - 1):] if cont else []))
        return rows

    def _scoring_forward(self, batch: list[LoglikelihoodRequest], kind: str):
        """Right-padded forward pass over (context + continuation)[:-1]; returns the rows
        (input ids, continuation ids) and the logits."""
        rows = self._scoring_rows(batch)
        return rows, self._rows_logits(rows, kind)

    def _continuation_spans(self, rows: list[tuple[list[int], list[int]]], kind: str) -> list[Any]:
        """Each row's continuation logits (None for an empty continuation), from one right-padded
        forward pass that projects onto the vocabulary only the positions some row scores (the
        columns from the earliest continuation start to the latest end, ``logits_to_keep``): the
        whole-sequence logits of a 262k-word vocabulary cost more than the model itself. The
        full logits are kept where steering transforms them (it sees whole rows) or where the
        model's forward can't keep positions."""
        import torch

        from trustslm.models.prefix_share import forward_names

        scored = [(len(inp), len(cont)) for inp, cont in rows if cont]
        start, keep = 0, None
        if scored and not self.steering and forward_names(self.model)[1] == "logits_to_keep":
            start = min(n - c for n, c in scored)
            keep = torch.arange(start, max(n for n, _ in scored), device=self.device)
        logits = self._rows_logits(rows, kind, keep=keep)
        if keep is None or logits.shape[1] != len(keep):  # a forward that ignores the argument
            start = 0  # returns every position: index those
        return [logits[i, len(inp) - len(cont) - start : len(inp) - start] if cont else None
                for i, (inp, cont) in enumerate(rows)]

    def _rows_logits(self, rows: list[tuple[list[int], list[int]]], kind: str, keep: Any = None):
        """The logits of one right-padded forward pass over the rows' input ids (only at the
        positions ``keep``, a 1-D tensor, when given)."""
        import torch

        width = max(1, max(len(inp) for inp, _ in rows))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (inp, _) in enumerate(rows):
            ids[i, : len(inp)] = torch.tensor(inp, dtype=torch.long)
            mask[i, : len(inp)] = 1
        if self.recorder is not None:
            self.recorder.append({"kind": kind, "input_ids": ids, "attention_mask": mask,
                                  "spans": [(len(inp), cont) for inp, cont in rows]})
        with torch.inference_mode(), self._memory_guard():
            ids, mask = ids.to(self.device), mask.to(self.device)
            logits = self.model(input_ids=ids, attention_mask=mask,
                                **({} if keep is None else {"logits_to_keep": keep})).logits
            for steering in self.steering:
                logits = steering.transform_logits(ids, mask, logits)
        return logits

    @contextlib.contextmanager
    def _memory_guard(self):
        """Out of accelerator memory: with ``batch_size=auto``, :class:`BatchTooLarge` (the batch
        is halved and run again); otherwise a one-line error naming the fix."""
        try:
            yield
        except Exception as exc:
            if not out_of_memory(exc):
                raise
            import torch

            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if self.auto_batch:
                raise BatchTooLarge(str(exc)) from None
            raise BackendError(f"out of memory on {self.device} at batch size {self.batch_size}: "
                               "use --batch-size auto or a smaller one") from None

    def _token_scores_batch(self, batch: list[TokenScoresRequest]) -> list[TokenScoresResult]:
        import torch

        rows, logits = self._scoring_forward([LoglikelihoodRequest("", r.text) for r in batch], "token_scores")
        out = []
        for i, (inp, cont) in enumerate(rows):
            n, c = len(inp), len(cont)
            if not c:
                out.append(TokenScoresResult(logprobs=[], mu=[], sigma=[]))
                continue
            logprobs = torch.log_softmax(logits[i, n - c : n].float(), dim=-1)
            probs = logprobs.exp()
            mu = (probs * logprobs).sum(dim=-1)
            sigma = ((probs * logprobs.square()).sum(dim=-1) - mu.square()).clamp(min=0).sqrt()
            target = torch.tensor(cont, dtype=torch.long, device=logprobs.device)
            token_lp = logprobs.gather(1, target[:, None])[:, 0]
            out.append(TokenScoresResult(logprobs=token_lp.tolist(), mu=mu.tolist(), sigma=sigma.tolist()))
        return out

    def _shared_prefix_spans(self, rows: list[tuple[list[int], list[int]]]) -> list[Any] | None:
        """Each row's continuation logits (None for an empty continuation) with the prefixes
        the batch's requests share run once (:mod:`trustslm.models.prefix_share`); None when
        nothing is shared (sharing off, steering or a recorder set, no group, sharing would not
        pay, or a model whose cache can't be shared) and the plain path is to run."""
        from trustslm.models.prefix_share import plan_shared_batch, shared_prefix_logits

        if not self._shares():
            return None  # steering and the recorder see whole right-padded rows
        scored = [i for i, (_, cont) in enumerate(rows) if cont]
        plan = plan_shared_batch([rows[i] for i in scored])
        if plan is None:
            return None
        inside, groups, outside = [scored[k] for k in plan[0]], plan[1], [scored[k] for k in plan[2]]
        shared = shared_prefix_logits(self.model, [rows[i] for i in inside], groups, pad_id=self.pad_id,
                                      max_length=self.max_length, device=self.device, guard=self._memory_guard)
        if shared is None:
            self.prefix_sharing = False
            return None
        logits, prefix = shared
        spans: list[Any] = [None] * len(rows)
        for k, i in enumerate(inside):
            n, c = len(rows[i][0]) - prefix[k], len(rows[i][1])
            spans[i] = logits[k, n - c : n]
        if outside:
            for i, span in zip(outside, self._continuation_spans([rows[i] for i in outside], "loglikelihood")):
                spans[i] = span
        return spans

    def _shares(self) -> bool:
        """Whether prefixes may be shared now (the option on, no steering or recorder, which see
        whole right-padded rows)."""
        return self.prefix_sharing and not self.steering and self.recorder is None

    def batch_order(self, requests: Sequence[Request]) -> list[int]:
        """As the base orders them, except whole texts (log-likelihoods after an empty context)
        when prefixes are shared: after the rest, longest length band first (lengths 2^k to
        2^(k+1) - 1 tokens), then in token order, so texts that start alike are neighbours for
        :mod:`~trustslm.models.prefix_tree`. Each request's place depends on it alone, so a
        resumed call still forms the batches the whole call would have formed."""
        if not self._shares() or not any(isinstance(r, LoglikelihoodRequest) and self._whole_text(r) for r in requests):
            return super().batch_order(requests)
        lengths = [self.request_length(r) for r in requests]

        def sort_key(i: int) -> tuple:
            r = requests[i]
            if isinstance(r, LoglikelihoodRequest) and self._whole_text(r):
                ctx, cont = self.encode_loglikelihood(r)
                return (1, -lengths[i].bit_length(), ctx + cont, r.key())
            return (0, -lengths[i], [], r.key())

        return sorted(range(len(requests)), key=sort_key)

    @staticmethod
    def _whole_text(r: LoglikelihoodRequest) -> bool:
        return r.context == "" and not r.chat

    def _tree_results(self, rows: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]] | None:
        """Each row's (log-probability, greedy) from a token tree over the rows (every
        continuation non-empty), or None when the tree would not pay (see
        :mod:`~trustslm.models.prefix_tree`) or gives other results than the plain path on this
        model: the first :data:`TREE_CHECK_ROWS` rows of its first tree batch are also run plain
        and compared (within :data:`TREE_CHECK_TOLERANCE` per continuation token, greedy alike),
        and a model that fails that, or can't take a 4-D mask, keeps the plain path; so does a
        batch deeper than the model's sliding window, or a model that soft-caps or scales its
        logits (:func:`~trustslm.models.prefix_tree.model_takes_trees`)."""
        from trustslm.models.prefix_share import MAX_SHARED_COST
        from trustslm.models.prefix_tree import (
            MAX_TREE_NODES,
            attention_tokens,
            model_takes_trees,
            plan_trees,
            tree_loglikelihoods,
        )

        if self._tree_checked is False or len(rows) < 2:
            return None
        if self._attention_tokens is None:
            self._attention_tokens = attention_tokens(self.model)
        trees, cost = plan_trees([inp for inp, _ in rows], self._attention_tokens)
        plain = len(rows) * max(len(inp) for inp, _ in rows)
        if max(len(tree.tokens) for _, tree in trees) > MAX_TREE_NODES or cost > MAX_SHARED_COST * plain:
            return None
        if not model_takes_trees(self.model, trees):
            return None
        try:
            got = tree_loglikelihoods(self.model, rows, trees, device=self.device, guard=self._memory_guard)
        except (BatchTooLarge, BackendError):
            raise
        except Exception:  # a model that can't take a 4-D mask or position ids
            self._tree_checked = False
            return None
        if self._tree_checked is None:
            check = rows[:TREE_CHECK_ROWS]
            self._tree_checked = all(abs(g[0] - w[0]) <= TREE_CHECK_TOLERANCE * len(cont) and g[1] == w[1]
                                     for g, w, (_, cont) in zip(got, self._plain_results(check), check))
            if not self._tree_checked:
                return None
        return got

    def _plain_results(self, rows: list[tuple[list[int], list[int]]],
                       spans: list[Any] | None = None) -> list[tuple[float, bool]]:
        """Each row's (log-probability, greedy) from its continuation logits (``spans``, else one
        plain forward pass), every continuation non-empty."""
        import torch

        if spans is None:
            spans = self._continuation_spans(rows, "loglikelihood")
        out = []
        for (_, cont), span in zip(rows, spans):
            logprobs = torch.log_softmax(span.float(), dim=-1)
            target = torch.tensor(cont, dtype=torch.long, device=logprobs.device)
            lp = logprobs.gather(1, target[:, None]).sum().item()
            out.append((float(lp), bool((logprobs.argmax(dim=-1) == target).all())))
        return out

    def _loglikelihood_batch(self, batch: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        rows = self._scoring_rows(batch)
        scored = [i for i, (_, cont) in enumerate(rows) if cont]
        rows_scored = [rows[i] for i in scored]
        results: list[tuple[float, bool]] | None = None
        if rows_scored:
            spans = self._shared_prefix_spans(rows)
            if spans is None and self._shares():
                results = self._tree_results(rows_scored)
            if results is None:
                if spans is None:
                    spans = self._continuation_spans(rows, "loglikelihood")
                results = self._plain_results(rows_scored, [spans[i] for i in scored])
        out = [LoglikelihoodResult(logprob=0.0, is_greedy=True, n_tokens=0) for _ in rows]
        for i, (lp, greedy) in zip(scored, results or []):
            out[i] = LoglikelihoodResult(logprob=lp, is_greedy=greedy, n_tokens=len(rows[i][1]))
        return out

    def _shares_generation_prefixes(self) -> bool:
        """Whether generation batches run the prefixes their prompts share once (option
        ``prefix_sharing``; not under steering or a recorder, which see whole rows; not for a
        model whose cache can't be gathered, found once on a one-token pass)."""
        if not self._shares():
            return False
        if self._generation_cache_shareable is None:
            import torch

            from trustslm.models.prefix_share import cache_is_shareable, cache_of

            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([[self.prefix_token_id]], device=self.device), use_cache=True)
            self._generation_cache_shareable = cache_is_shareable(cache_of(out))
        return self._generation_cache_shareable

    def _generate_batch(self, batch: list[GenerateRequest]) -> list[GenerationResult]:
        import torch

        from trustslm.models.decode import decode_batch

        prompts = [self.encode_prompt(r) for r in batch]
        processors: list[Any] = []
        for steering in self.steering:  # steering changes the distribution before a token is drawn
            processors.extend(steering.processors(batch))
        if any(not r.greedy for r in batch):
            processors.append(PerRowSampler(batch))
        decode = self.tokenizer.decode

        def stopped(i: int, tokens: list[int]) -> bool:  # a stop string ends the row's decoding
            stop = batch[i].stop
            return bool(stop) and any(s in decode(tokens, skip_special_tokens=True) for s in stop)

        with torch.inference_mode(), self._memory_guard():
            decoded = decode_batch(self.model, prompts, max_new_tokens=[r.max_new_tokens for r in batch],
                                   pad_id=self.pad_id, eos_ids=self.eos_ids, processors=processors,
                                   stopped=stopped, device=self.device, recorder=self.recorder,
                                   share_prefixes=self._shares_generation_prefixes())
        if self.recorder is not None:
            self.recorder[-1]["requests"] = list(batch)
        out = []
        for r, (new, reason) in zip(batch, decoded):
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            text, stopped_at = apply_stop(text, r.stop)
            finish = "stop" if stopped_at or reason == "eos" else "length"
            out.append(GenerationResult(text=text, n_tokens=len(new), finish_reason=finish))
        return out


class PerRowSampler:
    """A logits processor that samples each row with its own generator.

    transformers samples a whole batch from the global RNG, so a row's sample would depend on
    its batch. Here each row gets a ``torch.Generator`` seeded from its request; the scores are
    filtered with transformers' own temperature, top-k and top-p warpers (once per group of rows
    with the same settings), one token per row is drawn by inverse-CDF sampling from a uniform
    number taken from the row's generator (tokens the warpers removed have probability 0 and
    can't be drawn; top-p through :class:`NucleusFilter`, which keeps the same tokens without
    sorting the vocabulary). Greedy rows (temperature 0) keep their argmax.

    :meth:`choose` gives the drawn tokens; as a logits processor (``__call__``) every other token
    is set to -inf, so greedy decoding then takes the drawn token. Under top-p, :meth:`choose`
    draws among the kept tokens only (the nucleus, in vocabulary order): the cumulative
    distribution over the whole vocabulary is flat between them, so the token is the one the
    whole-vocabulary draw picks, up to float rounding of the normalising sum, without a softmax,
    a cumulative sum and a mask over the whole vocabulary for every row at every step
    (``bench/generation_replay.py --sampled-only`` times the loop's own work).
    """

    def __init__(self, requests: Sequence[GenerateRequest]):
        import torch
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper

        self.generators: list[Any] = []
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            if r.greedy:
                self.generators.append(None)
                continue
            self.generators.append(torch.Generator().manual_seed(request_seed(r)))
            groups.setdefault((r.temperature, r.top_k, r.top_p), []).append(i)
        self.groups = []
        for (temperature, top_k, top_p), rows in groups.items():
            warpers = [TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []
            if top_k:
                warpers.append(TopKLogitsWarper(top_k))
            self.groups.append((rows, warpers, NucleusFilter(top_p) if top_p < 1.0 else None))

    def __call__(self, input_ids, scores):
        import torch

        choice = self.choose(input_ids, scores)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0], device=scores.device), choice.to(scores.device)] = 0.0
        return out

    def choose(self, input_ids, scores, rows=None):
        """The token of each row of ``scores`` (a CPU LongTensor): greedy rows their argmax, the
        others a draw. ``rows``: the batch rows that ``scores``' rows are, in order (default
        all): rows that have finished are left out, and their generators draw no more."""
        import torch

        at = {b: k for k, b in enumerate(range(scores.shape[0]) if rows is None else rows)}
        choice = torch.zeros(scores.shape[0], dtype=torch.long)
        greedy = torch.tensor([k for b, k in at.items() if self.generators[b] is None], dtype=torch.long)
        if len(greedy):
            choice[greedy] = scores[greedy.to(scores.device)].argmax(dim=-1).cpu()
        for members, warpers, nucleus in self.groups:
            batch_rows = [b for b in members if b in at]
            if not batch_rows:
                continue
            mine = torch.tensor([at[b] for b in batch_rows], dtype=torch.long)
            whole = len(mine) == scores.shape[0]  # every row of ``scores``: no copy of them
            s = scores.float() if whole else scores[mine.to(scores.device)].float()
            for w in warpers:  # transformers' temperature and top-k warpers don't read the ids
                s = w(input_ids, s)
            u = torch.cat([torch.rand(1, generator=self.generators[b]) for b in batch_rows])
            if nucleus is None:
                choice[mine] = _inverse_cdf(s, u)
                continue
            spans, left = nucleus.spans(s)
            for part, index, kept in spans:  # draw among each row's kept tokens, in vocabulary order
                index, order = index.sort(dim=-1)
                kept = kept.gather(-1, order)
                picked = _inverse_cdf(s[part].gather(-1, index).masked_fill(~kept, float("-inf")), u[part.cpu()])
                choice[mine[part.cpu()]] = index.gather(-1, picked.to(index.device)[:, None])[:, 0].cpu()
            if len(left):  # a flat row: the whole vocabulary
                choice[mine[left.cpu()]] = _inverse_cdf(nucleus.wide(s[left]), u[left.cpu()])
        return choice


def _inverse_cdf(scores: Any, u: Any) -> Any:
    """For each row, the token at which the cumulative softmax of ``scores`` (in their order)
    passes ``u`` (one uniform number per row) of its total: a draw from that distribution."""
    import torch

    cdf = torch.softmax(scores, dim=-1).cumsum(dim=-1).cpu()
    picked = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]
    return picked.clamp(max=cdf.shape[1] - 1)


class NucleusFilter:
    """The tokens transformers' ``TopPLogitsWarper`` keeps, found without sorting the vocabulary.

    The warper sorts every row (49,152 tokens for SmolLM2) at every step, which was a quarter of
    the time of sampled generation on a CPU. A token is kept when the probability of the tokens
    ranked above it is below ``top_p`` (the warper's "ascending cumulative probability above
    ``1 - top_p``"), so when the ``k`` most probable tokens hold at least ``top_p`` the kept
    tokens are among them: this filter takes ``torch.topk`` with k = 64, then 1,024 for the rows
    not yet covered, and the warper itself for any row still left (a very flat distribution).
    The kept tokens are the warper's (tested), up to float rounding of a cumulative sum that
    lands on ``top_p`` itself."""

    def __init__(self, top_p: float):
        self.top_p = float(top_p)

    def spans(self, scores: Any) -> tuple[list[tuple[Any, Any, Any]], Any]:
        """``([(rows, index, kept), ...], left)``: for the rows whose nucleus lies within their
        top 64 (then 1,024) tokens, those tokens' ids and whether each is kept; ``left``, the rows
        whose nucleus is wider (the warper's work)."""
        import torch

        probs = torch.softmax(scores.float(), dim=-1)
        pending = torch.arange(scores.shape[0], device=scores.device)
        spans = []
        for k in (64, 1024):
            if not len(pending):
                break
            rows_probs = probs if len(pending) == len(probs) else probs[pending]  # no copy in the first round
            values, index = rows_probs.topk(min(k, scores.shape[-1]), dim=-1)
            covered = values.sum(dim=-1) >= self.top_p
            if covered.any():
                kept = (values[covered].cumsum(dim=-1) - values[covered]) < self.top_p
                spans.append((pending[covered], index[covered], kept))
            pending = pending[~covered]
        return spans, pending

    def wide(self, scores: Any) -> Any:
        """Rows whose nucleus is wider than 1,024 tokens, filtered by transformers' own (sorting)
        top-p warper, which reads no input ids."""
        from transformers import TopPLogitsWarper

        return TopPLogitsWarper(self.top_p)(None, scores)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        spans, left = self.spans(scores)
        keep = torch.zeros_like(scores, dtype=torch.bool)
        for rows, index, kept in spans:
            keep[rows[:, None], index] = kept
        out = scores.masked_fill(~keep, float("-inf"))
        if len(left):
            out[left] = self.wide(scores[left])
        return out


def _template_sha256(template: Any) -> str:
    """sha256 of a chat template's text (of the canonical JSON of a tokenizer's named templates)."""
    return sha256_text(template) if isinstance(template, str) else sha256_json(template)


#: ``batch_size=auto`` on a GPU starts here and halves on out-of-memory; on a CPU it is the default.
AUTO_BATCH_START = 256


def resolve_device(device: str, dtype: str) -> tuple[str, str]:
    """``device`` and ``dtype`` with ``auto`` resolved (a CUDA GPU, else mps, else the CPU; bfloat16
    on a GPU that has it, else float16, float32 on a CPU), checked to exist here: a device torch
    doesn't have is a one-line ``BadInputError``."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    kind = device.partition(":")[0]
    if kind == "cuda" and not torch.cuda.is_available() or kind == "mps" and not torch.backends.mps.is_available():
        raise BadInputError(f"device {device!r} is not available here")
    if dtype == "auto":
        if kind == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float16" if kind == "mps" else "float32"
    return device, dtype


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch running out of accelerator memory."""
    import torch

    return isinstance(exc, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError))


def _max_length(config: Any, tokenizer: Any) -> int:
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 1_000_000:
        return value
    return 2048


def _load_checked(layout: ModelLayout, *, dtype: Any) -> tuple[Any, Any]:
    """The tokenizer and causal LM, loaded from a staging folder holding only the checked files
    (:mod:`trustslm.models.staging`), with no remote code and no download. Any failure of the
    loaders on this untrusted input is one line naming the model folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trustslm.models.staging import hide_staging, stage_layout

    with stage_layout(layout) as where:
        common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
        if layout.gguf_file is not None:  # an absolute path: transformers tries a relative one in the CWD first
            common["gguf_file"] = str(where / layout.gguf_file.name)
        model_kwargs: dict[str, Any] = {"dtype": dtype}
        if layout.kind == "hf":
            model_kwargs["use_safetensors"] = not layout.uses_pickle
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(where), **common)
            model = AutoModelForCausalLM.from_pretrained(str(where), **common, **model_kwargs)
        except Exception as exc:  # the loaders raise many types on hostile or broken files
            first = hide_staging((str(exc).strip().splitlines() or [type(exc).__name__])[0], where, layout.folder)
            raise ModelFormatError(f"could not load a causal language model from {layout.folder}: {first}") from None
    _name_after(layout.folder, tokenizer, model)
    return tokenizer, model


def _name_after(folder: Path, *objects: Any) -> None:
    """Point the loaded objects' ``name_or_path`` at the model folder, not the removed staging folder."""
    for obj in (*objects, getattr(objects[-1], "config", None)):
        try:
            obj.name_or_path = str(folder)
        except (AttributeError, TypeError):
            pass


def describe_files(layout: ModelLayout, *, memo_dir: Path | None) -> tuple[list[FileRecord], str]:
    """sha256 of every file the model is loaded from (under the name it is loaded by), and one
    hash over them all: a change to any loaded file changes the hash."""
    from trustslm.core.hashing import sha256_file, sha256_json

    records = []
    for rel, f in sorted(layout.load_names().items()):  # each under the name it is loaded by
        records.append(FileRecord(path=rel, sha256=sha256_file(f, memo_dir=memo_dir), size=f.stat().st_size))
    model_hash = sha256_json([[r.path, r.sha256] for r in records])
    return records, model_hash


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: Files fetched from the hub: never pickles, never code.
HUB_ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW_PATTERNS))
    except Exception as exc:  # network, auth, missing repo: all one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInputError(f"could not download {repo_id} from the Hugging Face hub: {first}") from None
