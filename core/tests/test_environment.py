"""The shared answers to 'where will this run?' that the core and plugins' validate functions use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from trainer_optim.environment import cuda_available, deepspeed_zero3, is_distributed


@pytest.mark.parametrize(("world_size", "expected"), [(None, False), ("1", False), ("2", True), ("x", False)])
def test_is_distributed_reads_world_size(
    monkeypatch: pytest.MonkeyPatch, world_size: str | None, expected: bool
) -> None:
    if world_size is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    assert is_distributed() is expected


def test_use_cpu_means_no_cuda_for_this_run() -> None:
    assert cuda_available(SimpleNamespace(use_cpu=True)) is False
    assert cuda_available(SimpleNamespace(use_cpu=False)) is torch.cuda.is_available()
    assert cuda_available() is torch.cuda.is_available()


def test_no_deepspeed_config_is_not_zero3() -> None:
    assert deepspeed_zero3(SimpleNamespace(deepspeed=None)) is False
    assert deepspeed_zero3() is False
