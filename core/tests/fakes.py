"""Small fake plugins built on torch.optim, one per capability the core must honour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from trainer_optim import Arg, OptimizerRequest, OptimizerSpec, SchedulerRequest, SchedulerSpec, TargetModules, hookimpl


def build_sgd(request: OptimizerRequest) -> torch.optim.Optimizer:
    return torch.optim.SGD(request.param_groups(), lr=request.lr, momentum=request.args.get("momentum", 0.0))


SGD_ARGS = [
    Arg("momentum", float, 0.0, "Momentum factor.", minimum=0.0),
    Arg("nesterov", bool, False, "Nesterov momentum."),
    Arg("betas", tuple[float, float], (0.9, 0.999), "A tuple argument."),
    Arg("mode", str, "a", "A choice.", choices=("a", "b")),
    Arg("rank", int, 4, "A bounded int.", minimum=1),
    Arg("limit", float | None, None, "An optional float."),
]


class SGDPlugin:
    """`fake_sgd`: a plain optimizer with typed args, and a layer-wise variant."""

    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        register(OptimizerSpec("fake_sgd", build_sgd, "SGD for tests.", args=SGD_ARGS, layerwise=True))


class TargetPlugin:
    """`fake_target`: target modules required; target groups get `rank`."""

    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        def build(request: OptimizerRequest) -> torch.optim.Optimizer:
            return torch.optim.AdamW(request.param_groups({"rank": request.args["rank"]}), lr=request.lr)

        register(
            OptimizerSpec(
                "fake_target",
                build,
                "Targets for tests.",
                args=[Arg("rank", int, 8, "rank", minimum=1)],
                target_modules=TargetModules.REQUIRED,
            )
        )


class ScheduleFreeLikeSGD(torch.optim.SGD):
    """Records every mode switch, as schedule-free optimizers switch weights."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mode = "train"
        self.switches: list[str] = []

    def train(self) -> None:
        if self.mode != "train":
            self.switches.append("train")
        self.mode = "train"

    def eval(self) -> None:
        if self.mode != "eval":
            self.switches.append("eval")
        self.mode = "eval"


class FusedBackwardSGD(torch.optim.SGD):
    """Updates during backward, as LOMO does, and records the learning rates it was given."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.backward_lrs: list[float] = []

    def fused_backward(self, loss: torch.Tensor, lr: float) -> None:
        self.backward_lrs.append(lr)
        loss.backward()
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-lr)
                        p.grad = None

    def step(self, closure: Any = None) -> Any:  # the update already happened in fused_backward
        return None


class CapabilitiesPlugin:
    """`fake_modes`, `fake_fused`, `fake_feedback`, plus the metric-driven scheduler `fake_metric`."""

    @hookimpl
    def register_optimizers(self, register: Callable[[OptimizerSpec], None]) -> None:
        register(
            OptimizerSpec(
                "fake_modes",
                lambda r: ScheduleFreeLikeSGD(r.param_groups(), lr=r.lr),
                "train/eval modes",
                train_eval_modes=True,
                recommended_schedulers=("constant",),
            )
        )
        register(
            OptimizerSpec(
                "fake_fused", lambda r: FusedBackwardSGD(r.param_groups(), lr=r.lr), "fused", fused_backward=True
            )
        )
        register(
            OptimizerSpec(
                "fake_feedback", lambda r: torch.optim.SGD(r.param_groups(), lr=r.lr), "feedback", loss_feedback=True
            )
        )

    @hookimpl
    def register_schedulers(self, register: Callable[[SchedulerSpec], None]) -> None:
        class HalveOnMetric:
            def __init__(self, optimizer: torch.optim.Optimizer):
                self.optimizer = optimizer
                self.metrics: list[float] = []

            def step(self, metric: float) -> None:
                self.metrics.append(metric)
                for group in self.optimizer.param_groups:
                    group["lr"] *= 0.5

            def state_dict(self) -> dict[str, Any]:
                return {"metrics": list(self.metrics)}

            def load_state_dict(self, state: dict[str, Any]) -> None:
                self.metrics = list(state["metrics"])

        def build(request: SchedulerRequest) -> Any:
            return HalveOnMetric(request.optimizer)

        register(SchedulerSpec("fake_metric", build, "halves lr after each evaluation", metric_driven=True))
        register(
            SchedulerSpec(
                "fake_const",
                lambda r: torch.optim.lr_scheduler.LambdaLR(r.optimizer, lambda step: r.args["factor"]),
                "constant factor",
                args=[Arg("factor", float, 1.0, "lr multiplier", minimum=0.0)],
            )
        )
