"""Tiny causal language models with random weights, built on the spot.

They are real Hugging Face models (GPT-2 or Llama, two layers, a byte-level BPE tokenizer trained
on the given corpus), saved as safetensors, so every part of trustslm (loading, validation,
fine-tuning, probes, mitigations) runs on them in seconds. The tests, the bench scripts and the
notebooks use them where a real model would not fit the time; they know nothing until fine-tuned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The default tokenizer corpus: a few plain English sentences.
CORPUS = [
    "The cat sat on the mat and looked at the dog.",
    "A quick brown fox jumps over the lazy dog near the river.",
    "She said that the weather was nice today, and he agreed.",
    "The nurse and the doctor talked about the patient in the hospital.",
    "People in the city like to walk in the park on sunny days.",
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "He was angry and shouted at the referee during the game.",
    "They cooked dinner together and then watched a movie at home.",
]
#: A ChatML template, for tiny chat models.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(out_dir: Path, *, chat: bool = False, corpus: list[str] | None = None,
                    vocab_size: int = 300) -> Any:
    """Train a byte-level BPE tokenizer on ``corpus`` and save it in ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus or CORPUS * 5, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    cfg = json.loads((out_dir / "tokenizer_config.json").read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg))
    return fast


def build_tiny_model(out_dir: str | Path, arch: str = "gpt2", *, chat: bool = False, seed: int = 0, width: int = 32,
                     corpus: list[str] | None = None, vocab_size: int = 300, positions: int = 128) -> Path:
    """Save a two-layer ``arch`` ("gpt2" or "llama") model of hidden size ``width`` with random
    weights (seeded) and its tokenizer in ``out_dir``; returns the folder."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out_dir, chat=chat, corpus=corpus, vocab_size=vocab_size)
    vocab = len(tok)
    if arch == "gpt2":
        config = GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=width, n_layer=2, n_head=2,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    elif arch == "llama":
        config = LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=positions,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r} (gpt2 or llama)")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return out_dir


def build_tiny_model_with_tokenizer(out_dir: str | Path, gguf: str | Path, *, seed: int = 0, width: int = 64) -> Path:
    """Save a two-layer Llama of hidden size ``width`` with random weights (seeded), in float32,
    with the tokenizer (and chat template) of the GGUF file ``gguf`` (read by transformers), in
    ``out_dir``: a model llama.cpp's converter accepts, whose BPE pre-tokenizer it recognises by
    hash, as it does not recognise a freshly trained one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    out_dir, gguf = Path(out_dir), Path(gguf)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(str(out_dir))
    cfg = json.loads((out_dir / "tokenizer_config.json").read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(str(out_dir), safe_serialization=True)
    return out_dir
