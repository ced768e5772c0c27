"""A Hugging Face model folder run by vLLM in this process, on a GPU (``--backend vllm``,
``vllm:FOLDER``; the ``vllm`` package, a CUDA wheel).

**Unverified**: no GPU was available where this was written; the module imports without vLLM,
and its test (tests/test_vllm_backend.py) runs only where CUDA and vLLM are present.

* Requests are encoded by the same rules as :class:`~trustslm.models.hf.HFModel`
  (:class:`~trustslm.models.hf.HFTokenRules`, with the folder's tokenizer loaded by transformers
  with no remote code), and given to vLLM as token ids, so the two backends score the same tokens.
* Log-likelihoods from ``prompt_logprobs``: vLLM returns, at every prompt position, the
  log-probability of the actual token and its rank; ``is_greedy`` is rank 1 at every
  continuation position. Prefix caching is on, so a shared prefix is computed once.
* Generation with ``SamplingParams``: the request's temperature, top-k, top-p and a per-request
  seed (:func:`~trustslm.models.base.request_seed`), so a sample does not depend on its batch.
* No ``vocab_stats`` (vLLM does not return the whole distribution).

The folder is checked like any Hugging Face folder (:mod:`trustslm.models.validate`), hashed, and
loaded from the private staging folder that holds exactly the hashed files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from trustslm.core.errors import BadInputError, ModelFormatError
from trustslm.core.types import FileRecord, ModelInfo
from trustslm.models.base import (
    CHAT_TEMPLATE,
    GENERATE,
    LOGLIKELIHOOD,
    TOKEN_LOGPROBS,
    TOKENIZER,
    BackendOptions,
    GenerateRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelAdapter,
    TokenScoresRequest,
    TokenScoresResult,
    apply_stop,
    request_seed,
)
from trustslm.models.hf import HFTokenRules


class VLLMOptions(BackendOptions):
    """Options of a model run by vLLM (``--model-arg KEY=VALUE``)."""

    cache_dir: Path | None = Field(default=None, description="Where file hashes are remembered.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(default="auto", description="vLLM's dtype.")
    device: str = Field(default="cuda", pattern=r"^(auto|cuda)$", description="vLLM runs on a CUDA GPU.")
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1, description="Share of GPU memory vLLM may take.")
    max_model_len: int | None = Field(default=None, ge=16, description="Context window (default: the model's).")
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs one replica spans.")


class VLLMModel(HFTokenRules, ModelAdapter):
    """A causal LM run by vLLM; batches are handed to vLLM whole (it schedules them itself)."""

    backend = "vllm"
    Options = VLLMOptions

    def __init__(self, folder: Path, *, spec: str, files: list[FileRecord], model_hash: str, options: VLLMOptions):
        try:
            import vllm
        except ImportError:
            raise BadInputError("the vllm backend needs vLLM on a CUDA machine: pip install vllm") from None
        from transformers import AutoTokenizer

        from trustslm.models.hf import _max_length
        from trustslm.models.staging import staged

        self._spec, self._files, self._hash, self._folder = spec, files, model_hash, folder
        self.batch_size = options.fixed_batch_size(256)
        self._options = options
        with staged({f.path: folder / f.path for f in files}, folder) as where:
            self.tokenizer = AutoTokenizer.from_pretrained(str(where), local_files_only=True, trust_remote_code=False)
            try:
                self.llm = vllm.LLM(
                    model=str(where), tokenizer=str(where), trust_remote_code=False, dtype=options.dtype, seed=0,
                    enable_prefix_caching=True, gpu_memory_utilization=options.gpu_memory_utilization,
                    max_model_len=options.max_model_len, tensor_parallel_size=options.tensor_parallel_size,
                )
            except Exception as exc:  # vLLM raises many types on a model it can't run
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(str(where), str(folder))
                raise ModelFormatError(f"vLLM could not load {folder}: {first}") from None
        self._versions = {"vllm": vllm.__version__}
        tok = self.tokenizer
        self.prefix_token_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        config = self.llm.llm_engine.model_config
        self.max_length = options.max_model_len or getattr(config, "max_model_len", None) or _max_length(config, tok)
        self._dtype = str(getattr(config, "dtype", options.dtype)).removeprefix("torch.")
        self.has_chat_template = bool(getattr(tok, "chat_template", None))
        caps = {LOGLIKELIHOOD, GENERATE, TOKEN_LOGPROBS, TOKENIZER} | ({CHAT_TEMPLATE} if self.has_chat_template else set())
        self.capabilities = frozenset(caps)
        self._encodings: dict[str, Any] = {}

    @classmethod
    def create(cls, text: str, options: VLLMOptions) -> VLLMModel:
        from trustslm.core.resources import cache_dir as default_cache_dir
        from trustslm.models.hf import describe_files
        from trustslm.models.validate import inspect_model_path

        layout = inspect_model_path(Path(text).expanduser())
        if layout.kind != "hf" or layout.uses_pickle:
            raise ModelFormatError(f"{text}: the vllm backend takes a Hugging Face folder with safetensors weights")
        cache = Path(options.cache_dir) if options.cache_dir is not None else default_cache_dir()
        files, model_hash = describe_files(layout, memo_dir=cache)
        return cls(layout.folder, spec=text, files=files, model_hash=model_hash, options=options)

    def info(self) -> ModelInfo:
        from trustslm.core.hashing import sha256_text

        o = self._options
        return ModelInfo(
            spec=self._spec, kind="hf", name=self._folder.name, path=str(self._folder), files=self._files,
            hash=self._hash, dtype=self._dtype, capabilities=sorted(self.capabilities),
            chat_template=self.has_chat_template, backend=self.backend, backend_versions=self._versions,
            backend_options={"max_model_len": self.max_length, "tensor_parallel_size": o.tensor_parallel_size},
            device="cuda",
            chat_template_sha256=sha256_text(self.tokenizer.chat_template) if self.has_chat_template else None,
        ).with_identity()

    def close(self) -> None:
        self.llm = None
        self._encodings.clear()

    # -- batches ----------------------------------------------------------------------------
    def _prompt_logprobs(self, token_lists: list[list[int]]) -> list[Any]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        prompts = [{"prompt_token_ids": t} for t in token_lists]
        return [o.prompt_logprobs for o in self.llm.generate(prompts, params, use_tqdm=False)]

    def _scored(self, requests: list[LoglikelihoodRequest]) -> list[tuple[list[float], list[bool]]]:
        """Per request: the continuation tokens' log-probs and whether each was the top token."""
        rows = []
        for r in requests:
            ctx, cont = self.encode_loglikelihood(r)
            whole = (ctx + cont)[-self.max_length:]
            rows.append((whole, cont[-(len(whole) - 1):] if cont else []))
        out = []
        for (whole, cont), positions in zip(rows, self._prompt_logprobs([w for w, _ in rows])):
            lps, tops = [], []
            for pos, token in zip(range(len(whole) - len(cont), len(whole)), cont):
                entry = positions[pos][token]
                lps.append(float(entry.logprob))
                tops.append(entry.rank == 1)
            out.append((lps, tops))
        return out

    def _loglikelihood_batch(self, batch: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        return [LoglikelihoodResult(logprob=float(sum(lps)), is_greedy=all(tops), n_tokens=len(lps))
                for lps, tops in self._scored(batch)]

    def _token_scores_batch(self, batch: list[TokenScoresRequest]) -> list[TokenScoresResult]:
        scored = self._scored([LoglikelihoodRequest("", r.text) for r in batch])
        return [TokenScoresResult(logprobs=lps) for lps, _ in scored]

    def _generate_batch(self, batch: list[GenerateRequest]) -> list[GenerationResult]:
        from vllm import SamplingParams

        params = [SamplingParams(max_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p,
                                 top_k=r.top_k if r.top_k > 0 else -1, seed=request_seed(r, bits=31),
                                 stop=list(r.stop) or None) for r in batch]
        prompts = [{"prompt_token_ids": self.encode_prompt(r)} for r in batch]
        out = []
        for r, done in zip(batch, self.llm.generate(prompts, params, use_tqdm=False)):
            completion = done.outputs[0]
            text, stopped = apply_stop(completion.text, r.stop)
            finish = "stop" if stopped or completion.finish_reason == "stop" else "length"
            out.append(GenerationResult(text=text, n_tokens=min(len(completion.token_ids), r.max_new_tokens),
                                        finish_reason=finish))
        return out
