"""scripts/bench_gpu.py, the GPU memory benchmark: its code path on CPU at toy size, so it does not rot.

One toy run (two rows, each in its own process: a plain optimizer and LOMO's fused backward, which has no
optimizer step) is shared by the tests that read its output; the verdicts (fits 24 GiB, savings against
the baselines), the docs section and the failure handling are checked on made-up GPU figures, and the
GPU-only lines of the worker run against faked CUDA memory counters.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import bench
import bench_gpu
import pytest

SCRIPT = Path(bench_gpu.__file__)
TOY_ROWS = ("adamw_torch", "lomo")
BENCH_PY_PART = "# Benchmarks\n\nWritten by bench.py.\n\n"
GIB = 2**30


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("bench_gpu")
    docs = out / "benchmarks.md"
    docs.write_text(BENCH_PY_PART + bench.KEPT_MARKER + "\n\n## Mutation testing\n\nKept by bench.py.\n")
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--size", "toy", "--only", ",".join(TOY_ROWS)]
    command += ["--steps", "2", "--warmup", "1", "--out", str(out), "--write-docs", "--docs", str(docs)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, docs, proc


def toy_rows(out: Path) -> dict[str, dict[str, Any]]:
    results = json.loads((out / "results.json").read_text())
    return {r["id"]: r for r in results["sizes"]["toy"]["rows"]}


def test_each_row_is_measured_in_its_own_fresh_process(toy: Any) -> None:
    out, _, _ = toy
    rows = toy_rows(out)
    assert set(rows) == set(TOY_ROWS)
    pids = {r["pid"] for r in rows.values()}
    assert len(pids) == len(TOY_ROWS) and os.getpid() not in pids
    for r in rows.values():
        assert r["status"] == "ok", r
        assert r["params"] == 131_904  # the toy LLaMA: hidden 64, 2 layers, vocabulary 256, untied
        assert r["peak_bytes"] > 0 and r["memory_measure"].startswith("peak RSS")
        assert r["step_s"] > 0 and r["tokens_per_s"] == pytest.approx(2 * 32 / r["step_s"])
        assert len(r["losses"]) == 3  # 1 warm-up + 2 measured steps, one logged loss each
        assert all(math.isfinite(loss) for loss in r["losses"])
        assert r["loss_fell"] == (r["loss_last"] < r["loss_first"])
        assert f"--only {r['id']} --device cpu --steps 2 --warmup 1" in r["command"]
        assert r["loss_fell"], r["losses"]  # the same batch every step: any working optimizer lowers its loss


def test_optimizer_state_is_measured(toy: Any) -> None:
    rows = toy_rows(toy[0])
    adamw = rows["adamw_torch"]
    assert 8 * adamw["params"] <= adamw["state_bytes"] < 8.01 * adamw["params"]  # two fp32 moments (+ steps)
    assert rows["lomo"]["state_bytes"] == 0  # LOMO keeps no state


def test_report_plot_and_docs_of_a_cpu_run(toy: Any) -> None:
    out, docs, proc = toy
    markdown = (out / "results.md").read_text()
    for row_id in TOY_ROWS:
        label = bench_gpu.ROWS_BY_ID[row_id].label
        assert f"| {label} |" in markdown
        assert f"--only {row_id} " in markdown
    assert (out / "peak_memory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "toy: CPU, 64 tokens/step" in proc.stdout  # the console table's title
    # Toy CPU figures never land in the docs: the GPU section stays "not measured yet".
    text = docs.read_text()
    assert text.startswith(BENCH_PY_PART + bench.KEPT_MARKER)
    assert "Kept by bench.py." in text
    section = text[text.index(bench_gpu.SECTION_BEGIN) : text.index(bench_gpu.SECTION_END)]
    assert "Not measured yet" in section
    assert "### TOY" not in section and "| AdamW (torch) |" not in section


def gpu_results() -> dict[str, Any]:
    """Made-up 7B figures in the shape a GPU run writes."""

    def row(row_id: str, peak_gib: float = 0.0, status: str = "ok", **extra: Any) -> dict[str, Any]:
        r: dict[str, Any] = {
            **dataclasses.asdict(bench_gpu.ROWS_BY_ID[row_id]),
            "size": "7b",
            "status": status,
            "command": f"python scripts/bench_gpu.py --size 7b --only {row_id}",
            **extra,
        }
        if status == "ok":
            r.update(
                peak_bytes=int(peak_gib * GIB),
                peak_reserved_bytes=int(peak_gib * GIB) + GIB,
                state_bytes=GIB,
                step_s=0.5,
                first_step_s=40.0,
                tokens_per_s=512.0,
                params=6_738_415_616,
                loss_first=10.4,
                loss_last=9.9,
                loss_fell=True,
            )
        return r

    rows = [
        row("galore_adamw_8bit_layerwise", 16.0),
        row("adamw_torch", 58.0),
        row("adamw_8bit", 45.0),
        row("apollo_mini", 30.0),
        row("lomo", status="oom", error="CUDA out of memory", peak_bytes=int(23.5 * GIB)),
        row("muon", status="not run", error="the time budget (--budget) ran out first"),
    ]
    block = {
        "size": "7b",
        "config": bench_gpu.SIZES["7b"],
        "device": "cuda",
        "batch": 1,
        "seq_len": 256,
        "tokens_per_step": 256,
        "steps": 5,
        "warmup": 3,
        "machine": {"gpu": "NVIDIA H200", "torch": "2.11.0", "cuda_version": "13.0", "transformers": "5.23.0"},
        "date": "2026-12-01 10:00 UTC",
        "command": "python scripts/bench_gpu.py --size 7b,1b",
        "rows": rows,
    }
    return {"sizes": {"7b": block}}


def test_verdicts_fit_in_24_gib_and_savings_against_both_baselines() -> None:
    results = gpu_results()
    bench_gpu.compare(results["sizes"]["7b"])
    rows = {r["id"]: r for r in results["sizes"]["7b"]["rows"]}
    galore, adamw = rows["galore_adamw_8bit_layerwise"], rows["adamw_torch"]
    assert galore["fits_24gib"] and galore["margin_24gib_bytes"] == pytest.approx(8 * GIB, abs=1)
    assert not adamw["fits_24gib"] and bench_gpu.fits(adamw) == "no, 34.0 GiB over"
    assert bench_gpu.fits(galore) == "yes, 8.0 GiB to spare"
    assert galore["saved_vs_adamw_torch_pct"] == pytest.approx(100 * 42 / 58)
    assert galore["saved_vs_adamw_8bit_pct"] == pytest.approx(100 * 29 / 45)
    assert bench_gpu.versus(galore, "adamw_torch") == "-72 %"
    assert bench_gpu.versus(rows["adamw_8bit"], "adamw_torch") == "-22 %"
    assert bench_gpu.fits(rows["lomo"]) == "does not fit (OOM on this GPU)"
    verdict = "\n".join(bench_gpu.verdict(results))
    assert "peak 16.00 GiB allocated: it **fits** in 24 GiB (yes, 8.0 GiB to spare" in verdict
    assert "GaLore 8-bit, per-layer (rank 128) 42.0 GiB less (72 %)" in verdict
    assert "Against `adamw_8bit` (45.00 GiB peak at 7B)" in verdict


def test_gpu_docs_section_shows_the_table_the_plot_and_each_command(tmp_path: Path) -> None:
    results = gpu_results()
    out = tmp_path / "out"
    docs = tmp_path / "benchmarks.md"
    docs.write_text(BENCH_PY_PART + bench.KEPT_MARKER + "\n\n## Mutation testing\n")
    options = argparse.Namespace(write_docs=True, docs=docs)
    bench_gpu.report(results, out, options, bench_gpu_console())
    assert (tmp_path / bench_gpu.DOCS_PLOT).read_bytes()[:4] == b"\x89PNG"
    text = docs.read_text()
    section = text[text.index(bench_gpu.SECTION_BEGIN) : text.index(bench_gpu.SECTION_END)]
    assert "NVIDIA H200" in section and "Not measured yet" not in section
    assert f"![Peak GPU memory per optimizer at each size]({bench_gpu.DOCS_PLOT})" in section
    assert "| GaLore 8-bit, per-layer (rank 128) |" in section and "| 16.00 | 17.00 |" in section
    assert "python scripts/bench_gpu.py --size 7b --only galore_adamw_8bit_layerwise" in section
    assert "muon (" not in section and "not run: the time budget" in section
    # A second report replaces the section instead of adding one.
    bench_gpu.report(results, out, options, bench_gpu_console())
    assert docs.read_text().count(bench_gpu.SECTION_BEGIN) == 1


def bench_gpu_console() -> Any:
    from rich.console import Console

    return Console(quiet=True)


def test_the_gpu_section_survives_a_bench_py_rerun(tmp_path: Path) -> None:
    """bench.py rewrites everything above its marker and keeps the rest: the GPU section is in the rest."""
    assert bench.KEPT_MARKER == bench_gpu.KEPT_MARKER
    docs = tmp_path / "benchmarks.md"
    docs.write_text(BENCH_PY_PART)  # no marker yet: the writer adds it above the section
    bench_gpu.write_docs(gpu_results(), docs, None)
    text = docs.read_text()
    kept = text[text.index(bench.KEPT_MARKER) :]  # what bench.write_docs carries over
    assert bench_gpu.SECTION_BEGIN in kept and bench_gpu.SECTION_END in kept
    # The repository's page: the section, once written, sits below the marker too.
    page = (Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md").read_text()
    if bench_gpu.SECTION_BEGIN in page:
        assert page.index(bench.KEPT_MARKER) < page.index(bench_gpu.SECTION_BEGIN) < page.index(bench_gpu.SECTION_END)


def options(**overrides: Any) -> Any:
    parsed = bench_gpu.parse_args(["--device", "cpu", "--size", "toy"])
    for key, value in overrides.items():
        setattr(parsed, key, value)
    return parsed


def test_out_of_memory_and_timeouts_are_results(monkeypatch: pytest.MonkeyPatch) -> None:
    row = bench_gpu.ROWS_BY_ID["adamw_torch"]

    def oom(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 1, "", "Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory.")

    monkeypatch.setattr(subprocess, "run", oom)
    result = bench_gpu.run_row(row, "toy", options(), 2, 32, timeout=60)
    assert result["status"] == "oom" and "CUDA out of memory" in result["error"]
    assert bench_gpu.fits(result) == "does not fit (OOM on this GPU)"

    def hangs(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(args, kwargs["timeout"], stderr=b"step 1")

    monkeypatch.setattr(subprocess, "run", hangs)
    result = bench_gpu.run_row(row, "toy", options(), 2, 32, timeout=7)
    assert result["status"] == "timeout" and result["error"] == "no result within 7 s"

    # A row that runs out of time after some steps keeps the peak memory it reached (GPU workers report it).
    progress = "".join(
        f"{bench_gpu.PROGRESS_PREFIX}{json.dumps({'steps_done': n, 'peak_bytes': n * GIB})}\n" for n in (1, 2)
    )

    def slow(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(args, kwargs["timeout"], output=progress.encode(), stderr=b"")

    monkeypatch.setattr(subprocess, "run", slow)
    result = bench_gpu.run_row(row, "toy", options(), 2, 32, timeout=7)
    assert result["status"] == "timeout" and result["error"] == "no result within 7 s (2 steps done)"
    assert result["peak_bytes"] == 2 * GIB


def test_a_crashing_row_is_reported_with_its_error() -> None:
    """A CUDA-only setting on CPU: the plugin's clear error becomes the row's status, the driver goes on."""
    result = bench_gpu.run_row(bench_gpu.ROWS_BY_ID["flash_adamw_master32"], "toy", options(), 2, 32, timeout=300)
    assert result["status"] == "error"
    assert "master_weight_bits=32 needs CUDA" in result["error"], result


def test_budget_and_filters_skip_rows_without_starting_them(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no process may start")

    monkeypatch.setattr(bench_gpu, "run_row", never)
    rows = [bench_gpu.ROWS_BY_ID[i] for i in ("adamw_torch", "adamw_8bit")]
    block = bench_gpu.run_size("toy", rows, options(), deadline=0.0, console=bench_gpu_console())
    status = {r["id"]: (r["status"], r["error"]) for r in block["rows"]}
    assert status["adamw_torch"] == ("not run", "the time budget (--budget) ran out first")
    assert status["adamw_8bit"] == ("skipped", "runs on cuda only")
    # A later run whose budget did not reach a row keeps that row's earlier measurement.
    earlier = {**block, "rows": [{**block["rows"][0], "status": "ok", "peak_bytes": 5}]}
    merged = bench_gpu.merge_block(earlier, block)
    assert {r["id"]: r["status"] for r in merged["rows"]} == {"adamw_torch": "ok", "adamw_8bit": "skipped"}


def test_without_cuda_it_says_so_and_measures_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert bench_gpu.main(["--size", "7b", "--out", str(tmp_path / "out")]) == 0
    assert "no CUDA device" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "cpu", "--size", "7b"], "--device cpu runs --size toy only"),
        (["--size", "3b"], "--size 3b: unknown size"),
        (["--only", "adamw"], "--only adamw: unknown row id; choose from galore_adamw_8bit_layerwise"),
    ],
)
def test_bad_arguments_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_gpu.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_cuda_code_path_runs_with_cuda_faked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lines only a GPU runs (memory counters, synchronisation, progress lines, the GPU's name) run here
    against fake counters, so a slip in them shows on CPU rather than costing a GPU session."""
    import types

    import torch

    import trainer_optim

    counters = {"memory_allocated": 111, "max_memory_allocated": 222, "max_memory_reserved": 333}
    for name, value in counters.items():
        monkeypatch.setattr(torch.cuda, name, lambda *a, value=value, **k: value)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a, **k: types.SimpleNamespace(total_memory=GIB))
    build = bench_gpu.build_model
    monkeypatch.setattr(bench_gpu, "build_model", lambda size, seq_len, device: build(size, seq_len, "cpu"))
    real_args = trainer_optim.TrainingArguments
    monkeypatch.setattr(
        trainer_optim, "TrainingArguments", lambda **kw: real_args(**{**kw, "bf16": False, "use_cpu": True})
    )
    job = {"row": "adamw_torch", "size": "toy", "device": "cuda", "steps": 2, "warmup": 1, "batch": 2, "seq_len": 32}
    result = bench_gpu.measure(job)
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith(bench_gpu.PROGRESS_PREFIX)]
    assert [json.loads(line[len(bench_gpu.PROGRESS_PREFIX) :])["steps_done"] for line in progress] == [1, 2, 3]
    assert result["status"] == "ok" and result["memory_measure"] == "torch.cuda.max_memory_allocated"
    assert (result["weights_bytes"], result["peak_bytes"], result["peak_reserved_bytes"]) == (111, 222, 333)
    assert result["machine"]["gpu"] == "Fake GPU" and result["machine"]["gpu_memory_gib"] == 1.0
