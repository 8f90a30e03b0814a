"""Edges of the layer-wise engine that `test_layerwise.py` leaves open (found by `nox -s mutants`).

`LayerwiseOptimizer` is handed to Trainer, accelerate and LR schedulers as an ordinary torch optimizer, so
the parts of torch's contract they read are pinned here: `defaults`, `step(closure)`, the state-dict
layout, and a refusal to load a checkpoint that does not fit instead of loading part of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from fakes import SGDPlugin

import trainer_optim
from trainer_optim.errors import IncompatibleSetupError
from trainer_optim.layerwise import build_layerwise, layerwise_spec
from trainer_optim.layerwise_optimizer import LayerwiseOptimizer
from trainer_optim.specs import OptimizerSpec


def _params(*shapes: tuple[int, ...]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(shape)) for shape in shapes]


def _layerwise(params: list[torch.nn.Parameter], lr: float = 0.1, momentum: float = 0.9) -> LayerwiseOptimizer:
    return LayerwiseOptimizer({p: torch.optim.SGD([p], lr=lr, momentum=momentum) for p in params})


def _backward(params: list[torch.nn.Parameter]) -> None:
    sum((p * p).sum() for p in params).backward()  # type: ignore[union-attr]


def test_no_parameters_is_refused_with_our_message() -> None:
    with pytest.raises(ValueError, match=r"^layer-wise optimizer got no trainable parameters$"):
        LayerwiseOptimizer({})


def test_defaults_carry_the_learning_rate_accelerate_reads() -> None:
    # accelerate's DeepSpeed path reads `optimizer.defaults["lr"]` as the peak learning rate.
    optimizer = _layerwise(_params((2,), (3,)), lr=0.02)
    assert optimizer.defaults == {"lr": 0.02}


def test_defaults_without_a_learning_rate_fall_back_to_zero() -> None:
    class NoLr(torch.optim.Optimizer):
        def __init__(self, params: list[torch.nn.Parameter]) -> None:
            super().__init__(params, {"scale": 1.0})

    (param,) = _params((2,))
    optimizer = LayerwiseOptimizer({param: NoLr([param])})
    assert optimizer.defaults == {"lr": 0.0}


def test_step_with_a_closure_returns_its_loss() -> None:
    params = _params((2,))
    optimizer = _layerwise(params)
    calls: list[int] = []

    def closure() -> float:
        calls.append(1)
        return 1.5

    assert optimizer.step(closure) == 1.5 and calls == [1]
    assert optimizer.step() is None


def test_zero_grad_leaves_gradients_to_the_hooks() -> None:
    # Gradients are consumed (stepped and freed) by each parameter's hook; zero_grad has nothing to do, and
    # must not clear a gradient the user set by hand.
    (param,) = _params((2,))
    optimizer = _layerwise([param])
    optimizer.detach()
    param.grad = torch.ones(2)
    optimizer.zero_grad()
    optimizer.zero_grad(set_to_none=False)
    assert param.grad is not None and torch.equal(param.grad, torch.ones(2))


def test_state_dict_has_torchs_layout() -> None:
    # Tools that handle any optimizer's state dict (accelerate, torch.distributed.checkpoint) expect the
    # standard keys; the per-parameter states ride along under "layerwise".
    params = _params((2,), (3,))
    optimizer = _layerwise(params)
    _backward(params)
    state = optimizer.state_dict()
    assert set(state) == {"state", "param_groups", "layerwise"}
    assert state["state"] == {} and state["param_groups"] == []
    assert len(state["layerwise"]) == 2
    assert all(set(s) == {"state", "param_groups"} and s["state"] for s in state["layerwise"])


def test_loading_a_plain_optimizer_state_is_refused() -> None:
    params = _params((2,), (3,))
    plain = torch.optim.SGD(params, lr=0.1)
    optimizer = _layerwise(params)
    with pytest.raises(ValueError, match=r"^this checkpoint was not written by the same layer-wise optimizer"):
        optimizer.load_state_dict(plain.state_dict())


@pytest.mark.parametrize("count", [1, 3])
def test_loading_a_different_number_of_states_is_refused_not_truncated(count: int) -> None:
    # zip() would silently load the first states onto the wrong parameters; refuse instead.
    source = _layerwise(_params(*[(2,)] * count))
    _backward(list(source.optimizers))
    params = _params((2,), (2,))
    optimizer = _layerwise(params)
    with pytest.raises(
        ValueError,
        match=r"^this checkpoint was not written by the same layer-wise optimizer \(expected 2 per-parameter states\)$",
    ):
        optimizer.load_state_dict(source.state_dict())
    assert all(not o.state for o in optimizer.optimizers.values())


def test_attaching_detaches_every_previous_owner() -> None:
    # Two older optimizers each hold part of the parameters; a new one over all of them must release both,
    # or the one left attached would consume its parameters' gradients first.
    first, second = _params((2,)), _params((3,))
    old_a, old_b = _layerwise(first), _layerwise(second)
    new = _layerwise(first + second)
    assert new.attached and not old_a.attached and not old_b.attached
    _backward(first + second)
    assert all(o.state for o in new.optimizers.values())
    assert not any(o.state for o in [*old_a.optimizers.values(), *old_b.optimizers.values()])


def test_build_layerwise_gives_each_parameter_its_own_group_settings() -> None:
    # Every parameter of every group gets one optimizer built from a request holding that parameter only,
    # with its group's settings (weight decay here) and its name.
    weight, bias = torch.nn.Linear(2, 2).parameters()
    norm_weight, _ = torch.nn.LayerNorm(2).parameters()
    seen: list[tuple[list[str], float]] = []

    def build(request: Any) -> torch.optim.Optimizer:
        (group,) = request.groups
        seen.append((group.names, group.weight_decay))
        return torch.optim.SGD(request.param_groups(), lr=request.lr)

    request = trainer_optim.OptimizerRequest(
        "edge_layerwise",
        trainer_optim.ParsedArgs({}),
        0.01,
        groups=[
            trainer_optim.ParamGroup([weight], 0.1, names=["0.weight"]),
            trainer_optim.ParamGroup([bias, norm_weight], 0.0, names=["0.bias", "1.weight"]),
        ],
    )
    optimizer = build_layerwise(build, request)
    assert seen == [(["0.weight"], 0.1), (["0.bias"], 0.0), (["1.weight"], 0.0)]
    # One optimizer per parameter, holding that parameter only: each hook steps its own, never a neighbour's.
    expected = [weight, bias, norm_weight]
    assert [id(p) for p in optimizer.optimizers] == [id(p) for p in expected]
    assert [[id(p) for p in o.param_groups[0]["params"]] for o in optimizer] == [[id(p)] for p in expected]
    assert [o.param_groups[0]["weight_decay"] for o in optimizer] == [0.1, 0.0, 0.0]


def _spec(name: str = "edge_sgd", **changes: Any) -> OptimizerSpec:
    def build(request: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(request.param_groups(), lr=request.lr)

    return OptimizerSpec(name, build, "SGD.", **{"layerwise": True, **changes})


def test_layerwise_spec_names_and_describes_the_variant() -> None:
    spec = layerwise_spec(_spec())
    assert spec.name == "edge_sgd_layerwise"
    assert spec.summary == "SGD. Layer-wise: one optimizer per parameter, stepped during backward."
    assert spec.layerwise is False and spec.ddp is False  # no `_layerwise_layerwise`; DDP reduces freed gradients


@pytest.mark.parametrize("changes", [{"fused_backward": True}, {"train_eval_modes": True}])
def test_layerwise_spec_refuses_fused_backward_and_mode_switching(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"^'edge_sgd': fused-backward and train\(\)/eval\(\)-mode optimizers"):
        layerwise_spec(_spec(layerwise=False, **changes))


def test_layerwise_validate_refuses_gradient_accumulation_and_names_the_setting() -> None:
    validate = layerwise_spec(_spec()).validate
    assert validate is not None
    for steps in [2, 4]:
        with pytest.raises(IncompatibleSetupError, match=r"^edge_sgd_layerwise steps each parameter") as info:
            validate(trainer_optim.ParsedArgs({}), SimpleNamespace(gradient_accumulation_steps=steps))
        assert f"(gradient_accumulation_steps={steps})" in str(info.value)
    assert "Set gradient_accumulation_steps=1, or use 'edge_sgd'." in str(info.value)
    validate(trainer_optim.ParsedArgs({}), SimpleNamespace(gradient_accumulation_steps=1))
    validate(trainer_optim.ParsedArgs({}), SimpleNamespace())  # plain PyTorch: no Trainer arguments
    validate(trainer_optim.ParsedArgs({}), None)


def test_layerwise_validate_runs_the_base_check_on_the_same_input() -> None:
    seen: list[Any] = []
    validate = layerwise_spec(_spec(validate=lambda *given: seen.append(given))).validate
    assert validate is not None
    args, training_args = trainer_optim.ParsedArgs({"momentum": 0.5}), SimpleNamespace()
    validate(args, training_args)
    assert len(seen) == 1 and seen[0][0] is args and seen[0][1] is training_args


def test_max_grad_norm_warns_once_per_optimizer(caplog: pytest.LogCaptureFixture) -> None:
    from trainer_optim import layerwise

    layerwise._warned.clear()
    validate = layerwise_spec(_spec()).validate
    other = layerwise_spec(_spec("edge_other")).validate
    assert validate is not None and other is not None
    args = trainer_optim.ParsedArgs({})
    with caplog.at_level(logging.WARNING, logger="trainer_optim"):
        validate(args, SimpleNamespace(max_grad_norm=0.0))  # clipping off: nothing to warn about
        validate(args, SimpleNamespace(max_grad_norm=1.0))
        validate(args, SimpleNamespace(max_grad_norm=1.0))
        other(args, SimpleNamespace(max_grad_norm=2.0))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "edge_sgd_layerwise steps each parameter during backward, before Trainer could clip gradients: "
        "max_grad_norm=1.0 is not applied.",
        "edge_other_layerwise steps each parameter during backward, before Trainer could clip gradients: "
        "max_grad_norm=2.0 is not applied.",
    ]
    layerwise._warned.clear()


def test_layerwise_name_builds_a_layerwise_optimizer(register: Callable[..., str]) -> None:
    register(SGDPlugin())
    model = torch.nn.Linear(2, 2)
    optimizer = trainer_optim.create_optimizer(model, "fake_sgd_layerwise", lr=0.1)
    assert isinstance(optimizer, LayerwiseOptimizer)
    assert list(optimizer.optimizers) == list(model.parameters())
