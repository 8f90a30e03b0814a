"""trainer-optim-lomo: `lomo` and `adalomo` as fused-backward optimizers.

Covers the typed args (lomo_optim's defaults), hyper-parameters reaching the optimizer, LOMO's own
gradient clipping run transparently, the max_grad_norm / DDP / gradient-accumulation checks, AdaLomo
on CPU and its checkpoint, and fidelity with transformers' built-in `lomo` under Trainer.
"""

from __future__ import annotations

import copy
import inspect
from types import SimpleNamespace
from typing import Any

import lomo_optim
import pytest
import torch
import transformers
from trainer_optim_lomo.optimizer import AdaLomo as PluginAdaLomo
from trainer_optim_lomo.optimizer import Lomo as PluginLomo

import trainer_optim
from trainer_optim import (
    IncompatibleSetupError,
    OptimArgsError,
    TargetModulesError,
    check_optimizer,
    compat,
    create_optimizer,
)
from trainer_optim.plugins import get_registry
from trainer_optim.testing import checkpoint_roundtrip, tiny_llama, tiny_lm_dataset

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("lomo")

# ---------------------------------------------------------------------------------------------- helpers


def batches(n: int, batch_size: int = 4, device: str | torch.device = "cpu") -> list[dict[str, torch.Tensor]]:
    data = tiny_lm_dataset(size=n * batch_size)
    out = []
    for i in range(n):
        ids = data.input_ids[i * batch_size : (i + 1) * batch_size].to(device)
        out.append({"input_ids": ids, "labels": ids})
    return out


def train(model: torch.nn.Module, optimizer: Any, data: list[dict[str, torch.Tensor]], lr: float) -> list[float]:
    """A plain loop for a fused-backward optimizer: no step(), no zero_grad()."""
    losses = []
    for batch in data:
        loss = model(**batch).loss
        optimizer.fused_backward(loss, lr)
        losses.append(loss.item())
    return losses


def training_args(tmp_path: Any, **kwargs: Any) -> dict[str, Any]:
    return dict(
        output_dir=str(tmp_path),
        max_steps=10,
        per_device_train_batch_size=4,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
        **kwargs,
    )


def logged_losses(trainer: Any) -> list[float]:
    return [log["loss"] for log in trainer.state.log_history if "loss" in log]


# ---------------------------------------------------------------------------------------------- names and args


def test_names_are_fused_backward_specs_without_target_modules() -> None:
    registry = get_registry()
    for name in ("lomo", "adalomo"):
        entry = registry.optimizer(name)
        assert entry.plugin == "trainer-optim-lomo"
        assert entry.spec.fused_backward is True
        assert entry.spec.target_modules is trainer_optim.TargetModules.NONE
    # transformers ignores target modules for "lomo", so they are dropped with a warning; strict mode refuses.
    compat.reset_warnings()
    with pytest.warns(compat.CompatibilityWarning, match="does not use optim_target_modules"):
        create_optimizer(tiny_llama(), "lomo", lr=1e-3, target_modules=["mlp"])
    compat.set_strict(True)
    try:
        with pytest.raises(TargetModulesError):
            create_optimizer(tiny_llama(), "lomo", lr=1e-3, target_modules=["mlp"])
    finally:
        compat.set_strict(None)


@pytest.mark.parametrize(("name", "cls"), [("lomo", lomo_optim.Lomo), ("adalomo", lomo_optim.AdaLomo)])
def test_arg_defaults_are_lomo_optims_own(name: str, cls: type) -> None:
    signature = inspect.signature(cls.__init__).parameters
    spec = trainer_optim.get_optimizer_spec(name)
    for arg in spec.args:
        assert arg.default == signature[arg.name].default, arg.name
    # model and lr come from Trainer, weight_decay from TrainingArguments; loss_scale_args is a dict of
    # DynamicLossScaler settings that optim_args cannot type.
    assert set(signature) - {"self", "model", "lr", "weight_decay", "loss_scale_args"} == {a.name for a in spec.args}


@pytest.mark.parametrize(
    "text",
    [
        "clip_grad_norm=0",
        "clip_grad_norm=-1",
        "clip_grad_value=0",
        "eps=(1e-30)",
        "eps=(0,1e-3)",
        "loss_scale=big",
        "loss_scale=1e40",
        "decay_rate=0.5",
        "clip_threshold=0",
    ],
)
def test_bad_args_are_refused(text: str) -> None:
    with pytest.raises(OptimArgsError):
        check_optimizer("adalomo", text)


def test_why_eps1_and_clip_threshold_must_be_positive() -> None:
    """Upstream takes eps1=0 and clip_threshold=0: the first gives NaN weights (an embedding row without
    gradient divides 0 by 0), the second silently never moves a weight."""
    batch = tiny_lm_dataset(size=4).input_ids
    for kwargs, check in (({"eps": (0.0, 1e-3)}, "nan"), ({"clip_threshold": 0.0}, "frozen")):
        model = tiny_llama()
        start = [p.detach().clone() for p in model.parameters()]
        optimizer = PluginAdaLomo(model, lr=1e-2, **kwargs)
        optimizer.fused_backward(model(input_ids=batch, labels=batch).loss, 1e-2)
        if check == "nan":
            assert not all(torch.isfinite(p).all() for p in model.parameters())
        else:
            assert all(torch.equal(a, p) for a, p in zip(start, model.parameters()))
    for text in ("eps=(0,1e-3)", "clip_threshold=0"):
        with pytest.raises(OptimArgsError, match=text.split("=")[0] + "="):
            check_optimizer("adalomo", text)


def test_decay_rate_below_minus_one_warns() -> None:
    compat.reset_warnings()
    with pytest.warns(compat.SuspiciousValueWarning, match="decay_rate=-2.0 < -1"):
        check_optimizer("adalomo", "decay_rate=-2")


def test_hyper_parameters_arrive() -> None:
    lomo = create_optimizer(tiny_llama(), "lomo", lr=2e-3, weight_decay=0.1, optim_args="clip_grad_value=0.5")
    assert isinstance(lomo, lomo_optim.Lomo)
    assert (lomo.lr, lomo.weight_decay, lomo.clip_grad_value, lomo.clip_grad_norm) == (2e-3, 0.1, 0.5, None)
    ada = create_optimizer(
        tiny_llama(), "adalomo", lr=5e-4, optim_args="eps=(1e-20,1e-2),decay_rate=-0.5,clip_threshold=2,loss_scale=1"
    )
    assert isinstance(ada, lomo_optim.AdaLomo)
    assert (ada.lr, ada.eps, ada.decay_rate, ada.clip_threshold, ada.loss_scale) == (
        5e-4,
        (1e-20, 1e-2),
        -0.5,
        2.0,
        1.0,
    )
    assert ada.param_groups[0]["eps"] == (1e-20, 1e-2)


# ---------------------------------------------------------------------------------------------- training


def test_lomo_updates_every_trainable_parameter() -> None:
    """transformers' own LOMO test: lr 1e-2, 20 steps, every trainable parameter has moved."""
    model = tiny_llama()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = create_optimizer(model, "lomo", lr=1e-2)
    losses = train(model, optimizer, batches(20), lr=1e-2)
    for name, param in model.named_parameters():
        assert not torch.allclose(param, before[name], atol=1e-5), f"{name} did not change"
        assert param.grad is None  # LOMO frees every gradient during backward
    assert losses[-1] < losses[0]


def test_adalomo_trains_on_cpu() -> None:
    model = tiny_llama()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = create_optimizer(model, "adalomo", lr=1e-1)  # AdaLomo scales lr by each weight's RMS
    losses = train(model, optimizer, batches(20), lr=1e-1)
    assert losses[-1] < losses[0] - 1.0, losses
    for name, param in model.named_parameters():
        assert not torch.equal(param, before[name]), f"{name} did not change"
    assert all(s.device.type == "cpu" for s in optimizer.exp_avg_sq_row.values())


def test_upstream_adalomo_needs_cuda_ours_does_not() -> None:
    if torch.cuda.is_available():
        pytest.skip("upstream only fails without CUDA")
    with pytest.raises((AssertionError, RuntimeError)):  # "Torch not compiled with CUDA enabled"
        lomo_optim.AdaLomo(tiny_llama())
    create_optimizer(tiny_llama(), "adalomo", lr=1e-3)


def test_frozen_parameters_stay_frozen() -> None:
    model = tiny_llama()
    model.model.embed_tokens.weight.requires_grad_(False)
    frozen = model.model.embed_tokens.weight.detach().clone()
    for name in ("lomo", "adalomo"):
        optimizer = create_optimizer(model, name, lr=1e-2)
        train(model, optimizer, batches(2), lr=1e-2)
    assert torch.equal(model.model.embed_tokens.weight, frozen)


@pytest.mark.parametrize("name", ["lomo", "adalomo"])
def test_clip_grad_norm_runs_the_norm_pass_itself(name: str) -> None:
    """Upstream raises unless the caller runs grad_norm(loss) first; the plugin's optimizer does it."""
    model = tiny_llama()
    twin = copy.deepcopy(model)
    optimizer = create_optimizer(model, name, lr=1e-2, optim_args="clip_grad_norm=0.01")
    batch = batches(1)[0]
    optimizer.fused_backward(model(**batch).loss, 1e-2)
    assert optimizer.clip_coef is not None and float(optimizer.clip_coef) < 1.0
    upstream = getattr(lomo_optim, "Lomo" if name == "lomo" else "AdaLomo")
    if name == "lomo":  # upstream AdaLomo cannot be built without CUDA
        raw = upstream(twin, lr=1e-2, clip_grad_norm=0.01)
        with pytest.raises(ValueError, match="grad_norm"):
            raw.fused_backward(twin(**batch).loss, 1e-2)


def test_lomo_clip_grad_norm_bounds_the_update() -> None:
    """With clipping, the whole SGD update is lr * clip_grad_norm long (the gradient is far longer)."""
    model = tiny_llama()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = create_optimizer(model, "lomo", lr=1e-2, optim_args="clip_grad_norm=0.01")
    optimizer.fused_backward(model(**batches(1)[0]).loss, 1e-2)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.linalg.vector_norm(after - before).item() == pytest.approx(1e-2 * 0.01, rel=1e-3)


def test_lomo_weight_decay_applies() -> None:
    model = tiny_llama()
    twin = copy.deepcopy(model)
    data = batches(3)
    train(model, create_optimizer(model, "lomo", lr=1e-2, weight_decay=0.5), data, lr=1e-2)
    train(twin, create_optimizer(twin, "lomo", lr=1e-2), data, lr=1e-2)
    norm = sum(p.norm() ** 2 for p in model.parameters())
    twin_norm = sum(p.norm() ** 2 for p in twin.parameters())
    assert norm < twin_norm


# ---------------------------------------------------------------------------------------------- checks


class _Args(SimpleNamespace):
    gradient_accumulation_steps = 1
    max_grad_norm = 1.0
    deepspeed = None


@pytest.mark.parametrize("name", ["lomo", "adalomo"])
def test_explicit_max_grad_norm_is_refused_with_the_fix(name: str, tmp_path: Any) -> None:
    with pytest.raises(IncompatibleSetupError) as info:
        trainer_optim.TrainingArguments(**training_args(tmp_path, optim=name, max_grad_norm=0.5))
    assert "optim_args='clip_grad_norm=0.5'" in str(info.value)
    # The fix, transformers' default, and clipping turned off are all accepted.
    trainer_optim.TrainingArguments(
        **training_args(tmp_path, optim=name, max_grad_norm=0.5, optim_args="clip_grad_norm=0.5")
    )
    trainer_optim.TrainingArguments(**training_args(tmp_path, optim=name))
    trainer_optim.TrainingArguments(**training_args(tmp_path, optim=name, max_grad_norm=0.0))


def test_gradient_accumulation_is_refused(tmp_path: Any) -> None:
    with pytest.raises(IncompatibleSetupError, match="gradient_accumulation_steps"):
        trainer_optim.TrainingArguments(**training_args(tmp_path, optim="lomo", gradient_accumulation_steps=2))


def test_plain_ddp_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(IncompatibleSetupError, match=r"replicas would drift apart\. Train on one process"):
        check_optimizer("lomo", None, training_args=_Args())
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_optimizer("lomo", None, training_args=_Args())


# ---------------------------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("name", ["lomo", "adalomo"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_dict_survives_weights_only_load_and_resumes_identically(name: str, dtype: torch.dtype) -> None:
    data = batches(6)
    model = tiny_llama().to(dtype)
    optimizer = create_optimizer(model, name, lr=1e-2)
    train(model, optimizer, data[:3], lr=1e-2)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = checkpoint_roundtrip(optimizer.state_dict())
    expected = train(model, optimizer, data[3:], lr=1e-2)

    resumed_model = tiny_llama(seed=1).to(dtype)
    resumed_model.load_state_dict(saved_model)
    resumed = create_optimizer(resumed_model, name, lr=1e-2)
    resumed.load_state_dict(saved_optimizer)
    if name == "adalomo":
        assert resumed.step_num == 3
        assert all(s.dtype == torch.float32 for s in resumed.exp_avg_sq_row.values())
    assert train(resumed_model, resumed, data[3:], lr=1e-2) == expected
    for (key, a), b in zip(model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), key


def test_adalomo_state_dict_holds_its_moments() -> None:
    model = tiny_llama()
    optimizer = create_optimizer(model, "adalomo", lr=1e-2)
    train(model, optimizer, batches(2), lr=1e-2)
    state = optimizer.state_dict()
    assert state["param_groups"][0]["step_num"] == 2
    index = [n for n, _ in model.named_parameters()].index("lm_head.weight")
    torch.testing.assert_close(state["state"][index]["exp_avg_sq_row"], optimizer.exp_avg_sq_row["lm_head.weight"])
    assert "step_num" not in optimizer.param_groups[0]
    # Loading from a live optimizer copies: the two do not share moments afterwards.
    other_model = copy.deepcopy(model)
    other = create_optimizer(other_model, "adalomo", lr=1e-2)
    other.load_state_dict(optimizer.state_dict())
    assert other.exp_avg_sq_row["lm_head.weight"].data_ptr() != optimizer.exp_avg_sq_row["lm_head.weight"].data_ptr()


# ---------------------------------------------------------------------------------------------- Trainer


def test_trainer_lomo_matches_transformers_builtin(tmp_path: Any) -> None:
    """Same class, hyper-parameters and 10 step losses as stock transformers' `lomo` handler."""
    trainer_optim.uninstall()  # the stock run must use transformers' own handler
    stock = transformers.Trainer(
        model=tiny_llama(),
        args=transformers.TrainingArguments(**training_args(tmp_path / "stock", optim="lomo", learning_rate=1e-2)),
        train_dataset=tiny_lm_dataset(size=40),
    )
    stock.train()
    ours = trainer_optim.Trainer(
        model=tiny_llama(),
        args=trainer_optim.TrainingArguments(**training_args(tmp_path / "ours", optim="lomo", learning_rate=1e-2)),
        train_dataset=tiny_lm_dataset(size=40),
    )
    ours.train()
    stock_opt, our_opt = stock.optimizer.optimizer, ours.optimizer.optimizer
    assert type(stock_opt) is lomo_optim.Lomo and type(our_opt) is PluginLomo
    for key in ("lr", "clip_grad_norm", "clip_grad_value", "weight_decay"):
        assert getattr(our_opt, key) == getattr(stock_opt, key), key
    assert stock_opt.param_groups[0]["lr"] == our_opt.param_groups[0]["lr"]
    stock_losses, our_losses = logged_losses(stock), logged_losses(ours)
    # Bit-for-bit on CPU; a GPU may reorder a few float sums between two runs.
    tolerance = 1e-4 if torch.cuda.is_available() else 1e-6
    assert len(our_losses) == 10 and our_losses == pytest.approx(stock_losses, rel=tolerance)
    assert our_losses[-1] < our_losses[0]


@pytest.mark.parametrize(("name", "optim_args"), [("adalomo", None), ("lomo", "clip_grad_norm=1.0")])
def test_trainer_trains(name: str, optim_args: str | None, tmp_path: Any) -> None:
    args = trainer_optim.TrainingArguments(
        **training_args(tmp_path, optim=name, optim_args=optim_args, learning_rate=1e-2, max_grad_norm=0.0)
    )
    trainer = trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset(size=40))
    trainer.train()
    losses = logged_losses(trainer)
    assert len(losses) == 10 and losses[-1] < losses[0]


# ---------------------------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
def test_cuda_adalomo_matches_transformers_builtin(tmp_path: Any) -> None:
    """Upstream AdaLomo needs CUDA, so the stock comparison runs on a GPU."""
    trainer_optim.uninstall()
    stock = transformers.Trainer(
        model=tiny_llama(),
        args=transformers.TrainingArguments(**training_args(tmp_path / "stock", optim="adalomo", learning_rate=1e-2)),
        train_dataset=tiny_lm_dataset(size=40),
    )
    stock.train()
    ours = trainer_optim.Trainer(
        model=tiny_llama(),
        args=trainer_optim.TrainingArguments(**training_args(tmp_path / "ours", optim="adalomo", learning_rate=1e-2)),
        train_dataset=tiny_lm_dataset(size=40),
    )
    ours.train()
    stock_opt, our_opt = stock.optimizer.optimizer, ours.optimizer.optimizer
    assert type(stock_opt) is lomo_optim.AdaLomo and type(our_opt) is PluginAdaLomo
    for key in ("lr", "eps", "loss_scale", "clip_threshold", "decay_rate", "clip_grad_norm", "weight_decay"):
        assert getattr(our_opt, key) == getattr(stock_opt, key), key
    assert our_opt.exp_avg_sq_row["lm_head.weight"].is_cuda
    assert logged_losses(ours) == pytest.approx(logged_losses(stock), rel=1e-5)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("name", ["lomo", "adalomo"])
def test_bf16_with_clipping_trains_and_resumes(name: str, device: str) -> None:
    data = batches(20, device=device)
    model = tiny_llama().to(device=device, dtype=torch.bfloat16)
    optimizer = create_optimizer(model, name, lr=1e-1, optim_args="clip_grad_norm=1.0")
    losses = train(model, optimizer, data[:15], lr=1e-1)
    assert losses[-1] < losses[0] - 0.3, losses
    saved_model = copy.deepcopy(model.state_dict())
    saved = checkpoint_roundtrip(optimizer.state_dict())
    expected = train(model, optimizer, data[15:], lr=1e-1)
    resumed_model = tiny_llama().to(device=device, dtype=torch.bfloat16)
    resumed_model.load_state_dict(saved_model)
    resumed = create_optimizer(resumed_model, name, lr=1e-1, optim_args="clip_grad_norm=1.0")
    resumed.load_state_dict(saved)
    assert train(resumed_model, resumed, data[15:], lr=1e-1) == pytest.approx(expected, rel=1e-6)
