"""``trustslm.finetune``: fine-tune a causal language model on texts, optionally with DP-SGD
(Opacus), optionally with LoRA (peft), planting canaries for the privacy probes.

What it writes into ``out``: the fine-tuned model (safetensors, tokenizer), ``training_record.json``
(epsilon as the accountant computed it, delta, noise multiplier, sample rate, steps, clipping norm,
accountant...), and when asked ``canaries.jsonl`` and the member / non-member split. ``trustslm
audit OUT`` then finds all of them and runs the privacy probes against ground truth.

Training sequences are ``BOS + text + EOS``, the form the audit's log-likelihoods condition on.
The loss of a sequence is the mean over its tokens; the batch loss is the mean over sequences,
so each sequence is one privacy unit for DP-SGD.
"""

from __future__ import annotations

import math
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trustslm._version import __version__
from trustslm.core.errors import BadInputError
from trustslm.core.hashing import sha256_file
from trustslm.core.textfiles import first_validation_error
from trustslm.data.canaries import CANARY_FILE, make_canaries, write_canaries
from trustslm.data.texts import load_texts
from trustslm.train.config import TrainConfig
from trustslm.train.record import TrainingRecord

#: members -> (texts to train on, a JSON-able record of what was done)
TextTransform = Callable[[list[str]], tuple[list[str], dict[str, Any]]]


def _config(config: TrainConfig | None, options: dict[str, Any]) -> TrainConfig:
    if config is not None and options:
        raise BadInputError("give either config or keyword options, not both")
    if config is not None:
        return config
    try:
        return TrainConfig(**options)
    except ValidationError as exc:
        loc, msg, kind = first_validation_error(exc)
        if kind == "extra_forbidden":
            raise BadInputError(f"unknown fine-tuning option {loc!r}") from None
        raise BadInputError(f"{('--' + loc.replace('_', '-') + ': ') if loc else ''}{msg}") from None


def finetune(model: Any, data: str | Path, *, out: str | Path, config: TrainConfig | None = None,
             progress: bool = True, transform: TextTransform | None = None, **options: Any) -> TrainingRecord:
    """Fine-tune ``model`` (a folder, a GGUF file or ``smollm2``) on ``data`` (``.txt``, one text
    per line, or JSONL with ``text``) and write the result to ``out``. Options: see
    :class:`~trustslm.train.config.TrainConfig`.

    ``transform`` (Python API, used by training-time mitigations) maps the member texts, after the
    member / non-member split and before the canaries are added, to the texts trained on, and
    returns what it did (saved in the record's ``data.transform``). The split and the canaries
    depend only on the data and the seed, so a mitigated run plants the same canaries and holds
    out the same texts as the plain run; ``members.txt`` keeps the texts before the transform."""
    import warnings

    cfg = _config(config, options)
    warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
    warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
    from importlib.util import find_spec

    for wanted, package in ((cfg.dp, "opacus"), (cfg.lora, "peft")):
        if wanted and find_spec(package) is None:
            raise BadInputError(f"{'--dp' if package == 'opacus' else '--lora'} needs {package}: "
                                "pip install 'trustslm[train]'")
    out = Path(out)
    check_out_folder(out)
    data_path = Path(data)
    items, _ = load_texts(data_path)
    rng = random.Random(cfg.seed)
    texts = [i["text"] for i in items]

    members, non_members = texts, []
    if cfg.holdout:
        order = list(range(len(texts)))
        rng.shuffle(order)
        n_out = int(round(len(texts) * cfg.holdout))
        if n_out < 1 or n_out >= len(texts):
            raise BadInputError(f"--holdout {cfg.holdout} leaves no texts on one side of {len(texts)}")
        held = set(order[:n_out])
        members = [t for i, t in enumerate(texts) if i not in held]
        non_members = [t for i, t in enumerate(texts) if i in held]

    canaries = make_canaries(cfg.insert_canaries, rng=rng, purpose="exposure", repeats=cfg.canary_repeats)
    canaries += make_canaries(cfg.insert_canaries, rng=rng, purpose="exposure", repeats=cfg.canary_repeats,
                              insert_probability=0.0, start=cfg.insert_canaries)  # never planted: the control
    canaries += make_canaries(cfg.audit_canaries, rng=rng, purpose="audit", repeats=1, insert_probability=0.5)
    train_texts = list(members)
    transform_record = None
    if transform is not None:
        train_texts, transform_record = transform(list(members))
        if not train_texts:
            raise BadInputError("the transform left no texts to train on")
    for c in canaries:
        if c["inserted"]:
            train_texts += [c["prefix"] + c["secret"]] * c["repeats"]
    rng.shuffle(train_texts)

    delta = cfg.delta
    if cfg.dp:
        n = len(train_texts)
        if delta is None:
            delta = min(1e-5, 1.0 / (10 * n))
        if delta >= 1.0 / n:
            raise BadInputError(f"--delta {delta:g} must be below 1/N = {1 / n:.3g} (N = {n} training texts)")

    from trustslm.models.resolve import load_model

    adapter = load_model(model)
    if not hasattr(adapter, "tokenizer"):
        raise BadInputError(f"{model} is not a Hugging Face causal language model that can be fine-tuned")
    started = time.perf_counter()
    trained = _train(adapter, train_texts, cfg, delta, progress)
    staging = _staging_folder(out)
    try:
        _save(adapter, trained, staging)
        record = _record(adapter, data_path, texts, train_texts, cfg, delta, trained, started)
        if transform_record is not None:
            record.data["transform"] = transform_record
        if canaries:
            write_canaries(staging / CANARY_FILE, canaries)
            record.canary_file = CANARY_FILE
        if non_members:
            (staging / "members.txt").write_text("".join(t + "\n" for t in members), encoding="utf-8")
            (staging / "non_members.txt").write_text("".join(t + "\n" for t in non_members), encoding="utf-8")
            record.members_file, record.non_members_file = "members.txt", "non_members.txt"
        record.save(staging)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # only what this run created: never ``out`` itself
        raise
    return record


def check_out_folder(out: Path) -> None:
    """``out`` must be a new path or an empty folder: a one-line error otherwise, before any data
    is read or any training starts (a file there is never overwritten, a folder never merged into)."""
    if out.is_symlink() and not out.exists():
        raise BadInputError(f"--out {out} is a dangling symbolic link")
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise BadInputError(f"output folder is not empty: {out}")


def _staging_folder(out: Path) -> Path:
    """A new folder beside ``out``, under a name nobody could have picked, that this run alone
    writes into (and removes on failure); made with the usual mode (the umask applies), since it
    becomes ``out``."""
    import secrets

    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        staging = out.parent / f".{out.name}.{secrets.token_hex(8)}.partial"
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _publish(staging: Path, out: Path) -> None:
    """Move the finished model into ``out``: the staging folder becomes ``out`` when there is none,
    else its files move into the empty folder the user made (which is never removed)."""
    import os

    if not out.exists() and not out.is_symlink():
        os.rename(staging, out)
        return
    check_out_folder(out)  # still empty: nobody wrote there while we trained
    for item in sorted(staging.iterdir()):
        os.replace(item, out / item.name)
    staging.rmdir()


def _tensors(tokenizer: Any, texts: list[str], max_length: int):
    import torch

    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    rows = []
    for t in texts:
        ids = [bos] + list(tokenizer.encode(t, add_special_tokens=False)) + ([eos] if eos is not None else [])
        rows.append(ids[:max_length])
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return torch.utils.data.TensorDataset(ids, mask, labels)


def _per_sequence_loss(logits, labels):
    """Mean token cross-entropy of each sequence (B,), ignoring padding."""
    import torch

    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
        ignore_index=-100, reduction="none",
    ).view(shift_labels.shape)
    valid = (shift_labels != -100).sum(dim=1).clamp(min=1)
    return loss.sum(dim=1) / valid


class _Trained:
    def __init__(self, **kw: Any):
        self.__dict__.update(kw)


def prepare_model(model: Any, *, lora: bool, lora_rank: int, dp: bool) -> tuple[Any, list[str], dict | None]:
    """Put a causal LM in training form: LoRA adapters (peft), or every weight trainable with
    GPT-2's Conv1D as Linear (and untied embeddings under DP, for ghost clipping)."""
    from trustslm.train import dp as dp_utils

    model.train()
    if lora:
        from peft import LoraConfig, get_peft_model

        lora_cfg = LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0, bias="none",
                              task_type="CAUSAL_LM")
        model = get_peft_model(model, lora_cfg)
        info = {"rank": lora_rank, "alpha": 2 * lora_rank,
                "target_modules": sorted(model.peft_config["default"].target_modules)}
        return model, [], info
    converted = dp_utils.conv1d_to_linear(model)
    if dp:
        dp_utils.untie_embeddings(model)
    return model, converted, None


#: Above this much memory for per-sample gradients (batch x trainable parameters x 4 bytes),
#: ``auto`` uses ghost clipping, which never materialises them.
PER_SAMPLE_GRADIENT_BUDGET = 2 * 1024**3


def choose_grad_sample_mode(requested: str, batch_size: int, trainable: int) -> str:
    """``hooks`` (per-sample gradients, one backward pass) when they fit in memory, else ``ghost``
    (two backward passes, no per-sample gradients). Measured here (bench/dp_overhead.py): for
    models whose per-sample gradients fit, hooks is the faster of the two."""
    if requested != "auto":
        return requested
    return "hooks" if batch_size * trainable * 4 <= PER_SAMPLE_GRADIENT_BUDGET else "ghost"


def make_private(model: Any, optimizer: Any, loader: Any, *, accountant: str, max_grad_norm: float, seed: int,
                 mode: str, **how: Any):
    """Wrap model, optimiser and loader with Opacus, with per-sample ``hooks`` or ``ghost``
    clipping (falling back to hooks where ghost clipping does not support the model).
    ``how`` is ``target_epsilon, target_delta, epochs`` (or ``noise_multiplier``).
    Returns (model, optimizer, criterion or None, loader, engine, mode used)."""
    import torch
    from opacus import PrivacyEngine

    from trustslm.train.dp import check_dp_compatible

    check_dp_compatible(model)
    make = "make_private_with_epsilon" if "target_epsilon" in how else "make_private"
    common = dict(optimizer=optimizer, data_loader=loader, max_grad_norm=max_grad_norm,
                  noise_generator=torch.Generator().manual_seed(seed + 1), **how)
    if mode == "ghost":
        engine = PrivacyEngine(accountant=accountant, secure_mode=False)
        try:
            model_, optimizer_, criterion, loader_ = getattr(engine, make)(
                module=model, criterion=torch.nn.CrossEntropyLoss(ignore_index=-100), grad_sample_mode="ghost",
                **common)
            return model_, optimizer_, criterion, loader_, engine, "ghost"
        except (NotImplementedError, ValueError, RuntimeError, TypeError):
            pass  # a layer without a ghost-norm sampler: per-sample hooks below
    engine = PrivacyEngine(accountant=accountant, secure_mode=False)
    model, optimizer, loader = getattr(engine, make)(module=model, grad_sample_mode="hooks", **common)
    return model, optimizer, None, loader, engine, "hooks"


def train_step(model: Any, optimizer: Any, criterion: Any, ids: Any, mask: Any, labels: Any) -> float:
    """One optimiser step on a batch; ``criterion`` is Opacus's ghost-clipping loss or None."""
    import torch

    positions = torch.arange(ids.shape[1]).repeat(ids.shape[0], 1)  # per row, contiguous (Opacus)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    if criterion is not None:
        v = logits.shape[-1]
        loss = criterion(logits[:, :-1].reshape(-1, v).float(), labels[:, 1:].reshape(-1),
                         shape=(ids.shape[0], ids.shape[1] - 1))
    else:
        loss = _per_sequence_loss(logits, labels).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.item())


def _train(adapter: Any, train_texts: list[str], cfg: TrainConfig, delta: float | None, progress: bool) -> _Trained:
    import torch
    from tqdm.auto import tqdm

    from trustslm.train import dp as dp_utils

    torch.manual_seed(cfg.seed)
    model, converted, lora_info = prepare_model(adapter.model, lora=cfg.lora, lora_rank=cfg.lora_rank, dp=cfg.dp)
    dataset = _tensors(adapter.tokenizer, train_texts, cfg.max_length)
    generator = torch.Generator().manual_seed(cfg.seed)
    batch_size = min(cfg.batch_size, len(dataset))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)
    engine = criterion = mode = None
    if cfg.dp:
        mode = choose_grad_sample_mode(cfg.grad_sample_mode, batch_size, sum(p.numel() for p in params))
        model, optimizer, criterion, loader, engine, mode = make_private(
            model, optimizer, loader, accountant=cfg.accountant, max_grad_norm=cfg.max_grad_norm, seed=cfg.seed,
            mode=mode, target_epsilon=cfg.target_epsilon, target_delta=delta, epochs=cfg.epochs)

    steps, losses, step_times = 0, [], []
    bar = tqdm(total=cfg.epochs * len(loader), desc="fine-tuning", unit="step", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    try:
        for _ in range(cfg.epochs):
            for ids, mask, labels in loader:
                bar.update(1)
                if ids.shape[0] == 0:  # an empty Poisson batch: skipping it spends no privacy
                    continue
                t0 = time.perf_counter()
                losses.append(train_step(model, optimizer, criterion, ids, mask, labels))
                step_times.append(time.perf_counter() - t0)
                steps += 1
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
    finally:
        bar.close()

    epsilon = engine.get_epsilon(delta) if engine is not None else None
    inner = model._module if hasattr(model, "_module") else model
    if cfg.lora:
        inner = inner.merge_and_unload()
    if converted:
        dp_utils.linear_to_conv1d(inner, converted)
    inner.eval()
    return _Trained(model=inner, steps=steps, epsilon=epsilon, noise=getattr(optimizer, "noise_multiplier", None),
                    sample_rate=(1 / len(loader)) if len(loader) else 1.0, mode=mode, lora=lora_info,
                    trainable=sum(p.numel() for p in params),
                    final_loss=(sum(losses[-5:]) / len(losses[-5:])) if losses else None,
                    step_time=(sum(step_times) / len(step_times)) if step_times else 0.0)


def _save(adapter: Any, trained: _Trained, out: Path) -> None:
    trained.model.save_pretrained(str(out), safe_serialization=True)
    adapter.tokenizer.save_pretrained(str(out))
    import json

    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("tokenizer_class") == "TokenizersBackend":
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("is_local", "local_files_only", "backend"):
        cfg.pop(key, None)
    cfg_path.write_text(json.dumps(cfg, indent=2))


def _base_spec(spec: str) -> str:
    """The base model as the record names it: an absolute path (the same from any working folder),
    or the demo model's name."""
    return str(Path(spec).resolve()) if Path(spec).exists() else spec


def _record(adapter: Any, data_path: Path, texts: list[str], train_texts: list[str], cfg: TrainConfig,
            delta: float | None, trained: _Trained, started: float) -> TrainingRecord:
    info = adapter.info()
    return TrainingRecord(
        trustslm_version=__version__,
        base_model={"spec": _base_spec(info.spec), "name": info.name, "hash": info.hash},
        data={"path": str(data_path.resolve()), "sha256": sha256_file(data_path), "texts": len(texts),
              "training_sequences": len(train_texts)},
        config=cfg.model_dump(), dp=cfg.dp,
        epsilon=None if trained.epsilon is None or math.isnan(trained.epsilon) else float(trained.epsilon),
        delta=delta if cfg.dp else None, noise_multiplier=trained.noise, sample_rate=trained.sample_rate,
        steps=trained.steps, max_grad_norm=cfg.max_grad_norm if cfg.dp else None,
        accountant=cfg.accountant if cfg.dp else None, grad_sample_mode=trained.mode,
        trainable_parameters=trained.trainable, lora=trained.lora, final_train_loss=trained.final_loss,
        wall_time_s=round(time.perf_counter() - started, 3), step_time_s=round(trained.step_time, 5),
    )
