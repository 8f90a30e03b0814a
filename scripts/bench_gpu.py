"""GPU memory benchmark: the memory-saving optimizers' headline claims, measured through `trainer_optim.Trainer`.

LLaMA-style models with random weights built directly on the GPU (no download) in bf16 (weights,
gradients and torch's optimizer states all bf16, as the papers' "BF16" baseline), trained for a few
steps on a fixed token batch (default 1 sequence x 256 tokens = 256 tokens per step, the token batch of
GaLore's 7B memory figure; no activation checkpointing, no offloading). Each optimizer row runs in a
fresh process, so nothing leaks between runs, and reports:

- peak GPU memory: `torch.cuda.max_memory_allocated()` over the whole `trainer.train()` (weights
  included; the CUDA context and allocator slack are not counted: `max_memory_reserved` is shown too);
- optimizer-state bytes after training (`trainer_optim.testing.measure.optimizer_state_bytes`);
- median step time over the measured steps (after `--warmup` steps) and tokens/s;
- the training loss at the first and the last step on the same token batch, repeated (it must fall; a
  row where it does not is flagged).

An out-of-memory error is a result ("does not fit"), not a crash. Sizes: `1b` and `7b` are GaLore's
LLaMA configs (configs/llama_1b.json, llama_7b.json); `toy` is a tiny model for running the same code
path on CPU (`--device cpu --size toy`), where peak memory is the process's peak RSS above its start.

    python scripts/bench_gpu.py --size 7b,1b                    # every row at both sizes (needs CUDA)
    python scripts/bench_gpu.py --size 7b --only galore_adamw_8bit_layerwise,adamw_torch
    python scripts/bench_gpu.py --report-only --write-docs      # tables, plot, docs from results.json
    python scripts/bench_gpu.py --device cpu --size toy         # the code path on CPU (no numbers to keep)
    python scripts/bench_gpu.py --list                          # the rows and their settings

Writes `results/bench_gpu/{results.json,results.md,peak_memory.png}` (a later run at other sizes is
merged into results.json) and, with `--write-docs`, the GPU section of `docs/benchmarks.md` (between
its own markers, below the part `scripts/bench.py` rewrites) and `docs/bench_gpu_peak_memory.png`.
Without CUDA (and without `--device cpu`) it prints why and exits 0 without measuring.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = ROOT / "results" / "bench_gpu"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_PLOT = "bench_gpu_peak_memory.png"  # next to docs/benchmarks.md
RESULT_PREFIX = "BENCH_GPU_RESULT "  # the worker's last stdout line: this prefix + JSON
PROGRESS_PREFIX = "BENCH_GPU_STEP "  # after each step: peak memory so far, kept if the row times out
GIB = 2**30
#: The consumer card of GaLore's headline (RTX 4090: 24 GB, i.e. 24 GiB of device memory).
FIT_GIB = 24.0
#: bench.py rewrites everything above this marker and keeps everything from it on.
KEPT_MARKER = "<!-- Below: not written by scripts/bench.py -->"
SECTION_BEGIN = "<!-- bench_gpu: begin (written by `python scripts/bench_gpu.py --write-docs`; edits are lost) -->"
SECTION_END = "<!-- bench_gpu: end -->"
TARGETS = [r".*self_attn.*", r".*mlp.*"]  # attention and MLP projections, as in GaLore's and APOLLO's runs

#: LlamaConfig fields per size. 1b / 7b: GaLore's configs/llama_{1b,7b}.json (untied embeddings, full
#: multi-head attention, vocabulary 32000): 1.34B and 6.74B parameters.
SIZES: dict[str, dict[str, int]] = {
    "toy": dict(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4, vocab_size=256),
    "1b": dict(
        hidden_size=2048, intermediate_size=5461, num_hidden_layers=24, num_attention_heads=32, vocab_size=32000
    ),
    "7b": dict(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000
    ),
}
#: Token batch per size when not given: (sequences, tokens per sequence).
DEFAULT_BATCH = {"toy": (2, 32), "1b": (1, 256), "7b": (1, 256)}


@dataclass(frozen=True)
class Row:
    """One optimizer set-up: what goes into TrainingArguments. `devices`: where the row can run."""

    id: str
    label: str
    optim: str
    lr: float
    optim_args: str | None = None
    targets: bool = False  # optim_target_modules = attention + MLP projections
    devices: tuple[str, ...] = ("cuda",)


# In priority order: when the time budget runs out, the rows at the end are the ones not run.
# Learning rates: GaLore's 7B rate (0.005 with scale 0.25), otherwise the usual ones for the family, below
# the papers' peaks (APOLLO: 0.01 after a 15000-step warm-up) because these runs start at full rate. Not
# tuned: the runs are a few steps long, and the loss only has to fall.
ROWS: list[Row] = [
    Row(
        "galore_adamw_8bit_layerwise",
        "GaLore 8-bit, per-layer (rank 128)",
        "galore_adamw_8bit_layerwise",
        5e-3,
        "rank=128,update_proj_gap=200,scale=0.25",
        targets=True,  # GaLore's 24 GB set-up: GaLoreAdamW8bit with per-layer weight updates
    ),
    Row("adamw_torch", "AdamW (torch)", "adamw_torch", 3e-4, devices=("cpu", "cuda")),
    Row("adamw_8bit", "AdamW 8-bit (bitsandbytes)", "adamw_8bit", 3e-4),
    Row(
        "apollo_mini_layerwise",
        "APOLLO-Mini, layer-wise",
        "apollo_adamw_layerwise",
        1e-3,
        "preset=mini",
        targets=True,
        devices=("cpu", "cuda"),
    ),
    Row(
        "apollo_mini",
        "APOLLO-Mini (rank 1, tensor scaling)",
        "apollo_adamw",
        1e-3,
        "preset=mini",
        targets=True,
        devices=("cpu", "cuda"),
    ),
    Row("lomo", "LOMO (fused backward)", "lomo", 1e-2, devices=("cpu", "cuda")),
    Row("adalomo", "AdaLomo (fused backward)", "adalomo", 1e-3, devices=("cpu", "cuda")),
    Row("flash_adamw", "FlashAdamW int8 states + 24-bit master", "flash_adamw", 3e-4),
    Row("flash_adamw_no_master", "FlashAdamW int8 states, no master", "flash_adamw", 3e-4, "master_weight_bits=None"),
    Row("muon", "Muon (hybrid with AdamW)", "muon", 1e-3, devices=("cpu", "cuda")),
    Row("flash_adamw_master32", "FlashAdamW int8 states + 32-bit master", "flash_adamw", 3e-4, "master_weight_bits=32"),
    # CPU only: FlashOptim's eager path (its CUDA modes cannot run there) and GaLore without bitsandbytes,
    # so the toy run covers a fused-kernel-free FlashOptim and GaLore's per-layer engine.
    Row(
        "flash_adamw_eager",
        "FlashAdamW eager (CPU path)",
        "flash_adamw",
        3e-4,
        "quantize=False,fused=False,master_weight_bits=None",
        devices=("cpu",),
    ),
    Row(
        "galore_adamw_layerwise",
        "GaLore, per-layer (rank 128)",
        "galore_adamw_layerwise",
        5e-3,
        "rank=128,update_proj_gap=200,scale=0.25",
        targets=True,
        devices=("cpu",),
    ),
]
ROWS_BY_ID = {row.id: row for row in ROWS}


# ---------------------------------------------------------------------------------------------
# The worker: one row at one size, in its own process
# ---------------------------------------------------------------------------------------------


def quiet() -> None:
    import logging
    import warnings

    import transformers

    warnings.simplefilter("ignore")  # library deprecation chatter; the numbers are the output
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    for name in ("trainer_optim", "bitsandbytes", "accelerate", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)


def build_model(size: str, seq_len: int, device: str) -> Any:
    """A LlamaForCausalLM with random weights, created directly on `device` (bf16 on CUDA, fp32 on CPU)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **SIZES[size],
        max_position_embeddings=max(seq_len, 128),
        tie_word_embeddings=False,
        use_cache=False,
        rms_norm_eps=1e-6,
    )
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):  # parameters are allocated and initialised on the GPU: no host copy
        return LlamaForCausalLM._from_config(config, dtype=dtype)


def step_recorder(cuda: bool) -> Any:
    from transformers import TrainerCallback

    class StepRecorder(TrainerCallback):
        """Wall time of every optimizer step (synchronised on CUDA) and the loss transformers logs."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self.losses: list[float] = []
            self.t0 = 0.0

        def _sync(self) -> None:
            if cuda:
                import torch

                torch.cuda.synchronize()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._sync()
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._sync()
            self.times.append(time.perf_counter() - self.t0)
            if cuda:  # what a row that runs out of time still reports (GaLore's SVDs at 7B are slow)
                import torch

                progress = {"steps_done": len(self.times), "peak_bytes": torch.cuda.max_memory_allocated()}
                print(PROGRESS_PREFIX + json.dumps(progress), flush=True)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return StepRecorder()


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Train one row for `steps` steps and measure it (runs inside the worker process)."""
    import torch
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    import trainer_optim
    from trainer_optim.testing import TinyLMDataset
    from trainer_optim.testing.measure import RssSampler, count_parameters, optimizer_state_bytes

    quiet()
    row = ROWS_BY_ID[job["row"]]
    device, size = job["device"], job["size"]
    cuda = device == "cuda"
    steps = job["warmup"] + job["steps"]
    # pid: one fresh process per row (the tests check it). machine: described here, because the driver
    # never initialises CUDA itself (its context would take GPU memory from the rows it measures).
    result: dict[str, Any] = {"pid": os.getpid(), "machine": machine(device)}
    model = build_model(size, job["seq_len"], device)
    result["params"] = count_parameters(model)
    if cuda:
        torch.cuda.synchronize()
        result["weights_bytes"] = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    # The same token batch at every step (arithmetic progressions mod the vocabulary): an optimizer that
    # updates the weights in a descent direction lowers its loss within a few steps, whatever the model size.
    data = TinyLMDataset(size=job["batch"], seq_len=job["seq_len"], vocab_size=SIZES[size]["vocab_size"], seed=0)
    recorder = step_recorder(cuda)
    with tempfile.TemporaryDirectory() as output_dir:
        args = trainer_optim.TrainingArguments(
            output_dir=output_dir,
            optim=row.optim,
            optim_args=row.optim_args,
            optim_target_modules=TARGETS if row.targets else None,
            learning_rate=row.lr,
            lr_scheduler_type="constant",  # a few steps: no warm-up, every step moves the weights
            weight_decay=0.0,
            max_grad_norm=0.0,  # per-layer and fused-backward updates cannot clip: no row clips
            max_steps=steps,
            per_device_train_batch_size=job["batch"],
            gradient_accumulation_steps=1,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            bf16=cuda,
            use_cpu=not cuda,
            dataloader_num_workers=0,
            seed=0,
        )
        trainer = trainer_optim.Trainer(model=model, args=args, train_dataset=data, callbacks=[recorder])
        for noisy in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(noisy)
        try:
            with RssSampler() as rss:
                trainer.train()
            result["status"] = "ok"
        except RuntimeError as exc:  # torch.OutOfMemoryError, or a library's own "out of memory" error
            if not isinstance(exc, torch.OutOfMemoryError) and "out of memory" not in str(exc).lower():
                raise
            result["status"] = "oom"  # a result ("does not fit"), not a crash
            result["error"] = str(exc).strip().splitlines()[0][:300]
    if cuda:
        result["peak_bytes"] = torch.cuda.max_memory_allocated()
        result["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
        result["memory_measure"] = "torch.cuda.max_memory_allocated"
    else:
        # The process's peak RSS above its RSS when training starts (weights excluded): CPU tensors bypass
        # Python's allocator, and there is no max_memory_allocated for them.
        result["peak_bytes"] = rss.delta
        result["memory_measure"] = "peak RSS above start (CPU)"
    if result["status"] == "ok":
        result["state_bytes"] = optimizer_state_bytes(trainer.optimizer)
        measured = recorder.times[job["warmup"] :] or recorder.times
        result["step_s"] = statistics.median(measured)
        result["first_step_s"] = recorder.times[0] if recorder.times else None
        result["tokens_per_s"] = job["batch"] * job["seq_len"] / result["step_s"]
        result["losses"] = recorder.losses
        if recorder.losses:
            result["loss_first"], result["loss_last"] = recorder.losses[0], recorder.losses[-1]
            result["loss_fell"] = math.isfinite(recorder.losses[-1]) and recorder.losses[-1] < recorder.losses[0]
    return result


def worker_main(job_json: str) -> int:
    job = json.loads(job_json)
    result = measure(job)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# The driver: one fresh process per row
# ---------------------------------------------------------------------------------------------


def row_command(row: Row, size: str, options: argparse.Namespace, batch: int, seq_len: int) -> str:
    """The command that reproduces one row on its own (printed in the docs next to its numbers)."""
    parts = ["python", "scripts/bench_gpu.py", "--size", size, "--only", row.id]
    if options.device != "cuda":
        parts += ["--device", options.device]
    parts += ["--steps", str(options.steps), "--warmup", str(options.warmup)]
    parts += ["--batch", str(batch), "--seq-len", str(seq_len)]
    return " ".join(parts)


def last_lines(text: str, n: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def run_row(
    row: Row, size: str, options: argparse.Namespace, batch: int, seq_len: int, timeout: float
) -> dict[str, Any]:
    """Run one row in a fresh Python process; a crash, a timeout or an OOM becomes the row's status."""
    job = {
        "row": row.id,
        "size": size,
        "device": options.device,
        "steps": options.steps,
        "warmup": options.warmup,
        "batch": batch,
        "seq_len": seq_len,
    }
    base: dict[str, Any] = {**asdict(row), "size": size, "command": row_command(row, size, options, batch, seq_len)}
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    if options.device == "cuda":
        env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # less fragmentation at 7B
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), "--worker", json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as exc:  # its output so far comes as bytes, whatever text= says
        out, err = (x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (exc.stdout, exc.stderr))
        progress = [line for line in out.splitlines() if line.startswith(PROGRESS_PREFIX)]
        partial = json.loads(progress[-1][len(PROGRESS_PREFIX) :]) if progress else {}
        error = f"no result within {timeout:.0f} s" + (f" ({partial['steps_done']} steps done)" if partial else "")
        return {**base, **partial, "status": "timeout", "error": error, "log": last_lines(err)}
    base["wall_s"] = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        log = last_lines(proc.stderr or proc.stdout)
        error = log.splitlines()[-1] if log else f"exit code {proc.returncode}"
        status = "oom" if "OutOfMemoryError" in log or "out of memory" in log.lower() else "error"
        return {**base, "status": status, "error": error[:300], "log": log}
    return {**base, **json.loads(lines[-1][len(RESULT_PREFIX) :])}


def registered_optimizers() -> set[str]:
    import trainer_optim

    return set(trainer_optim.available_optimizers())


def run_size(
    size: str,
    rows: list[Row],
    options: argparse.Namespace,
    deadline: float,
    console: Any,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every row at one size, in order, within the deadline; `on_row(block so far)` after each row."""
    batch, seq_len = options.batch or DEFAULT_BATCH[size][0], options.seq_len or DEFAULT_BATCH[size][1]
    known = registered_optimizers()
    results: list[dict[str, Any]] = []
    described: dict[str, Any] | None = None  # the machine, as the first worker saw it

    def block() -> dict[str, Any]:
        return {
            "size": size,
            "config": SIZES[size],
            "device": options.device,
            "batch": batch,
            "seq_len": seq_len,
            "tokens_per_step": batch * seq_len,
            "steps": options.steps,
            "warmup": options.warmup,
            "machine": described or {"gpu": None, "note": "no row ran"},
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "rows": results,
        }

    for row in rows:
        remaining = deadline - time.monotonic()
        command = row_command(row, size, options, batch, seq_len)
        base = {**asdict(row), "size": size, "command": command}
        if options.device not in row.devices:
            result = {**base, "status": "skipped", "error": f"runs on {', '.join(row.devices)} only"}
        elif row.optim not in known and row.optim not in BUILTIN_NAMES:
            result = {**base, "status": "skipped", "error": f"{row.optim!r} is not registered (plugin not installed)"}
        elif remaining < 5:
            result = {**base, "status": "not run", "error": "the time budget (--budget) ran out first"}
        else:
            console.print(f"[bold]{size}[/bold] {row.id:<30} ...", end=" ")
            result = run_row(row, size, options, batch, seq_len, timeout=min(options.row_timeout, remaining))
            console.print(summary(result), highlight=False)
            if result["status"] != "ok" and result.get("log"):  # the worker's last words, for the log
                console.print("    " + result["log"].replace("\n", "\n    "), markup=False, highlight=False)
        results.append(result)
        described = described or result.pop("machine", None)
        result.pop("machine", None)
        if result["status"] in ("skipped", "not run"):
            console.print(f"[bold]{size}[/bold] {row.id:<30} {result['status']}: {result['error']}", highlight=False)
        if on_row is not None:
            on_row(block())
    return block()


#: transformers' own optimizer names used above (not plugin names: always available with bitsandbytes).
BUILTIN_NAMES = {"adamw_torch", "adamw_8bit"}


def machine(device: str) -> dict[str, Any]:
    """CPU, GPU, versions of torch, transformers and the optimizer libraries (in the worker: CUDA is live there)."""
    import importlib.metadata as md

    from trainer_optim.testing.measure import machine_description

    info = machine_description()
    if device == "cuda":
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / GIB
        info["cuda_version"] = torch.version.cuda
    info["libraries"] = {}
    for name in (
        "trainer-optim",
        "accelerate",
        "bitsandbytes",
        "galore-torch",
        "apollo-torch",
        "lomo-optim",
        "flashoptim",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            info["libraries"][name] = md.version(name)
    return info


# ---------------------------------------------------------------------------------------------
# Reporting: derived figures, console table, markdown, plot, docs section
# ---------------------------------------------------------------------------------------------


def gib(value: float | None, unit: int = GIB) -> str:
    return "–" if value is None else f"{value / unit:.2f}"


def unit_of(block: dict[str, Any]) -> tuple[int, str]:
    """GiB on the GPU sizes, MiB for the CPU toy run (whose figures are a few MiB)."""
    return (GIB, "GiB") if block["device"] == "cuda" else (2**20, "MiB")


def summary(r: dict[str, Any]) -> str:
    if r["status"] != "ok":
        return f"{r['status']}: {r.get('error', '')}"
    loss = f"loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}" if "loss_first" in r else "no loss logged"
    return f"peak {r['peak_bytes'] / 2**20:,.0f} MiB, {1e3 * r['step_s']:.0f} ms/step, {loss}"


def compare(block: dict[str, Any]) -> None:
    """Add per row the peak memory saved against adamw_torch and adamw_8bit and (GPU) the 24 GiB verdict."""
    rows = block["rows"]
    derived = (
        "fits_24gib",
        "margin_24gib_bytes",
        *(f"saved_vs_{b}_{k}" for b in BUILTIN_NAMES for k in ("bytes", "pct")),
    )
    for r in rows:  # recomputed from the measurements on every report
        for key in derived:
            r.pop(key, None)
    by_id = {r["id"]: r for r in rows if r["status"] == "ok" and r.get("peak_bytes")}
    for r in rows:
        if r["status"] == "ok" and r.get("peak_bytes"):
            if block["device"] == "cuda":
                r["fits_24gib"] = r["peak_bytes"] <= FIT_GIB * GIB
                r["margin_24gib_bytes"] = FIT_GIB * GIB - r["peak_bytes"]
            for baseline in ("adamw_torch", "adamw_8bit"):
                if baseline in by_id and r["id"] != baseline:
                    base = by_id[baseline]["peak_bytes"]
                    r[f"saved_vs_{baseline}_bytes"] = base - r["peak_bytes"]
                    r[f"saved_vs_{baseline}_pct"] = 100 * (base - r["peak_bytes"]) / base


def versus(r: dict[str, Any], baseline: str) -> str:
    """Peak memory against `baseline`: negative = less memory than the baseline."""
    pct = r.get(f"saved_vs_{baseline}_pct")
    return "–" if pct is None else f"{-pct:+.0f} %"


def savings(r: dict[str, Any], baseline: str) -> str:
    saved = r[f"saved_vs_{baseline}_bytes"]
    return f"{r['label']} {saved / GIB:.1f} GiB less ({r[f'saved_vs_{baseline}_pct']:.0f} %)"


def fits(r: dict[str, Any]) -> str:
    if r["status"] == "oom":
        return "does not fit (OOM on this GPU)"
    if "fits_24gib" not in r:
        return "–"
    margin = r["margin_24gib_bytes"] / GIB
    return f"yes, {margin:.1f} GiB to spare" if r["fits_24gib"] else f"no, {-margin:.1f} GiB over"


def loss_cell(r: dict[str, Any]) -> str:
    if "loss_first" not in r:
        return "–"
    flag = "" if r.get("loss_fell") else " (did not fall)"
    return f"{r['loss_first']:.2f} → {r['loss_last']:.2f}{flag}"


def status_cell(r: dict[str, Any]) -> str:
    if r["status"] == "ok":
        return "ok"
    return f"{r['status']}: {r.get('error', '')}".replace("|", "\\|")


def table_rows(block: dict[str, Any]) -> list[list[str]]:
    """One list of cells per row: the same cells in the console table and in markdown."""
    unit, _ = unit_of(block)
    cells = []
    for r in block["rows"]:
        if r["status"] == "skipped":
            continue
        ok = r["status"] == "ok"
        cells.append(
            [
                r["label"],
                f"`{r['optim']}`" + (f" `{r['optim_args']}`" if r.get("optim_args") else ""),
                gib(r.get("peak_bytes"), unit) if ok or r["status"] in ("oom", "timeout") else "–",
                gib(r.get("peak_reserved_bytes"), unit) if ok else "–",
                gib(r.get("state_bytes"), unit) if ok else "–",
                f"{1e3 * r['step_s']:.0f}" if ok else "–",
                f"{r['first_step_s']:.1f}" if ok and r.get("first_step_s") is not None else "–",
                f"{r['tokens_per_s']:.0f}" if ok else "–",
                loss_cell(r),
                fits(r),
                versus(r, "adamw_torch"),
                versus(r, "adamw_8bit"),
                status_cell(r),
            ]
        )
    return cells


def headers(block: dict[str, Any]) -> list[str]:
    _, name = unit_of(block)
    return [
        "optimizer",
        "optim / optim_args",
        f"peak {name}",
        f"reserved {name}",
        f"state {name}",
        "step ms",
        "first step s",
        "tokens/s",
        "loss first → last",
        f"fits {FIT_GIB:.0f} GiB",
        "Δ vs adamw_torch",
        "Δ vs adamw_8bit",
        "status",
    ]


def print_tables(results: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    for size, block in results["sizes"].items():
        table = Table(title=f"{size}: {block['machine'].get('gpu') or 'CPU'}, {block['tokens_per_step']} tokens/step")
        for header in headers(block):
            table.add_column(header, overflow="fold")
        for cells in table_rows(block):
            table.add_row(*(c.replace("`", "") for c in cells))
        console.print(table)


def size_title(size: str, block: dict[str, Any]) -> str:
    params = next((r["params"] for r in block["rows"] if r.get("params")), None)
    count = f"{params / 1e9:.2f}B parameters" if params and params > 1e8 else f"{params:,} parameters" if params else ""
    cfg = block["config"]
    shape = f"hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, vocabulary {cfg['vocab_size']}"
    return f"{size.upper()} ({count}; {shape})" if count else f"{size.upper()} ({shape})"


def markdown_tables(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for size, block in results["sizes"].items():
        m = block["machine"]
        where = m.get("gpu") or f"CPU ({m.get('cpu')})"
        lines += [
            f"### {size_title(size, block)}",
            "",
            f"{where}, torch {m.get('torch')} (CUDA {m.get('cuda_version') or '–'}), transformers "
            f"{m.get('transformers')}; {block['batch']} × {block['seq_len']} = {block['tokens_per_step']} tokens "
            f"per step, {block['warmup']} warm-up + {block['steps']} measured steps; {block['date']}.",
            f"Run: `{block.get('command', 'python scripts/bench_gpu.py')}`; each row alone: the commands below.",
            "",
            "| " + " | ".join(headers(block)) + " |",
            "|"
            + "|".join(
                "---:" if h.startswith(("peak", "reserved", "state", "step", "first", "tokens")) else "---"
                for h in headers(block)
            )
            + "|",
        ]
        lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(block)]
        skipped = [r for r in block["rows"] if r["status"] == "skipped"]
        if skipped:
            lines += ["", "Not run here: " + "; ".join(f"{r['id']} ({r['error']})" for r in skipped) + "."]
        lines += ["", "Commands, one per row (each in a fresh process):", "", "```"]
        lines += [r["command"] for r in block["rows"] if r["status"] != "skipped"]
        lines += ["```", ""]
    return lines


def verdict(results: dict[str, Any]) -> list[str]:
    """The sentences issue 17 asks for: does the GaLore set-up fit 24 GiB at 7B, and the savings."""
    block = results["sizes"].get("7b")
    if not block or block["device"] != "cuda":
        return []
    compare(block)
    rows = {r["id"]: r for r in block["rows"]}
    lines = []
    galore = rows.get("galore_adamw_8bit_layerwise")
    if galore and galore["status"] == "ok":
        peak = galore["peak_bytes"] / GIB
        lines.append(
            f"- GaLore's headline set-up (8-bit, per-layer, rank 128) at 7B through `Trainer`: peak "
            f"{peak:.2f} GiB allocated: it **{'fits' if galore['fits_24gib'] else 'does not fit'}** in "
            f"{FIT_GIB:.0f} GiB ({fits(galore)}; reserved {gib(galore.get('peak_reserved_bytes'))} GiB; the CUDA "
            "context, about 0.5 GiB, comes on top on a real card)."
        )
    elif galore and galore["status"] == "timeout" and galore.get("peak_bytes"):
        lines.append(
            f"- GaLore's headline set-up at 7B ran out of time ({galore['error']}); its peak until then, a lower "
            f"bound: {gib(galore['peak_bytes'])} GiB allocated."
        )
    elif galore:
        lines.append(f"- GaLore's headline set-up at 7B: {status_cell(galore)}.")
    for baseline in ("adamw_torch", "adamw_8bit"):
        base = rows.get(baseline)
        if not base or base["status"] != "ok":
            continue
        better = [
            r
            for r in block["rows"]
            if r.get(f"saved_vs_{baseline}_bytes", 0) > 0 and r["id"] not in ("adamw_torch", "adamw_8bit")
        ]
        if better:
            parts = "; ".join(savings(r, baseline) for r in better)
            lines.append(f"- Against `{baseline}` ({gib(base['peak_bytes'])} GiB peak at 7B): {parts}.")
    flat = [r for r in block["rows"] if r["status"] == "ok" and not r.get("loss_fell")]
    if flat:
        lines.append(
            "- The loss did not fall within the measured steps for: "
            + ", ".join(r["label"] for r in flat)
            + " (learning rates are not tuned here; the memory figures stand)."
        )
    return lines


def markdown(results: dict[str, Any], plot_name: str | None) -> str:
    for block in results["sizes"].values():
        compare(block)
    lines = ["# GPU memory benchmark", ""]
    lines += verdict(results)
    lines += ["", *markdown_tables(results)]
    if plot_name:
        lines += [f"![Peak GPU memory per optimizer]({plot_name})", ""]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> bool:
    """Peak memory per optimizer, one panel per size, with the 24 GiB line. False when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = [
        (size, block)
        for size, block in results["sizes"].items()
        if any(r.get("peak_bytes") for r in block["rows"] if r["status"] in ("ok", "oom"))
    ]
    if not blocks:
        return False
    fig, axes = plt.subplots(1, len(blocks), figsize=(6.5 * len(blocks), 5.5), squeeze=False)
    for axis, (size, block) in zip(axes[0], blocks):
        rows = [r for r in block["rows"] if r["status"] in ("ok", "oom") and r.get("peak_bytes")]
        unit, unit_name = unit_of(block)
        values = [r["peak_bytes"] / unit for r in rows]
        # grey: transformers' baselines; blue: the plugins' optimizers; red: out of memory on this GPU.
        colors = [
            "tab:red" if r["status"] == "oom" else "tab:gray" if r["id"] in BUILTIN_NAMES else "tab:blue" for r in rows
        ]
        bars = axis.barh([r["label"] for r in rows], values, color=colors)
        labels = [f"{v:.1f}" + (" (OOM)" if r["status"] == "oom" else "") for v, r in zip(values, rows)]
        axis.bar_label(bars, labels=labels, padding=3, fontsize=8)
        axis.invert_yaxis()
        if block["device"] == "cuda":
            axis.axvline(FIT_GIB, color="tab:red", linestyle="--", linewidth=1, label=f"{FIT_GIB:.0f} GiB (RTX 4090)")
            axis.legend(loc="lower right", fontsize=8)
        measure_name = "torch.cuda.max_memory_allocated" if block["device"] == "cuda" else "peak RSS above start"
        axis.set_xlabel(f"peak memory ({unit_name}, {measure_name})")
        cfg = block["config"]
        params = next((r["params"] for r in rows if r.get("params")), 0)
        axis.set_title(
            f"{size.upper()}: {f'{params / 1e9:.2f}B' if params >= 1e8 else f'{params:,}'} parameters\n"
            f"hidden {cfg['hidden_size']}, "
            f"{cfg['num_hidden_layers']} layers, {block['tokens_per_step']} tokens/step",
            fontsize=9,
        )
        axis.grid(axis="x", alpha=0.3)
        axis.margins(x=0.2)
    gpu = blocks[0][1]["machine"].get("gpu")
    where = f"{gpu}, bf16" if gpu else "CPU, fp32, toy size: a code-path check"
    fig.suptitle(f"Peak memory per optimizer through trainer_optim.Trainer ({where})", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


PAPERS = [
    "- **GaLore** ([arXiv 2403.03507](https://arxiv.org/abs/2403.03507), abstract): 8-bit GaLore reduces optimizer "
    "memory by up to 82.5 % and total training memory by 63.3 % against a BF16 baseline, and pre-trains a 7B "
    "model on a 24 GB consumer GPU (RTX 4090) without model parallelism, checkpointing or offloading. Its "
    "Figure 1 estimates the memory of pre-training LLaMA-7B with a token batch of 256 on one device: about "
    "58 GB for the BF16 baseline. The repository's README runs the 24 GB set-up as "
    "`--optimizer galore_adamw8bit_per_layer` (22.8 GB at batch 16, there *with* activation checkpointing).",
    '- **APOLLO** ([arXiv 2412.05270](https://arxiv.org/abs/2412.05270), title and abstract): "SGD-like memory, '
    'AdamW-level performance"; APOLLO-Mini (rank 1, tensor-wise scaling) reaches SGD-level memory cost with '
    "pre-training quality above AdamW, and LLaMA-7B pre-trains on one GPU in under 12 GB *with* weight "
    "quantization (not measured here: no weight quantization).",
    "- **LOMO / AdaLomo** fuse the update into backward, so no full set of gradients and (LOMO) no optimizer state "
    "is ever held; **FlashOptim** keeps int8 optimizer states and 8- or 16-bit corrections of bf16 weights "
    "instead of fp32 master weights.",
]


def docs_section(results: dict[str, Any], plot_name: str | None) -> str:
    gpu_blocks = {s: b for s, b in results["sizes"].items() if b["device"] == "cuda"}
    lines = [
        SECTION_BEGIN,
        "",
        "## GPU memory: the papers' headlines through `Trainer`",
        "",
        "`nox -s bench_gpu` (`python scripts/bench_gpu.py`, off by default: it needs a CUDA GPU) trains LLaMA-style",
        "models with random weights, built directly on the GPU in bf16 (no download), for a few steps through",
        "`trainer_optim.Trainer`, each optimizer in a fresh process. Sizes: GaLore's LLaMA 1B and 7B configs",
        "(hidden 2048 / 4096, 24 / 32 layers, vocabulary 32000, untied embeddings). Token batch: 1 sequence of",
        "256 tokens per step, the token batch of GaLore's 7B memory figure, the same batch at every step (so the",
        "loss must fall); no activation checkpointing, no offloading, a constant learning rate and no gradient",
        "clipping (per-layer and fused-backward updates cannot clip). Peak memory is",
        "`torch.cuda.max_memory_allocated()` over `trainer.train()`, weights included, the CUDA context not.",
        "",
        "What the papers claim:",
        "",
        *PAPERS,
        "",
    ]
    if not gpu_blocks:
        lines += [
            "**Not measured yet**: no CUDA GPU was available to the sessions that built this benchmark. Its code",
            "path is tested on CPU at toy size (`tests/test_bench_gpu.py`). On a machine with a GPU, either",
            "`nox -s bench_gpu -- --write-docs`, or, on a machine without a package registry (how the project's",
            "lent GPU machines are), the prepared check:",
            "",
            "```",
            "bash scripts/device_check.sh prepare   # here: the wheels that machine lacks, into .whl/ (~21 MiB)",
            "bash scripts/device_check.sh           # there, .whl/ carried: 7B then 1B rows + CUDA tests, ~9 min",
            "python scripts/bench_gpu.py --report-only --write-docs --results results.json  # here: this section",
            "```",
            "",
            SECTION_END,
        ]
        return "\n".join(lines) + "\n"
    sub = {"sizes": gpu_blocks}
    for block in gpu_blocks.values():
        compare(block)
    lines += verdict(sub)
    lines += ["", *markdown_tables(sub)]
    if plot_name:
        lines += [f"![Peak GPU memory per optimizer at each size]({plot_name})", ""]
    lines += [
        "Columns: peak = `max_memory_allocated`; reserved = `max_memory_reserved` (allocator slack included);",
        "state = every tensor in the optimizer state after the run; step ms = median wall time of the measured",
        "steps (synchronised); first step s = the first step alone (state allocation, GaLore's SVDs, Triton",
        "compilation); fits 24 GiB = peak allocated against an RTX 4090's 24 GiB; Δ = peak memory against that",
        "baseline (negative: less memory). `torch.optim.AdamW` keeps its states in the weights' dtype: bf16 here.",
        "",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def write_docs(results: dict[str, Any], docs: Path, plot_file: Path | None) -> None:
    """Replace (or append) the GPU section of `docs`, keeping it below bench.py's KEPT_MARKER."""
    plot_name = None
    if plot_file is not None and plot_file.exists():
        target = docs.parent / DOCS_PLOT
        if plot_file.resolve() != target.resolve():
            shutil.copyfile(plot_file, target)
        plot_name = DOCS_PLOT
    section = docs_section(results, plot_name)
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    if SECTION_BEGIN in text and SECTION_END in text:
        start, end = text.index(SECTION_BEGIN), text.index(SECTION_END) + len(SECTION_END)
        text = text[:start] + section.rstrip("\n") + text[end:]
    else:
        if KEPT_MARKER not in text:  # bench.py keeps only what follows its marker
            text = text.rstrip("\n") + f"\n\n{KEPT_MARKER}\n"
        text = text.rstrip("\n") + "\n\n" + section
    docs.write_text(text if text.endswith("\n") else text + "\n")


def merge_block(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A size's new results over its earlier ones: rows measured now replace theirs, the others stay.

    Only when both runs used the same settings (device, token batch, steps); a row the budget or a filter
    kept from running now does not erase an earlier measurement of it.
    """
    same = ("device", "batch", "seq_len", "steps", "warmup")
    if not old or any(old.get(key) != new.get(key) for key in same):
        return new
    measured = {r["id"]: r for r in new["rows"] if r["status"] not in ("not run", "skipped")}
    kept = {r["id"]: r for r in old["rows"]}
    kept.update(measured)
    for r in new["rows"]:
        kept.setdefault(r["id"], r)
    order = {row.id: i for i, row in enumerate(ROWS)}
    rows = sorted(kept.values(), key=lambda r: order.get(r["id"], len(order)))
    return {**new, "rows": rows}


def load(path: Path) -> dict[str, Any]:
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    return {"sizes": {}}


def report(results: dict[str, Any], out: Path, options: argparse.Namespace, console: Any) -> None:
    for block in results["sizes"].values():
        compare(block)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot_file = out / "peak_memory.png"
    plotted = plot(results, plot_file)
    (out / "results.md").write_text(markdown(results, plot_file.name if plotted else None))
    print_tables(results, console)
    console.print(f"wrote {out / 'results.json'}, {out / 'results.md'}" + (f", {plot_file}" if plotted else ""))
    if options.write_docs:
        write_docs(results, options.docs, plot_file if plotted else None)
        console.print(f"wrote the GPU section of {options.docs}")


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="7b,1b", help="comma-separated sizes, run in this order: toy, 1b, 7b")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: only with --size toy")
    parser.add_argument("--only", help="comma-separated row ids (see --list); default: every row for the device")
    parser.add_argument("--steps", type=int, default=5, help="measured steps per row (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up steps per row (state allocation, SVD, JIT)")
    parser.add_argument("--batch", type=int, help="sequences per step (default: 1 on GPU sizes)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (default: 256 on GPU sizes)")
    parser.add_argument("--row-timeout", type=float, default=240.0, help="seconds one row may take")
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds for all rows; later rows are not run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results.json/.md and the plot")
    parser.add_argument("--results", type=Path, help="the results.json to merge into / report from (default: OUT's)")
    parser.add_argument("--fresh", action="store_true", help="do not merge earlier sizes from results.json")
    parser.add_argument("--report-only", action="store_true", help="no runs: rebuild tables, plot (and docs)")
    parser.add_argument("--write-docs", action="store_true", help="write the GPU section of --docs")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one row, JSON job description
    options = parser.parse_args(argv)
    options.sizes = [s.strip() for s in options.size.split(",") if s.strip()]
    unknown = [s for s in options.sizes if s not in SIZES]
    if unknown:
        parser.error(f"--size {','.join(unknown)}: unknown size; choose from {', '.join(SIZES)}")
    if options.device == "cpu" and options.sizes != ["toy"] and not options.report_only:
        parser.error(f"--device cpu runs --size toy only (got --size {options.size}): 1B and 7B need a GPU")
    if options.only:
        wanted = [w.strip() for w in options.only.split(",") if w.strip()]
        bad = [w for w in wanted if w not in ROWS_BY_ID]
        if bad:
            parser.error(f"--only {','.join(bad)}: unknown row id; choose from {', '.join(ROWS_BY_ID)}")
        options.rows = [ROWS_BY_ID[w] for w in wanted]
    else:
        options.rows = [row for row in ROWS if options.device in row.devices]
    if options.steps < 1 or options.warmup < 0:
        parser.error(f"--steps {options.steps} --warmup {options.warmup}: need steps >= 1 and warmup >= 0")
    options.results = options.results or options.out / "results.json"
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if options.worker:
        return worker_main(options.worker)
    from rich.console import Console

    console = Console(width=max(160, shutil.get_terminal_size().columns))
    if options.list:
        for row in ROWS:
            targets = " targets=attn+mlp" if row.targets else ""
            console.print(
                f"{row.id:<30} {row.optim:<30} lr={row.lr:g} {row.optim_args or ''}{targets} "
                f"[{', '.join(row.devices)}]",
                highlight=False,
                markup=False,
            )
        return 0
    results = load(options.results) if (options.report_only or not options.fresh) else {"sizes": {}}
    if not options.report_only:
        import torch

        if options.device == "cuda" and not torch.cuda.is_available():
            console.print(
                "bench_gpu: no CUDA device (torch.cuda.is_available() is False, torch "
                f"{torch.__version__}): nothing measured. Run it on a machine with an NVIDIA GPU and a CUDA build "
                "of torch, or `--device cpu --size toy` to exercise the code path.",
                highlight=False,
            )
            return 0
        # Earlier sizes measured on another kind of device (a CPU toy run) do not mix into this report.
        results["sizes"] = {s: b for s, b in results["sizes"].items() if b.get("device") == options.device}
        quiet()
        deadline = time.monotonic() + options.budget
        command = "python scripts/bench_gpu.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
        )
        options.out.mkdir(parents=True, exist_ok=True)
        for size in options.sizes:
            earlier = results["sizes"].get(size)

            def save(block: dict[str, Any], size: str = size, earlier: dict[str, Any] | None = earlier) -> None:
                """results.json after every row: a run killed from outside still leaves what it measured."""
                results["sizes"][size] = merge_block(earlier, {**block, "command": command})
                (options.out / "results.json").write_text(json.dumps(results, indent=2))

            save(run_size(size, options.rows, options, deadline, console, on_row=save))
    report(results, options.out, options, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
