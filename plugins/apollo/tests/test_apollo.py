"""trainer-optim-apollo: typed args, the APOLLO-Mini preset, fidelity with transformers' built-in
`apollo_adamw`, each documented fix, the layer-wise variant and checkpoints that load with
`weights_only=True`."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys
from inspect import unwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from apollo_torch import APOLLOAdamW
from trainer_optim_apollo.build import resolve
from trainer_optim_apollo.optimizer import (
    CheckpointableAPOLLOAdamW,
    apollo_kwargs,
    channel_scaling_problems,
    projection_bytes,
)

import trainer_optim
from trainer_optim import (
    IncompatibleSetupError,
    OptimArgsError,
    TargetModulesError,
    check_optimizer,
    compat,
    create_optimizer,
    get_optimizer_spec,
)
from trainer_optim.checkpoint import ProjectorStateMixin
from trainer_optim.compat import SuspiciousValueWarning
from trainer_optim.testing import tiny_llama, tiny_lm_dataset

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("apollo")

TARGETS = ["attn", "mlp"]
MINI = "rank=1,scale_type=tensor,scale=128"  # APOLLO-Mini as the transformers docs spell it


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def check(name: str, optim_args: str | None = None) -> Any:
    return check_optimizer(name, optim_args, target_modules=TARGETS)


def batches(count: int, size: int = 8) -> list[torch.Tensor]:
    ids = tiny_lm_dataset().input_ids
    return [ids[(i * size) % len(ids) :][:size] for i in range(count)]


def run(model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: list[torch.Tensor]) -> list[float]:
    out = []
    for ids in data:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        out.append(loss.item())
    return out


def make_trainer(tmp_path: Path, stock: bool, model: Any = None, **overrides: Any) -> Any:
    """A 10-step Trainer: stock transformers with its built-in handler, or trainer_optim's."""
    module: Any = transformers if stock else trainer_optim
    settings: dict[str, Any] = dict(
        output_dir=str(tmp_path / ("stock" if stock else "ours")),
        optim="apollo_adamw",
        optim_target_modules=TARGETS,
        max_steps=10,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(overrides)
    args = module.TrainingArguments(**settings)
    return module.Trainer(model=model or tiny_llama(), args=args, train_dataset=tiny_lm_dataset())


def built(trainer: Any) -> torch.optim.Optimizer:
    optimizer = trainer.create_optimizer()
    return getattr(optimizer, "optimizer", optimizer)


def losses(trainer: Any) -> list[float]:
    return [log["loss"] for log in trainer.state.log_history if "loss" in log]


def hyper_parameters(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, Any]]:
    """Each parameter's group settings, by name: comparable however the parameters are grouped."""
    by_param = {
        id(p): {k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups for p in g["params"]
    }
    return {name: by_param[id(p)] for name, p in model.named_parameters() if id(p) in by_param}


def target_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> set[str]:
    return {name for name, settings in hyper_parameters(model, optimizer).items() if "rank" in settings}


def seeds(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """The random-projection seed of each target weight (other parameters never use theirs)."""
    targets = target_names(model, optimizer)
    return {name: optimizer.state[p]["seed"] for name, p in model.named_parameters() if name in targets}


# ---------------------------------------------------------------------------------------------
# registration and typed arguments
# ---------------------------------------------------------------------------------------------


def test_plugin_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, trainer_optim_apollo.plugin; "
        "print([m for m in ('torch', 'transformers', 'apollo_torch') if m in sys.modules])"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_registered_with_layerwise_variant() -> None:
    assert {"apollo_adamw", "apollo_adamw_layerwise"} <= set(trainer_optim.available_optimizers())
    spec = get_optimizer_spec("apollo_adamw")
    assert spec.target_modules.value == "required" and spec.layerwise
    assert not get_optimizer_spec("apollo_adamw_layerwise").ddp


def test_defaults_are_apollo_torch_and_transformers_defaults() -> None:
    args = check("apollo_adamw")
    assert apollo_kwargs(resolve(args)) == {
        "rank": 128,
        "proj": "random",
        "scale_type": "channel",
        "scale": 1.0,
        "update_proj_gap": 200,
        "proj_type": "std",
    }
    assert (args["scale_front"], args["disable_nl"]) == (False, False)


def test_values_are_typed() -> None:
    args = resolve(check("apollo_adamw", "rank=4,scale=2,update_proj_gap=10,scale_front=true"))
    assert (args["rank"], args["scale"], args["update_proj_gap"], args["scale_front"]) == (4, 2.0, 10, True)


@pytest.mark.parametrize(
    ("optim_args", "message"),
    [
        ("proj=gaussian", "random, svd"),
        ("scale_type=row", "channel, tensor"),
        ("rank=0", "at least 1"),
        ("rank=abc", "not a valid int"),
        ("proj_type=diagonal", "std, reverse_std, left, right"),
        ("ranks=4", "Did you mean 'rank'"),
        ("preset=tiny", "apollo, mini"),
        ("proj=svd,proj_type=full", "std, reverse_std, left, right"),
        ("scale=0", "scale='0' must be above 0"),
    ],
)
def test_bad_arguments_are_refused_before_training(optim_args: str, message: str) -> None:
    with pytest.raises(OptimArgsError, match=message):
        check("apollo_adamw", optim_args)


@pytest.mark.parametrize("name", ["apollo_adamw", "apollo_adamw_layerwise"])
def test_random_projection_that_cannot_fit_in_memory_is_refused_before_allocating(name: str) -> None:
    """apollo-torch draws a (rank x side) Gaussian matrix for any rank: 10**12 would be an allocator error."""
    with pytest.raises(OptimArgsError, match=r"rank=1000000000000 needs about [\d,.]+ GiB .* more than the") as info:
        create_optimizer(tiny_llama(), name, lr=1e-3, optim_args="rank=1000000000000", target_modules=TARGETS)
    assert "16 for the narrowest target" in str(info.value)


def test_projection_memory_estimate_matches_what_apollo_allocates() -> None:
    model = tiny_llama(layers=1)
    weight = model.model.layers[0].mlp.down_proj.weight  # 32x64: projected from the left
    optimizer = APOLLOAdamW([{"params": [weight], **apollo_kwargs(resolve(check("apollo_adamw", "rank=48")))}])
    weight.grad = torch.randn_like(weight)
    optimizer.step()
    state = optimizer.state[weight]
    allocated = state["projector"].ortho_matrix.numel() + state["exp_avg"].numel() + state["exp_avg_sq"].numel()
    estimate = projection_bytes(weight, 48, "std") // 4
    assert allocated <= estimate <= 2 * allocated


@pytest.mark.parametrize(("proj", "effect"), [("random", "oversamples them"), ("svd", "compresses nothing")])
def test_rank_above_a_layer_trains_with_a_warning(proj: str, effect: str) -> None:
    compat.reset_warnings()
    model = tiny_llama()
    with pytest.warns(
        SuspiciousValueWarning, match=rf"rank=1000 is not below the smaller side of 14 of the 14 .*{effect}"
    ):
        optimizer = create_optimizer(
            model, "apollo_adamw", lr=1e-2, optim_args=f"rank=1000,proj={proj}", target_modules=TARGETS
        )
    assert all(math.isfinite(loss) for loss in run(model, optimizer, batches(2)))


def test_target_modules_are_required() -> None:
    with pytest.raises(TargetModulesError, match="optim_target_modules"):
        create_optimizer(tiny_llama(), "apollo_adamw", lr=1e-3)
    with pytest.raises(TargetModulesError, match="optim_target_modules"):
        trainer_optim.TrainingArguments(output_dir="unused", optim="apollo_adamw", report_to=[])


# ---------------------------------------------------------------------------------------------
# APOLLO-Mini
# ---------------------------------------------------------------------------------------------


def test_mini_preset_sets_rank_scale_type_and_scale() -> None:
    assert apollo_kwargs(resolve(check("apollo_adamw", "preset=mini"))) == {
        "rank": 1,
        "proj": "random",
        "scale_type": "tensor",
        "scale": 128.0,
        "update_proj_gap": 200,
        "proj_type": "std",
    }
    # A key given explicitly wins over the preset.
    assert resolve(check("apollo_adamw", "preset=mini,scale=64"))["scale"] == 64.0


def test_mini_preset_trains() -> None:
    model = tiny_llama()
    optimizer = create_optimizer(model, "apollo_adamw", lr=1e-2, optim_args="preset=mini", target_modules=TARGETS)
    target_group = next(g for g in optimizer.param_groups if "rank" in g)
    assert (target_group["rank"], target_group["scale_type"], target_group["scale"]) == (1, "tensor", 128.0)
    first, *_, last = run(model, optimizer, batches(10))
    assert last < first - 0.1


# ---------------------------------------------------------------------------------------------
# Fidelity with transformers' built-in apollo_adamw
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stock_args", "our_args"),
    [(None, None), (MINI, "preset=mini"), ("proj=svd,rank=4,update_proj_gap=4", "proj=svd,rank=4,update_proj_gap=4")],
    ids=["defaults", "mini", "svd"],
)
def test_same_optimizer_and_losses_as_transformers(
    tmp_path: Path, stock_args: str | None, our_args: str | None
) -> None:
    # adam_epsilon=1e-6 is APOLLOAdamW's own default: a value the user sets reaches every group, and this
    # one changes nothing there; the TrainingArguments default: test_default_training_arguments_train_exactly_as_stock.
    stock = make_trainer(tmp_path, stock=True, optim_args=stock_args, adam_epsilon=1e-6)
    ours = make_trainer(tmp_path, stock=False, optim_args=our_args, adam_epsilon=1e-6)
    stock_optimizer, our_optimizer = built(stock), built(ours)

    assert type(stock_optimizer) is APOLLOAdamW
    assert isinstance(our_optimizer, APOLLOAdamW) and unwrap(type(our_optimizer).step) is unwrap(APOLLOAdamW.step)
    assert hyper_parameters(ours.model, our_optimizer) == hyper_parameters(stock.model, stock_optimizer)
    assert target_names(ours.model, our_optimizer) == target_names(stock.model, stock_optimizer)
    assert seeds(ours.model, our_optimizer) == seeds(stock.model, stock_optimizer)

    stock.train()
    ours.train()
    assert len(losses(ours)) == 10
    assert losses(ours) == losses(stock)


def test_default_training_arguments_train_exactly_as_stock(tmp_path: Path) -> None:
    """transformers gives the non-target groups APOLLOAdamW's eps=1e-6 and the target group adam_epsilon:
    so does ours while adam_epsilon is left at its default (a value the user sets reaches every group)."""
    stock, ours = make_trainer(tmp_path, stock=True), make_trainer(tmp_path, stock=False)
    stock_settings = hyper_parameters(stock.model, built(stock))
    assert hyper_parameters(ours.model, built(ours)) == stock_settings
    assert {s["eps"] for s in stock_settings.values() if "rank" not in s} == {1e-6}
    assert len(built(ours).param_groups) == len(built(stock).param_groups) == 2

    stock.train()
    ours.train()
    assert losses(ours) == losses(stock)


def test_betas_eps_and_weight_decay_reach_every_group(tmp_path: Path) -> None:
    settings = dict(adam_beta1=0.8, adam_beta2=0.95, adam_epsilon=1e-7, weight_decay=0.1)
    ours = make_trainer(tmp_path, stock=False, **settings)
    optimizer = built(ours)
    decay = trainer_optim._params.decay_parameter_names(ours.model)
    for name, group in hyper_parameters(ours.model, optimizer).items():
        assert (group["betas"], group["eps"]) == ((0.8, 0.95), 1e-7), name
        assert group["weight_decay"] == (0.1 if name in decay else 0.0), name

    # What transformers does with the same arguments (the shortcomings fixed above).
    stock = make_trainer(tmp_path, stock=True, **settings)
    stock_groups = hyper_parameters(stock.model, built(stock))
    assert {(g["betas"], g["eps"]) for g in stock_groups.values() if "rank" not in g} == {((0.9, 0.999), 1e-6)}
    assert {g["weight_decay"] for g in stock_groups.values()} == {0.0}


def test_weight_decay_is_applied_to_decay_parameters_only() -> None:
    model = tiny_llama()
    optimizer = create_optimizer(model, "apollo_adamw", lr=0.1, weight_decay=0.5, target_modules=TARGETS)
    decay = trainer_optim._params.decay_parameter_names(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient step: only decay moves the weights
    optimizer.step()
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if name in decay else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, msg=name)


def test_seeds_match_transformers_with_frozen_parameters(tmp_path: Path) -> None:
    """APOLLO seeds each projection by the parameter's position; frozen parameters count in transformers."""

    def frozen() -> torch.nn.Module:
        model = tiny_llama()
        model.model.embed_tokens.weight.requires_grad_(False)
        return model

    stock = make_trainer(tmp_path, stock=True, model=frozen(), weight_decay=0.1)
    ours = make_trainer(tmp_path, stock=False, model=frozen(), weight_decay=0.1)
    assert seeds(ours.model, built(ours)) == seeds(stock.model, built(stock))


# ---------------------------------------------------------------------------------------------
# Projection sides that cannot be scaled channel-wise
# ---------------------------------------------------------------------------------------------


def test_channel_scaling_with_a_one_sided_projection_is_refused_before_training() -> None:
    with pytest.raises(IncompatibleSetupError, match=r"q_proj 32x32.*proj_type=std or scale_type=tensor"):
        create_optimizer(tiny_llama(), "apollo_adamw", lr=1e-3, optim_args="proj_type=left", target_modules=TARGETS)
    model = tiny_llama()
    optimizer = create_optimizer(
        model, "apollo_adamw", lr=1e-3, optim_args="proj_type=left,scale_type=tensor", target_modules=TARGETS
    )
    run(model, optimizer, batches(1))


@pytest.mark.parametrize("proj", ["random", "svd"])
@pytest.mark.parametrize("proj_type", ["std", "reverse_std", "left", "right"])
@pytest.mark.parametrize("rank", [1, 4, 64])
def test_channel_scaling_check_predicts_upstream_failures(proj: str, proj_type: str, rank: int) -> None:
    model = tiny_llama(layers=1)
    linear = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in n}
    settings = {
        "rank": rank,
        "proj": proj,
        "scale_type": "channel",
        "scale": 1.0,
        "update_proj_gap": 200,
        "proj_type": proj_type,
    }
    for name, module in linear.items():
        problems = channel_scaling_problems({name: tuple(module.weight.shape)}, rank, proj, proj_type)
        optimizer = APOLLOAdamW([{"params": [module.weight], **settings}], lr=1e-3)
        module.weight.grad = torch.randn_like(module.weight)
        try:
            optimizer.step()
        except RuntimeError:
            assert problems, f"{name} failed upstream but the check let it through"
        else:
            assert not problems, f"{name} works upstream but the check refuses it"


# ---------------------------------------------------------------------------------------------
# Layer-wise
# ---------------------------------------------------------------------------------------------


def test_layerwise_steps_during_backward_and_matches_the_plain_optimizer() -> None:
    data = batches(3)
    plain_model, layerwise_model = tiny_llama(), tiny_llama()
    plain = create_optimizer(plain_model, "apollo_adamw", lr=1e-2, target_modules=TARGETS)
    layerwise = create_optimizer(layerwise_model, "apollo_adamw_layerwise", lr=1e-2, target_modules=TARGETS)
    per_param = list(layerwise.optimizers.values())
    assert all(isinstance(o, APOLLOAdamW) for o in per_param)
    assert sum("rank" in o.param_groups[0] for o in per_param) == len(target_names(plain_model, plain))
    # Each target weight keeps its own projection seed, the plain optimizer's (transformers' layer-wise
    # gives every parameter seed 1, so same-shaped layers share one projection).
    plain_seeds = seeds(plain_model, plain)
    layerwise_seeds = {n: layerwise.optimizers[p].state[p]["seed"] for n, p in layerwise_model.named_parameters()}
    assert {n: layerwise_seeds[n] for n in plain_seeds} == plain_seeds
    assert len(set(plain_seeds.values())) == len(plain_seeds)

    before = [p.detach().clone() for p in layerwise_model.parameters()]
    loss = layerwise_model(input_ids=data[0], labels=data[0]).loss
    loss.backward()
    assert all(not torch.equal(b, p) for b, p in zip(before, layerwise_model.parameters()))
    assert all(p.grad is None for p in layerwise_model.parameters())
    after_backward = [p.detach().clone() for p in layerwise_model.parameters()]
    layerwise.step()
    layerwise.zero_grad()
    assert all(torch.equal(a, p) for a, p in zip(after_backward, layerwise_model.parameters()))

    run(plain_model, plain, data[:1])
    run(layerwise_model, layerwise, data[1:])
    run(plain_model, plain, data[1:])
    for (name, p), q in zip(plain_model.named_parameters(), layerwise_model.parameters()):
        torch.testing.assert_close(q, p, msg=name)


def test_layerwise_trains_under_trainer(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, stock=False, optim="apollo_adamw_layerwise", learning_rate=1e-2)
    trainer.train()
    assert losses(trainer)[-1] < losses(trainer)[0] - 0.5


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def test_upstream_state_does_not_load_with_weights_only(tmp_path: Path) -> None:
    """The shortcoming fixed here: APOLLOAdamW keeps projector objects in its state."""
    model = tiny_llama()
    weight = model.model.layers[0].self_attn.q_proj.weight
    optimizer = APOLLOAdamW([{"params": [weight], **apollo_kwargs(resolve(check("apollo_adamw")))}], lr=1e-3)
    weight.grad = torch.randn_like(weight)
    optimizer.step()
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "optimizer.pt", weights_only=True)


@pytest.mark.parametrize(
    ("name", "optim_args"),
    [
        ("apollo_adamw", "update_proj_gap=3"),
        ("apollo_adamw", "proj=svd,rank=4,update_proj_gap=3"),
        ("apollo_adamw", "preset=mini,update_proj_gap=3"),
        ("apollo_adamw_layerwise", "update_proj_gap=3"),
    ],
)
def test_checkpoint_loads_with_weights_only_and_resumes_exactly(tmp_path: Path, name: str, optim_args: str) -> None:
    data = batches(8)
    model = tiny_llama()
    optimizer = create_optimizer(model, name, lr=1e-2, optim_args=optim_args, target_modules=TARGETS)
    run(model, optimizer, data[:4])  # the projection was refreshed at step 3; the next refresh is at 6

    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    state = torch.load(tmp_path / "optimizer.pt", weights_only=True)
    live = [o.state for o in getattr(optimizer, "optimizers", {None: optimizer}).values()]
    assert all(not isinstance(s.get("projector"), dict) for states in live for s in states.values())

    resumed_model = copy.deepcopy(model)
    resumed = create_optimizer(resumed_model, name, lr=1e-2, optim_args=optim_args, target_modules=TARGETS)
    resumed.load_state_dict(state)
    assert run(resumed_model, resumed, data[4:]) == run(model, optimizer, data[4:])


def test_checkpoint_names_a_projector_kind_not_a_class() -> None:
    model = tiny_llama()
    optimizer = create_optimizer(model, "apollo_adamw", lr=1e-2, target_modules=TARGETS)
    run(model, optimizer, batches(1))
    state = optimizer.state_dict()
    packed = [s["projector"] for s in state["state"].values() if "projector" in s]
    assert packed and {p["kind"] for p in packed} == {"random"}
    packed[0]["kind"] = "os.system"
    with pytest.raises(ValueError, match=r"kind 'os\.system'"):
        create_optimizer(copy.deepcopy(model), "apollo_adamw", lr=1e-2, target_modules=TARGETS).load_state_dict(state)
    assert issubclass(CheckpointableAPOLLOAdamW, ProjectorStateMixin)


def test_trainer_resumes_from_a_checkpoint(tmp_path: Path) -> None:
    settings = dict(optim_args="update_proj_gap=3", max_steps=8, save_strategy="steps", save_steps=4)
    uninterrupted = make_trainer(tmp_path / "a", stock=False, **settings)
    uninterrupted.train()
    resumed = make_trainer(tmp_path / "a", stock=False, **{**settings, "output_dir": str(tmp_path / "b")})
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "ours" / "checkpoint-4"))
    assert len(losses(uninterrupted)) == len(losses(resumed)) == 8  # the first 4 come from the checkpoint
    assert losses(resumed)[4:] == losses(uninterrupted)[4:]
