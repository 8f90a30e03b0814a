"""Measuring helpers shared by the tests, the benchmark, the demo and the docs generator.

Optimizer-state bytes, parameter counts, resident memory, wall time, a description of the machine, and
the one list of heavy modules that discovery must never import. Importing this module imports nothing
heavy: torch is imported inside the functions that need it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "HEAVY_MODULES",
    "RssSampler",
    "count_parameters",
    "heavy_modules",
    "machine_description",
    "optimizer_state_bytes",
    "plugin_dependency_modules",
    "rss_bytes",
    "state_bytes_per_param",
    "timed",
    "unwrap_optimizer",
]

#: Libraries that importing a plugin, listing names or describing them must never import (whatever the
#: plugin): they cost seconds. Optimizer libraries are added per plugin by `plugin_dependency_modules`.
HEAVY_MODULES: tuple[str, ...] = ("torch", "transformers", "numpy", "accelerate", "triton", "bitsandbytes", "scipy")

#: Distributions a plugin may depend on that are cheap to import (the core and its own dependencies).
_LIGHT_DISTRIBUTIONS = frozenset({"trainer-optim", "pluggy", "rich", "typing-extensions"})


def _normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def plugin_dependency_modules(distributions: list[str] | None = None) -> set[str]:
    """Top-level import names of what the given plugin distributions depend on (default: every installed one).

    `trainer-optim-galore` depends on `galore-torch`, whose import name is `galore_torch`: that is heavy
    for discovery even though it is not in `HEAVY_MODULES`.
    """
    from ..plugins import ENTRY_POINT_GROUP

    if distributions is None:
        distributions = sorted(
            {ep.dist.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.dist is not None}
        )
    wanted: set[str] = set()
    for dist in distributions:
        try:
            requirements = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requirements:
            if "extra ==" in requirement:
                continue
            name = _normalize(re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0])
            if name not in _LIGHT_DISTRIBUTIONS:
                wanted.add(name)
    return {
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if any(_normalize(owner) in wanted for owner in owners)
    }


def heavy_modules() -> list[str]:
    """`HEAVY_MODULES` plus every installed plugin's optimizer libraries: what discovery must not import."""
    return sorted({*HEAVY_MODULES, *plugin_dependency_modules()})


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
    """Sum of the bytes of every distinct tensor reachable from `value` (dicts, sequences, plain objects).

    Plain objects are walked through their attributes: GaLore/APOLLO keep projector objects in the state,
    FlashOptim keeps `_MaybeQuantizedTensor`s (`_data`, or `_quantized` + `_scales`).
    """
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
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in attributes.values())
    return 0


def optimizer_state_bytes(optimizer: Any) -> int:
    """Bytes held in `optimizer.state` (layer-wise: summed over every per-parameter optimizer).

    Counts every distinct tensor in the state once, including projector matrices and quantized states
    stored on objects in the state; accelerate's wrapper is looked through.
    """
    optimizer = unwrap_optimizer(optimizer)
    inner = getattr(optimizer, "optimizers", None)  # a LayerwiseOptimizer: one optimizer per parameter
    optimizers = list(inner.values()) if isinstance(inner, dict) else [optimizer]
    seen: set[int] = set()
    return sum(_tensor_bytes(state, seen) for opt in optimizers for state in opt.state.values())


def state_bytes_per_param(optimizer: Any) -> float:
    """`optimizer_state_bytes` divided by the number of parameter elements the optimizer updates."""
    optimizer = unwrap_optimizer(optimizer)
    inner = getattr(optimizer, "optimizers", None)
    optimizers = list(inner.values()) if isinstance(inner, dict) else [optimizer]
    params = {id(p): p for opt in optimizers for group in opt.param_groups for p in group["params"]}
    numel = sum(p.numel() for p in params.values())
    return optimizer_state_bytes(optimizer) / numel if numel else 0.0


def count_parameters(model: Any) -> int:
    """Trainable parameter elements of `model`."""
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
    """`with timed() as box:` ... afterwards `box[0]` is the elapsed wall time in seconds."""
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
