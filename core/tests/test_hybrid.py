"""The hybrid capability: one optimizer over several inner ones, as a scheduler, a checkpoint and Trainer see it.

Built from plain torch optimizers (SGD with momentum for matrices, Adam for the rest) so each route keeps
state that a broken checkpoint or a mis-scheduled group would show.
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import trainer_optim
from trainer_optim import (
    HybridOptimizer,
    IncompatibleSetupError,
    OptimizerRequest,
    OptimizerSpec,
    PluginError,
    Route,
    build_hybrid,
    hidden_matrices,
    hookimpl,
)
from trainer_optim._params import param_groups
from trainer_optim.testing import tiny_llama, tiny_lm_dataset


class TinyLM(nn.Module):
    """Embedding -> two hidden Linear -> norm -> head; `tie` shares the head's weight with the embedding."""

    def __init__(self, tie: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(16, 8)
        self.hidden = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8))
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 16, bias=False)
        if tie:
            self.head.weight = self.embed.weight

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.head

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.hidden(self.embed(ids))))  # type: ignore[no-any-return]


def loss_of(model: nn.Module) -> torch.Tensor:
    ids = torch.arange(16).reshape(2, 8) % 16
    return nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.roll(1).flatten())


def request_for(model: nn.Module, weight_decay: float = 0.1, target: Any = None, lr: float = 0.1) -> OptimizerRequest:
    groups, targets = param_groups(model, weight_decay, target)
    return OptimizerRequest(
        name="fake_hybrid",
        args=trainer_optim.ParsedArgs(),
        lr=lr,
        weight_decay=weight_decay,
        model=model,
        groups=groups,
        target_modules=tuple(targets),
    )


def routes(
    select: Callable[[str, nn.Parameter, bool], bool] | None = None, other_lr: float = 0.01, **matrix: Any
) -> list[Route]:
    return [
        Route(
            "matrix",
            lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9),
            select=select or (lambda name, param, target: param.ndim == 2 and "hidden" in name),
            **matrix,
        ),
        Route("rest", lambda groups: torch.optim.Adam(groups, lr=other_lr)),
    ]


def hybrid(model: nn.Module, **kwargs: Any) -> HybridOptimizer:
    return build_hybrid(request_for(model, **kwargs), routes())


def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, scheduler: Any = None) -> list[float]:
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_of(model)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


def names_of(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]


# ---------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------


def test_routes_parameters_and_keeps_trainers_decay_groups() -> None:
    model = TinyLM()
    optimizer = hybrid(model)
    assert list(optimizer.optimizers) == ["matrix", "rest"]
    assert isinstance(optimizer.optimizers["matrix"], torch.optim.SGD)
    # param_groups: the inner optimizers' groups, in route order, each from one Trainer group.
    assert names_of(model, optimizer) == [
        ["hidden.0.weight", "hidden.2.weight"],
        ["embed.weight", "head.weight"],
        ["hidden.0.bias", "hidden.2.bias", "norm.weight", "norm.bias"],
    ]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.1, 0.0]
    assert all(
        a is b
        for a, b in zip(
            optimizer.param_groups,
            [*optimizer.optimizers["matrix"].param_groups, *optimizer.optimizers["rest"].param_groups],
        )
    )


def test_a_routes_own_weight_decay_reaches_its_decaying_parameters_even_when_weight_decay_is_zero() -> None:
    model = TinyLM()
    optimizer = build_hybrid(
        request_for(model, weight_decay=0.0, target=["hidden"]),  # with targets, Trainer merges wd=0 groups
        [routes()[0], Route("rest", lambda groups: torch.optim.AdamW(groups, lr=0.01), weight_decay=0.3)],
    )
    decay = {tuple(n): g["weight_decay"] for n, g in zip(names_of(model, optimizer), optimizer.param_groups)}
    assert decay[("embed.weight", "head.weight")] == 0.3
    assert decay[("hidden.0.bias", "hidden.2.bias", "norm.weight", "norm.bias")] == 0.0  # never decays
    assert decay[("hidden.0.weight", "hidden.2.weight")] == 0.0  # the matrix route keeps weight_decay


def test_hidden_matrices_leaves_out_embeddings_and_the_head_tied_or_not() -> None:
    for tie in (False, True):
        model = TinyLM(tie=tie)
        select = hidden_matrices(model)
        chosen = [name for name, p in model.named_parameters() if select(name, p, False)]
        assert chosen == ["hidden.0.weight", "hidden.2.weight"], tie
    # A model without get_output_embeddings: every 2-D weight outside nn.Embedding.
    plain = nn.Sequential(nn.Embedding(4, 3), nn.Linear(3, 2))
    select = hidden_matrices(plain)
    assert [n for n, p in plain.named_parameters() if select(n, p, False)] == ["1.weight"]


def test_a_required_route_left_empty_is_refused_with_what_it_takes_and_the_fix() -> None:
    model = TinyLM()
    never = routes(select=lambda name, param, target: False, required=True, takes="hidden matrices", hint="Do X.")
    with pytest.raises(
        IncompatibleSetupError,
        match=r"'fake_hybrid' routes hidden matrices to matrix, and the model has no such trainable parameter. Do X\.",
    ):
        build_hybrid(request_for(model), never)
    # Not required: the empty route is simply absent.
    assert list(build_hybrid(request_for(model), routes(select=lambda *a: False)).optimizers) == ["rest"]


def test_a_parameter_no_route_takes_is_a_plugin_error() -> None:
    only = routes()[:1]
    with pytest.raises(PluginError, match=r"no route takes the parameter embed\.weight"):
        build_hybrid(request_for(TinyLM()), only)


def test_a_parameter_in_two_inner_optimizers_is_refused() -> None:
    model = TinyLM()
    with pytest.raises(ValueError, match="a parameter is in two routes: 'a' and 'b'"):
        HybridOptimizer({"a": torch.optim.SGD(model.parameters(), lr=1), "b": torch.optim.SGD([model.embed.weight])})


# ---------------------------------------------------------------------------------------------
# As an optimizer
# ---------------------------------------------------------------------------------------------


def test_step_zero_grad_state_and_closure_reach_every_inner_optimizer() -> None:
    model = TinyLM()
    optimizer = hybrid(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    calls = []

    def closure() -> torch.Tensor:
        calls.append(1)
        optimizer.zero_grad()
        loss = loss_of(model)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    loss = optimizer.step(closure)
    assert calls == [1] and isinstance(loss, torch.Tensor)  # the closure runs once, not once per route
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())
    assert set(optimizer.state[model.hidden[0].weight]) == {"momentum_buffer"}
    assert set(optimizer.state[model.embed.weight]) == {"step", "exp_avg", "exp_avg_sq"}
    assert len(optimizer.state) == len(list(model.parameters()))
    with pytest.raises(KeyError):
        optimizer.state[torch.nn.Parameter(torch.zeros(1))]
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_one_scheduler_scales_every_route_from_its_own_learning_rate() -> None:
    model = TinyLM()
    optimizer = hybrid(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    train(model, optimizer, 3, scheduler)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1 / 4, 0.01 / 4, 0.01 / 4])
    assert scheduler.get_last_lr() == pytest.approx([0.1 / 4, 0.01 / 4, 0.01 / 4])


def test_step_and_state_dict_hooks_run_on_the_hybrid() -> None:
    optimizer = hybrid(model := TinyLM())
    seen: list[str] = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append("pre"))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: seen.append("post"))
    train(model, optimizer, 1)
    assert seen == ["pre", "post"]
    optimizer.register_state_dict_post_hook(lambda opt, state: {**state, "extra": 1})
    optimizer.register_load_state_dict_pre_hook(lambda opt, state: seen.append(f"load {state['extra']}"))
    optimizer.register_load_state_dict_post_hook(lambda opt: seen.append("loaded"))
    optimizer.load_state_dict(optimizer.state_dict())
    assert seen[2:] == ["load 1", "loaded"]


def checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


def test_state_dict_is_one_torch_style_dict_and_resumes_exactly() -> None:
    model = TinyLM()
    optimizer = hybrid(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.9**step)
    train(model, optimizer, 3, scheduler)
    saved = checkpoint({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
    weights = copy.deepcopy(model.state_dict())
    state = saved["optimizer"]
    # Parameters numbered across the routes, in route order; each group keeps its optimizer's settings.
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2, 3], [4, 5, 6, 7]]
    assert set(state["state"]) == set(range(8)) and "momentum_buffer" in state["state"][0]
    assert "momentum" in state["param_groups"][0] and "betas" in state["param_groups"][1]
    assert state["routes"] == [["matrix", 1], ["rest", 2]]
    expected = train(model, optimizer, 3, scheduler)

    resumed_model = TinyLM()
    resumed_model.load_state_dict(weights)
    resumed = hybrid(resumed_model)
    resumed_scheduler = torch.optim.lr_scheduler.LambdaLR(resumed, lambda step: 0.9**step)
    resumed.load_state_dict(saved["optimizer"])  # Trainer's order: optimizer, then scheduler
    resumed_scheduler.load_state_dict(saved["scheduler"])
    assert train(resumed_model, resumed, 3, resumed_scheduler) == expected
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)
    assert [g["lr"] for g in resumed.param_groups] == [g["lr"] for g in optimizer.param_groups]


def test_a_scheduler_built_before_load_state_dict_keeps_driving_the_loaded_groups() -> None:
    """accelerate reloads the optimizer's own state when it wraps it, after Trainer built the scheduler."""
    model = TinyLM()
    optimizer = hybrid(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    optimizer.load_state_dict(optimizer.state_dict())  # torch replaces the inner optimizers' group dicts
    train(model, optimizer, 2, scheduler)
    inner = [g for o in optimizer.optimizers.values() for g in o.param_groups]
    assert [g["lr"] for g in inner] == pytest.approx([0.1 / 4, 0.01 / 4, 0.01 / 4])


def test_a_checkpoint_of_other_routes_is_refused() -> None:
    model = TinyLM()
    saved = hybrid(model).state_dict()
    other = build_hybrid(request_for(model), routes(select=lambda name, param, target: param.ndim == 2))
    with pytest.raises(ValueError, match=r"routes \[\['matrix', 1\], \['rest', 2\]\].*same optimizer"):
        other.load_state_dict(saved)


def test_add_param_group_goes_to_the_route_it_names() -> None:
    model = TinyLM()
    optimizer = build_hybrid(request_for(model), routes(select=lambda name, param, target: name == "hidden.0.weight"))
    extra = nn.Parameter(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"give the group a 'route' key, one of \['matrix', 'rest'\]"):
        optimizer.add_param_group({"params": [extra]})
    optimizer.add_param_group({"params": [extra], "route": "matrix"})
    assert optimizer.param_groups[1]["params"] == [extra] and "route" not in optimizer.param_groups[1]
    assert optimizer.optimizers["matrix"].param_groups[1]["params"] == [extra]


def test_pickles_and_deep_copies_with_its_inner_optimizers() -> None:
    model = TinyLM()
    optimizer = hybrid(model)
    train(model, optimizer, 1)
    for clone in (copy.deepcopy(optimizer), pickle.loads(pickle.dumps(optimizer))):
        assert list(clone.optimizers) == ["matrix", "rest"]
        assert len(clone.param_groups) == 3 and len(clone.state) == 8
        assert clone.param_groups[0] is clone.optimizers["matrix"].param_groups[0]


# ---------------------------------------------------------------------------------------------
# Under Trainer, through a plugin
# ---------------------------------------------------------------------------------------------


class HybridPlugin:
    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        def build(request: OptimizerRequest) -> HybridOptimizer:
            return build_hybrid(
                request,
                [
                    Route(
                        "matrix",
                        lambda groups: torch.optim.SGD(groups, lr=request.lr, momentum=0.9),
                        select=hidden_matrices(request.model),
                        required=True,
                    ),
                    Route("rest", lambda groups: torch.optim.AdamW(groups, lr=request.lr / 10)),
                ],
            )

        register(
            OptimizerSpec(
                "fake_hybrid", build, "Hybrid for tests.", routes={"SGD": "hidden matrices", "AdamW": "the rest"}
            )
        )


def test_trains_under_trainer_with_one_schedule_and_resumes_exactly(register: Any, tmp_path: Path) -> None:
    register(HybridPlugin())

    def run(out: Path, resume: Path | None = None, seed: int = 0) -> Any:
        args = trainer_optim.TrainingArguments(
            output_dir=str(out),
            optim="fake_hybrid",
            learning_rate=0.05,
            max_steps=6,
            save_steps=3,
            per_device_train_batch_size=4,
            logging_steps=1,
            report_to=[],
            disable_tqdm=True,
            use_cpu=True,
            seed=0,
        )
        trainer = trainer_optim.Trainer(model=tiny_llama(seed=seed), args=args, train_dataset=tiny_lm_dataset(size=32))
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        return trainer

    full = run(tmp_path / "full")
    hybrid_optimizer = full.optimizer.optimizer  # accelerate's wrapper around ours
    assert isinstance(hybrid_optimizer, HybridOptimizer)
    # Linear decay over 6 steps reaches both routes: SGD from 0.05, AdamW from 0.005.
    lrs = {name: o.param_groups[0]["lr"] for name, o in hybrid_optimizer.optimizers.items()}
    assert lrs == pytest.approx({"matrix": 0.0, "rest": 0.0})
    initial = {name: o.param_groups[0]["initial_lr"] for name, o in hybrid_optimizer.optimizers.items()}
    assert initial == pytest.approx({"matrix": 0.05, "rest": 0.005})
    losses = [log["loss"] for log in full.state.log_history if "loss" in log]
    assert losses[-1] < losses[0]

    resumed = run(tmp_path / "resumed", resume=tmp_path / "full" / "checkpoint-3", seed=1)
    after = [(log["step"], log["loss"], log["learning_rate"]) for log in full.state.log_history if "loss" in log]
    resumed_after = [
        (log["step"], log["loss"], log["learning_rate"]) for log in resumed.state.log_history if "loss" in log
    ]
    assert resumed_after[3:] == after[3:]
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_show_explains_the_routing(register: Any) -> None:
    from trainer_optim.cli import capabilities

    register(HybridPlugin())
    rows = dict(capabilities(trainer_optim.get_optimizer_spec("fake_hybrid")))
    assert rows["hybrid routing"] == "SGD: hidden matrices; then AdamW: the rest"
    register_plain = OptimizerSpec("plain", lambda request: None, "Plain.")
    assert "hybrid routing" not in dict(capabilities(register_plain))
