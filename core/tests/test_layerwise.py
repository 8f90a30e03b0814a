"""The layer-wise engine: per-parameter optimizers stepped during backward, checkpointable."""

from __future__ import annotations

import gc
import weakref
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


def _hooks(model: torch.nn.Module) -> list[int]:
    """How many post-accumulate-grad hooks each parameter carries."""
    return [len(p._post_accumulate_grad_hooks or {}) for p in model.parameters()]


def _momenta(optimizer: LayerwiseOptimizer) -> list[torch.Tensor]:
    return [o.state[p]["momentum_buffer"].clone() for p, o in optimizer.optimizers.items()]


def test_attach_and_detach_are_idempotent(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    model = tiny_llama()
    optimizer = trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=0.1)
    assert isinstance(optimizer, LayerwiseOptimizer)
    optimizer.attach()  # already attached by the constructor
    assert optimizer.attached and set(_hooks(model)) == {1}

    optimizer.detach()
    optimizer.detach()
    assert not optimizer.attached and set(_hooks(model)) == {0}
    before = [p.detach().clone() for p in model.parameters()]
    model(**_batch()).loss.backward()
    # Detached: backward leaves every gradient for whoever trains next, and no weight moves.
    assert all(p.grad is not None for p in model.parameters())
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))

    model.zero_grad()
    optimizer.attach()
    model(**_batch()).loss.backward()
    assert all(p.grad is None for p in model.parameters())
    assert not any(torch.equal(b, p) for b, p in zip(before, model.parameters()))

    optimizer.remove_hooks()  # the 0.1 name still works
    assert not optimizer.attached and set(_hooks(model)) == {0}


def test_a_new_layerwise_optimizer_replaces_the_old_ones_hooks(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    model = tiny_llama()
    old = trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=0.1, optim_args="momentum=0.9")
    assert isinstance(old, LayerwiseOptimizer)
    _losses(model, old, 1)
    old_momenta = _momenta(old)
    reference = tiny_llama(seed=1)
    reference.load_state_dict(model.state_dict())

    new = trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=0.05, optim_args="momentum=0.5")
    assert isinstance(new, LayerwiseOptimizer)
    assert new.attached and not old.attached and set(_hooks(model)) == {1}
    plain = trainer_optim.create_optimizer(reference, "fake_sgd", lr=0.05, optim_args="momentum=0.5")
    # Only the new optimizer steps: the model trains exactly as under the plain one with the new settings,
    # and the old optimizer's state is untouched.
    assert _losses(model, new, 3) == _losses(reference, plain, 3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(_momenta(old), old_momenta))

    old.detach()  # detaching the replaced optimizer must not release the new one's hooks
    assert new.attached and set(_hooks(model)) == {1}
    old.attach()  # and re-attaching it takes the model back
    assert old.attached and not new.attached and set(_hooks(model)) == {1}


def test_replacing_detaches_an_optimizer_that_shares_only_some_parameters(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    model = tiny_llama()
    whole = trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=0.1)
    head = trainer_optim.create_optimizer(model.lm_head, "fake_sgd_layerwise", lr=0.1)
    assert isinstance(whole, LayerwiseOptimizer) and isinstance(head, LayerwiseOptimizer)
    assert head.attached and not whole.attached
    assert sum(_hooks(model)) == 1  # the head's weight only: none of the old hooks survive


def test_the_registry_keeps_no_model_or_optimizer_alive(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    model = tiny_llama()
    replaced = weakref.ref(trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=0.1))
    detached_optimizer = trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=0.1)
    assert isinstance(detached_optimizer, LayerwiseOptimizer)
    detached_optimizer.detach()
    detached = weakref.ref(detached_optimizer)
    attached = weakref.ref(trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=0.1))
    dropped_model = weakref.ref(model)
    del detached_optimizer
    gc.collect()
    assert replaced() is None and detached() is None
    # The hooks hold an attached optimizer: a plain loop that drops it still trains. Detached, the model
    # and the optimizer go as soon as the user drops them.
    before = model.lm_head.weight.detach().clone()
    model(**_batch()).loss.backward()
    assert not torch.equal(before, model.lm_head.weight)
    optimizer = attached()
    assert isinstance(optimizer, LayerwiseOptimizer)
    optimizer.detach()
    del model, optimizer
    gc.collect()
    assert dropped_model() is None and attached() is None


def test_load_state_dict_relinks_the_per_parameter_groups(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    model = tiny_llama()
    optimizer = trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=1.0)
    assert isinstance(optimizer, LayerwiseOptimizer)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    _losses(model, optimizer, 1)
    optimizer.load_state_dict(checkpoint_roundtrip(optimizer.state_dict()))  # what accelerate does on prepare
    scheduler.step()
    groups = [g for o in optimizer for g in o.param_groups]
    assert [g["lr"] for g in groups] == scheduler.get_last_lr() == [0.5] * len(groups)
    assert all(a is b for a, b in zip(groups, optimizer.param_groups))
