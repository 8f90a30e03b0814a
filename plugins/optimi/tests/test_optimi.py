"""trainer-optim-optimi: every torch-optimi optimizer trains; stable_adamw matches transformers; the fixes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optimi
import optimi.utils
import pytest
import torch
import trainer_optim_optimi.build
import transformers

import trainer_optim
from trainer_optim import CudaRequiredError, OptimArgsError, compat
from trainer_optim.compat import SuspiciousValueWarning
from trainer_optim.testing import logged, tiny_llama, tiny_lm_dataset, tiny_training_args

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("optimi")

CLASSES = {
    "stable_adamw": optimi.StableAdamW,
    "optimi_stableadamw": optimi.StableAdamW,
    "optimi_adam": optimi.Adam,
    "optimi_adamw": optimi.AdamW,
    "optimi_adan": optimi.Adan,
    "optimi_lion": optimi.Lion,
    "optimi_radam": optimi.RAdam,
    "optimi_ranger": optimi.Ranger,
    "optimi_sgd": optimi.SGD,
}
# Settings at which 10 steps of the tiny model clearly lower the loss (default: learning_rate=1e-2).
SETTINGS: dict[str, dict[str, Any]] = {
    "optimi_lion": {"learning_rate": 3e-3},
    "optimi_radam": {"learning_rate": 0.1},
    "optimi_ranger": {"learning_rate": 0.1},
    "optimi_sgd": {"learning_rate": 0.5, "optim_args": "momentum=0.9"},
}


_DEFAULTS: dict[str, Any] = dict(learning_rate=1e-2, lr_scheduler_type="constant", use_cpu=True)


def make_args(tmp_path: Path, cls: type = trainer_optim.TrainingArguments, **overrides: Any) -> Any:
    return tiny_training_args(tmp_path, stock=cls is transformers.TrainingArguments, **{**_DEFAULTS, **overrides})


def train(args: Any, trainer_cls: type = trainer_optim.Trainer) -> Any:
    trainer = trainer_cls(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset())
    trainer.train()
    return trainer


losses = logged


def build(name: str, tmp_path: Path, **overrides: Any) -> torch.optim.Optimizer:
    """The optimizer trainer_optim.Trainer builds for these TrainingArguments."""
    args = make_args(tmp_path, optim=name, **overrides)
    return trainer_optim.Trainer(model=tiny_llama(), args=args, train_dataset=tiny_lm_dataset()).create_optimizer()


def test_every_optimizer_is_registered() -> None:
    assert set(CLASSES) <= set(trainer_optim.available_optimizers())
    for name in CLASSES:
        spec = trainer_optim.get_optimizer_spec(name)
        assert {"decouple_lr", "max_lr", "foreach", "triton", "kahan_sum"} <= {a.name for a in spec.args}
        assert "learning_rate -> lr" in spec.notes


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_trains_tiny_llama_on_cpu(name: str, tmp_path: Path) -> None:
    trainer = train(make_args(tmp_path, optim=name, **SETTINGS.get(name, {})))
    optimizer = trainer.optimizer.optimizer
    assert type(optimizer) is CLASSES[name]
    assert all(group["triton"] is False for group in optimizer.param_groups)  # the torch path on CPU
    history = losses(trainer)
    assert len(history) == 10 and history[-1] < history[0] - 0.3


def test_stable_adamw_same_as_transformers_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stock transformers.Trainer with optim="stable_adamw" vs ours, default optim_args."""
    # Stock transformers crashes on a CPU machine with Triton installed ("0 active drivers"): StableAdamW picks
    # its Triton kernels. Hide Triton from optimi's auto-detection for the stock run only.
    monkeypatch.setattr(optimi.utils, "HAS_TRITON", False)
    stock = train(
        make_args(tmp_path / "stock", transformers.TrainingArguments, optim="stable_adamw"), transformers.Trainer
    )
    monkeypatch.undo()
    ours = train(make_args(tmp_path / "ours", optim="stable_adamw"))

    assert type(ours.optimizer.optimizer) is type(stock.optimizer.optimizer) is optimi.StableAdamW
    ours_defaults, stock_defaults = dict(ours.optimizer.optimizer.defaults), dict(stock.optimizer.optimizer.defaults)
    # The one intended difference: ours says triton=False up front on CPU, stock leaves None to auto-detection.
    assert (ours_defaults.pop("triton"), stock_defaults.pop("triton")) == (False, None)
    assert ours_defaults == stock_defaults
    assert losses(ours) == pytest.approx(losses(stock), rel=1e-6)


def test_training_arguments_reach_the_optimizer(tmp_path: Path) -> None:
    # transformers' own test of stable_adamw, for every optimizer that takes these hyper-parameters.
    hyper = dict(adam_beta1=0.89, adam_beta2=0.98, adam_epsilon=1e-8, weight_decay=0.001, learning_rate=3e-4)
    for name in CLASSES:
        defaults = build(name, tmp_path, **hyper).defaults
        assert defaults["lr"] == 3e-4 and defaults["weight_decay"] == 0.001, name
        if name not in ("optimi_sgd", "optimi_adan"):
            assert (defaults["beta1"], defaults["beta2"]) == (0.89, 0.98), name
        if name not in ("optimi_sgd", "optimi_lion"):
            assert defaults["eps"] == 1e-8, name
    # Adan has three betas, which TrainingArguments cannot express: they come from optim_args.
    adan = build("optimi_adan", tmp_path, **hyper).defaults
    assert (adan["beta1"], adan["beta2"], adan["beta3"]) == (0.98, 0.92, 0.99)
    adan = build("optimi_adan", tmp_path, optim_args="betas=(0.9,0.9,0.95)").defaults
    assert (adan["beta1"], adan["beta2"], adan["beta3"]) == (0.9, 0.9, 0.95)


def test_optim_args_betas_win_over_training_arguments(tmp_path: Path) -> None:
    defaults = build("optimi_lion", tmp_path, adam_beta1=0.8, adam_beta2=0.9, optim_args="betas=(0.95,0.98)").defaults
    assert (defaults["beta1"], defaults["beta2"]) == (0.95, 0.98)


@pytest.mark.parametrize("name", ["stable_adamw", "optimi_adamw", "optimi_sgd"])
def test_false_means_false(name: str, tmp_path: Path) -> None:
    # transformers reads optim_args with bool("False"), so kahan_sum=False and decouple_lr=False turned them ON.
    defaults = build(name, tmp_path, optim_args="kahan_sum=False,decouple_lr=False").defaults
    assert defaults["kahan_sum"] is False and defaults["decouple_lr"] is False
    defaults = build(name, tmp_path, optim_args="kahan_sum=true,decouple_lr=yes,max_lr=0.02").defaults
    assert defaults["kahan_sum"] is True and defaults["decouple_lr"] is True and defaults["max_lr"] == 0.02
    assert build(name, tmp_path).defaults["kahan_sum"] is (False if name == "optimi_adan" else None)


def test_kahan_sum_false_stays_off_for_bf16_weights() -> None:
    model = tiny_llama().to(torch.bfloat16)
    optimizer = trainer_optim.create_optimizer(model, "stable_adamw", lr=1e-3, optim_args={"kahan_sum": False})
    model(input_ids=torch.arange(8)[None], labels=torch.arange(8)[None]).loss.backward()
    optimizer.step()
    assert all(optimizer.state[p]["kahan_comp"] is None for p in model.parameters())
    default = trainer_optim.create_optimizer(model, "stable_adamw", lr=1e-3)
    default.step()
    assert all(default.state[p]["kahan_comp"] is not None for p in model.parameters())  # on for bf16 by default


def test_library_specific_args_reach_the_optimizer(tmp_path: Path) -> None:
    ranger = build("optimi_ranger", tmp_path, optim_args="k=4,alpha=0.3,decouple_wd=false").defaults
    assert (ranger["k"], ranger["alpha"], ranger["decouple_wd"]) == (4, 0.3, False)
    sgd = build("optimi_sgd", tmp_path, optim_args="momentum=0.8,dampening=true,torch_init=true,decouple_wd=1").defaults
    assert (sgd["momentum"], sgd["dampening"], sgd["torch_init"], sgd["decouple_wd"]) == (0.8, True, True, True)
    assert build("optimi_adan", tmp_path, optim_args="adam_wd=true").defaults["adam_wd"] is True
    assert build("optimi_adam", tmp_path, optim_args="decouple_wd=true").defaults["decouple_wd"] is True
    with pytest.warns(DeprecationWarning, match="foreach"):  # optimi deprecates foreach in favour of triton
        assert build("optimi_adamw", tmp_path, optim_args="foreach=true").defaults["foreach"] is True


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU behaviour")
def test_explicit_triton_on_cpu_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(CudaRequiredError, match="triton=True") as info:
        make_args(tmp_path, optim="stable_adamw", optim_args="triton=True")
    assert "Drop triton=True" in str(info.value)
    with pytest.raises(CudaRequiredError):
        trainer_optim.check_optimizer("optimi_lion", "triton=true")
    # Off is always fine, and so is leaving it to the plugin.
    trainer_optim.check_optimizer("optimi_lion", "triton=false")


@pytest.mark.parametrize(
    ("name", "optim_args", "match"),
    [
        ("stable_adamw", "kahan_sum=maybe", "not a valid bool | None"),
        ("stable_adamw", "betas=(0.9,1.0)", "betas=.* must be below 1"),
        ("optimi_sgd", "momentum=1", "momentum='1' must be below 1"),
        ("optimi_adan", "betas=(0.9,0.9)", "needs 3 values"),
        ("optimi_adan", "betas=(0.9,0.9,1.0)", "betas=.* must be below 1"),
        ("optimi_ranger", "k=0", "at least 1"),
        ("optimi_ranger", "alpha=0", "alpha='0' must be above 0"),
        ("optimi_adamw", "max_lr=0", "max_lr='0' must be above 0"),
        ("stable_adamw", "gradient_release=true", "no argument 'gradient_release'"),
    ],
)
def test_bad_optim_args_are_refused_before_training(tmp_path: Path, name: str, optim_args: str, match: str) -> None:
    with pytest.raises(OptimArgsError, match=match):
        make_args(tmp_path, optim=name, optim_args=optim_args)


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["stable_adamw", "optimi_adamw", "optimi_lion"])
def test_triton_on_cuda(name: str) -> None:
    """Explicit triton=True runs the Triton kernels and matches the torch path."""
    results = []
    for triton in (True, False):
        model = tiny_llama().cuda()
        optimizer = trainer_optim.create_optimizer(model, name, lr=1e-3, optim_args={"triton": triton})
        batch = tiny_lm_dataset(size=8).input_ids.cuda()
        for _ in range(3):
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        assert optimizer.param_groups[0]["triton"] is triton
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Triton is decided by where the parameters are, not by whether the machine has CUDA
# ---------------------------------------------------------------------------------------------


def _one_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    batch = tiny_lm_dataset(size=4).input_ids
    model(input_ids=batch, labels=batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad()


@pytest.fixture
def cuda_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with CUDA (and Triton, as optimi sees it), training a model that stays on the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(optimi.utils, "HAS_TRITON", True)
    for module in ("stableadamw", "adamw", "lion"):
        monkeypatch.setattr(getattr(optimi, module), "HAS_TRITON", True, raising=False)


@pytest.mark.parametrize("name", ["stable_adamw", "optimi_adamw", "optimi_lion"])
def test_cpu_parameters_take_the_torch_path_on_a_cuda_machine(name: str, cuda_machine: None) -> None:
    model = tiny_llama()
    optimizer = trainer_optim.create_optimizer(model, name, lr=1e-3)
    assert optimizer.defaults["triton"] is False
    _one_step(model, optimizer)  # optimi's Triton kernels would fail on CPU tensors here
    assert all(group["triton"] is False for group in optimizer.param_groups)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_kahan_sum_for_bf16_weights_is_unchanged_on_a_cuda_machine(cuda_machine: None) -> None:
    model = tiny_llama().to(torch.bfloat16)
    default = trainer_optim.create_optimizer(model, "stable_adamw", lr=1e-3)
    _one_step(model, default)
    assert all(group["kahan_sum"] is True for group in default.param_groups)  # on for bf16 when left to None
    for p in model.parameters():
        compensation = default.state[p]["kahan_comp"]
        assert compensation.shape == p.shape and compensation.dtype == torch.bfloat16
    off = trainer_optim.create_optimizer(model, "stable_adamw", lr=1e-3, optim_args="kahan_sum=false")
    _one_step(model, off)
    assert all(off.state[p]["kahan_comp"] is None for p in model.parameters())


def test_explicit_triton_choice_is_left_alone(cuda_machine: None) -> None:
    # Only the undecided default is turned off for CPU parameters; an explicit value reaches optimi.
    optimizer = trainer_optim.create_optimizer(tiny_llama(), "optimi_adamw", lr=1e-3, optim_args="triton=false")
    assert optimizer.defaults["triton"] is False
    assert trainer_optim_optimi.build.triton_can_run([torch.nn.Parameter(torch.zeros(2, device="meta"))]) is False


# ---------------------------------------------------------------------------------------------
# Resuming keeps the saved dtypes of integer placeholders
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["stable_adamw", "optimi_adamw", "optimi_sgd"])
def test_loaded_integer_placeholders_keep_their_dtype(name: str) -> None:
    """optimi's Triton path stores a uint8 `kahan_comp` placeholder for weights without Kahan summation;
    torch's load_state_dict would cast it to the weights' float dtype."""
    model = tiny_llama()
    optimizer = trainer_optim.create_optimizer(
        model, name, lr=1e-2, optim_args="momentum=0.9" if "sgd" in name else None
    )
    _one_step(model, optimizer)
    state = optimizer.state_dict()
    for values in state["state"].values():
        values["kahan_comp"] = torch.zeros(1, dtype=torch.uint8)  # what the Triton path saves
    resumed = trainer_optim.create_optimizer(
        copy.deepcopy(model), name, lr=1e-2, optim_args="momentum=0.9" if "sgd" in name else None
    )
    resumed.load_state_dict(state)
    placeholders = [s["kahan_comp"] for s in resumed.state.values()]
    assert placeholders and all(p.dtype == torch.uint8 for p in placeholders)
    # Floating-point states are still cast to the weights' dtype, as torch does.
    first = next(iter(resumed.state.values()))
    assert all(v.dtype == torch.float32 for k, v in first.items() if k != "kahan_comp" and isinstance(v, torch.Tensor))


# ---------------------------------------------------------------------------------------------
# Bounds that depend on the learning rate
# ---------------------------------------------------------------------------------------------


def test_fully_decoupled_weight_decay_that_zeroes_the_weights_is_refused() -> None:
    with pytest.raises(OptimArgsError, match=r"weight_decay=1\.5 with decouple_lr=True.*zeroed or flip sign"):
        trainer_optim.create_optimizer(
            tiny_llama(), "optimi_adamw", lr=1e-3, weight_decay=1.5, optim_args="decouple_lr=true"
        )
    with pytest.raises(OptimArgsError, match="max_lr=<the peak learning rate"):
        trainer_optim.create_optimizer(
            tiny_llama(), "stable_adamw", lr=0.0, weight_decay=1e-5, optim_args="decouple_lr=true"
        )
    # Legal values still build; the usual fully decoupled decay trains.
    model = tiny_llama()
    optimizer = trainer_optim.create_optimizer(
        model, "optimi_adamw", lr=1e-3, weight_decay=1e-5, optim_args="decouple_lr=true"
    )
    _one_step(model, optimizer)


def test_max_lr_below_learning_rate_warns() -> None:
    compat.reset_warnings()
    with pytest.warns(SuspiciousValueWarning, match="max_lr=0.0001 is below learning_rate=0.001"):
        trainer_optim.create_optimizer(
            tiny_llama(), "optimi_adamw", lr=1e-3, weight_decay=1e-5, optim_args="decouple_lr=true,max_lr=1e-4"
        )


def test_radam_that_never_rectifies_warns() -> None:
    compat.reset_warnings()
    with pytest.warns(SuspiciousValueWarning, match="SGD with momentum the whole time"):
        trainer_optim.create_optimizer(tiny_llama(), "optimi_radam", lr=1e-3, optim_args="betas=(0.9,0.5)")


@pytest.mark.cuda
@pytest.mark.parametrize("triton", [False, True])
def test_stable_adamw_reproducibility_on_cuda(triton: bool) -> None:
    """Two runs from the same weights with the same gradients.

    The torch path is bitwise reproducible. The Triton path sums each tensor's RMS term with `tl.atomic_add`
    from every block into one fp32 scalar, in whatever order the blocks finish, and divides the learning rate
    by max(1, sqrt(that sum)): whenever it exceeds 1 the step can differ in its last bits between any two
    runs (a resumed one included), and so do the next gradients and moments. Those runs agree to a tolerance.
    """

    def states() -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Linear(256, 512, device="cuda")
        optimizer = trainer_optim.create_optimizer(model, "stable_adamw", lr=1e-3, optim_args={"triton": triton})
        generator = torch.Generator(device="cuda").manual_seed(1)
        for step in range(6):
            for p in model.parameters():  # growing gradients: the RMS term exceeds 1
                p.grad = torch.randn(p.shape, generator=generator, device="cuda") * 2.0**step
            optimizer.step()
        return [optimizer.state[p][key] for p in model.parameters() for key in ("exp_avg", "exp_avg_sq")] + [
            p.detach() for p in model.parameters()
        ]

    first, second = states(), states()
    for a, b in zip(first, second):
        if triton:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
        else:
            assert torch.equal(a, b)
