"""The layer-wise engine: per-parameter optimizers stepped during backward, checkpointable."""

from __future__ import annotations

from collections.abc import Callable

import torch
from fakes import SGDPlugin

import trainer_optim
from trainer_optim.layerwise_optimizer import LayerwiseOptimizer
from trainer_optim.testing import checkpoint_roundtrip, tiny_llama, tiny_lm_dataset


def _batch() -> dict[str, torch.Tensor]:
    data = tiny_lm_dataset(size=8)
    ids = torch.stack([data[i]["input_ids"] for i in range(8)])
    return {"input_ids": ids, "labels": ids}


def _losses(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    losses = []
    for _ in range(steps):
        loss = model(**_batch()).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_layerwise_matches_the_plain_optimizer(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    plain_model, layer_model = tiny_llama(), tiny_llama()
    plain = trainer_optim.create_optimizer(plain_model, "fake_sgd", lr=0.1, optim_args="momentum=0.9")
    layerwise = trainer_optim.create_optimizer(layer_model, "fake_sgd_layerwise", lr=0.1, optim_args="momentum=0.9")
    assert isinstance(layerwise, LayerwiseOptimizer)
    assert len(layerwise.optimizers) == len(list(layer_model.parameters()))
    assert _losses(plain_model, plain, 5) == _losses(layer_model, layerwise, 5)
    assert all(p.grad is None for p in layer_model.parameters())  # freed during backward


def test_scheduler_drives_every_per_parameter_lr(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    model = tiny_llama()
    optimizer = trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    _losses(model, optimizer, 1)
    scheduler.step()
    assert {g["lr"] for o in optimizer for g in o.param_groups} == {0.5}


def test_state_dict_round_trip_resumes_identically(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    model = tiny_llama()
    optimizer = trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=0.1, optim_args="momentum=0.9")
    _losses(model, optimizer, 3)
    saved = checkpoint_roundtrip({"model": model.state_dict(), "optimizer": optimizer.state_dict()})
    expected = _losses(model, optimizer, 3)

    resumed_model = tiny_llama(seed=1)
    resumed_model.load_state_dict(saved["model"])
    resumed = trainer_optim.create_optimizer(resumed_model, "fake_sgd_layerwise", lr=0.1, optim_args="momentum=0.9")
    resumed.load_state_dict(saved["optimizer"])
    assert _losses(resumed_model, resumed, 3) == expected
