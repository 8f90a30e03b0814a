"""trainer-optim-galore: typed args, fidelity with transformers' built-in GaLore handlers, the hyper-parameters
transformers drops, the layer-wise variants, the CUDA-only 8-bit variant and checkpoints that load with
`weights_only=True`."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys
import warnings
from inspect import unwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from galore_torch import GaLoreAdafactor, GaLoreAdamW, GaLoreAdamW8bit

import trainer_optim
from trainer_optim import (
    CudaRequiredError,
    OptimArgsError,
    TargetModulesError,
    check_optimizer,
    compat,
    create_optimizer,
    get_optimizer_spec,
)
from trainer_optim._params import decay_parameter_names
from trainer_optim.compat import SuspiciousValueWarning
from trainer_optim.testing import tiny_llama, tiny_lm_dataset

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("galore")

TARGETS = ["attn", "mlp"]
UPSTREAM = {"galore_adamw": GaLoreAdamW, "galore_adafactor": GaLoreAdafactor, "galore_adamw_8bit": GaLoreAdamW8bit}
CPU_NAMES = ["galore_adamw", "galore_adafactor"]
GALORE_DEFAULTS = {"rank": 128, "update_proj_gap": 200, "scale": 0.25, "proj_type": "std"}


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
    device = next(model.parameters()).device
    for ids in data:
        ids = ids.to(device)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        out.append(loss.item())
    return out


def make_trainer(tmp_path: Path, stock: bool, optim: str, **overrides: Any) -> Any:
    """A 10-step Trainer: stock transformers with its built-in handler, or trainer_optim's."""
    module: Any = transformers if stock else trainer_optim
    settings: dict[str, Any] = dict(
        output_dir=str(tmp_path / ("stock" if stock else "ours")),
        optim=optim,
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
    return module.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())


def built(trainer: Any) -> torch.optim.Optimizer:
    optimizer = trainer.create_optimizer()
    return getattr(optimizer, "optimizer", optimizer)


def losses(trainer: Any) -> list[float]:
    return [log["loss"] for log in trainer.state.log_history if "loss" in log]


def hyper_parameters(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, Any]]:
    """Each parameter's group settings, by name: comparable however the parameters are grouped."""
    groups = optimizer.param_groups
    by_param = {id(p): {k: v for k, v in g.items() if k != "params"} for g in groups for p in g["params"]}
    return {name: by_param[id(p)] for name, p in model.named_parameters() if id(p) in by_param}


# ---------------------------------------------------------------------------------------------
# registration and typed arguments
# ---------------------------------------------------------------------------------------------


def test_plugin_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, trainer_optim_galore.plugin; "
        "print([m for m in ('torch', 'transformers', 'galore_torch', 'bitsandbytes') if m in sys.modules])"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_registered_with_layerwise_variants() -> None:
    names = set(trainer_optim.available_optimizers())
    for name in UPSTREAM:
        assert {name, f"{name}_layerwise"} <= names
        spec = get_optimizer_spec(name)
        assert spec.target_modules.value == "required" and spec.layerwise
        assert spec.requires_cuda == (name == "galore_adamw_8bit")


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_defaults_are_transformers_defaults(name: str) -> None:
    if name == "galore_adamw_8bit" and not torch.cuda.is_available():
        pytest.skip("check_optimizer refuses galore_adamw_8bit without CUDA")
    args = check(name)
    assert {k: args[k] for k in GALORE_DEFAULTS} == GALORE_DEFAULTS


def test_adafactor_arguments() -> None:
    args = check("galore_adafactor", "beta1=0.9,clip_threshold=0.5,decay_rate=-0.5,rank=4")
    assert (args["beta1"], args["clip_threshold"], args["decay_rate"], args["rank"]) == (0.9, 0.5, -0.5, 4)
    assert check("galore_adafactor")["beta1"] is None


@pytest.mark.parametrize(
    ("name", "optim_args", "message"),
    [
        ("galore_adamw", "proj_type=diagonal", "std, reverse_std, left, right, full"),
        ("galore_adamw", "rank=0", "at least 1"),
        ("galore_adamw", "update_proj_gap=often", "not a valid int"),
        ("galore_adamw", "beta1=0.9", "has no argument 'beta1'"),
        ("galore_adafactor", "decay_rate=0.5", "at most 0"),
        ("galore_adamw", "scale=0", "scale='0' must be above 0"),
        ("galore_adafactor", "beta1=1", "beta1='1' must be below 1"),
        ("galore_adafactor", "clip_threshold=0", "clip_threshold='0' must be above 0"),
    ],
)
def test_bad_arguments_are_refused_before_training(name: str, optim_args: str, message: str) -> None:
    with pytest.raises(OptimArgsError, match=message):
        check(name, optim_args)


@pytest.mark.parametrize("name", CPU_NAMES)
def test_rank_above_every_layer_is_capped_by_the_svd_and_warned_about(name: str) -> None:
    """galore-torch slices the SVD (`U[:, :rank]`), so any rank keeps at most min(rows, cols) directions:
    even rank=10**12 allocates nothing more and trains exactly as the full rank does."""
    compat.reset_warnings()
    data = batches(3)
    runs = []
    for rank in (10**12, 32):  # 32: the largest smaller side of the tiny model's layers
        model = tiny_llama()
        with pytest.warns(SuspiciousValueWarning, match=rf"rank={rank} is not below the smaller side of \d+ of"):
            optimizer = create_optimizer(model, name, lr=1e-2, optim_args=f"rank={rank}", target_modules=TARGETS)
        losses = run(model, optimizer, data)
        assert all(math.isfinite(loss) for loss in losses)
        runs.append([p.detach().clone() for p in model.parameters()])
    for huge, capped in zip(*runs):
        torch.testing.assert_close(huge, capped)


def test_rank_below_every_layer_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SuspiciousValueWarning)
        create_optimizer(tiny_llama(), "galore_adamw", lr=1e-2, optim_args="rank=4", target_modules=TARGETS)


def test_adafactor_decay_rate_below_minus_one_warns() -> None:
    compat.reset_warnings()
    with pytest.warns(SuspiciousValueWarning, match="decay_rate=-2.0 < -1"):
        create_optimizer(
            tiny_llama(), "galore_adafactor", lr=1e-2, optim_args="rank=4,decay_rate=-2", target_modules=TARGETS
        )


def test_target_modules_are_required() -> None:
    with pytest.raises(TargetModulesError, match="optim_target_modules"):
        create_optimizer(tiny_llama(), "galore_adamw", lr=1e-3)
    with pytest.raises(TargetModulesError, match="optim_target_modules"):
        trainer_optim.TrainingArguments(output_dir="unused", optim="galore_adafactor", report_to=[])


@pytest.mark.parametrize("name", ["galore_adamw_8bit", "galore_adamw_8bit_layerwise"])
def test_8bit_without_cuda_is_refused_at_argument_validation(name: str) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(CudaRequiredError, match="needs a CUDA GPU"):
        check(name)
    with pytest.raises(CudaRequiredError, match="needs a CUDA GPU"):
        trainer_optim.TrainingArguments(output_dir="unused", optim=name, optim_target_modules=TARGETS, report_to=[])


# ---------------------------------------------------------------------------------------------
# Fidelity with transformers' built-in handlers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "optim_args", "overrides"),
    [
        # adam_epsilon=1e-6 is GaLoreAdamW's own default, the one value where passing adam_epsilon
        # changes nothing; with the TrainingArguments default see test_default_training_arguments_...
        ("galore_adamw", None, {"adam_epsilon": 1e-6}),
        ("galore_adamw", "rank=4,update_proj_gap=4,proj_type=full", {"adam_epsilon": 1e-6}),
        ("galore_adafactor", None, {}),
    ],
    ids=["adamw", "adamw-full", "adafactor"],
)
def test_same_optimizer_and_losses_as_transformers(
    tmp_path: Path, name: str, optim_args: str | None, overrides: dict[str, Any]
) -> None:
    stock = make_trainer(tmp_path, stock=True, optim=name, optim_args=optim_args, **overrides)
    ours = make_trainer(tmp_path, stock=False, optim=name, optim_args=optim_args, **overrides)
    stock_optimizer, our_optimizer = built(stock), built(ours)

    upstream = UPSTREAM[name]
    assert type(stock_optimizer) is upstream
    assert isinstance(our_optimizer, upstream) and unwrap(type(our_optimizer).step) is unwrap(upstream.step)
    assert hyper_parameters(ours.model, our_optimizer) == hyper_parameters(stock.model, stock_optimizer)

    stock.train()
    ours.train()
    assert len(losses(ours)) == 10
    assert losses(ours) == losses(stock)


def test_default_training_arguments_train_exactly_as_stock(tmp_path: Path) -> None:
    """transformers gives GaLoreAdamW no Adam settings, so it runs with its own eps=1e-6: so does ours
    when adam_epsilon is left at its default (a value the user sets reaches it, see the next test)."""
    stock = make_trainer(tmp_path, stock=True, optim="galore_adamw")
    ours = make_trainer(tmp_path, stock=False, optim="galore_adamw")
    stock_settings = hyper_parameters(stock.model, built(stock))
    assert hyper_parameters(ours.model, built(ours)) == stock_settings
    assert {s["eps"] for s in stock_settings.values()} == {1e-6}
    assert len(built(ours).param_groups) == len(built(stock).param_groups) == 2

    stock.train()
    ours.train()
    assert losses(ours) == losses(stock)


def test_adamw_betas_eps_and_weight_decay_arrive(tmp_path: Path) -> None:
    settings = dict(adam_beta1=0.8, adam_beta2=0.95, adam_epsilon=1e-7, weight_decay=0.1)
    ours = make_trainer(tmp_path, stock=False, optim="galore_adamw", **settings)
    decay = decay_parameter_names(ours.model)
    for name, group in hyper_parameters(ours.model, built(ours)).items():
        assert (group["betas"], group["eps"]) == ((0.8, 0.95), 1e-7), name
        assert group["weight_decay"] == (0.1 if name in decay else 0.0), name

    # What transformers does with the same arguments: GaLoreAdamW's defaults everywhere.
    stock = make_trainer(tmp_path, stock=True, optim="galore_adamw", **settings)
    stock_groups = hyper_parameters(stock.model, built(stock)).values()
    assert {(g["betas"], g["eps"], g["weight_decay"]) for g in stock_groups} == {((0.9, 0.999), 1e-6, 0.0)}


def test_adafactor_gets_weight_decay_and_no_adam_settings(tmp_path: Path) -> None:
    settings = dict(adam_beta1=0.8, adam_epsilon=1e-7, weight_decay=0.1)
    ours = make_trainer(tmp_path, stock=False, optim="galore_adafactor", optim_args="beta1=0.5", **settings)
    decay = decay_parameter_names(ours.model)
    for name, group in hyper_parameters(ours.model, built(ours)).items():
        assert (group["scale_parameter"], group["relative_step"], group["warmup_init"]) == (False, False, False)
        assert "betas" not in group and group["eps"] == (1e-30, 1e-3), name  # Adafactor's own pair
        assert group["beta1"] == 0.5 and group["weight_decay"] == (0.1 if name in decay else 0.0), name

    stock = make_trainer(tmp_path, stock=True, optim="galore_adafactor", **settings)
    assert {g["weight_decay"] for g in hyper_parameters(stock.model, built(stock)).values()} == {0.0}


@pytest.mark.parametrize("name", CPU_NAMES)
def test_weight_decay_is_applied_to_decay_parameters_only(name: str) -> None:
    model = tiny_llama()
    optimizer = create_optimizer(model, name, lr=0.1, weight_decay=0.5, target_modules=TARGETS)
    decay = decay_parameter_names(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient step: only decay moves the weights
    optimizer.step()
    for n, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if n in decay else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor, msg=n)


# ---------------------------------------------------------------------------------------------
# Layer-wise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CPU_NAMES)
def test_layerwise_steps_during_backward_and_matches_the_plain_optimizer(name: str) -> None:
    data = batches(3)
    plain_model, layerwise_model = tiny_llama(), tiny_llama()
    settings: dict[str, Any] = dict(lr=1e-2, weight_decay=0.1, target_modules=TARGETS)
    plain = create_optimizer(plain_model, name, **settings)
    layerwise = create_optimizer(layerwise_model, f"{name}_layerwise", **settings)
    assert all(isinstance(o, UPSTREAM[name]) for o in layerwise.optimizers.values())
    assert sum("rank" in o.param_groups[0] for o in layerwise.optimizers.values()) == 14

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
    for (n, p), q in zip(plain_model.named_parameters(), layerwise_model.parameters()):
        torch.testing.assert_close(q, p, msg=n)


def test_layerwise_trains_under_trainer(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, stock=False, optim="galore_adamw_layerwise", learning_rate=1e-2)
    trainer.train()
    assert losses(trainer)[-1] < losses(trainer)[0] - 0.5


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def test_upstream_state_does_not_load_with_weights_only(tmp_path: Path) -> None:
    """The shortcoming fixed here: GaLore keeps projector objects in its state."""
    weight = tiny_llama().model.layers[0].self_attn.q_proj.weight
    optimizer = GaLoreAdamW([{"params": [weight], **GALORE_DEFAULTS}], lr=1e-3, no_deprecation_warning=True)
    weight.grad = torch.randn_like(weight)
    optimizer.step()
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "optimizer.pt", weights_only=True)


def resumes_exactly(tmp_path: Path, name: str, optim_args: str, device: str = "cpu") -> None:
    """A fresh optimizer loaded from a weights_only checkpoint continues exactly like the original."""
    data = batches(8)
    model = tiny_llama().to(device)
    optimizer = create_optimizer(model, name, lr=1e-2, weight_decay=0.1, optim_args=optim_args, target_modules=TARGETS)
    run(model, optimizer, data[:4])  # the projection was refreshed at step 3; the next refresh is at 6

    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    state = torch.load(tmp_path / "optimizer.pt", weights_only=True, map_location="cpu")
    live = [o.state for o in getattr(optimizer, "optimizers", {None: optimizer}).values()]
    assert all(not isinstance(s.get("projector"), dict) for states in live for s in states.values())

    resumed_model = copy.deepcopy(model)
    resumed = create_optimizer(
        resumed_model, name, lr=1e-2, weight_decay=0.1, optim_args=optim_args, target_modules=TARGETS
    )
    resumed.load_state_dict(state)
    assert run(resumed_model, resumed, data[4:]) == run(model, optimizer, data[4:])


@pytest.mark.parametrize(
    ("name", "optim_args"),
    [
        ("galore_adamw", "rank=4,update_proj_gap=3"),
        ("galore_adamw", "rank=4,update_proj_gap=3,proj_type=full"),
        ("galore_adafactor", "rank=4,update_proj_gap=3,beta1=0.9"),
        ("galore_adamw_layerwise", "rank=4,update_proj_gap=3"),
    ],
)
def test_checkpoint_loads_with_weights_only_and_resumes_exactly(tmp_path: Path, name: str, optim_args: str) -> None:
    resumes_exactly(tmp_path, name, optim_args)


def test_trainer_resumes_from_a_checkpoint(tmp_path: Path) -> None:
    settings = dict(optim_args="rank=4,update_proj_gap=3", max_steps=8, save_strategy="steps", save_steps=4)
    uninterrupted = make_trainer(tmp_path / "a", stock=False, optim="galore_adamw", **settings)
    uninterrupted.train()
    resumed = make_trainer(
        tmp_path / "a", stock=False, optim="galore_adamw", **{**settings, "output_dir": str(tmp_path / "b")}
    )
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "ours" / "checkpoint-4"))
    assert len(losses(uninterrupted)) == len(losses(resumed)) == 8  # the first 4 come from the checkpoint
    assert losses(resumed)[4:] == losses(uninterrupted)[4:]


# ---------------------------------------------------------------------------------------------
# 8-bit (CUDA)
# ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_8bit_trains_with_the_adam_settings_on_cuda(tmp_path: Path) -> None:
    model = tiny_llama().cuda()
    optimizer = create_optimizer(
        model,
        "galore_adamw_8bit",
        lr=1e-2,
        weight_decay=0.1,
        betas=(0.8, 0.95),
        eps=1e-7,
        optim_args="rank=4",
        target_modules=TARGETS,
    )
    assert isinstance(optimizer, GaLoreAdamW8bit)
    decay = decay_parameter_names(model)
    for name, group in hyper_parameters(model, optimizer).items():
        assert (group["betas"], group["eps"]) == ((0.8, 0.95), 1e-7), name
        assert group["weight_decay"] == (0.1 if name in decay else 0.0), name
    first, *_, last = run(model, optimizer, batches(10))
    assert last < first - 0.1


@pytest.mark.cuda
def test_8bit_checkpoint_loads_with_weights_only_and_resumes_exactly(tmp_path: Path) -> None:
    resumes_exactly(tmp_path, "galore_adamw_8bit", "rank=4,update_proj_gap=3", device="cuda")
