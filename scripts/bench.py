"""Benchmark of the plugin layer itself (not a timed test): overhead, discovery cost, memory.

1. adapter overhead: `optimizer.step()` time of the optimizer `trainer_optim.create_optimizer` builds
   vs the upstream library class constructed directly with the same parameter groups, on two identical
   models, interleaved repetitions; the ratio's median and a bootstrap 95% interval (goal: 1.00).
2. discovery cost: wall time of `trainer-optim list` and of `python -c "import trainer_optim"` in fresh
   processes (median of N), and which heavy modules `list` imports (goal: none).
3. memory: optimizer-state bytes per parameter vs the theoretical value, and peak RSS of
   `apollo_adamw_layerwise` vs `apollo_adamw` on a bigger tiny Llama (each in a fresh process).
4. NaN guard cost: time per optimizer step of a `Trainer` run with the `NonFiniteGuard` callback vs
   without, interleaved runs, logging (and so checking the weights) at every step: the worst case.
5. FSDP2: the 2-process step time of an element-wise optimizer through `trainer_optim.Trainer` vs the
   same class given to stock `Trainer`, interleaved runs (torchrun, gloo, CPU).

Writes `results/bench/bench.json` and `docs/benchmarks.md`.

    python scripts/bench.py
    python scripts/bench.py --compare results/bench/bench.json   # deltas against an earlier run
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from trainer_optim.testing.measure import (
    count_parameters,
    heavy_modules,
    machine_description,
    optimizer_state_bytes,
    unwrap_optimizer,
)

ROOT = Path(__file__).resolve().parent.parent
TARGETS = [r".*self_attn.*", r".*mlp.*"]
# What `trainer-optim list` must not import: one list, shared with the discovery test and the conformance kit.
HEAVY = heavy_modules()

# name, optim_args, target modules
OVERHEAD = [
    ("grokadamw", None, None),
    ("stable_adamw", None, None),
    ("schedule_free_adamw", None, None),
    ("apollo_adamw", "rank=16,update_proj_gap=1000", TARGETS),
    ("galore_adamw", "rank=16,update_proj_gap=1000", TARGETS),
    ("lomo", None, None),  # fused backward: skipped with a note (no step() to time)
]

# label, name, optim_args, target modules
MEMORY = [
    ("AdamW (torch.optim, reference)", "torch.optim.AdamW", None, None),
    ("stable_adamw", "stable_adamw", None, None),
    ("optimi_adamw", "optimi_adamw", None, None),
    ("grokadamw", "grokadamw", None, None),
    ("schedule_free_adamw", "schedule_free_adamw", None, None),
    ("apollo_adamw rank=16", "apollo_adamw", "rank=16", TARGETS),
    ("APOLLO-Mini (rank=1, tensor)", "apollo_adamw", "rank=1,scale_type=tensor,scale=128", TARGETS),
    ("apollo_adamw_layerwise rank=16", "apollo_adamw_layerwise", "rank=16", TARGETS),
    ("galore_adamw rank=16", "galore_adamw", "rank=16", TARGETS),
    ("lomo", "lomo", None, None),
    ("adalomo", "adalomo", None, None),
    ("flash_adamw (CPU: fp32 states)", "flash_adamw", "quantize=False,fused=False,master_weight_bits=None", None),
    ("flash_lion (CPU)", "flash_lion", "quantize=False,fused=False,master_weight_bits=None", None),
    ("flash_adamw (int8 states)", "flash_adamw", "quantize=True", None),
]


def quiet() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    for name in ("trainer_optim", "bitsandbytes", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def model(hidden: int = 64, layers: int = 2, seed: int = 0) -> Any:
    from trainer_optim.testing import tiny_llama

    return tiny_llama(seed=seed, vocab_size=128, hidden_size=hidden, layers=layers, intermediate_size=3 * hidden)


def one_step_grads(net: Any, seed: int = 0) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, net.config.vocab_size, (4, 32), generator=generator)
    net(input_ids=ids, labels=ids).loss.backward()


# ---------------------------------------------------------------------------------------------
# 1. adapter overhead
# ---------------------------------------------------------------------------------------------


def upstream_class(optimizer: Any) -> type:
    """The first class in the MRO that comes from the optimizer library, not from a trainer-optim plugin."""
    import torch

    for cls in type(optimizer).__mro__:
        if not cls.__module__.startswith("trainer_optim") and issubclass(cls, torch.optim.Optimizer):
            return cls
    return type(optimizer)


def construct_directly(cls: type, adapter_opt: Any, source: Any, target: Any) -> Any:
    """`cls` built by hand on `target` with `adapter_opt`'s groups (params mapped by name from `source`)."""
    by_id = {id(p): name for name, p in source.named_parameters()}
    params = dict(target.named_parameters())
    groups = []
    for group in adapter_opt.param_groups:
        options = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
        groups.append({"params": [params[by_id[id(p)]] for p in group["params"]], **options})
    accepted = inspect.signature(cls.__init__).parameters  # type: ignore[misc]  # cls is a class here
    kwargs = {k: v for k, v in adapter_opt.defaults.items() if k in accepted and k != "params"}
    return cls(groups, **kwargs)


def bootstrap_ci(values: list[float], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return medians[int(0.025 * rounds)], medians[int(0.975 * rounds)]


def time_steps(optimizer: Any, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return time.perf_counter() - start


def adapter_overhead(reps: int, steps: int) -> list[dict[str, Any]]:
    import trainer_optim

    rows: list[dict[str, Any]] = []
    available = set(trainer_optim.available_optimizers())
    for name, optim_args, targets in OVERHEAD:
        try:
            row = overhead_one(name, optim_args, targets, available, reps, steps)
        except Exception as exc:  # one broken optimizer must not stop the benchmark
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            print(f"  skip {name}: {reason}")
            row = {"optimizer": name, "skipped": reason[:200]}
        if row is not None:
            rows.append(row)
    return rows


def overhead_one(
    name: str, optim_args: str | None, targets: list[str] | None, available: set[str], reps: int, steps: int
) -> dict[str, Any] | None:
    import torch

    import trainer_optim

    if name not in available:
        print(f"  skip {name}: not registered (install its trainer-optim plugin)")
        return None
    spec = trainer_optim.get_optimizer_spec(name)
    if spec.fused_backward:
        print(f"  skip {name}: fused backward (it updates inside backward, there is no step() to compare)")
        return {"optimizer": name, "skipped": "fused backward: no separate step()"}
    a, b = model(), model()
    kwargs = dict(lr=1e-3, weight_decay=0.01, optim_args=optim_args, target_modules=targets)
    t0 = time.perf_counter()
    built = unwrap_optimizer(trainer_optim.create_optimizer(a, name, **kwargs))  # type: ignore[arg-type]
    build_adapter = time.perf_counter() - t0
    cls = upstream_class(built)
    t0 = time.perf_counter()
    direct = construct_directly(cls, built, a, b)
    build_direct = time.perf_counter() - t0
    for net in (a, b):
        one_step_grads(net)
    for opt in (built, direct):
        if hasattr(opt, "train"):  # schedule-free: step() only in train mode
            opt.train()
    with torch.no_grad():
        for _ in range(3):  # warm-up: state allocation, projector set-up
            built.step()
            direct.step()
        ratios: list[float] = []
        t_adapter: list[float] = []
        t_direct: list[float] = []
        for rep in range(reps):
            order = [(built, t_adapter), (direct, t_direct)]
            if rep % 2:
                order.reverse()
            for opt, box in order:
                box.append(time_steps(opt, steps) / steps)
            ratios.append(t_adapter[-1] / t_direct[-1])
    low, high = bootstrap_ci(ratios)
    row = {
        "optimizer": name,
        "adapter_class": f"{type(built).__module__}.{type(built).__qualname__}",
        "direct_class": f"{cls.__module__}.{cls.__qualname__}",
        "step_ms_adapter": 1e3 * statistics.median(t_adapter),
        "step_ms_direct": 1e3 * statistics.median(t_direct),
        "ratio": statistics.median(ratios),
        "ratio_ci95": [low, high],
        "ratio_spread": statistics.pstdev(ratios),
        "build_ms_adapter": 1e3 * build_adapter,
        "build_ms_direct": 1e3 * build_direct,
    }
    print(
        f"  {name:<22} step {row['step_ms_adapter']:.3f} ms vs {row['step_ms_direct']:.3f} ms direct: "
        f"ratio {row['ratio']:.3f} [{low:.3f}, {high:.3f}]"
    )
    return row


# ---------------------------------------------------------------------------------------------
# 2. discovery cost
# ---------------------------------------------------------------------------------------------

HEAVY_PROBE = """
import json, sys, io, contextlib
from trainer_optim.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["list"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(json.dumps({{"exit": code, "heavy": sorted({{m.split(".")[0] for m in heavy}})}}))
"""


def wall(command: list[str], runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return {
        "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)),
        "median_ms": 1e3 * statistics.median(times),
        "min_ms": 1e3 * min(times),
        "max_ms": 1e3 * max(times),
        "runs": runs,
    }


def discovery(runs: int) -> dict[str, Any]:
    python = sys.executable
    cli = str(Path(python).with_name("trainer-optim"))
    cli_cmd = [cli, "list"] if Path(cli).exists() else [python, "-m", "trainer_optim.cli", "list"]
    result = {
        "python_startup": wall([python, "-c", "pass"], runs),
        "import_trainer_optim": wall([python, "-c", "import trainer_optim"], runs),
        "trainer_optim_list": wall(cli_cmd, runs),
    }
    probe = subprocess.run(
        [python, "-c", HEAVY_PROBE.format(HEAVY=HEAVY)], check=True, capture_output=True, text=True
    ).stdout
    result["list_heavy_modules"] = json.loads(probe.strip().splitlines()[-1])["heavy"]
    for key in ("python_startup", "import_trainer_optim", "trainer_optim_list"):
        r = result[key]
        print(f"  {r['command']:<40} median {r['median_ms']:.0f} ms (min {r['min_ms']:.0f}, max {r['max_ms']:.0f})")
    print(f"  heavy modules imported by `trainer-optim list`: {result['list_heavy_modules'] or 'none'}")
    return result


# ---------------------------------------------------------------------------------------------
# 3. memory
# ---------------------------------------------------------------------------------------------


def theoretical_bytes(name: str, optimizer: Any) -> tuple[float | None, str]:
    """Expected optimizer-state bytes from the parameter shapes and each group's settings."""
    from trainer_optim.layerwise_optimizer import LayerwiseOptimizer

    opt = unwrap_optimizer(optimizer)
    groups = (
        [g for o in opt.optimizers.values() for g in o.param_groups]
        if isinstance(opt, LayerwiseOptimizer)
        else opt.param_groups
    )
    base = name.removesuffix("_layerwise")
    total = 0.0
    for group in groups:
        for p in group["params"]:
            n = p.numel()
            if base in ("torch.optim.AdamW", "stable_adamw", "optimi_adamw", "schedule_free_adamw", "flash_adamw"):
                total += 8 * n
                formula = "2 fp32 moments: 8 B/param"
            elif base == "grokadamw":
                total += 12 * n
                formula = "2 fp32 moments + gradient EMA: 12 B/param"
            elif base == "flash_lion":
                total += 4 * n
                formula = "1 fp32 moment: 4 B/param"
            elif base == "lomo":
                formula = "no state: 0 B/param"
            elif base == "adalomo":
                total += 4 * (sum(p.shape) if p.dim() == 2 else n)
                formula = "factored 2nd moment: 4(m+n) B per m×n matrix, 4 B/param for vectors"
            elif base in ("apollo_adamw", "galore_adamw"):
                rank = group.get("rank")
                if rank is None or p.dim() != 2:
                    total += 8 * n
                else:
                    rows, cols = p.shape
                    short, long_ = min(rows, cols), max(rows, cols)
                    r = min(rank, short)
                    # two fp32 moments of the r × long projected gradient + the r × short projection
                    # matrix, kept between refreshes (SVD for GaLore, seeded random for APOLLO)
                    total += 8 * r * long_ + 4 * r * short
                formula = "targets m×n: 8·r·max(m,n) moments + 4·r·min(m,n) projection; others 8 B/param"
            else:
                return None, "unknown"
    return total, formula


def memory_per_param() -> list[dict[str, Any]]:
    import torch

    import trainer_optim

    available = set(trainer_optim.available_optimizers())
    rows = []
    for label, name, optim_args, targets in MEMORY:
        row: dict[str, Any] = {"label": label, "optimizer": name, "optim_args": optim_args}
        if name != "torch.optim.AdamW" and name not in available:
            print(f"  skip {label}: {name!r} is not registered")
            continue
        net = model(hidden=128, layers=2)
        params = count_parameters(net)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if name == "torch.optim.AdamW":
                    opt: Any = torch.optim.AdamW(net.parameters(), lr=1e-3)
                else:
                    opt = trainer_optim.create_optimizer(
                        net,
                        name,
                        lr=1e-3,
                        weight_decay=0.01,
                        optim_args=optim_args,
                        target_modules=targets,  # type: ignore[arg-type]
                    )
                spec = trainer_optim.get_optimizer_spec(name) if name in available else None
                if spec is not None and spec.fused_backward:
                    generator = torch.Generator().manual_seed(0)
                    ids = torch.randint(0, 128, (4, 32), generator=generator)
                    unwrap_optimizer(opt).fused_backward(net(input_ids=ids, labels=ids).loss, 1e-3)
                else:
                    if hasattr(opt, "train"):  # schedule-free: step() only in train mode
                        opt.train()
                    one_step_grads(net)  # layer-wise: the hooks step inside backward
                    opt.step()
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            row["skipped"] = reason[:200]
            print(f"  skip {label}: {reason[:120]}")
            rows.append(row)
            continue
        measured = optimizer_state_bytes(opt)
        expected, formula = theoretical_bytes(name, opt)
        row.update(
            params=params,
            state_bytes=measured,
            bytes_per_param=measured / params,
            theoretical_bytes_per_param=None if expected is None else expected / params,
            formula=formula,
        )
        print(
            f"  {label:<34} {row['bytes_per_param']:6.3f} B/param"
            + ("" if expected is None else f" (theory {expected / params:6.3f})")
        )
        rows.append(row)
    return rows


PEAK_PROBE = """
import json, sys, warnings, logging
warnings.simplefilter("ignore")
logging.disable(logging.WARNING)
import torch, trainer_optim
from trainer_optim.testing.measure import RssSampler, count_parameters
from trainer_optim.testing import tiny_llama
torch.manual_seed(0)
net = tiny_llama(vocab_size=256, hidden_size={hidden}, layers={layers}, intermediate_size={inter})
ids = torch.randint(0, 256, (2, 32))
with RssSampler() as rss:
    opt = trainer_optim.create_optimizer(net, {name!r}, lr=1e-3, optim_args="rank=16", target_modules={targets!r})
    for _ in range({steps}):
        net(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
print(json.dumps({{"peak_rss_delta_mb": rss.delta / 2**20, "params": count_parameters(net)}}))
"""


def layerwise_peak(hidden: int, layers: int, steps: int = 3) -> dict[str, Any]:
    import trainer_optim

    names = [n for n in ("apollo_adamw", "apollo_adamw_layerwise") if n in trainer_optim.available_optimizers()]
    if len(names) < 2:
        print("  skip layer-wise peak memory: apollo_adamw / apollo_adamw_layerwise not registered")
        return {}
    result: dict[str, Any] = {"hidden": hidden, "layers": layers, "steps": steps}
    for name in names:
        code = PEAK_PROBE.format(
            hidden=hidden,
            layers=layers,
            inter=3 * hidden,
            name=name,
            targets=TARGETS,
            steps=steps,
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            print(f"  skip layer-wise peak memory: {name} failed in its process: {reason}")
            return {}
        data = json.loads(done.stdout.strip().splitlines()[-1])
        result[name] = data["peak_rss_delta_mb"]
        result["params"] = data["params"]
        print(f"  {name:<24} peak RSS Δ {data['peak_rss_delta_mb']:.1f} MB ({data['params'] / 1e6:.1f}M parameters)")
    result["fp32_gradients_mb"] = 4 * result["params"] / 2**20
    return result


# ---------------------------------------------------------------------------------------------
# 4. NaN guard cost
# ---------------------------------------------------------------------------------------------


def guard_run(guarded: bool, steps: int, output_dir: Path) -> tuple[float, int]:
    """Median seconds per optimizer step of one `steps`-step run (first 3 steps dropped), and guard checks."""
    import transformers

    from trainer_optim.integrations.guard import guard_for
    from trainer_optim.testing import tiny_lm_dataset

    class StepClock(transformers.TrainerCallback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.stamps.append(time.perf_counter())

    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=8,
        logging_steps=1,  # a weight check at every step: the most the guard ever does
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    trainer = transformers.Trainer(model=model(), args=args, train_dataset=tiny_lm_dataset(vocab_size=128))
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # no log lines on stdout
    guard = guard_for(trainer) if guarded else None
    clock = StepClock()
    trainer.add_callback(clock)  # after the guard: each interval holds one check and the log before it
    trainer.train()
    intervals = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])][3:]
    return statistics.median(intervals), guard.checks if guard is not None else 0


def guard_overhead(reps: int, steps: int) -> dict[str, Any]:
    import tempfile

    import torch

    from trainer_optim.integrations.guard import weights_finite

    with tempfile.TemporaryDirectory() as tmp:
        guard_run(True, 5, Path(tmp))  # warm-up: imports, first-call allocations
        ratios: list[float] = []
        t_guard: list[float] = []
        t_plain: list[float] = []
        checks = 0
        for rep in range(reps):
            order = [True, False] if rep % 2 == 0 else [False, True]
            for guarded in order:
                seconds, n = guard_run(guarded, steps, Path(tmp))
                (t_guard if guarded else t_plain).append(seconds)
                checks = max(checks, n)
            ratios.append(t_guard[-1] / t_plain[-1])
    net = model()
    weights = sum(p.numel() for p in net.parameters() if p.requires_grad)
    weights_finite(net)
    check_times = []
    for _ in range(200):
        start = time.perf_counter()
        weights_finite(net)
        check_times.append(time.perf_counter() - start)
    low, high = bootstrap_ci(ratios)
    result = {
        "steps": steps,
        "reps": reps,
        "trainable_parameters": weights,
        "parameter_tensors": sum(1 for p in net.parameters() if p.requires_grad),
        "checks_per_run": checks,
        "step_ms_guard": 1e3 * statistics.median(t_guard),
        "step_ms_plain": 1e3 * statistics.median(t_plain),
        "ratio": statistics.median(ratios),
        "ratio_ci95": [low, high],
        "check_ms": 1e3 * statistics.median(check_times),
        "torch_threads": torch.get_num_threads(),
    }
    print(
        f"  step {result['step_ms_guard']:.3f} ms guarded vs {result['step_ms_plain']:.3f} ms plain: "
        f"ratio {result['ratio']:.3f} [{low:.3f}, {high:.3f}]; one weight check {result['check_ms']:.3f} ms "
        f"({weights / 1e3:.0f}k weights in {result['parameter_tensors']} tensors, {checks} checks a run)"
    )
    return result


# ---------------------------------------------------------------------------------------------
# 5. FSDP2 step time
# ---------------------------------------------------------------------------------------------

#: An element-wise optimizer: under FSDP2 its update is the one on whole weights (tests/test_fsdp.py).
FSDP_OPTIMIZER = "optimi_adamw"


def fsdp_run(ours: bool, steps: int, output_dir: Path, cls_and_kwargs: tuple[type, dict[str, Any]]) -> float:
    """Median seconds per optimizer step of one FSDP2 run (first 3 steps dropped): ours, or stock Trainer."""
    import transformers

    import trainer_optim
    from trainer_optim.testing import tiny_lm_dataset

    class StepClock(transformers.TrainerCallback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.stamps.append(time.perf_counter())

    settings: dict[str, Any] = dict(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=4,
        logging_steps=10_000,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        ddp_backend="gloo",
        fsdp="full_shard",
        fsdp_config={"fsdp_version": 2},
        seed=0,
    )
    data = tiny_lm_dataset(vocab_size=128)
    trainer: Any
    if ours:
        args = trainer_optim.TrainingArguments(optim=FSDP_OPTIMIZER, **settings)
        trainer = trainer_optim.Trainer(model=model(), args=args, train_dataset=data)
    else:  # stock Trainer refuses optimizers=(opt, None) under FSDP; it builds the class itself from this
        args = transformers.TrainingArguments(**settings)
        trainer = transformers.Trainer(
            model=model(), args=args, train_dataset=data, optimizer_cls_and_kwargs=cls_and_kwargs
        )
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    intervals = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])][3:]
    return statistics.median(intervals)


def fsdp_worker(out: Path, reps: int, steps: int) -> None:
    """Under torchrun: interleaved pairs of FSDP2 runs; rank 0 writes the step times to `out`."""
    import tempfile

    import torch

    import trainer_optim
    from trainer_optim.testing import fsdp_on_cpu

    quiet()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    fsdp_on_cpu()
    built = unwrap_optimizer(trainer_optim.create_optimizer(model(), FSDP_OPTIMIZER, lr=5e-5))
    cls = upstream_class(built)
    accepted = inspect.signature(cls.__init__).parameters  # type: ignore[misc]  # cls is a class here
    kwargs = {k: v for k, v in built.defaults.items() if k in accepted and k not in ("params", "weight_decay")}
    ours_s: list[float] = []
    stock_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        fsdp_run(True, 5, Path(tmp), (cls, kwargs))  # warm-up: imports, process group, first-call allocations
        for rep in range(reps):
            for ours in [True, False] if rep % 2 == 0 else [False, True]:
                (ours_s if ours else stock_s).append(fsdp_run(ours, steps, Path(tmp), (cls, kwargs)))
    if int(os.environ.get("RANK", "0")) == 0:
        out.write_text(json.dumps({"class": f"{cls.__module__}.{cls.__qualname__}", "ours": ours_s, "stock": stock_s}))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def fsdp_overhead(reps: int, steps: int) -> dict[str, Any]:
    """The FSDP2 2-process step time through trainer_optim.Trainer vs stock Trainer with the same class."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fsdp.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        command += [__file__, "--fsdp-worker", str(out), "--fsdp-reps", str(reps), "--fsdp-steps", str(steps)]
        env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
        env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=1800)
        raw = json.loads(out.read_text())
    ratios = [a / b for a, b in zip(raw["ours"], raw["stock"])]
    low, high = bootstrap_ci(ratios)
    result = {
        "optimizer": FSDP_OPTIMIZER,
        "class": raw["class"],
        "reps": reps,
        "steps": steps,
        "step_ms_ours": 1e3 * statistics.median(raw["ours"]),
        "step_ms_stock": 1e3 * statistics.median(raw["stock"]),
        "ratio": statistics.median(ratios),
        "ratio_ci95": [low, high],
    }
    print(
        f"  {FSDP_OPTIMIZER} under FSDP2 (2 processes): {result['step_ms_ours']:.2f} ms ours vs "
        f"{result['step_ms_stock']:.2f} ms stock: ratio {result['ratio']:.3f} [{low:.3f}, {high:.3f}]"
    )
    return result


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def flatten(data: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            key = v.get("optimizer", v.get("label", i)) if isinstance(v, dict) else i
            if isinstance(v, dict) and "label" in v:
                key = v["label"]
            out.update(flatten(v, f"{prefix}[{key}]"))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out[prefix] = float(data)
    return out


def compare(old: dict[str, Any], new: dict[str, Any], label: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    sections = ("overhead", "discovery", "memory", "layerwise_peak", "guard", "fsdp")
    a = flatten({k: old.get(k) for k in sections})
    b = flatten({k: new.get(k) for k in sections})
    table = Table(title=f"compared with {label} ({old.get('date', 'undated')})")
    for header in ("metric", "before", "now", "change"):
        table.add_column(header, justify="left" if header == "metric" else "right")
    for key in sorted(a.keys() & b.keys()):
        settings = ("runs", "params", "hidden", "layers", "steps", "state_bytes", "min_ms", "max_ms", "reps")
        if key.endswith((*settings, "threads", "tensors", "parameters", "checks_per_run")):
            continue
        before, now = a[key], b[key]
        change = f"{(now - before) / before:+.1%}" if before else f"{now - before:+.3g}"
        table.add_row(escape(key), f"{before:.4g}", f"{now:.4g}", change)
    Console(width=140).print(table)
    for key in sorted(a.keys() ^ b.keys()):
        print(f"  only {'before' if key in a else 'now'}: {key}")


KEPT_MARKER = "<!-- Below: not written by scripts/bench.py -->"


def write_docs(result: dict[str, Any], path: Path) -> None:
    m = result["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `nox -s bench` (`python scripts/bench.py`); the raw numbers are in `results/bench/bench.json`.",
        "Re-run it on your machine and compare with `python scripts/bench.py --compare OLD.json`.",
        "These are measurements of the plugin layer, not timed tests: nothing fails on a slow machine.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']} ({m['cores']} cores available, torch uses {m.get('torch_threads')} threads)",
        f"- GPU: {m.get('cuda') or 'none'}",
        f"- {m['os']}, Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}",
        f"- total benchmark time: {result['total_s']:.0f} s",
        "",
        "## 1. Adapter overhead",
        "",
        "`optimizer.step()` of the optimizer `trainer_optim.create_optimizer` returns vs the upstream class built",
        "directly with the same parameter groups and hyper-parameters, on two identical tiny Llamas with the",
        f"same gradients; {result['settings']['reps']} interleaved repetitions of {result['settings']['steps']} steps",
        "(the order alternates). Ratio = adapter / direct, median of the per-repetition ratios, with a",
        "bootstrap 95% interval. 1.00 inside the interval means no measurable overhead.",
        "",
        "| optimizer | class built by the plugin | step (ms) adapter | step (ms) direct | ratio | 95% interval |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in result["overhead"]:
        if "skipped" in r:
            lines.append(f"| {r['optimizer']} | skipped: {r['skipped']} | | | | |")
            continue
        low, high = r["ratio_ci95"]
        lines.append(
            f"| {r['optimizer']} | `{r['adapter_class'].rsplit('.', 1)[-1]}` (upstream "
            f"`{r['direct_class']}`) | {r['step_ms_adapter']:.3f} | {r['step_ms_direct']:.3f} | "
            f"{r['ratio']:.3f} | [{low:.3f}, {high:.3f}] |"
        )
    d = result["discovery"]
    lines += [
        "",
        "## 2. Discovery cost",
        "",
        f"Fresh processes, median of {d['python_startup']['runs']} runs each.",
        "",
        "| command | median (ms) | min | max |",
        "|---|---:|---:|---:|",
    ]
    for key in ("python_startup", "import_trainer_optim", "trainer_optim_list"):
        r = d[key]
        lines.append(f"| `{r['command']}` | {r['median_ms']:.0f} | {r['min_ms']:.0f} | {r['max_ms']:.0f} |")
    heavy = ", ".join(d["list_heavy_modules"]) or "none"
    lines += [
        "",
        f"Heavy modules imported by `trainer-optim list` (of {', '.join(HEAVY)}): **{heavy}**.",
        "",
        "## 3. Memory",
        "",
        "Optimizer-state bytes per trainable parameter after one step on a tiny Llama (hidden 128, 2 layers,",
        "vocabulary 128; attention and MLP projections as target modules): every tensor in `optimizer.state`,",
        "projector matrices included, layer-wise summed over the per-parameter optimizers. The theoretical",
        "value counts moments and projection matrices from the parameter shapes, so small extras (step",
        "counters, per-tensor scales) show as a difference.",
        "",
        "| optimizer | optim_args | measured B/param | theoretical B/param | theory |",
        "|---|---|---:|---:|---|",
    ]
    for r in result["memory"]:
        args = f"`{r['optim_args']}`" if r.get("optim_args") else ""
        if "skipped" in r:
            lines.append(f"| {r['label']} | {args} | skipped: {r['skipped']} | | |")
            continue
        theory = r["theoretical_bytes_per_param"]
        theory_text = "–" if theory is None else f"{theory:.3f}"
        lines.append(f"| {r['label']} | {args} | {r['bytes_per_param']:.3f} | {theory_text} | {r['formula']} |")
    peak = result.get("layerwise_peak") or {}
    if peak:
        lines += [
            "",
            f"Peak RSS during {peak['steps']} training steps of a bigger tiny Llama (hidden {peak['hidden']}, "
            f"{peak['layers']} layers, {peak['params'] / 1e6:.1f}M parameters; batch 2×32), each optimizer in a "
            "fresh process, measured above the RSS after the model is built (optimizer state + gradients +",
            "activations; sampled every 2 ms; tracemalloc cannot see torch tensors):",
            "",
            "| optimizer (rank 16) | peak RSS Δ (MB) |",
            "|---|---:|",
            f"| apollo_adamw | {peak['apollo_adamw']:.1f} |",
            f"| apollo_adamw_layerwise | {peak['apollo_adamw_layerwise']:.1f} |",
            "",
            f"All fp32 gradients of this model would take {peak['fp32_gradients_mb']:.1f} MB; the layer-wise",
            "variant keeps one parameter's gradient at a time.",
        ]
    guard = result.get("guard") or {}
    if guard:
        low, high = guard["ratio_ci95"]
        lines += [
            "",
            "## 4. NaN guard cost",
            "",
            "`NonFiniteGuard` (the callback that stops a run whose loss or weights go NaN / inf) reads the trainable",
            "weights once (one reduction, one device sync) on the steps where transformers logs, evaluates or saves,",
            "and reads the loss transformers already logged. Here it runs at its worst: `logging_steps=1`, a check",
            f"every step. {guard['reps']} interleaved pairs of stock `Trainer` runs ({guard['steps']} steps each,",
            "AdamW, the tiny Llama of section 1, CPU) with and without the guard; median step time per run, ratio",
            "= guarded / plain, median over the pairs with a bootstrap 95% interval.",
            "",
            "| step (ms) guarded | step (ms) plain | ratio | 95% interval | one check (ms) | trainable weights |",
            "|---:|---:|---:|---|---:|---:|",
            f"| {guard['step_ms_guard']:.3f} | {guard['step_ms_plain']:.3f} | {guard['ratio']:.3f} | "
            f"[{low:.3f}, {high:.3f}] | {guard['check_ms']:.3f} | {guard['trainable_parameters']:,} in "
            f"{guard['parameter_tensors']} tensors |",
            "",
            "With the default `logging_steps=500` the cost per step is a five-hundredth of the difference.",
        ]
    fsdp = result.get("fsdp") or {}
    if fsdp:
        low, high = fsdp["ratio_ci95"]
        cls = fsdp["class"].rsplit(".", 1)[-1]
        lines += [
            "",
            "## 5. FSDP2 step time",
            "",
            f"`{fsdp['optimizer']}` under FSDP2 (`fully_shard`, 2 CPU processes, gloo; the tiny Llama of section 1,",
            f"4 sequences per process): `trainer_optim.Trainer(optim={fsdp['optimizer']!r})` vs stock `Trainer` given",
            f"the same class with the same hyper-parameters (`optimizer_cls_and_kwargs=({cls}, "
            "...)`: stock refuses a built optimizer under FSDP). "
            f"{fsdp['reps']} interleaved pairs of {fsdp['steps']}-step runs; median step time per run, ratio = ours / "
            "stock, median over the pairs with a bootstrap 95% interval.",
            "",
            "| step (ms) trainer-optim | step (ms) stock | ratio | 95% interval |",
            "|---:|---:|---:|---|",
            f"| {fsdp['step_ms_ours']:.2f} | {fsdp['step_ms_stock']:.2f} | {fsdp['ratio']:.3f} "
            f"| [{low:.3f}, {high:.3f}] |",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    # Sections measured by other sessions (mutation testing: `nox -s mutants`) follow the marker and are kept.
    kept = ""
    if path.exists() and KEPT_MARKER in path.read_text():
        kept = path.read_text()[path.read_text().index(KEPT_MARKER) :]
    path.write_text("\n".join(lines) + "\n" + (f"\n{kept}" if kept else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", type=Path, help="an earlier bench.json to print deltas against")
    parser.add_argument("--reps", type=int, default=41, help="interleaved repetitions per optimizer")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per repetition")
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per discovery measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "bench.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--big-hidden", type=int, default=512, help="hidden size of the layer-wise memory model")
    parser.add_argument("--guard-reps", type=int, default=11, help="interleaved pairs of runs for the NaN guard")
    parser.add_argument("--guard-steps", type=int, default=30, help="optimizer steps per NaN guard run")
    parser.add_argument("--fsdp-reps", type=int, default=7, help="interleaved pairs of FSDP2 runs")
    parser.add_argument("--fsdp-steps", type=int, default=20, help="optimizer steps per FSDP2 run")
    parser.add_argument("--fsdp-worker", type=Path, help=argparse.SUPPRESS)  # internal: one torchrun process
    options = parser.parse_args(argv)
    if options.fsdp_worker is not None:
        fsdp_worker(options.fsdp_worker, options.fsdp_reps, options.fsdp_steps)
        return 0
    previous = json.loads(options.compare.read_text()) if options.compare else None  # read before overwriting

    quiet()
    warnings.simplefilter("ignore")  # library deprecation chatter; the numbers are the output
    import torch

    # One intra-op thread: the step times of tiny tensors are then not at the mercy of OpenMP thread
    # wake-ups (which dominate and add noise on a busy 2-core machine). Both sides run the same way.
    torch.set_num_threads(1)
    started = time.perf_counter()
    machine = machine_description()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}")
    print("1. adapter overhead (create_optimizer vs the upstream class built directly)")
    overhead = adapter_overhead(options.reps, options.steps)
    print("2. discovery cost")
    disc = discovery(options.runs)
    print("3. memory: optimizer-state bytes per parameter")
    memory = memory_per_param()
    print("   peak memory, layer-wise vs not")
    peak = layerwise_peak(options.big_hidden, layers=4)
    print("4. NaN guard cost per optimizer step (with vs without, a weight check every step)")
    guard = guard_overhead(options.guard_reps, options.guard_steps)
    print("5. FSDP2 step time: trainer_optim.Trainer vs stock Trainer with the same optimizer class")
    fsdp = fsdp_overhead(options.fsdp_reps, options.fsdp_steps)
    result = {
        "machine": machine,
        "settings": {
            "reps": options.reps,
            "steps": options.steps,
            "runs": options.runs,
            "guard_reps": options.guard_reps,
            "guard_steps": options.guard_steps,
            "fsdp_reps": options.fsdp_reps,
            "fsdp_steps": options.fsdp_steps,
        },
        "overhead": overhead,
        "discovery": disc,
        "memory": memory,
        "layerwise_peak": peak,
        "guard": guard,
        "fsdp": fsdp,
        "total_s": time.perf_counter() - started,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=2))
    write_docs(result, options.docs)
    print(f"wrote {options.out}\nwrote {options.docs}\n({result['total_s']:.0f} s)")
    if previous is not None:
        compare(previous, result, str(options.compare))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
