"""Helpers shared by `scripts/demo.py` and `scripts/bench.py` (measurement, not training logic)."""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "RssSampler",
    "count_parameters",
    "machine_description",
    "optimizer_state_bytes",
    "rss_bytes",
    "unwrap_optimizer",
]


def unwrap_optimizer(optimizer: Any) -> Any:
    """The optimizer a plugin built, without accelerate's `AcceleratedOptimizer` wrapper(s)."""
    import torch

    while not isinstance(optimizer, torch.optim.Optimizer) or type(optimizer).__name__ == "AcceleratedOptimizer":
        inner = getattr(optimizer, "optimizer", None)
        if inner is None or inner is optimizer:
            break
        optimizer = inner
    return optimizer


def _tensor_bytes(value: Any, seen: set[int], depth: int = 0) -> int:
    """Sum of `nbytes` of every distinct tensor reachable from `value` (dicts, sequences, plain objects)."""
    import torch

    if depth > 6 or id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in value)
    if isinstance(value, (str, bytes, int, float, bool, type(None), torch.nn.Module, torch.optim.Optimizer)):
        return 0
    attributes = getattr(value, "__dict__", None)  # e.g. GaLore / APOLLO projector objects
    if isinstance(attributes, dict):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in attributes.values())
    return 0


def optimizer_state_bytes(optimizer: Any) -> int:
    """Bytes held in `optimizer.state` (layer-wise: summed over every per-parameter optimizer).

    Counts every tensor in the state, including projector matrices stored on objects in the state.
    """
    from trainer_optim.layerwise_optimizer import LayerwiseOptimizer

    optimizer = unwrap_optimizer(optimizer)
    inner = list(optimizer.optimizers.values()) if isinstance(optimizer, LayerwiseOptimizer) else [optimizer]
    seen: set[int] = set()
    total = 0
    for opt in inner:
        for state in opt.state.values():
            total += _tensor_bytes(state, seen)
    return total


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; falls back to ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RssSampler:
    """Peak RSS above the RSS at start, sampled every `interval` seconds on a background thread.

    tracemalloc cannot see torch's CPU tensors (they bypass Python's allocator), so RSS is what we
    measure. It is process-wide and the allocator may reuse pages freed by an earlier run, so treat
    differences below ~1 MB as noise.
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.start = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def delta(self) -> int:
        return max(0, self.peak - self.start)


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def machine_description() -> dict[str, Any]:
    """CPU model, core count, OS, Python, torch and transformers versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    return info
