"""Peak memory of a training step with and without the layer-wise engine (CPU, Linux).

    python plugins/apollo/scripts/layerwise_memory.py                       # apollo_adamw, galore_adamw
    python plugins/apollo/scripts/layerwise_memory.py --optim apollo_adamw --hidden 1024

Each run is a fresh process: it builds a Llama from config and the optimizer, resets the kernel's
resident-memory high-water mark (`/proc/self/clear_refs`) and reports how far the peak rose above the
memory held before: over the first step (which also allocates the optimizer state) and over the later
steps. The difference between the plain and the `_layerwise` optimizer is the gradients that no longer
all live at once: each parameter is stepped and its gradient freed during backward.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def _status(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def child(options: argparse.Namespace) -> dict[str, float]:
    import torch

    from trainer_optim import create_optimizer
    from trainer_optim.testing import tiny_llama

    torch.set_num_threads(1)
    model = tiny_llama(
        vocab_size=options.vocab, hidden_size=options.hidden, layers=options.layers, max_position_embeddings=512
    )
    optimizer = create_optimizer(model, options.child, lr=1e-3, target_modules=["attn", "mlp"])
    ids = torch.randint(0, options.vocab, (options.batch, options.seq_len), generator=torch.Generator().manual_seed(0))

    def peak_rise(steps: int) -> float:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset VmHWM to the current resident size
        before = _status("VmRSS")
        for _ in range(steps):
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return (_status("VmHWM") - before) / 2**20

    first = peak_rise(1)  # also allocates the optimizer state
    later = peak_rise(options.steps)
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"first": first, "later": later, "parameters": parameters / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optim", nargs="+", default=["apollo_adamw", "galore_adamw"])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(options)))
        return

    shape = f"hidden={options.hidden} layers={options.layers} vocab={options.vocab}"
    print(f"Llama {shape}, batch {options.batch}x{options.seq_len}, {options.steps} steps, fp32, CPU\n")
    print(
        "| optimizer | parameters | first step: plain | layer-wise | later steps: plain | layer-wise | saved |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    # A fixed mmap threshold keeps glibc from raising it as tensors are freed, so every tensor larger than
    # 128 KiB is its own mapping, returned on free: resident memory then tracks the live tensors.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    for name in options.optim:
        runs = []
        for variant in (name, f"{name}_layerwise"):
            command = [sys.executable, __file__, *sys.argv[1:], "--child", variant]
            output = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
            runs.append(json.loads(output.strip().splitlines()[-1]))
        plain, layerwise = runs
        print(
            f"| {name} | {plain['parameters']:.0f} | {plain['first']:.0f} | {layerwise['first']:.0f} | "
            f"{plain['later']:.0f} | {layerwise['later']:.0f} | {1 - layerwise['later'] / plain['later']:.0%} |"
        )
    print("\nMiB; 'first step' includes allocating the optimizer state, 'later steps' is the peak of the rest.")


if __name__ == "__main__":
    main()
