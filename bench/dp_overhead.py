"""How much slower is a DP-SGD step than a plain one, on the same batches?

For each model: the same fixed batches (batch size 32 of synthetic support notes, padded to the
longest), the same optimiser (AdamW), the same model preparation trustslm finetune uses. Times
``--steps`` optimiser steps of plain training, then of Opacus DP-SGD (fixed batches, noise
multiplier 1, clipping norm 1), alternating
twice and keeping the faster run of each. Prints DP step time / plain step time for the mode
``trustslm finetune --dp`` chooses by default (auto) and for ghost clipping. Target: at most 1.6.

    python bench/dp_overhead.py [--models gpt2,llama,smollm2-lora] [--steps 10]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path


def tiny(kind: str, folder: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import build_tiny_model

    return build_tiny_model(folder / kind, kind, width=128)


def batches(tokenizer, n_batches: int, batch_size: int):
    from trustslm.data.synthetic import support_notes
    from trustslm.train.finetune import _tensors

    data = _tensors(tokenizer, support_notes(n_batches * batch_size, seed=0), 128)
    return [tuple(t[i * batch_size:(i + 1) * batch_size] for t in data.tensors) for i in range(n_batches)]


def time_steps(model, optimizer, criterion, fixed) -> float:
    from trustslm.train.finetune import train_step

    train_step(model, optimizer, criterion, *fixed[0])  # warm-up
    start = time.perf_counter()
    for b in fixed[1:]:
        train_step(model, optimizer, criterion, *b)
    return (time.perf_counter() - start) / (len(fixed) - 1)


def measure(spec: str, lora: bool, steps: int, modes: tuple[str, ...]) -> tuple[float, dict[str, tuple[float, str]]]:
    import torch

    from trustslm.models.resolve import load_model
    from trustslm.train.finetune import choose_grad_sample_mode, make_private, prepare_model

    torch.manual_seed(0)
    adapter = load_model(spec)
    fixed = batches(adapter.tokenizer, steps + 1, 32)
    base = adapter.model
    plain_times: list[float] = []
    dp_times: dict[str, list[float]] = {m: [] for m in modes}
    used_modes: dict[str, str] = {}
    for _ in range(2):
        model, _, _ = prepare_model(copy.deepcopy(base), lora=lora, lora_rank=8, dp=False)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        plain_times.append(time_steps(model, opt, None, fixed))
        for mode in modes:
            model, _, _ = prepare_model(copy.deepcopy(base), lora=lora, lora_rank=8, dp=True)
            params = [p for p in model.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=1e-4)
            loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*fixed[0]), batch_size=32)
            chosen = choose_grad_sample_mode(mode, 32, sum(p.numel() for p in params))
            model, opt, criterion, _, _, used = make_private(model, opt, loader, accountant="prv", max_grad_norm=1.0,
                                                             seed=0, mode=chosen, noise_multiplier=1.0,
                                                             poisson_sampling=False)
            dp_times[mode].append(time_steps(model, opt, criterion, fixed))
            used_modes[mode] = used
    return min(plain_times), {m: (min(t), used_modes[m]) for m, t in dp_times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gpt2,llama,smollm2-lora")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name in ("gpt2", "llama"):
                spec, lora = str(tiny(name, Path(tmp))), False
            elif name == "smollm2-lora":
                spec, lora = "smollm2", True
            else:
                raise SystemExit(f"unknown model {name}")
            plain, dp = measure(spec, lora, args.steps, ("auto", "ghost"))
            (auto, used), (ghost, ghost_used) = dp["auto"], dp["ghost"]
            print(f"{name:14} plain {plain * 1000:7.1f} ms/step   DP default ({used}) {auto * 1000:7.1f} ms/step, "
                  f"ratio {auto / plain:4.2f} (target <= 1.6)   DP {ghost_used} {ghost * 1000:7.1f} ms/step, "
                  f"ratio {ghost / plain:4.2f}", flush=True)


if __name__ == "__main__":
    main()
