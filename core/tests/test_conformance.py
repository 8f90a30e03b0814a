"""The conformance kit itself: a good fake plugin passes every check, and each check catches its own fault."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer_optim import Arg, OptimizerRequest, OptimizerSpec, TargetModules, hookimpl, plugins
from trainer_optim.testing.conformance import Settings, check_plugin, conformance_cases

GOOD_PLUGIN = '''
"""A well-behaved plugin: imports trainer_optim only, one spec per capability."""

from trainer_optim import Arg, OptimizerSpec, SchedulerSpec, TargetModules, hookimpl


def build_sgd(request):
    import torch

    return torch.optim.SGD(request.param_groups(), lr=request.lr, momentum=request.args["momentum"])


def build_target(request):
    import torch

    return torch.optim.AdamW(request.param_groups({"rank": request.args["rank"]}), lr=request.lr)


def build_modes(request):
    import torch

    class ModesSGD(torch.optim.SGD):
        def train(self):
            pass

        def eval(self):
            pass

    return ModesSGD(request.param_groups(), lr=request.lr)


def build_fused(request):
    import torch

    class FusedSGD(torch.optim.SGD):
        def fused_backward(self, loss, lr):
            for group in self.param_groups:
                group["lr"] = lr
            self.zero_grad()
            loss.backward()
            self.step()

    return FusedSGD(request.param_groups(), lr=request.lr)


def build_cuda(request):
    import torch

    return torch.optim.SGD(request.param_groups(), lr=request.lr)


def build_step(request):
    import torch

    return torch.optim.lr_scheduler.StepLR(request.optimizer, step_size=request.args["step_size"], gamma=0.5)


@hookimpl
def register_optimizers(register):
    momentum = Arg("momentum", float, 0.9, "Momentum.")
    register(OptimizerSpec("good_sgd", build_sgd, "SGD.", args=[momentum], layerwise=True))
    register(
        OptimizerSpec(
            "good_target", build_target, "Targets.", args=[Arg("rank", int, 4, "Rank.", minimum=1)],
            target_modules=TargetModules.REQUIRED,
        )
    )
    register(OptimizerSpec("good_modes", build_modes, "Modes.", train_eval_modes=True))
    register(OptimizerSpec("good_fused", build_fused, "Fused.", fused_backward=True))
    register(OptimizerSpec("good_cuda", build_cuda, "CUDA only.", requires_cuda=True))


@hookimpl
def register_schedulers(register):
    register(SchedulerSpec("good_step", build_step, "Step.", args=[Arg("step_size", int, 2, "Period.", minimum=1)]))
'''

HEAVY_PLUGIN = """
import torch  # the fault: a heavy import at module level

from trainer_optim import OptimizerSpec, hookimpl


@hookimpl
def register_optimizers(register):
    register(OptimizerSpec("heavy_sgd", lambda r: torch.optim.SGD(r.param_groups(), lr=r.lr), "Heavy."))
"""


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> Any:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    return importlib.import_module(name)


def plugin_of(*specs: OptimizerSpec) -> object:
    """An in-process plugin object registering `specs`."""

    class Plugin:
        @hookimpl
        def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
            for spec in specs:
                register(spec)

    return Plugin()


def sgd(request: OptimizerRequest) -> torch.optim.Optimizer:
    return torch.optim.SGD(request.param_groups(), lr=request.lr)


def fails(plugin: object, check: str, name: str, match: str, settings: Settings | None = None) -> None:
    cases = dict(((n, c.check_name), c) for n, c in conformance_cases(plugin, settings=settings))
    with pytest.raises(AssertionError, match=rf"conformance check '{check}' failed for '{name}': .*{match}"):
        cases[(name, check)](name)


# ---------------------------------------------------------------------------------------------
# The good plugin passes everything
# ---------------------------------------------------------------------------------------------


def test_good_plugin_passes_every_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_module(tmp_path, monkeypatch, "good_fake_plugin", GOOD_PLUGIN)
    skipped = check_plugin(module)
    expected_skips = (
        set() if torch.cuda.is_available() else {f"good_cuda: {c}" for c in ("trains", "resumes", "capabilities")}
    )
    assert set(skipped) == expected_skips, skipped
    assert all("CUDA" in reason for reason in skipped.values())
    # Every name, the layer-wise variant and the scheduler included, got the checks that apply to it.
    pairs = {(n, c.check_name) for n, c in conformance_cases(module)}
    assert ("good_fake_plugin", "cheap_import") in pairs
    assert ("good_sgd_layerwise", "resumes") in pairs
    assert ("good_target", "target_modules") in pairs and ("good_sgd", "target_modules") not in pairs
    assert ("good_step", "resumes") in pairs
    assert plugins.get_registry().optimizers == {}, "the kit unregisters the plugin afterwards"


def test_cases_have_readable_pytest_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_module(tmp_path, monkeypatch, "good_fake_plugin_ids", GOOD_PLUGIN)
    name, check = conformance_cases(module, names=["good_sgd"])[1]
    assert (name, check.__name__) == ("good_sgd", "args")
    with pytest.raises(ValueError, match="registers no"):
        conformance_cases(module, names=["nope"])


def test_required_args_are_taken_from_settings() -> None:
    spec = OptimizerSpec("needs_k", sgd, "Needs k.", args=[Arg("k", int, help="Required.")])
    assert set(check_plugin(plugin_of(spec))) == {
        f"needs_k: {c}" for c in ("args", "trains", "resumes", "capabilities")
    }
    assert check_plugin(plugin_of(spec), settings=Settings(optim_args={"needs_k": {"k": 3}})) == {}


# ---------------------------------------------------------------------------------------------
# One broken plugin per check
# ---------------------------------------------------------------------------------------------


def test_cheap_import_catches_a_heavy_module_level_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_module(tmp_path, monkeypatch, "heavy_fake_plugin", HEAVY_PLUGIN)
    fails(module, "cheap_import", "heavy_fake_plugin", r"imports .*torch")


def test_args_catches_missing_help() -> None:
    spec = OptimizerSpec("no_help", sgd, "No help.", args=[Arg("momentum", float, 0.0)])
    fails(plugin_of(spec), "args", "no_help", "no help text")


def test_args_catches_a_missing_type() -> None:
    spec = OptimizerSpec("no_type", sgd, "No type.", args=[Arg("momentum", None, 0.0, "Momentum.")])
    fails(plugin_of(spec), "args", "no_type", "has no type")


def test_args_catches_a_default_that_fails_its_own_bounds() -> None:
    spec = OptimizerSpec("bad_default", sgd, "Bad default.", args=[Arg("rank", int, 0, "Rank.", minimum=1)])
    fails(plugin_of(spec), "args", "bad_default", "OptimArgsError")


def test_trains_catches_an_optimizer_that_does_not_learn() -> None:
    def frozen(request: OptimizerRequest) -> torch.optim.Optimizer:
        return torch.optim.SGD(request.param_groups(), lr=0.0)  # ignores request.lr

    fails(plugin_of(OptimizerSpec("frozen", frozen, "Frozen.")), "trains", "frozen", "no parameter changed")


def test_trains_catches_a_build_that_returns_no_optimizer() -> None:
    spec = OptimizerSpec("not_optim", lambda request: object(), "Not an optimizer.")
    fails(plugin_of(spec), "trains", "not_optim", "not a torch.optim.Optimizer")


class ForgetfulSGD(torch.optim.SGD):
    """Keeps its momentum outside `state`, so a checkpoint loses it."""

    def __init__(self, params: Any, lr: float):
        super().__init__(params, lr=lr)
        self.buffers: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                buf = self.buffers.setdefault(id(p), torch.zeros_like(p))
                buf.mul_(0.9).add_(p.grad)
                p.add_(buf, alpha=-group["lr"])


def test_resumes_catches_state_kept_outside_the_state_dict() -> None:
    spec = OptimizerSpec("forgetful", lambda r: ForgetfulSGD(r.param_groups(), r.lr), "Forgetful.")
    fails(plugin_of(spec), "resumes", "forgetful", "differ from uninterrupted")


class PicklingSGD(torch.optim.SGD):
    """Puts a Python object into its state dict, which torch.load(weights_only=True) refuses."""

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        state = super().state_dict()
        state["extra"] = ForgetfulSGD  # a class: not loadable with weights_only=True
        return state


def test_resumes_catches_a_state_dict_that_needs_pickle() -> None:
    spec = OptimizerSpec("pickling", lambda r: PicklingSGD(r.param_groups(), lr=r.lr), "Pickling.")
    fails(plugin_of(spec), "resumes", "pickling", "weights_only=True")


def test_target_modules_catches_options_on_every_group() -> None:
    def build(request: OptimizerRequest) -> torch.optim.Optimizer:
        groups = [{**g, "rank": 4} for g in request.param_groups()]  # the fault: ignores the selection
        return torch.optim.AdamW(groups, lr=request.lr)

    spec = OptimizerSpec("everywhere", build, "Everywhere.", target_modules=TargetModules.REQUIRED)
    fails(plugin_of(spec), "target_modules", "everywhere", "no option the other groups lack")


def test_target_modules_catches_mixed_groups() -> None:
    def build(request: OptimizerRequest) -> torch.optim.Optimizer:
        return torch.optim.AdamW(request.parameters, lr=request.lr)  # one group for everything

    spec = OptimizerSpec("mixed", build, "Mixed.", target_modules=TargetModules.OPTIONAL)
    fails(plugin_of(spec), "target_modules", "mixed", "mixes target and non-target")


def test_capabilities_catches_declared_modes_that_do_not_exist() -> None:
    spec = OptimizerSpec("no_modes", sgd, "No modes.", train_eval_modes=True)
    # `trains` already trips over the missing train(); `capabilities` names the mismatch.
    fails(plugin_of(spec), "capabilities", "no_modes", "declares train_eval_modes")


def test_capabilities_catches_undeclared_fused_backward() -> None:
    class Fused(torch.optim.SGD):
        def fused_backward(self, loss: torch.Tensor, lr: float) -> None:
            loss.backward()
            self.step()

    spec = OptimizerSpec("undeclared", lambda r: Fused(r.param_groups(), lr=r.lr), "Undeclared.")
    fails(plugin_of(spec), "capabilities", "undeclared", "does not declare fused_backward")


def test_capabilities_catches_declared_fused_backward_that_is_missing() -> None:
    spec = OptimizerSpec("missing_fused", sgd, "Missing.", fused_backward=True)
    fails(plugin_of(spec), "capabilities", "missing_fused", "has no fused_backward")
