"""Print the bytes of optimizer state per parameter of every FlashOptim mode this machine can run.

    python plugins/flashoptim/scripts/state_bytes.py

Builds each optimizer through trainer-optim on the tiny test Llama, takes one step, and divides the
bytes held in `optimizer.state` (moments, scales, error-correction bits, step counters) by the number
of parameters. The README's table comes from this script (CPU rows here, CUDA rows on a GPU).
"""

from __future__ import annotations

import warnings

import torch

from trainer_optim import create_optimizer
from trainer_optim.testing import tiny_llama
from trainer_optim.testing.measure import state_bytes_per_param

CPU_MODE = "quantize=False,master_weight_bits=None,fused=False"
MODES = [
    # (label, optim_args, needs CUDA)
    ("CPU path", CPU_MODE, False),
    ("defaults (int8 states, 24-bit master weights, fused)", "", True),
    ("master_weight_bits=32", "master_weight_bits=32", True),
    ("master_weight_bits=None", "master_weight_bits=None", True),
    ("quantize=False", "quantize=False", True),
]
OPTIMIZERS = [
    ("flash_adamw", ""),
    ("flash_adam", ""),
    ("flash_sgd", "momentum=0.9"),
    ("flash_sgdw", "momentum=0.9"),
    ("flash_lion", ""),
    ("flash_sgd", "momentum=0"),
]


def measure(name: str, optim_args: str, dtype: torch.dtype, device: str) -> float:
    model = tiny_llama(hidden_size=64).to(device=device, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer = create_optimizer(model, name, lr=1e-3, optim_args=optim_args)
    ids = torch.arange(16, device=device)[None] % 64
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return state_bytes_per_param(optimizer)


def main() -> None:
    cuda = torch.cuda.is_available()
    print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'}\n")
    print("| optimizer | mode | fp32 weights | bf16 weights |")
    print("| --- | --- | --- | --- |")
    for label, mode_args, needs_cuda in MODES:
        if needs_cuda and not cuda:
            continue
        for name, extra in OPTIMIZERS:
            optim_args = ",".join(a for a in (extra, mode_args) if a)
            cells = [
                f"{measure(name, optim_args, dtype, 'cuda' if cuda else 'cpu'):.2f}"
                for dtype in (torch.float32, torch.bfloat16)
            ]
            shown = f"{name} ({extra})" if extra else name
            print(f"| {shown} | {label} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
