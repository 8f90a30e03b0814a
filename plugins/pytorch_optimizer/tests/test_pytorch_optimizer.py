"""trainer-optim-pytorch-optimizer: the generated table is current, typed args reach the optimizer, the
naming rule holds, refused optimizers stay out, and representative names resume exactly under Trainer."""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import pytorch_optimizer
import torch
import transformers
from trainer_optim_pytorch_optimizer import overrides, plugin
from trainer_optim_pytorch_optimizer._generated import OPTIMIZERS

import trainer_optim
from trainer_optim.compat import SuspiciousValueWarning
from trainer_optim.testing import tiny_llama, tiny_lm_dataset
from trainer_optim.testing.conformance import plugin_names
from trainer_optim.testing.trainer import logged, tiny_trainer, tiny_training_args

pytestmark = pytest.mark.trainer_optim_plugins("pytorch_optimizer")

GENERATOR = Path(__file__).resolve().parents[1] / "scripts" / "generate.py"
#: The other first-party plugins' entry-point names, and their names must not start with the prefix.
FIRST_PARTY = ("apollo", "galore", "lomo", "schedulefree", "optimi", "grokadamw", "flashoptim", "torch", "muon")


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("po_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_table_is_current() -> None:
    """CI fails while _generated.py disagrees with the installed library's signatures or overrides.py."""
    assert _generator().main(["--check"]) == 0, "run python plugins/pytorch_optimizer/scripts/generate.py"


def test_every_library_optimizer_is_registered_or_refused_with_a_reason() -> None:
    registered = {row.library_name for row in OPTIMIZERS}
    library = {cls.__name__.lower() for cls in pytorch_optimizer.optimizer.OPTIMIZER_LIST}
    accounted = registered | set(overrides.REFUSED) | set(overrides.FROM_TORCH)
    assert accounted == library
    assert not registered & set(overrides.REFUSED)
    assert all(reason.strip() for reason in overrides.REFUSED.values())
    assert len(registered) >= 0.75 * len(library)  # refusing is the exception, with a reason each


def test_naming_rule_collides_with_nothing() -> None:
    optimizers, schedulers = plugin_names(plugin)
    assert all(name == overrides.PREFIX + row.library_name for name, row in zip(optimizers, OPTIMIZERS))
    assert all(name.startswith("po_") for name in optimizers + schedulers)
    stock = {n.value for n in transformers.training_args.OptimizerNames} | {
        s.value for s in transformers.trainer_utils.SchedulerType
    }
    assert not (set(optimizers) | set(schedulers)) & stock
    assert not any(name.startswith("po_") for name in stock | set(FIRST_PARTY))


def test_listing_does_not_import_the_library() -> None:
    import subprocess
    import sys

    script = (
        "import sys, trainer_optim\n"
        "names = trainer_optim.available_optimizers()\n"
        "assert 'po_lamb' in names, names\n"
        "print(sorted(m for m in ('torch', 'pytorch_optimizer', 'transformers', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(overrides.REFUSED))
def test_refused_names_are_not_registered(name: str) -> None:
    with pytest.raises(trainer_optim.UnknownOptimizerError):
        trainer_optim.get_optimizer_spec(overrides.PREFIX + name)


# ---------------------------------------------------------------------------------------------
# Typed arguments reach the optimizer
# ---------------------------------------------------------------------------------------------


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))


@pytest.mark.parametrize("row", OPTIMIZERS, ids=[row.name for row in OPTIMIZERS])
def test_learning_rate_reaches_every_parameter_group(row: Any) -> None:
    """Trainer's schedulers scale group["lr"]: an optimizer that keeps none would ignore learning_rate."""
    args = {"num_iterations": 10} if row.steps else {}
    optimizer = trainer_optim.create_optimizer(_model(), row.name, lr=0.0123, weight_decay=0.01, optim_args=args)
    # GrokFastAdamW divides it by 1 + grokfast_lamb (normalize_lr=True, documented): still proportional.
    expected = 0.0123 / 3.0 if row.name == "po_grokfastadamw" else 0.0123
    assert [group["lr"] for group in optimizer.param_groups] == [pytest.approx(expected)] * 2


def test_typed_args_reach_lamb() -> None:
    optimizer = trainer_optim.create_optimizer(
        _model(), "po_lamb", lr=3e-3, weight_decay=0.1, optim_args="rectify=true, n_sma_threshold=4, max_grad_norm=2"
    )
    assert isinstance(optimizer, pytorch_optimizer.Lamb)
    group = optimizer.param_groups[0]
    assert group["rectify"] is True and group["max_grad_norm"] == 2.0 and group["lr"] == 3e-3
    assert optimizer.n_sma_threshold == 4
    # betas / eps left at TrainingArguments' defaults: the library's own (Lamb's eps is 1e-6, not 1e-8).
    assert group["eps"] == 1e-6 and group["betas"] == (0.9, 0.999)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]  # biases get none


def test_explicit_adam_settings_reach_the_optimizer() -> None:
    optimizer = trainer_optim.create_optimizer(_model(), "po_lion", lr=1e-4, betas=(0.95, 0.98), eps=1e-7)
    assert optimizer.param_groups[0]["betas"] == (0.95, 0.98)
    default = trainer_optim.create_optimizer(_model(), "po_lion", lr=1e-4)
    assert default.param_groups[0]["betas"] == (0.9, 0.99)  # Lion's, not Adam's (0.9, 0.999)


def test_three_betas_are_an_optim_arg() -> None:
    optimizer = trainer_optim.create_optimizer(_model(), "po_adan", lr=1e-3, optim_args="betas=(0.9,0.9,0.95)")
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.9, 0.95)
    with pytest.raises(trainer_optim.OptimArgsError, match="betas"):
        trainer_optim.check_optimizer("po_adan", "betas=(0.9,0.99)")
    with pytest.warns(SuspiciousValueWarning, match="adam_beta1"):
        trainer_optim.create_optimizer(_model(), "po_adan", lr=1e-3, betas=(0.8, 0.9))


def test_choices_bounds_and_library_default_placeholders() -> None:
    with pytest.raises(trainer_optim.OptimArgsError, match="scale_type"):
        trainer_optim.check_optimizer("po_apollo", "scale_type=row")
    optimizer = trainer_optim.create_optimizer(_model(), "po_apollo", lr=1e-3, optim_args="scale_type=channel")
    assert optimizer.param_groups[0]["scale_type"] == "channel"
    with pytest.raises(trainer_optim.OptimArgsError, match=r"must be at most 1\.0"):
        trainer_optim.check_optimizer("po_sgdw", "momentum=1.5")
    # Prodigy's growth_rate defaults to inf, which optim_args cannot write: None leaves the library default.
    prodigy = trainer_optim.create_optimizer(_model(), "po_prodigy", lr=1.0)
    assert prodigy.param_groups[0]["growth_rate"] == math.inf
    capped = trainer_optim.create_optimizer(_model(), "po_prodigy", lr=1.0, optim_args="growth_rate=1.02")
    assert capped.param_groups[0]["growth_rate"] == 1.02


def test_the_librarys_own_checks_fail_before_the_model_loads(tmp_path: Path) -> None:
    """A value only the library knows is wrong (Adan's beta1 < 1, inside the [0, 1] bound declared for every
    beta) is our error naming the key when TrainingArguments is built."""
    message = r"po_adan: pytorch-optimizer's Adan refuses optim_args betas=\(1\.0, 0\.9, 0\.9\): beta1 must be"
    with pytest.raises(trainer_optim.OptimArgsError, match=message):
        tiny_training_args(tmp_path, optim="po_adan", optim_args="betas=(1.0, 0.9, 0.9)")
    with pytest.raises(trainer_optim.OptimArgsError, match=message):
        trainer_optim.check_optimizer("po_adan", "betas=(1.0, 0.9, 0.9)")


def test_maximize_is_not_settable() -> None:
    with pytest.raises(trainer_optim.OptimArgsError, match="maximize"):
        trainer_optim.check_optimizer("po_lamb", "maximize=true")


def test_adafactor_follows_learning_rate_as_transformers_adafactor_does() -> None:
    optimizer = trainer_optim.create_optimizer(_model(), "po_adafactor", lr=1e-3)
    group = optimizer.param_groups[0]
    assert group["relative_step"] is False and group["scale_parameter"] is False


def test_weight_decay_an_optimizer_cannot_take_warns() -> None:
    with pytest.warns(SuspiciousValueWarning, match="weight_decay=0.05 is not applied"):
        trainer_optim.create_optimizer(_model(), "po_fromage", lr=1e-2, weight_decay=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SuspiciousValueWarning)
        trainer_optim.create_optimizer(_model(), "po_fromage", lr=1e-2)


# ---------------------------------------------------------------------------------------------
# Under Trainer
# ---------------------------------------------------------------------------------------------


def test_ranger21_takes_the_run_length_under_trainer(tmp_path: Path) -> None:
    trainer = tiny_trainer(tiny_training_args(tmp_path, optim="po_ranger21", max_steps=7, learning_rate=1e-3))
    trainer.train()
    ranger = trainer.optimizer.optimizer  # unwrapped from accelerate's wrapper
    assert ranger.start_warm_down == 7 - ranger.num_warm_down_iterations  # its warm-down ends with the run
    with pytest.raises(trainer_optim.IncompatibleSetupError, match="num_iterations"):
        trainer_optim.create_optimizer(_model(), "po_ranger21", lr=1e-3)


def test_wsd_scheduler_under_trainer(tmp_path: Path) -> None:
    args = tiny_training_args(
        tmp_path,
        optim="po_lamb",
        learning_rate=1e-2,
        max_steps=10,
        warmup_steps=2,
        lr_scheduler_type="po_warmup_stable_decay",
        lr_scheduler_kwargs={"num_decay_steps": 4, "cooldown_type": "linear"},
    )
    trainer = tiny_trainer(args)
    trainer.train()
    lrs = logged(trainer, "learning_rate")
    # The rate each step used: 2 warm-up steps, the peak until the decay's 4 steps (its first at progress 0).
    assert lrs == pytest.approx([0.0, 5e-3, 1e-2, 1e-2, 1e-2, 1e-2, 1e-2, 7.5e-3, 5e-3, 2.5e-3])
    with pytest.raises(trainer_optim.OptimArgsError, match="cooldown_type"):
        trainer_optim.check_scheduler("po_warmup_stable_decay", {"num_decay_steps": 4, "cooldown_type": "cubic"})


# Representative of the kinds of state: Adam-like, three betas, LR-free, averaged weights (train/eval),
# preconditioners, a schedule from the run length, factored moments.
RESUME = ["po_lamb", "po_adan", "po_prodigy", "po_schedulefreeadamw", "po_soap", "po_ranger21"]


def _run(output_dir: Path, name: str, seed: int, resume: Path | None = None) -> Any:
    settings: dict[str, Any] = {"learning_rate": 1.0 if name == "po_prodigy" else 1e-2}
    if name == "po_schedulefreeadamw":
        settings["lr_scheduler_type"] = "constant"
    args = tiny_training_args(
        output_dir,
        optim=name,
        max_steps=6,
        save_strategy="steps",
        save_steps=3,
        per_device_train_batch_size=4,
        **settings,
    )
    trainer = tiny_trainer(args, model=tiny_llama(seed=seed), train_dataset=tiny_lm_dataset(size=32))
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return trainer


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


@pytest.mark.parametrize("name", RESUME)
def test_resume_under_trainer_is_exact(tmp_path: Path, name: str) -> None:
    full = _run(tmp_path / "full", name, seed=0)
    resumed = _run(tmp_path / "resumed", name, seed=1, resume=tmp_path / "full" / "checkpoint-3")
    after = [(log["step"], log["loss"]) for log in full.state.log_history if "loss" in log and log["step"] > 3]
    again = [(log["step"], log["loss"]) for log in resumed.state.log_history if "loss" in log and log["step"] > 3]
    assert after == again and len(after) == 3
    assert _same(full.optimizer.optimizer.state_dict(), resumed.optimizer.optimizer.state_dict())
    assert _same(dict(full.model.state_dict()), dict(resumed.model.state_dict()))
