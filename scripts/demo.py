"""The showcase: train one small causal LM per installed optimizer through `trainer_optim.Trainer`.

A tiny Llama (built from a `LlamaConfig`, no download) learns a character-level model of
`scripts/data/garden.txt`, once per CPU-capable optimizer, with nothing but
`TrainingArguments(optim=..., optim_args=..., optim_target_modules=...)` changing between runs.
Prints a table (train / eval loss, speed, optimizer-state bytes per parameter, peak memory) and writes
`results/demo/{results.json,results.md,loss_curves.png}`: the picture shows the loss curves, and the final
held-out loss against optimizer-state bytes per parameter and against time per step, so quality, memory
and speed can be weighed in one look.

Memory is measured fairly: optimizer-state bytes are counted exactly (every tensor the optimizer keeps);
the peak RSS Δ comes after an untimed warm-up run (one-time allocations: lazy imports, thread pools,
allocator growth) and with the C heap trimmed before each run, so no run is charged for start-up costs
or helped by pages an earlier run left behind.

    python scripts/demo.py                 # ~2-4 minutes on 2 CPU cores
    python scripts/demo.py --long          # a bigger model, 2x the steps (~10 minutes)
    python scripts/demo.py --only adamw_torch,apollo_adamw --steps 50
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import logging
import math
import os
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_optim.testing.measure import RssSampler, count_parameters, machine_description, optimizer_state_bytes

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "data" / "garden.txt"
BASELINE = "adamw_torch"
TARGETS = [r".*self_attn.*", r".*mlp.*"]  # every Linear inside attention and MLP blocks, not lm_head


@dataclass(frozen=True)
class Run:
    """One row of the comparison: what goes into TrainingArguments."""

    label: str
    optim: str
    lr: float
    optim_args: str | None = None
    target_modules: list[str] | None = None
    scheduler: str = "cosine"
    extra: dict[str, Any] = field(default_factory=dict)


# Learning rates from a quick sweep on this model and data (best held-out loss at 200 steps; sweeps of
# 1e-3..1e-1 for the Adam family, 0.1..3 for LOMO): the AdamW family likes 3e-3 (1e-2 is worse for
# GrokAdamW and StableAdamW); APOLLO / GaLore with rank 16 like 1e-2, while APOLLO-Mini, whose
# scale=128 already multiplies every update, likes 3e-3; LOMO is plain SGD and likes 0.3.
RUNS = [
    Run("AdamW (baseline)", BASELINE, 3e-3),
    Run("APOLLO", "apollo_adamw", 1e-2, "rank=16,update_proj_gap=50,scale=4", TARGETS),
    Run("APOLLO-Mini", "apollo_adamw", 3e-3, "rank=1,scale_type=tensor,scale=128,update_proj_gap=50", TARGETS),
    Run("APOLLO layer-wise", "apollo_adamw_layerwise", 1e-2, "rank=16,update_proj_gap=50,scale=4", TARGETS),
    Run("GaLore", "galore_adamw", 1e-2, "rank=16,update_proj_gap=50,scale=0.25", TARGETS),
    Run("LOMO", "lomo", 3e-1, "clip_grad_norm=1.0"),
    Run("GrokAdamW", "grokadamw", 3e-3),
    # Schedule-Free does its own warm-up and wants a constant schedule (no warmup_steps on the scheduler).
    Run("Schedule-Free AdamW", "schedule_free_adamw", 3e-3, "warmup_steps={warmup}", scheduler="constant"),
    Run("StableAdamW", "stable_adamw", 3e-3),
    Run("FlashAdamW (CPU)", "flash_adamw", 3e-3, "quantize=False,fused=False,master_weight_bits=None"),
    # Muon (trainer-optim-muon) takes the hidden weight matrices, AdamW the rest; learning_rate 0.02 is the
    # usual Muon rate (not swept here), adamw_lr the AdamW family's 3e-3 from the sweep above.
    Run("Muon", "muon", 2e-2, "adamw_lr=3e-3"),
]


@dataclass
class Settings:
    hidden: int
    layers: int
    seq_len: int
    batch: int
    steps: int


SHORT = Settings(hidden=96, layers=3, seq_len=64, batch=16, steps=200)
LONG = Settings(hidden=128, layers=4, seq_len=128, batch=16, steps=400)


# ---------------------------------------------------------------------------------------------
# Data: character-level windows of the shipped text
# ---------------------------------------------------------------------------------------------


def load_corpus(seq_len: int) -> tuple[Any, Any, list[str]]:
    import torch

    text = CORPUS.read_text(encoding="utf-8")
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    split = int(len(ids) * 0.9)

    class Windows(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, data: torch.Tensor, stride: int):
            self.data = data
            self.starts = list(range(0, len(data) - seq_len, stride))

        def __len__(self) -> int:
            return len(self.starts)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            window = self.data[self.starts[i] : self.starts[i] + seq_len]
            return {"input_ids": window, "labels": window.clone()}

    return Windows(ids[:split], seq_len // 4), Windows(ids[split:], seq_len // 2), vocab


# ---------------------------------------------------------------------------------------------
# One training run
# ---------------------------------------------------------------------------------------------


def make_callback(total: int, label: str, show: bool) -> Any:
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """One tqdm bar per run; records step times (training only) and the logged losses."""

        def __init__(self) -> None:
            self.bar: Any = None
            self.step_time = 0.0
            self.t0 = 0.0
            self.train: list[tuple[int, float]] = []
            self.eval: list[tuple[int, float]] = []

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.bar = tqdm(
                total=total, desc=f"{label:<22}", leave=True, dynamic_ncols=True, file=sys.stdout, disable=not show
            )

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.step_time += time.perf_counter() - self.t0
            self.bar.update(1)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            logs = logs or {}
            if "loss" in logs:
                self.train.append((state.global_step, float(logs["loss"])))
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}", refresh=False)
            if "eval_loss" in logs:
                self.eval.append((state.global_step, float(logs["eval_loss"])))

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.bar.close()

    return Progress()


def release_freed_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the OS (glibc `malloc_trim`).

    torch's CPU tensors live on the C heap, which keeps freed pages mapped: without this, a run would
    reuse the pages an earlier run freed and show a smaller RSS Δ than it needs.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim, RSS as measured
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def train_one(
    run: Run, settings: Settings, data: tuple[Any, Any, list[str]], seed: int, out: Path, show: bool = True
) -> dict[str, Any]:
    import torch
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    import trainer_optim
    from trainer_optim.testing import tiny_llama

    train_set, eval_set, vocab = data
    warmup = max(1, settings.steps // 20)
    optim_args = run.optim_args.format(warmup=warmup) if run.optim_args else None
    model = tiny_llama(
        seed=seed,
        vocab_size=len(vocab),
        hidden_size=settings.hidden,
        layers=settings.layers,
        intermediate_size=settings.hidden * 3,
        max_position_embeddings=settings.seq_len,
    )
    args = trainer_optim.TrainingArguments(
        output_dir=str(out / "runs" / run.optim),
        optim=run.optim,
        optim_args=optim_args,
        optim_target_modules=run.target_modules,
        learning_rate=run.lr,
        lr_scheduler_type=run.scheduler,
        warmup_steps=0 if run.scheduler == "constant" else warmup,
        weight_decay=0.01,
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch,
        per_device_eval_batch_size=32,
        eval_strategy="steps",
        eval_steps=max(1, settings.steps // 5),
        logging_steps=max(1, settings.steps // 30),
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        dataloader_num_workers=0,
        **run.extra,
    )
    progress = make_callback(settings.steps, run.label, show)
    trainer = trainer_optim.Trainer(
        model=model, args=args, train_dataset=train_set, eval_dataset=eval_set, callbacks=[progress]
    )
    for noisy in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(noisy)
    release_freed_memory()
    with RssSampler() as rss:
        trainer.train()
    final_eval = trainer.evaluate()["eval_loss"]
    if not progress.eval or progress.eval[-1][0] != settings.steps:
        progress.eval.append((settings.steps, float(final_eval)))
    params = count_parameters(model)
    state_bytes = optimizer_state_bytes(trainer.optimizer)
    tail = [loss for _, loss in progress.train[-3:]]
    del trainer, model
    torch.manual_seed(seed)
    return {
        "train_loss": sum(tail) / len(tail) if tail else math.nan,
        "eval_loss": float(final_eval),
        "steps_per_s": settings.steps / progress.step_time if progress.step_time else math.nan,
        "state_bytes": state_bytes,
        "params": params,
        "state_bytes_per_param": state_bytes / params,
        "peak_rss_delta_mb": rss.delta / 2**20,
        "train_curve": progress.train,
        "eval_curve": progress.eval,
    }


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

COLUMNS = [
    ("optimizer", "label"),
    ("optim", "optim"),
    ("lr", "lr"),
    ("train loss", "train_loss"),
    ("eval loss", "eval_loss"),
    ("steps/s", "steps_per_s"),
    ("state B/param", "state_bytes_per_param"),
    ("peak RSS Δ MB", "peak_rss_delta_mb"),
    ("status", "status"),
]


def cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return "–"
    if key == "lr":
        return f"{value:g}"
    if key in ("train_loss", "eval_loss"):
        return f"{value:.3f}"
    if key in ("steps_per_s", "peak_rss_delta_mb"):
        return f"{value:.1f}"
    if key == "state_bytes_per_param":
        return f"{value:.2f}"
    return str(value)


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for header, key in COLUMNS:
        text = key in ("label", "optim", "status")
        table.add_column(header, justify="left" if text else "right", no_wrap=text)
    for row in rows:
        style = "red" if row["status"] != "ok" else None
        table.add_row(*(cell(row, key) for _, key in COLUMNS), style=style)
    console = Console(width=max(130, shutil.get_terminal_size().columns))
    console.print(table)
    for row in rows:
        if row.get("error"):
            console.print(f"[red]{row['label']} ({row['optim']}) failed:[/red] {row['error']}", highlight=False)


def markdown(rows: list[dict[str, Any]], settings: Settings, machine: dict[str, Any], notes: list[str]) -> str:
    lines = [
        "# trainer-optim demo results",
        "",
        f"Character-level tiny Llama (hidden {settings.hidden}, {settings.layers} layers, "
        f"{rows[0].get('params', '?') if rows else '?'} parameters), sequence length {settings.seq_len}, "
        f"batch {settings.batch}, {settings.steps} steps on `scripts/data/garden.txt` (last 10% held out).",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
        f"transformers {machine['transformers']}.",
        "",
        "| " + " | ".join(h for h, _ in COLUMNS) + " |",
        "|" + "|".join("---" if k in ("label", "optim", "status") else "---:" for _, k in COLUMNS) + "|",
    ]
    for row in rows:
        values = [cell(row, k) for _, k in COLUMNS]
        if row.get("error"):
            values[-1] = f"failed: {row['error']}"
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in values) + " |")
    lines += [
        "",
        "- train loss: mean of the last three logged training losses; eval loss: held-out text after the last step.",
        "- steps/s: training steps only (evaluation excluded).",
        "- state B/param: bytes of every tensor in the optimizer state (projection matrices included; "
        "layer-wise: summed over every per-parameter optimizer) divided by the trainable parameter count.",
        "- peak RSS Δ: peak resident memory during `train()` above the RSS before it, sampled every 2 ms "
        "(tracemalloc cannot see torch's tensors), after an untimed warm-up run and with the C heap trimmed "
        "before each run (so no run pays one-time start-up allocations or reuses pages an earlier run freed). "
        "It holds gradients and activations too: compare sizes, not small differences; state B/param is exact.",
    ]
    lines += [
        "- Schedule-Free AdamW: its training loss is taken at the interpolated point it computes gradients at;",
        "  evaluation uses the averaged weights (the core switches optimizer.eval()), so compare eval losses.",
        "- FlashAdamW on CPU runs FlashOptim's eager fp32 path (no int8 states, no master-weight correction),",
        "  which is AdamW's arithmetic: its curve lies on the baseline's.",
        "- APOLLO layer-wise steps each parameter inside backward, so Trainer's global gradient clipping",
        "  (max_grad_norm) cannot apply to it; that is most of its gap to APOLLO.",
    ]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def legend_label(row: dict[str, Any]) -> str:
    """`AdamW (baseline): optim="adamw_torch", lr 3e-3`: what to put in TrainingArguments to get this curve."""
    return f'{row["label"]}: optim="{row["optim"]}", lr {row["lr"]:g}'


def plot(rows: list[dict[str, Any]], path: Path, settings: Settings) -> bool:
    """Four panels sharing one legend: training loss, held-out loss, and the final held-out loss against
    optimizer-state bytes per parameter (memory) and against time per step (speed). The AdamW baseline is
    black, thicker, and a star."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        return False
    done = [row for row in rows if row["status"] == "ok" and row.get("train_curve")]
    if not done:
        return False
    fig, axes = plt.subplots(2, 2, figsize=(14, 10.5))
    (train_ax, eval_ax), (memory_ax, speed_ax) = axes
    palette = [plt.get_cmap("tab10")(i) for i in range(10)]
    markers = "osD^vP<>Xhp"
    handles = []
    others = 0
    for row in done:
        baseline = row["optim"] == BASELINE
        style: dict[str, Any]
        if baseline:
            style = {"color": "black", "linewidth": 2.8, "marker": "*", "markersize": 16, "zorder": 5}
        else:
            style = {
                "color": palette[others % len(palette)],
                "linewidth": 1.4,
                "marker": markers[others % len(markers)],
                "markersize": 8,
                "zorder": 3,
            }
            others += 1
        steps, losses = zip(*row["train_curve"], strict=True)
        train_ax.plot(steps, losses, color=style["color"], linewidth=style["linewidth"], zorder=style["zorder"])
        if row.get("eval_curve"):
            e_steps, e_losses = zip(*row["eval_curve"], strict=True)
            eval_ax.plot(e_steps, e_losses, **{**style, "markersize": style["markersize"] * 0.6})
        point = {k: v for k, v in style.items() if k != "linewidth"}
        # Points over the star: an optimizer that lands on the baseline (FlashAdamW on CPU) stays visible.
        point.update(linestyle="none", markeredgecolor="white", zorder=4 if baseline else 6)
        memory_ax.plot([row["state_bytes_per_param"]], [row["eval_loss"]], **point)
        if row.get("steps_per_s") and math.isfinite(row["steps_per_s"]):
            speed_ax.plot([1000 / row["steps_per_s"]], [row["eval_loss"]], **point)
        handles.append(Line2D([], [], **{**style, "markersize": style["markersize"] * 0.7}, label=legend_label(row)))
    titles = (
        (train_ax, "training loss", "step"),
        (eval_ax, "held-out loss", "step"),
        (
            memory_ax,
            "final held-out loss vs optimizer memory (lower left is better)",
            "optimizer-state bytes per parameter (AdamW: 8)",
        ),
        (speed_ax, "final held-out loss vs speed (lower left is better)", "milliseconds per training step (CPU)"),
    )
    for axis, title, xlabel in titles:
        axis.set_title(title)
        axis.set_xlabel(xlabel)
        axis.set_ylabel("cross-entropy (nats / character)")
        axis.grid(alpha=0.3)
    memory_ax.set_xlim(left=-0.5)
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.suptitle(
        f"trainer-optim demo: char-level tiny Llama, hidden {settings.hidden}, {settings.layers} layers, "
        f"{settings.steps} steps (AdamW baseline: black star)"
    )
    rows_of_legend = math.ceil(len(handles) / 2)
    fig.tight_layout(rect=(0, 0.01 + 0.021 * rows_of_legend, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def quiet() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("trainer_optim").setLevel(logging.ERROR)
    for name in ("bitsandbytes", "matplotlib", "accelerate"):  # import-time chatter of optional kernels
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--long", action="store_true", help="a bigger model (hidden 128, 4 layers, sequences of 128), 2x the steps"
    )
    parser.add_argument("--steps", type=int, help="override the number of training steps")
    parser.add_argument("--only", help="comma-separated optim names or labels to run (the baseline is always run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the tiny matmuls gain little from more, and one thread "
        "keeps runs fast and comparable on a busy machine; 0 = torch's default)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "demo", help="output folder")
    options = parser.parse_args(argv)

    quiet()
    import torch

    import trainer_optim
    from trainer_optim.testing import tiny_llama

    if options.threads > 0:
        torch.set_num_threads(options.threads)
    settings = LONG if options.long else SHORT
    if options.steps:
        settings = Settings(**{**settings.__dict__, "steps": options.steps})
    options.out.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    print(
        f"trainer-optim {trainer_optim.__version__} demo on {machine['cpu']} ({machine['cores']} cores, "
        f"torch {machine['torch']}, {torch.get_num_threads()} threads)"
    )

    available = set(trainer_optim.available_optimizers())
    wanted = set(options.only.split(",")) if options.only else None
    runs: list[Run] = []
    notes: list[str] = []
    for run in RUNS:
        if wanted is not None and run.optim != BASELINE and not ({run.optim, run.label} & wanted):
            continue
        if run.optim != BASELINE and run.optim not in available:
            note = f"skipped {run.label}: {run.optim!r} is not registered (install its trainer-optim plugin)"
            print(note)
            notes.append(note)
            continue
        needs_cuda = run.optim in available and trainer_optim.get_optimizer_spec(run.optim).requires_cuda
        if needs_cuda and not torch.cuda.is_available():
            note = f"skipped {run.label}: {run.optim!r} needs CUDA"
            print(note)
            notes.append(note)
            continue
        runs.append(run)

    data = load_corpus(settings.seq_len)
    print(
        f"corpus: {CORPUS.name}, {len(data[2])} distinct characters, "
        f"{len(data[0])} training / {len(data[1])} held-out windows of {settings.seq_len}; "
        f"{settings.steps} steps per run\n"
    )
    # An untimed two-step run first, so one-off start-up costs (lazy imports, allocator growth, thread
    # pools) are not charged to whichever optimizer happens to run first.
    # Building each optimizer once also imports its library now, not inside a measured run.
    warm_up = Settings(**{**settings.__dict__, "steps": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_one(Run("(warm-up)", BASELINE, 1e-3), warm_up, data, options.seed, options.out, show=False)
        for run in runs:
            if run.optim != BASELINE:
                with contextlib.suppress(Exception):  # a broken one fails again, reported, in its run
                    net = tiny_llama(vocab_size=len(data[2]))
                    args = run.optim_args.format(warmup=1) if run.optim_args else None
                    trainer_optim.create_optimizer(
                        net, run.optim, lr=run.lr, optim_args=args, target_modules=run.target_modules
                    )

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for run in runs:
        row: dict[str, Any] = {
            "label": run.label,
            "optim": run.optim,
            "lr": run.lr,
            "optim_args": run.optim_args,
            "optim_target_modules": run.target_modules,
            "lr_scheduler_type": run.scheduler,
        }
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                row.update(train_one(run, settings, data, options.seed, options.out))
                finite = math.isfinite(row["train_loss"]) and math.isfinite(row["eval_loss"])
                row["status"] = "ok" if finite else "diverged (non-finite loss)"
            except Exception as exc:  # one failing optimizer must not stop the demo
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                row["status"] = "failed"
                row["error"] = f"{type(exc).__name__}: {message}"
                row["traceback"] = traceback.format_exc()
                print(f"  {run.label} failed: {type(exc).__name__}: {message}")
        row["wall_s"] = time.perf_counter() - t0
        row["warnings"] = sorted({str(w.message).splitlines()[0][:200] for w in caught})
        rows.append(row)
    total = time.perf_counter() - started

    print()
    print_table(rows, f"{settings.steps} steps per optimizer, {total:.0f} s in all")
    (options.out / "results.json").write_text(
        json.dumps(
            {"settings": settings.__dict__, "machine": machine, "total_s": total, "notes": notes, "runs": rows},
            indent=2,
        )
    )
    (options.out / "results.md").write_text(markdown(rows, settings, machine, notes))
    written = [options.out / "results.json", options.out / "results.md"]
    if plot(rows, options.out / "loss_curves.png", settings):
        written.append(options.out / "loss_curves.png")
    for path in written:
        print(f"wrote {path}")

    baseline = next((r for r in rows if r["optim"] == BASELINE), None)
    if baseline is None or baseline["status"] != "ok":
        status = baseline and (baseline.get("error") or baseline["status"])
        print(f"error: the AdamW baseline ({BASELINE}) did not train: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
