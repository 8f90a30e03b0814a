"""trainer-optim-flashoptim: names, typed args with FlashOptim's defaults, the CPU / CUDA mode rules,
checkpoint round trips, bytes of optimizer state per parameter, and Trainer.

Tests marked `cuda` run FlashOptim's real modes (bf16 weights, 24-bit master weights, int8 states,
fused Triton kernels); the root conftest skips them without CUDA.
"""

from __future__ import annotations

import copy
import inspect
import os
import subprocess
import sys
import warnings
from typing import Any

import flashoptim
import pytest
import torch
from trainer_optim_flashoptim import build as flash_build
from trainer_optim_flashoptim.build import FlashOptimWarning

import trainer_optim
from trainer_optim import CudaRequiredError, IncompatibleSetupError, OptimArgsError, create_optimizer
from trainer_optim.plugins import get_registry
from trainer_optim.testing import checkpoint_roundtrip, tiny_llama, tiny_lm_dataset
from trainer_optim.testing.measure import state_bytes_per_param

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("flashoptim")

NAMES = ["flash_adamw", "flash_adam", "flash_sgd", "flash_sgdw", "flash_lion"]
CLASSES = {
    "flash_adamw": flashoptim.FlashAdamW,
    "flash_adam": flashoptim.FlashAdam,
    "flash_sgd": flashoptim.FlashSGD,
    "flash_sgdw": flashoptim.FlashSGDW,
    "flash_lion": flashoptim.FlashLion,
}
# SGD without momentum keeps no state; give it momentum where the state matters.
MOMENTUM = {"flash_sgd": {"momentum": 0.9}, "flash_sgdw": {"momentum": 0.9}}
# Learning rates that move the tiny Llama visibly in 15-20 steps.
LR = {"flash_adamw": 3e-3, "flash_adam": 3e-3, "flash_sgd": 1e-1, "flash_sgdw": 1e-1, "flash_lion": 1e-3}
CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")


# ---------------------------------------------------------------------------------------------- helpers


def batches(n: int, batch_size: int = 4, device: str | torch.device = "cpu") -> list[dict[str, torch.Tensor]]:
    data = tiny_lm_dataset(size=n * batch_size)
    out = []
    for i in range(n):
        ids = data.input_ids[i * batch_size : (i + 1) * batch_size].to(device)
        out.append({"input_ids": ids, "labels": ids})
    return out


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: list[dict[str, torch.Tensor]]) -> list[float]:
    losses = []
    for batch in data:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def build(model: torch.nn.Module, name: str, optim_args: Any = None, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CPU-path / fp32 / pure-bf16 warnings are tested on their own
        return create_optimizer(model, name, lr=kwargs.pop("lr", 1e-3), optim_args=optim_args, **kwargs)


def assert_resumes_identically(model: torch.nn.Module, name: str, optim_args: Any, device: str) -> None:
    """A reloaded optimizer (saved after 3 steps) holds what was saved and continues like the uninterrupted one.

    Bit for bit, except for quantized states saved with compress_state_dict=False: those are saved
    dequantized and quantized again on load, which moves each value by up to one int8 step.
    """
    data = batches(6, device=device)
    optimizer = build(model, name, optim_args, weight_decay=0.1)
    exact = not (optimizer._quantize and not optimizer._compress_state_dict)
    train(model, optimizer, data[:3])
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = checkpoint_roundtrip(optimizer.state_dict())
    saved_copy = copy.deepcopy(saved_optimizer)  # FlashOptim's load_state_dict rewrites the dict it is given
    expected = train(model, optimizer, data[3:])

    resumed_model = tiny_llama(seed=123).to(device=device, dtype=next(model.parameters()).dtype)
    resumed_model.load_state_dict(saved_model)
    resumed = build(resumed_model, name, optim_args, weight_decay=0.1)
    resumed.load_state_dict(saved_optimizer)
    reloaded = resumed.state_dict()["state"]
    assert reloaded.keys() == saved_copy["state"].keys()
    for index, values in saved_copy["state"].items():
        assert reloaded[index].keys() == values.keys()
        for key, value in values.items():
            got, want = reloaded[index][key].cpu(), value.cpu()
            if exact:
                assert torch.equal(got, want), (index, key)
            else:
                scale = want.float().abs().max().item()
                torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=scale / 32 + 1e-12)
    losses = train(resumed_model, resumed, data[3:])
    if exact:
        assert losses == expected
        for (key, a), b in zip(model.state_dict().items(), resumed_model.state_dict().values()):
            assert torch.equal(a, b), key
    else:
        assert losses == pytest.approx(expected, rel=1e-3)


# ---------------------------------------------------------------------------------------------- names and args


def test_every_name_is_registered_by_this_plugin() -> None:
    registry = get_registry()
    for name in NAMES:
        assert registry.optimizer(name).plugin == "trainer-optim-flashoptim"


@pytest.mark.parametrize("name", NAMES)
def test_arg_defaults_are_flashoptims_own(name: str) -> None:
    spec = trainer_optim.get_optimizer_spec(name)
    signature = inspect.signature(CLASSES[name].__init__).parameters
    for arg in spec.args:
        assert arg.name in signature, f"{name} declares {arg.name}, which {CLASSES[name].__name__} does not take"
        assert arg.default == signature[arg.name].default, arg.name
    # Everything the constructor takes is declared, except what comes from TrainingArguments.
    from_training_args = {"self", "params", "lr", "betas", "eps", "weight_decay"}
    assert set(signature) - from_training_args == {a.name for a in spec.args}


def test_show_tells_which_modes_need_cuda() -> None:
    spec = trainer_optim.get_optimizer_spec("flash_adamw")
    help_by_name = {a.name: a.help for a in spec.args}
    for key in ("quantize", "fused", "master_weight_bits"):
        assert "CUDA" in help_by_name[key], key
    assert "CPU path" in spec.notes and "quantize=True, fused=True and master_weight_bits=24/32" in spec.notes
    out = subprocess.run(
        [sys.executable, "-m", "trainer_optim.cli", "show", "flash_adamw"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr
    assert "master_weight_bits" in out.stdout and "need a CUDA GPU" in out.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [("master_weight_bits=None", None), ("master_weight_bits=32", 32), ("master_weight_bits=none", None)],
)
def test_master_weight_bits_parses_none_and_numbers(text: str, expected: int | None) -> None:
    from trainer_optim._args import parse_args

    args = parse_args(text, trainer_optim.get_optimizer_spec("flash_adamw").args, owner="flash_adamw")
    assert args["master_weight_bits"] == expected


@pytest.mark.parametrize(
    "text", ["master_weight_bits=16", "master_weight_bits=bf16", "quantize=maybe", "betas=(0.9,0.9)"]
)
def test_bad_args_are_refused(text: str) -> None:
    with pytest.raises(OptimArgsError):
        trainer_optim.check_optimizer("flash_adamw", text)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("momentum=1", "momentum='1' must be below 1"),
        ("dampening=1,momentum=0.9", "dampening='1' must be below 1"),
        ("nesterov=true", "nesterov=True needs momentum > 0 and dampening=0"),
        ("nesterov=true,momentum=0.9,dampening=0.1", "nesterov=True needs momentum > 0 and dampening=0"),
    ],
)
def test_sgd_arguments_the_update_cannot_use_are_refused(text: str, match: str) -> None:
    # FlashSGD applies (1 - dampening) from the first step on: at 1 the momentum stays zero and nothing trains;
    # nesterov without momentum was a raw ValueError from FlashSGD's constructor.
    with pytest.raises(OptimArgsError, match=match):
        trainer_optim.check_optimizer("flash_sgd", text)


def test_decouple_lr_with_a_zero_learning_rate_is_refused() -> None:
    """FlashOptim divides by the learning rate it was built with (0 / 0 at the first step)."""
    with pytest.raises(OptimArgsError, match="decouple_lr=True scales the weight decay by lr"):
        create_optimizer(tiny_llama(), "flash_adamw", lr=0.0, optim_args="decouple_lr=true")


# ---------------------------------------------------------------------------------------------- CPU rules


@CPU_ONLY
@pytest.mark.parametrize(
    "text", ["quantize=True", "fused=True", "master_weight_bits=24", "master_weight_bits=32", "fused=1,quantize=0"]
)
def test_explicit_cuda_only_mode_without_cuda_is_refused_before_training(text: str) -> None:
    with pytest.raises(CudaRequiredError) as info:
        trainer_optim.check_optimizer("flash_adamw", text)
    message = str(info.value)
    key = text.split(",")[0].split("=")[0]
    assert key in message and "needs CUDA" in message and "Remove" in message


@CPU_ONLY
def test_explicit_cpu_values_are_accepted() -> None:
    args = trainer_optim.check_optimizer("flash_sgd", "quantize=False,fused=False,master_weight_bits=None,momentum=0.5")
    assert args["momentum"] == 0.5


@pytest.mark.parametrize("name", NAMES)
def test_use_cpu_with_an_explicit_cuda_mode_is_refused(name: str, tmp_path: Any) -> None:
    with pytest.raises(CudaRequiredError, match="use_cpu=True"):
        trainer_optim.TrainingArguments(
            output_dir=str(tmp_path), optim=name, optim_args="quantize=True", use_cpu=True, report_to="none"
        )


@CPU_ONLY
@pytest.mark.parametrize("name", NAMES)
def test_defaults_without_cuda_run_the_cpu_path_with_a_warning(name: str) -> None:
    model = tiny_llama()
    with pytest.warns(FlashOptimWarning, match="no CUDA"):
        optimizer = create_optimizer(model, name, lr=1e-3)
    assert type(optimizer) is CLASSES[name]
    assert (optimizer._quantize, optimizer._fused, optimizer._master_bytewidth) == (False, False, 0)
    assert all(g["master_bytewidth"] == 0 and g["quantize"] is False for g in optimizer.param_groups)


def test_parameters_off_cuda_with_an_explicit_cuda_mode_fail_at_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CUDA machine that trains on CPU (the validate check passes, the parameters are not on the GPU).
    request = _request("flash_adamw", tiny_llama(), {"fused": True})
    monkeypatch.setattr(flash_build, "params_on_cuda", lambda params: False)
    with pytest.raises(CudaRequiredError, match="not on a CUDA device"):
        flash_build.resolve_mode("flash_adamw", request, request.parameters)


def _request(name: str, model: torch.nn.Module, given: dict[str, Any]) -> trainer_optim.OptimizerRequest:
    from trainer_optim._args import parse_args
    from trainer_optim._params import build_param_groups

    spec = trainer_optim.get_optimizer_spec(name)
    groups, _ = build_param_groups(model, 0.0, spec)
    return trainer_optim.OptimizerRequest(
        name=name, args=parse_args(given, spec.args, owner=name), lr=1e-3, model=model, groups=groups
    )


def test_fp32_weights_drop_master_weights_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flash_build, "params_on_cuda", lambda params: True)
    for given in ({}, {"master_weight_bits": 32}):
        request = _request("flash_adamw", tiny_llama(), given)
        with pytest.warns(FlashOptimWarning, match="no effect with fp32 weights") as record:
            mode = flash_build.resolve_mode("flash_adamw", request, request.parameters)
        assert "dtype=torch.bfloat16" in str(record[0].message)
        assert mode["master_weight_bits"] is None
        assert mode["quantize"] is True and mode["fused"] is True  # the rest of the CUDA mode stays


def test_bf16_weights_keep_24_bit_master_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flash_build, "params_on_cuda", lambda params: True)
    request = _request("flash_adamw", tiny_llama().to(torch.bfloat16), {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mode = flash_build.resolve_mode("flash_adamw", request, request.parameters)
    assert mode == {
        "decouple_lr": False,
        "master_weight_bits": 24,
        "quantize": True,
        "compress_state_dict": True,
        "check_numerics": False,
        "fused": True,
    }


def test_fused_with_a_non_contiguous_parameter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flash_build, "params_on_cuda", lambda params: True)
    model = tiny_llama().to(torch.bfloat16)
    weight = model.lm_head.weight
    weight.data = weight.data.t().contiguous().t()
    request = _request("flash_adamw", model, {})
    with pytest.raises(IncompatibleSetupError, match=r"lm_head.weight.*fused=False"):
        flash_build.resolve_mode("flash_adamw", request, request.parameters)


def test_mixed_dtypes_get_one_param_group_per_dtype() -> None:
    model = tiny_llama().to(torch.bfloat16)
    model.model.norm.float()
    optimizer = build(model, "flash_adamw", weight_decay=0.1)
    for group in optimizer.param_groups:
        assert len({p.dtype for p in group["params"]}) == 1
    assert [(g["weight_decay"], g["params"][0].dtype) for g in optimizer.param_groups] == [
        (0.1, torch.bfloat16),
        (0.0, torch.bfloat16),
        (0.0, torch.float32),
    ]


# ---------------------------------------------------------------------------------------------- training (CPU path)


def test_hyper_parameters_arrive() -> None:
    model = tiny_llama()
    optimizer = build(
        model,
        "flash_adamw",
        "decouple_lr=true,check_numerics=True",
        lr=3e-3,
        weight_decay=0.1,
        betas=(0.8, 0.95),
        eps=1e-6,
    )
    assert optimizer._decouple_lr is True and optimizer._check_numerics is True
    for group in optimizer.param_groups:
        assert (group["lr"], group["betas"], group["eps"]) == (3e-3, (0.8, 0.95), 1e-6)
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, 0.1]
    sgd = build(tiny_llama(), "flash_sgd", "momentum=0.8,dampening=0.1,nesterov=false", weight_decay=0.01)
    assert {(g["momentum"], g["dampening"]) for g in sgd.param_groups} == {(0.8, 0.1)}
    assert sgd._nesterov is False and sgd._decoupled is False
    sgdw = build(tiny_llama(), "flash_sgdw", "momentum=0.9,nesterov=true,decouple_lr=true")
    assert sgdw._nesterov is True and sgdw._decoupled is True and sgdw._decouple_lr is True
    lion = build(tiny_llama(), "flash_lion", betas=(0.9, 0.99), weight_decay=0.1)
    assert {g["betas"] for g in lion.param_groups} == {(0.9, 0.99)}


@pytest.mark.parametrize(
    ("name", "reference", "optim_args"),
    [
        ("flash_adamw", lambda groups: torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.1), None),
        ("flash_adam", lambda groups: torch.optim.Adam(groups, lr=1e-3, weight_decay=0.1), None),
        ("flash_sgd", lambda groups: torch.optim.SGD(groups, lr=1e-3, momentum=0.9, weight_decay=0.1), "momentum=0.9"),
    ],
)
def test_cpu_path_matches_torch(name: str, reference: Any, optim_args: str | None) -> None:
    """FlashOptim's eager path is the textbook update: same trajectory as torch.optim (fp32)."""
    model = tiny_llama()
    twin = copy.deepcopy(model)
    data = batches(5)
    ours = train(model, build(model, name, optim_args, weight_decay=0.1), data)
    groups = build(twin, name, optim_args, weight_decay=0.1).param_groups  # same grouping, fresh torch optimizer
    theirs = train(twin, reference([{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups]), data)
    assert ours == pytest.approx(theirs, rel=1e-5)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_every_optimizer_trains_on_cpu(name: str) -> None:
    model = tiny_llama()
    losses = train(model, build(model, name, MOMENTUM.get(name), lr=LR[name]), batches(15))
    assert losses[-1] < losses[0] - 0.1, losses


def test_bf16_weights_train_on_cpu() -> None:
    model = tiny_llama().to(torch.bfloat16)
    losses = train(model, build(model, "flash_adamw", lr=3e-3), batches(15))
    assert losses[-1] < losses[0] - 0.1, losses


@CPU_ONLY
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_survives_weights_only_load_and_resumes_identically(name: str) -> None:
    assert_resumes_identically(tiny_llama(), name, MOMENTUM.get(name), "cpu")


# Bytes of optimizer state per parameter on the CPU path, as the README documents them.
CPU_STATE_BYTES = [
    ("flash_adamw", torch.float32, None, 8.0),
    ("flash_adamw", torch.bfloat16, None, 4.0),
    ("flash_adam", torch.float32, None, 8.0),
    ("flash_sgd", torch.float32, None, 0.0),
    ("flash_sgd", torch.float32, "momentum=0.9", 4.0),
    ("flash_sgd", torch.bfloat16, "momentum=0.9", 2.0),
    ("flash_sgdw", torch.float32, "momentum=0.9", 4.0),
    ("flash_lion", torch.float32, None, 4.0),
    ("flash_lion", torch.bfloat16, None, 2.0),
]


@CPU_ONLY
@pytest.mark.parametrize(("name", "dtype", "optim_args", "expected"), CPU_STATE_BYTES)
def test_state_bytes_per_param_on_cpu(name: str, dtype: torch.dtype, optim_args: str | None, expected: float) -> None:
    model = tiny_llama().to(dtype)
    optimizer = build(model, name, optim_args)
    train(model, optimizer, batches(1))
    # Adam's per-tensor int64 step counter adds a few bytes per tensor, well under 0.01 byte per param.
    assert state_bytes_per_param(optimizer) == pytest.approx(expected, abs=0.01)


# ---------------------------------------------------------------------------------------------- Trainer


def test_trainer_trains_with_flash_adamw(tmp_path: Any) -> None:
    args = trainer_optim.TrainingArguments(
        output_dir=str(tmp_path),
        optim="flash_adamw",
        learning_rate=3e-3,
        weight_decay=0.1,
        adam_beta2=0.95,
        max_steps=12,
        per_device_train_batch_size=4,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    model = tiny_llama()
    trainer = trainer_optim.Trainer(model=model, args=args, train_dataset=tiny_lm_dataset(size=48))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FlashOptimWarning)
        trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    assert type(optimizer) is flashoptim.FlashAdamW
    assert {g["betas"] for g in optimizer.param_groups} == {(0.9, 0.95)}
    assert sorted({g["weight_decay"] for g in optimizer.param_groups}) == [0.0, 0.1]
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 12 and losses[-1] < losses[0]


# ---------------------------------------------------------------------------------------------- CUDA (real modes)


def cuda_model(dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    return tiny_llama().to(device="cuda", dtype=dtype)


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_defaults_quantized_fused_24_bit_master_weights(name: str) -> None:
    model = cuda_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FlashOptimWarning)
        optimizer = create_optimizer(model, name, lr=LR[name], optim_args=MOMENTUM.get(name))
    assert type(optimizer) is CLASSES[name]
    assert (optimizer._quantize, optimizer._fused, optimizer._master_bytewidth) == (True, True, 3)
    losses = train(model, optimizer, batches(20, device="cuda"))
    assert losses[-1] < losses[0] - 0.1, losses
    state = optimizer.state[model.lm_head.weight]
    assert state["error_bits"].dtype == torch.int8
    moments = [v for k, v in state.items() if k not in ("step", "error_bits")]
    assert moments and all(m.is_quantized() for m in moments)
    # Per state: 1 int8 byte + an fp16 scale per 32 values (1.0625 bytes); plus 1 byte of error correction.
    # Adam keeps two states, SGD (momentum) and Lion one. AdamW in fp32 with fp32 master weights: 8 + 4.
    expected = 2 * 1.0625 + 1 if name in ("flash_adamw", "flash_adam") else 1.0625 + 1
    assert state_bytes_per_param(optimizer) == pytest.approx(expected, abs=0.01)


@pytest.mark.cuda
@pytest.mark.parametrize(("bits", "dtype"), [(32, torch.int16), (None, None)])
def test_cuda_master_weight_bits(bits: int | None, dtype: torch.dtype | None) -> None:
    model = cuda_model()
    optimizer = build(model, "flash_adamw", {"master_weight_bits": bits})
    train(model, optimizer, batches(2, device="cuda"))
    state = optimizer.state[model.lm_head.weight]
    if dtype is None:
        assert "error_bits" not in state
    else:
        assert state["error_bits"].dtype == dtype


@pytest.mark.cuda
def test_cuda_fp32_weights_drop_master_weights_but_keep_int8_states() -> None:
    model = cuda_model(torch.float32)
    with pytest.warns(FlashOptimWarning, match="fp32 weights"):
        optimizer = create_optimizer(model, "flash_adamw", lr=3e-3)
    assert (optimizer._quantize, optimizer._fused, optimizer._master_bytewidth) == (True, True, 0)
    losses = train(model, optimizer, batches(15, device="cuda"))
    assert losses[-1] < losses[0] - 0.1
    assert "error_bits" not in optimizer.state[model.lm_head.weight]


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("compress", [True, False])
def test_cuda_state_dict_survives_weights_only_load_and_resumes_identically(name: str, compress: bool) -> None:
    args = {**MOMENTUM.get(name, {}), "compress_state_dict": compress}
    assert_resumes_identically(cuda_model(), name, args, "cuda")


@pytest.mark.cuda
def test_cuda_trainer_with_bf16_weights(tmp_path: Any) -> None:
    args = trainer_optim.TrainingArguments(
        output_dir=str(tmp_path),
        optim="flash_adamw",
        learning_rate=3e-3,
        max_steps=15,
        per_device_train_batch_size=4,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        bf16=True,
    )
    trainer = trainer_optim.Trainer(
        model=tiny_llama().to(torch.bfloat16), args=args, train_dataset=tiny_lm_dataset(size=60)
    )
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    assert type(optimizer) is flashoptim.FlashAdamW and optimizer._master_bytewidth == 3
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert losses[-1] < losses[0]
